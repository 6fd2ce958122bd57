package agent

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"lanlink/internal/device"
	"lanlink/internal/plan"
)

// rekeyWindow: WireGuard starts a new handshake after 120 s of a session
// plus up to a few seconds of retries. A peer with a DNS endpoint whose last
// handshake is older than this may have moved, so its name is re-resolved.
const rekeyWindow = 135 * time.Second

const resolveTimeout = 5 * time.Second

// deviceConfig turns the site's desired state into the device's, resolving
// endpoints. A peer that is already configured with the same endpoint spec
// gets no endpoint (meaning "leave it"), so that WireGuard's roaming —
// following the source of authenticated packets — is not undone by a
// reload.
func (a *Agent) deviceConfig(ctx context.Context, key wgtypes.Key, cfg *plan.SiteConfig) device.Config {
	dc := device.Config{PrivateKey: key, ListenPort: cfg.ListenPort}
	var old map[wgtypes.Key]string
	if a.cfg != nil {
		old = make(map[wgtypes.Key]string, len(a.cfg.Peers))
		for _, p := range a.cfg.Peers {
			old[p.PublicKey] = p.Endpoint
		}
	}
	var toResolve []string
	for _, p := range cfg.Peers {
		if p.Endpoint == "" {
			continue
		}
		if spec, ok := old[p.PublicKey]; ok && spec == p.Endpoint && a.resolved[p.PublicKey].IsValid() {
			continue
		}
		toResolve = append(toResolve, p.Endpoint)
	}
	addrs := a.resolveAll(ctx, toResolve)
	keep := make(map[wgtypes.Key]bool, len(cfg.Peers))
	for _, p := range cfg.Peers {
		keep[p.PublicKey] = true
		pc := device.PeerConfig{PublicKey: p.PublicKey, AllowedIPs: p.AllowedIPs, PersistentKeepalive: p.PersistentKeepalive}
		if ap, ok := addrs[p.Endpoint]; ok {
			pc.Endpoint = ap
		}
		dc.Peers = append(dc.Peers, pc)
	}
	for k := range a.resolved {
		if !keep[k] {
			delete(a.resolved, k)
		}
	}
	return dc
}

// resolveAll resolves endpoint specs concurrently, each within
// resolveTimeout. Specs that fail are logged and left out: the peer is
// configured without an endpoint for now (it can still reach us) and is
// retried by the health check.
func (a *Agent) resolveAll(ctx context.Context, specs []string) map[string]netip.AddrPort {
	out := make(map[string]netip.AddrPort, len(specs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, spec := range specs {
		if _, dup := out[spec]; dup {
			continue
		}
		if ap, err := netip.ParseAddrPort(spec); err == nil {
			out[spec] = ap
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ap, err := a.resolve(ctx, spec)
			if err != nil {
				a.log.Warn("resolve endpoint; will retry", "endpoint", spec, "err", err)
				return
			}
			mu.Lock()
			out[spec] = ap
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// resolve turns "host:port" into an address, preferring IPv4 when the
// name has both: most office uplinks are IPv4-only.
func (a *Agent) resolve(ctx context.Context, spec string) (netip.AddrPort, error) {
	host, portStr, err := net.SplitHostPort(spec)
	if err != nil {
		return netip.AddrPort{}, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("port %q: %w", portStr, err)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(ip, uint16(port)), nil
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	ips, err := a.sys.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if len(ips) == 0 {
		return netip.AddrPort{}, fmt.Errorf("%s has no addresses", host)
	}
	best := ips[0]
	for _, ip := range ips {
		if ip.Unmap().Is4() {
			best = ip
			break
		}
	}
	return netip.AddrPortFrom(best.Unmap(), uint16(port)), nil
}

// isName reports whether an endpoint spec names a host by DNS name (only
// those can change without a plan change).
func isName(spec string) bool {
	host, _, err := net.SplitHostPort(spec)
	if err != nil {
		return false
	}
	_, err = netip.ParseAddr(host)
	return err != nil
}

// reresolve resolves the DNS endpoints of the given peers (nil: all) and
// points the device at any address that changed, without touching
// anything else.
func (a *Agent) reresolve(ctx context.Context, only []wgtypes.Key) {
	if only != nil && len(only) == 0 {
		return
	}
	want := map[wgtypes.Key]bool{}
	for _, k := range only {
		want[k] = true
	}
	var specs []string
	for _, p := range a.cfg.Peers {
		if isName(p.Endpoint) && (only == nil || want[p.PublicKey]) {
			specs = append(specs, p.Endpoint)
		}
	}
	if len(specs) == 0 {
		return
	}
	addrs := a.resolveAll(ctx, specs)
	next := device.Config{PrivateKey: a.devCfg.PrivateKey, ListenPort: a.devCfg.ListenPort}
	changed := false
	for i, pc := range a.devCfg.Peers {
		pc.Endpoint = netip.AddrPort{}
		spec := a.cfg.Peers[i].Endpoint
		if ap, ok := addrs[spec]; ok && ap != a.resolved[pc.PublicKey] {
			a.log.Info("endpoint moved", "site", a.cfg.Peers[i].Site, "endpoint", spec, "from", a.resolved[pc.PublicKey], "to", ap)
			pc.Endpoint = ap
			changed = true
		}
		next.Peers = append(next.Peers, pc)
	}
	if !changed {
		return
	}
	if err := a.dev.Configure(next); err != nil {
		a.log.Error("update endpoints", "err", err)
		return
	}
	for _, pc := range next.Peers {
		if pc.Endpoint.IsValid() {
			a.resolved[pc.PublicKey] = pc.Endpoint
		}
	}
}
