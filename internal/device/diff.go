package device

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// applyDiff is Configure for both backends: it validates want, reads the
// device's current state with get and writes only the difference with set.
func applyDiff(name string, log *slog.Logger, want Config, get func() (*wgtypes.Device, error), set func(wgtypes.Config) error) error {
	if err := validateConfig(want); err != nil {
		return fmt.Errorf("configure %s: %w", name, err)
	}
	cur, err := get()
	if err != nil {
		return err
	}
	cfg, changed := diffConfig(cur, want)
	if !changed {
		return nil
	}
	if err := set(cfg); err != nil {
		return err
	}
	log.Debug("WireGuard configuration applied", "peer_changes", len(cfg.Peers))
	return nil
}

// diffConfig computes the smallest change that turns current into want,
// and whether there is any. It is shared by both backends so that they
// agree on what "unchanged" means.
//
// Peers that exist on both sides are sent with UpdateOnly and only the
// fields that differ: rewriting an unchanged endpoint or allowed-IP list is
// harmless for the allowed IPs but resetting a peer (remove + add) would
// drop its session and force a new handshake, which is what a live reload
// must not do.
//
// want.ListenPort 0 means "any port; keep the current one": the current
// port of a device opened without one is random, and comparing it with 0
// would rebind on every call. A zero want endpoint means "learnt from the
// peer's handshakes", so the current (roamed) endpoint is kept.
//
// Removals come first so that a prefix moving from a removed peer to a new
// one is never briefly owned by both.
func diffConfig(current *wgtypes.Device, want Config) (wgtypes.Config, bool) {
	if current == nil {
		current = &wgtypes.Device{}
	}
	var cfg wgtypes.Config
	changed := false

	if want.PrivateKey != current.PrivateKey {
		k := want.PrivateKey
		cfg.PrivateKey = &k
		changed = true
	}
	if want.ListenPort != 0 && want.ListenPort != current.ListenPort {
		p := want.ListenPort
		cfg.ListenPort = &p
		changed = true
	}

	wanted := make(map[wgtypes.Key]bool, len(want.Peers))
	for _, p := range want.Peers {
		wanted[p.PublicKey] = true
	}
	have := make(map[wgtypes.Key]*wgtypes.Peer, len(current.Peers))
	for i := range current.Peers {
		p := &current.Peers[i]
		have[p.PublicKey] = p
		if !wanted[p.PublicKey] {
			cfg.Peers = append(cfg.Peers, wgtypes.PeerConfig{PublicKey: p.PublicKey, Remove: true})
		}
	}

	for _, w := range want.Peers {
		wantIPs := normPrefixes(w.AllowedIPs)
		wantKA := w.PersistentKeepalive.Truncate(time.Second)
		cur, ok := have[w.PublicKey]
		if !ok {
			pc := wgtypes.PeerConfig{
				PublicKey:         w.PublicKey,
				ReplaceAllowedIPs: true,
				AllowedIPs:        ipNets(wantIPs),
			}
			if w.Endpoint.IsValid() {
				pc.Endpoint = udpAddr(w.Endpoint)
			}
			if wantKA > 0 {
				pc.PersistentKeepaliveInterval = &wantKA
			}
			cfg.Peers = append(cfg.Peers, pc)
			changed = true
			continue
		}

		pc := wgtypes.PeerConfig{PublicKey: w.PublicKey, UpdateOnly: true}
		peerChanged := false
		if w.Endpoint.IsValid() && normAddrPort(w.Endpoint) != addrPortOf(cur.Endpoint) {
			pc.Endpoint = udpAddr(w.Endpoint)
			peerChanged = true
		}
		if !slices.Equal(wantIPs, normPrefixes(prefixesOf(cur.AllowedIPs))) {
			pc.ReplaceAllowedIPs = true
			pc.AllowedIPs = ipNets(wantIPs)
			peerChanged = true
		}
		if wantKA != cur.PersistentKeepaliveInterval.Truncate(time.Second) {
			pc.PersistentKeepaliveInterval = &wantKA
			peerChanged = true
		}
		if peerChanged {
			cfg.Peers = append(cfg.Peers, pc)
			changed = true
		}
	}
	if len(cfg.Peers) > 0 {
		changed = true
	}
	return cfg, changed
}

// validateConfig rejects configs that the backends would silently accept
// with surprising results.
func validateConfig(cfg Config) error {
	var zero wgtypes.Key
	if cfg.PrivateKey == zero {
		return errors.New("device config has no private key")
	}
	if cfg.ListenPort < 0 || cfg.ListenPort > 65535 {
		return fmt.Errorf("device config: listen port %d out of range 0-65535", cfg.ListenPort)
	}
	self := cfg.PrivateKey.PublicKey()
	seen := make(map[wgtypes.Key]bool, len(cfg.Peers))
	for _, p := range cfg.Peers {
		if p.PublicKey == zero {
			return errors.New("device config: a peer has no public key")
		}
		if p.PublicKey == self {
			// wireguard-go ignores such a peer; the kernel rejects it.
			return fmt.Errorf("device config: peer %s is this device's own public key", p.PublicKey)
		}
		if seen[p.PublicKey] {
			return fmt.Errorf("device config: peer %s appears twice", p.PublicKey)
		}
		seen[p.PublicKey] = true
		if p.PersistentKeepalive < 0 || p.PersistentKeepalive > 65535*time.Second {
			return fmt.Errorf("device config: peer %s: persistent keepalive %v out of range 0-65535s", p.PublicKey, p.PersistentKeepalive)
		}
		for _, pfx := range p.AllowedIPs {
			if !pfx.IsValid() {
				return fmt.Errorf("device config: peer %s has an invalid allowed IP", p.PublicKey)
			}
		}
	}
	return nil
}

// normPrefixes returns the set of prefixes in a canonical form (masked,
// IPv4 unmapped, sorted, without duplicates) so that sets from the plan,
// the kernel and wireguard-go compare equal when they mean the same.
func normPrefixes(ps []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ps))
	for _, p := range ps {
		if !p.IsValid() {
			continue
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(out)
}

func prefixesOf(nets []net.IPNet) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(nets))
	for _, n := range nets {
		a, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		ones, bits := n.Mask.Size()
		if bits == 0 {
			continue // non-canonical mask: cannot be a WireGuard allowed IP
		}
		if a.Is4In6() && bits == 32 {
			a = a.Unmap()
		}
		if a.Is4() && bits == 128 {
			ones -= 96
		}
		out = append(out, netip.PrefixFrom(a, ones))
	}
	return out
}

func ipNets(ps []netip.Prefix) []net.IPNet {
	out := make([]net.IPNet, 0, len(ps))
	for _, p := range ps {
		out = append(out, net.IPNet{
			IP:   net.IP(p.Addr().AsSlice()),
			Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
		})
	}
	return out
}

func normAddrPort(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func addrPortOf(a *net.UDPAddr) netip.AddrPort {
	if a == nil {
		return netip.AddrPort{}
	}
	return normAddrPort(a.AddrPort())
}

func udpAddr(ap netip.AddrPort) *net.UDPAddr {
	return net.UDPAddrFromAddrPort(normAddrPort(ap))
}
