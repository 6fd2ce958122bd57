package cli

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"lanlink/internal/agent"
)

func TestWriteStatus(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	st := &agent.Status{
		Network: "acme", Site: "alpha", Backend: "userspace", Interface: "lanlink0", PID: 42,
		Addresses: []netip.Prefix{netip.MustParsePrefix("10.255.0.1/24")}, ListenPort: 51820,
		Started: now.Add(-90 * time.Second), Plan: "/etc/lanlink/network.toml", Generation: 3,
		PlanError: `network.toml:7: site "delta": lan: overlaps beta`,
		Problems:  []string{"route 192.168.20.0/24 already exists via eth1"},
		Repairs:   2,
		Peers: []agent.PeerStatus{
			{Site: "beta", Endpoint: "beta.example.com:51820", Actual: "203.0.113.7:51820", State: agent.PeerUp,
				LastHandshake: now.Add(-12 * time.Second), HandshakeAge: 12, RxBytes: 1536, TxBytes: 3 << 20,
				LANs: []netip.Prefix{netip.MustParsePrefix("192.168.20.0/24")}},
			{Site: "gamma", State: agent.PeerNever, Via: []string{"delta"}},
		},
	}
	var b bytes.Buffer
	writeStatus(&b, st, now)
	out := b.String()
	for _, want := range []string{
		"site alpha (network acme) on lanlink0, userspace backend, pid 42",
		"address 10.255.0.1/24, listening on UDP 51820, up 1m30s",
		`plan rejected: network.toml:7: site "delta": lan: overlaps beta`,
		"still running generation 3",
		"problem: route 192.168.20.0/24 already exists via eth1",
		"repaired 2 piece(s)",
		"beta.example.com:51820 (203.0.113.7:51820)",
		"12s ago", "1.5 KiB", "3.0 MiB", "192.168.20.0/24",
		"(dials in)", "never", "relays delta",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
}
