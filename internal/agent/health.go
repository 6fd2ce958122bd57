package agent

import (
	"bytes"
	"context"
	"net/netip"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"lanlink/internal/device"
	"lanlink/internal/plan"
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
//     (then at most every reresolveGap while it stays silent). A false alarm costs one DNS
//     lookup whose answer changes nothing.
const (
	// healthEvery is how often peer counters are checked (one UAPI or
	// netlink read of the device: cheap, and crossed handshakes are
	// caught within a second).
	healthEvery = 500 * time.Millisecond
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
	// announceStagger is how long the side of a pair that does not break
	// ties waits before it announces. Both announcing at once crosses
	// their handshakes, and on a link with almost no delay (two gateways
	// in one data centre, the lab) that can hit a race in wireguard-go:
	// ConsumeMessageResponse checks the handshake state under a read lock
	// and writes it later without checking again (the kernel module checks
	// again under the write lock), so a response processed alongside the
	// peer's initiation yields a session whose receive index is never
	// registered. That side can send but drops everything the peer sends
	// until WireGuard gives up on the session 15 s later. The race needs
	// the two initiations within a fraction of a millisecond, so 100 ms
	// keeps them apart under any load; where the other side's handshake
	// takes longer than that (a long link), our late one is merely a spare
	// handshake, since it no longer crosses: the other side already has
	// our response. It delays the recovery of a restarted gateway with the
	// larger key by as much.
	announceStagger = 100 * time.Millisecond
)

// Crossed handshakes. When both gateways start a handshake within one
// WAN round trip of each other (both agents started together, traffic in
// both directions), each answers the other's initiation, which replaces its
// own pending one, and then drops the answer to it: no session. Answering
// also resets WireGuard's 5 s handshake rate limit, so both sides try again
// 5 s later with the same offset and cross again, for as long as traffic
// keeps them in step (a minute and more on an 80 ms link in the lab). One
// side must break the tie: it drops its state for the peer and starts a
// handshake at once, out of step with the other, whose next attempt is
// seconds away.
const (
	// crossedAfter: we keep hearing valid handshake messages from the
	// peer but no session comes of it for this long. A handshake that
	// works takes one round trip and a half (the initiator's first
	// keepalive confirms the session); 1.5 s is beyond that on any
	// terrestrial link and well short of the peer's next attempt, 5 s
	// after the crossing, so the restart lands between two of its attempts
	// and crosses again only if the peer's own next one is within a round
	// trip of it (then it is simply retried).
	crossedAfter = 1500 * time.Millisecond
	// rejectAfter is WireGuard's REJECT_AFTER_TIME: a session older than
	// this carries no traffic.
	rejectAfter = 180 * time.Second
)

// peerHealth is what the health check remembers about one peer.
type peerHealth struct {
	rx, txAtRx int64     // counters when rx last changed
	heard      time.Time // when rx last changed (or tracking began)
	resolved   time.Time // last re-resolution for silence
	crossed    time.Time // since when we hear the peer but have no session
	sessionRx  int64     // rx when we last had a session
	reset      time.Time // last tie-break
}

// announce makes the device handshake with each of the given peers (all
// when only is nil) that has an endpoint and no persistent keepalive of its
// own (those send one when created). Of two gateways announcing to each
// other at the same moment — started together, or reloading the same new
// plan — only the one that breaks ties does so at once; the other waits
// announceStagger and then announces to those peers that have not
// completed a handshake meanwhile (see announceDue).
func (a *Agent) announce(only map[wgtypes.Key]bool) {
	now, deferred := map[wgtypes.Key]bool{}, false
	for i, pc := range a.devCfg.Peers {
		if only != nil && !only[pc.PublicKey] || pc.PersistentKeepalive != 0 || a.cfg.Peers[i].Endpoint == "" || !a.resolved[pc.PublicKey].IsValid() {
			continue
		}
		if a.breaksTies(a.cfg.Peers[i]) {
			now[pc.PublicKey] = true
			continue
		}
		a.later[pc.PublicKey] = time.Now()
		deferred = true
	}
	if deferred {
		a.laterTimer.Reset(announceStagger)
	}
	a.handshakeNow(now)
}

// announceDue runs announceStagger after announce deferred some peers: it
// asks for a handshake with those of them that have not had one since.
func (a *Agent) announceDue() {
	if len(a.later) == 0 {
		return
	}
	stats, err := a.dev.Stats()
	if err != nil {
		a.log.Warn("read WireGuard peers for a deferred handshake", "err", err)
	}
	done := map[wgtypes.Key]time.Time{}
	for _, s := range stats {
		done[s.PublicKey] = s.LastHandshake
	}
	due := map[wgtypes.Key]bool{}
	for k, since := range a.later {
		if !done[k].After(since) {
			due[k] = true
		}
	}
	clear(a.later)
	a.handshakeNow(due)
}

// handshakeNow makes the device send a keepalive to each peer in set. Without
// a session a keepalive starts a handshake; both WireGuard implementations
// send one immediately when a peer's persistent keepalive is switched on,
// so switching it on and back off is the way to ask for a handshake through
// the device's configuration interface.
func (a *Agent) handshakeNow(set map[wgtypes.Key]bool) {
	if len(set) == 0 {
		return
	}
	on := device.Config{PrivateKey: a.devCfg.PrivateKey, ListenPort: a.devCfg.ListenPort}
	off := on
	for _, pc := range a.devCfg.Peers {
		pc.Endpoint = netip.AddrPort{} // keep whatever the device has (maybe roamed)
		off.Peers = append(off.Peers, pc)
		if set[pc.PublicKey] {
			pc.PersistentKeepalive = announceKeepalive
		}
		on.Peers = append(on.Peers, pc)
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
	var stale, reset []wgtypes.Key
	seen := make(map[wgtypes.Key]bool, len(a.cfg.Peers))
	for _, p := range a.cfg.Peers {
		seen[p.PublicKey] = true
		s, ok := byKey[p.PublicKey]
		if !ok {
			continue
		}
		h := a.health[p.PublicKey]
		if h == nil {
			h = &peerHealth{rx: s.RxBytes, txAtRx: s.TxBytes, heard: now}
			a.health[p.PublicKey] = h
		}
		if a.crossedHandshakes(p, s, h, now) {
			reset = append(reset, p.PublicKey)
		}
		if s.RxBytes != h.rx {
			h.rx, h.txAtRx, h.heard = s.RxBytes, s.TxBytes, now
			continue
		}
		if !isName(p.Endpoint) {
			continue
		}
		silent := s.TxBytes > h.txAtRx && now.Sub(h.heard) >= unresponsiveAfter
		old := now.Sub(s.LastHandshake) > rekeyWindow
		// The gap bounds lookups within one silence; a new silence
		// (the peer answered since the last lookup) gets its first one
		// at once: an office whose address changes twice in a few
		// seconds is followed both times.
		fresh := silent && h.resolved.Before(h.heard)
		if (silent || old) && (fresh || now.Sub(h.resolved) >= reresolveGap) {
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
	if len(reset) > 0 {
		a.restartHandshakes(reset)
	}
}

// crossedHandshakes tracks whether the peer and we keep crossing
// handshakes, and reports whether we are the side that breaks the tie now.
func (a *Agent) crossedHandshakes(p plan.Peer, s device.PeerStats, h *peerHealth, now time.Time) bool {
	noSession := s.LastHandshake.IsZero() || now.Sub(s.LastHandshake) > rejectAfter
	if !noSession {
		h.crossed, h.sessionRx = time.Time{}, s.RxBytes
		return false
	}
	// Valid handshake messages from the peer (only those count in rx
	// without a session) and still no session.
	if h.crossed.IsZero() {
		if s.RxBytes > h.sessionRx {
			h.crossed = now
		}
		return false
	}
	if now.Sub(h.crossed) < crossedAfter || now.Sub(h.reset) < crossedAfter {
		return false
	}
	if !a.breaksTies(p) {
		return false
	}
	a.log.Info("handshakes with peer keep crossing; restarting ours out of step", "site", p.Site, "for", now.Sub(h.crossed).Round(time.Second))
	h.reset, h.crossed = now, time.Time{}
	return true
}

// breaksTies says whether this side restarts crossed handshakes with p:
// exactly one side of every pair must. Only a side that can reach the
// other (has its endpoint) can; if both can, the one with the smaller
// public key does. A site without an endpoint of its own (it sends
// keepalives to keep its NAT open) cannot be reached by p first, so it is
// the one.
func (a *Agent) breaksTies(p plan.Peer) bool {
	if !a.resolved[p.PublicKey].IsValid() {
		return false
	}
	if p.PersistentKeepalive > 0 {
		return true
	}
	ours := a.cfg.PublicKey
	return bytes.Compare(ours[:], p.PublicKey[:]) < 0
}

// restartHandshakes drops the device's state for the given peers (they
// have no session, so nothing is lost), puts them back with their
// endpoints, and starts a handshake with each at once.
func (a *Agent) restartHandshakes(keys []wgtypes.Key) {
	drop := make(map[wgtypes.Key]bool, len(keys))
	for _, k := range keys {
		drop[k] = true
	}
	without := device.Config{PrivateKey: a.devCfg.PrivateKey, ListenPort: a.devCfg.ListenPort}
	with := without
	for _, pc := range a.devCfg.Peers {
		if drop[pc.PublicKey] {
			pc.Endpoint = a.resolved[pc.PublicKey]
			with.Peers = append(with.Peers, pc)
			continue
		}
		pc.Endpoint = netip.AddrPort{} // keep what the device has
		without.Peers = append(without.Peers, pc)
		with.Peers = append(with.Peers, pc)
	}
	if err := a.dev.Configure(without); err != nil {
		a.log.Warn("restart handshakes", "err", err)
		return
	}
	if err := a.dev.Configure(with); err != nil {
		a.log.Error("restore peers after restarting handshakes", "err", err)
		return
	}
	a.handshakeNow(drop) // we break the tie: at once
}
