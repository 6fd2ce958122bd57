package agent

import (
	"context"
	"net/netip"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"lanlink/internal/device"
)

// Health tracking. WireGuard recovers from most faults on its own, but two
// need the agent:
//
//   - A restarted agent has a fresh device without sessions, while its
//     peers still hold the session of the previous one and keep sending on
//     it; those packets are dropped, and WireGuard on the far side only
//     gives up on the session 15 s after it stopped hearing back (longer if
//     it sends nothing). So after start, a key change or a new peer, the
//     agent makes the device handshake with every peer it can reach
//     (announce): the far side then switches to the new session at once.
//
//   - A peer whose address changed behind its DNS name stops answering.
//     WireGuard keeps sending to the old address; only re-resolving the
//     name finds the new one. Waiting for the rekey window (135 s) or the
//     periodic re-resolution (5 min) is slow, so a peer that has been sent
//     packets but has not answered for unresponsiveAfter is re-resolved
//     (at most every reresolveGap per peer). A false alarm costs one DNS
//     lookup whose answer changes nothing.
const (
	// healthEvery is how often peer counters are checked.
	healthEvery = 2 * time.Second
	// unresponsiveAfter: we sent, nothing came back for this long. A
	// peer's WireGuard answers data within 10 s even when it has nothing
	// to say (passive keepalive), so this is shorter than WireGuard's own
	// 15 s only by a margin that costs at most a lookup.
	unresponsiveAfter = 5 * time.Second
	// reresolveGap bounds the lookups for one silent peer.
	reresolveGap = 10 * time.Second
	// announceKeepalive is the keepalive briefly set to make the device
	// send (and, without a session, handshake) right away; any non-zero
	// value does.
	announceKeepalive = 25 * time.Second
)

// peerHealth is what the health check remembers about one peer.
type peerHealth struct {
	rx, txAtRx int64     // counters when rx last changed
	heard      time.Time // when rx last changed (or tracking began)
	resolved   time.Time // last re-resolution for silence
}

// announce makes the device send a keepalive to each of the given peers
// that has an endpoint and no persistent keepalive of its own (those send
// one when created). Without a session a keepalive starts a handshake; both
// WireGuard implementations send one immediately when a peer's persistent
// keepalive is switched on, so switching it on and back off is the way to
// ask for a handshake through the device's configuration interface.
func (a *Agent) announce(only map[wgtypes.Key]bool) {
	on := device.Config{PrivateKey: a.devCfg.PrivateKey, ListenPort: a.devCfg.ListenPort}
	off := on
	n := 0
	for i, pc := range a.devCfg.Peers {
		pc.Endpoint = netip.AddrPort{} // keep whatever the device has (maybe roamed)
		off.Peers = append(off.Peers, pc)
		if (only == nil || only[pc.PublicKey]) && pc.PersistentKeepalive == 0 && a.cfg.Peers[i].Endpoint != "" && a.resolved[pc.PublicKey].IsValid() {
			pc.PersistentKeepalive = announceKeepalive
			n++
		}
		on.Peers = append(on.Peers, pc)
	}
	if n == 0 {
		return
	}
	if err := a.dev.Configure(on); err != nil {
		a.log.Warn("ask WireGuard to handshake with peers", "err", err)
	}
	if err := a.dev.Configure(off); err != nil {
		a.log.Error("restore keepalives after handshake request", "err", err)
	}
}

// checkHealth runs on every health tick: peers with DNS endpoints that are
// silent while we send, or whose handshake is older than the rekey window,
// are re-resolved.
func (a *Agent) checkHealth(ctx context.Context, now time.Time) {
	stats, err := a.dev.Stats()
	if err != nil {
		return
	}
	byKey := make(map[wgtypes.Key]device.PeerStats, len(stats))
	for _, s := range stats {
		byKey[s.PublicKey] = s
	}
	if a.health == nil {
		a.health = map[wgtypes.Key]*peerHealth{}
	}
	var stale []wgtypes.Key
	seen := make(map[wgtypes.Key]bool, len(a.cfg.Peers))
	for _, p := range a.cfg.Peers {
		seen[p.PublicKey] = true
		s, ok := byKey[p.PublicKey]
		if !ok {
			continue
		}
		h := a.health[p.PublicKey]
		if h == nil || s.RxBytes != h.rx {
			a.health[p.PublicKey] = &peerHealth{rx: s.RxBytes, txAtRx: s.TxBytes, heard: now, resolved: timeOr(h)}
			continue
		}
		if !isName(p.Endpoint) {
			continue
		}
		silent := s.TxBytes > h.txAtRx && now.Sub(h.heard) >= unresponsiveAfter
		old := now.Sub(s.LastHandshake) > rekeyWindow
		if (silent || old) && now.Sub(h.resolved) >= reresolveGap {
			h.resolved = now
			stale = append(stale, p.PublicKey)
			if silent {
				a.log.Info("peer not answering; re-resolving its endpoint", "site", p.Site, "endpoint", p.Endpoint, "silent_for", now.Sub(h.heard).Round(time.Second))
			}
		}
	}
	for k := range a.health {
		if !seen[k] {
			delete(a.health, k)
		}
	}
	if len(stale) > 0 {
		a.reresolve(ctx, stale)
	}
}

func timeOr(h *peerHealth) time.Time {
	if h == nil {
		return time.Time{}
	}
	return h.resolved
}
