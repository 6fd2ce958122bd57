package agent

import (
	"net/netip"
	"sort"
	"time"

	"lanlink/internal/device"
	"lanlink/internal/plan"
)

// StaleAfter is how old a handshake may be before a peer is shown as
// stale. WireGuard re-handshakes every 2 minutes while traffic flows and
// stops using a session after 3 (REJECT_AFTER_TIME), so an older handshake
// means the tunnel is idle or broken.
const StaleAfter = 180 * time.Second

// Peer states shown by status.
const (
	PeerUp    = "up"
	PeerStale = "stale"
	PeerNever = "never"
)

// Status is what `lanlink status` shows; it is also the control socket's
// JSON answer, so field names are part of the interface.
type Status struct {
	Network    string         `json:"network"`
	Site       string         `json:"site"`
	PublicKey  string         `json:"public_key"`
	Backend    string         `json:"backend"`
	Interface  string         `json:"interface"`
	Addresses  []netip.Prefix `json:"addresses"`
	ListenPort int            `json:"listen_port"`
	PID        int            `json:"pid"`
	Started    time.Time      `json:"started"`
	Plan       string         `json:"plan"`
	// Generation counts the plans applied since start (1 = the first).
	Generation int `json:"generation"`
	// PlanError is set while the newest plan on disk is rejected; the
	// agent keeps running the last good one.
	PlanError string `json:"plan_error,omitempty"`
	// ReloadErrors counts rejected plans since start.
	ReloadErrors int          `json:"reload_errors"`
	Peers        []PeerStatus `json:"peers"`
	// Problems are what the last host check found wrong and deliberately
	// left alone (a route to a remote LAN through another interface), or
	// could not repair; each says how to fix it. Empty when healthy.
	Problems []string `json:"problems,omitempty"`
	// Repairs counts the pieces of host network and firewall state that
	// were removed behind lanlink's back and put back since start.
	Repairs int `json:"repairs,omitempty"`
}

// PeerStatus is one peer's line in status.
type PeerStatus struct {
	Site     string `json:"site"`
	Endpoint string `json:"endpoint,omitempty"` // as in the plan
	// Actual is the address WireGuard currently sends to (resolved, or
	// learnt from the peer's packets when it roams or has no endpoint).
	Actual        string         `json:"actual_endpoint,omitempty"`
	LastHandshake time.Time      `json:"last_handshake,omitzero"`
	HandshakeAge  float64        `json:"handshake_age_seconds,omitempty"`
	RxBytes       int64          `json:"rx_bytes"`
	TxBytes       int64          `json:"tx_bytes"`
	LANs          []netip.Prefix `json:"lans"`
	Via           []string       `json:"via,omitempty"`
	State         string         `json:"state"`
}

// peerStatuses joins the plan's view of the peers with the device's
// counters. Peers the device does not know (yet) are shown as never.
func peerStatuses(cfg *plan.SiteConfig, stats []device.PeerStats, now time.Time) []PeerStatus {
	byKey := make(map[[32]byte]device.PeerStats, len(stats))
	for _, s := range stats {
		byKey[s.PublicKey] = s
	}
	out := make([]PeerStatus, 0, len(cfg.Peers))
	for _, p := range cfg.Peers {
		ps := PeerStatus{Site: p.Site, Endpoint: p.Endpoint, LANs: p.LANs, Via: p.Via, State: PeerNever}
		if s, ok := byKey[p.PublicKey]; ok {
			if s.Endpoint.IsValid() {
				ps.Actual = s.Endpoint.String()
			}
			ps.RxBytes, ps.TxBytes = s.RxBytes, s.TxBytes
			if !s.LastHandshake.IsZero() {
				ps.LastHandshake = s.LastHandshake
				age := now.Sub(s.LastHandshake)
				ps.HandshakeAge = age.Round(time.Second).Seconds()
				ps.State = PeerUp
				if age > StaleAfter {
					ps.State = PeerStale
				}
			}
		}
		out = append(out, ps)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Site < out[j].Site })
	return out
}
