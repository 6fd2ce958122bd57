package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"lanlink/internal/doctor"
	"lanlink/internal/lab"
)

// doctorRun runs `lanlink doctor --json` on s's gateway and returns its
// report and exit code.
func (n *network) doctor(s *site, extra ...string) (doctor.Report, int) {
	n.t.Helper()
	args := append([]string{lanlinkBin, "doctor", "--json", "-f", n.plan, "--key", s.key, "--interface", iface}, extra...)
	out, code := n.execSplit(s.office.Gateway, 60*time.Second, args...)
	var rep doctor.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		n.t.Fatalf("doctor on %s: exit %d, output %q: %v", s.name, code, out, err)
	}
	return rep, code
}

// execSplit runs argv in node and returns its stdout and exit code.
func (n *network) execSplit(node *lab.Node, timeout time.Duration, argv ...string) ([]byte, int) {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := node.Command(argv...)
	c := exec.CommandContext(ctx, cmd[0], cmd[1:]...)
	var stderr strings.Builder
	c.Stderr = &stderr
	out, err := c.Output()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out, 0
	case errors.As(err, &ee):
		return out, ee.ExitCode()
	}
	n.t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, stderr.String())
	return nil, 0
}

func check(rep doctor.Report, id string) (doctor.Result, bool) {
	for _, r := range rep.Checks {
		if r.ID == id {
			return r, true
		}
	}
	return doctor.Result{}, false
}

// wantCheck asserts check id has status st and that its detail and fix
// contain the given strings.
func wantCheck(t *testing.T, rep doctor.Report, id string, st doctor.Status, detail, fix []string) doctor.Result {
	t.Helper()
	r, ok := check(rep, id)
	if !ok {
		t.Fatalf("doctor has no check %s: %+v", id, rep.Checks)
	}
	if r.Status != st {
		t.Errorf("%s: status %s, want %s\ndetail: %s\nfix: %s", id, r.Status, st, r.Detail, r.Fix)
	}
	for _, s := range detail {
		if !strings.Contains(r.Detail, s) {
			t.Errorf("%s: detail lacks %q:\n%s", id, s, r.Detail)
		}
	}
	for _, s := range fix {
		if !strings.Contains(r.Fix, s) {
			t.Errorf("%s: fix lacks %q:\n%s", id, s, r.Fix)
		}
	}
	return r
}

// wantGreen asserts every check is ok and doctor exits 0.
func wantGreen(t *testing.T, rep doctor.Report, code int) {
	t.Helper()
	var bad []string
	for _, r := range rep.Checks {
		if r.Status != doctor.OK {
			bad = append(bad, fmt.Sprintf("%s %s: %s | fix: %s", r.ID, r.Status, r.Detail, r.Fix))
		}
	}
	if len(bad) > 0 || code != 0 || !rep.OK {
		t.Errorf("doctor not green (exit %d):\n%s", code, strings.Join(bad, "\n"))
	}
}

func sh(t *testing.T, node *lab.Node, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := node.Exec(ctx, "sh", "-ec", script)
	if err != nil {
		t.Fatalf("%s: %v", node.Name, err)
	}
	return strings.TrimSpace(string(out))
}

func pingFails(t *testing.T, from *lab.Node, to *lab.Node) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	return from.Ping(ctx, to.Addr, 1) != nil
}

// TestDoctor breaks, one at a time, each thing doctor checks on office1's
// gateway, asserts doctor names it with its fix, applies the fix and
// asserts the check is green again. One lab serves every round: each
// round restores what it broke before the next.
func TestDoctor(t *testing.T) {
	n := newNetwork(t, netOpts{offices: 2})
	// The agents would repair what this test breaks (forwarding, routes)
	// within a second; doctor must see the breakage, so they do not repair.
	n.upArgs = []string{"--repair-every=-1s"}
	n.upAll()
	s1, s2 := n.sites[0], n.sites[1]
	gw1 := s1.office.Gateway
	waitPing(t, s1.host(), s2.host().Addr, 10*time.Second)

	t.Run("healthy", func(t *testing.T) {
		rep, code := n.doctor(s1)
		wantGreen(t, rep, code)
		for _, id := range []string{"plan", "site", "agent", "listen-port", "forwarding", "rp-filter", "firewall", "overlap", "handshake:office2", "mtu:office2", "tcp-buffers", "congestion-control"} {
			if _, ok := check(rep, id); !ok {
				t.Errorf("no check %s", id)
			}
		}
	})

	t.Run("forwarding off", func(t *testing.T) {
		sh(t, gw1, "echo 0 > /proc/sys/net/ipv4/ip_forward")
		t.Cleanup(func() { sh(t, gw1, "echo 1 > /proc/sys/net/ipv4/ip_forward") })
		if !pingFails(t, s1.host(), s2.host()) {
			t.Error("LAN-to-LAN ping works with forwarding off: the break is not real")
		}
		rep, code := n.doctor(s1, "--no-probe")
		wantCheck(t, rep, "forwarding", doctor.Fail, []string{"net.ipv4.ip_forward = 0"}, []string{"sysctl -w net.ipv4.ip_forward=1"})
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		sh(t, gw1, "echo 1 > /proc/sys/net/ipv4/ip_forward")
		rep, _ = n.doctor(s1, "--no-probe")
		wantCheck(t, rep, "forwarding", doctor.OK, nil, nil)
	})

	t.Run("rp_filter strict", func(t *testing.T) {
		sh(t, gw1, "echo 1 > /proc/sys/net/ipv4/conf/all/rp_filter")
		t.Cleanup(func() { sh(t, gw1, "echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter") })
		// lanlink's routes keep the lab's paths symmetric, so strict mode
		// passes today's traffic: doctor warns, it does not fail.
		waitPing(t, s1.host(), s2.host().Addr, 3*time.Second)
		rep, code := n.doctor(s1, "--no-probe")
		wantCheck(t, rep, "rp-filter", doctor.Warn, []string{"strict rp_filter (1)", gw1.Iface, iface}, []string{"net.ipv4.conf.all.rp_filter=2"})
		if code != 0 {
			t.Errorf("exit %d for a warning, want 0", code)
		}
		sh(t, gw1, "echo 2 > /proc/sys/net/ipv4/conf/all/rp_filter")
		rep, _ = n.doctor(s1, "--no-probe")
		wantCheck(t, rep, "rp-filter", doctor.OK, nil, nil)
	})

	t.Run("nftables forward drop", func(t *testing.T) {
		sh(t, gw1, "nft add table inet dt; nft add chain inet dt fw '{ type filter hook forward priority 0; policy drop; }'; nft add rule inet dt fw ct state established,related accept")
		t.Cleanup(func() { sh(t, gw1, "nft delete table inet dt 2>/dev/null || true") })
		if !pingFails(t, s1.host(), s2.host()) {
			t.Error("LAN-to-LAN ping works through a dropping forward chain: the break is not real")
		}
		rep, _ := n.doctor(s1, "--no-probe")
		r := wantCheck(t, rep, "firewall", doctor.Fail, []string{"nftables chain inet dt fw drops new connections", "policy drop"},
			[]string{fmt.Sprintf(`nft insert rule inet dt fw iifname %q oifname %q accept`, gw1.Iface, iface)})
		// The printed fix is the fix: apply it as the admin would.
		sh(t, gw1, r.Fix)
		waitPing(t, s1.host(), s2.host().Addr, 3*time.Second)
		rep, _ = n.doctor(s1, "--no-probe")
		wantCheck(t, rep, "firewall", doctor.OK, nil, nil)
	})

	t.Run("iptables-legacy forward drop", func(t *testing.T) {
		// The legacy table lives in gw1's namespace only, like the nftables
		// one above; the reply rule is what such gateways usually carry.
		sh(t, gw1, "iptables-legacy -w 5 -P FORWARD DROP; iptables-legacy -w 5 -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
		t.Cleanup(func() { sh(t, gw1, "iptables-legacy -w 5 -P FORWARD ACCEPT; iptables-legacy -w 5 -F FORWARD") })
		if !pingFails(t, s1.host(), s2.host()) {
			t.Error("LAN-to-LAN ping works through iptables-legacy FORWARD policy drop: the break is not real")
		}
		rep, _ := n.doctor(s1, "--no-probe")
		r := wantCheck(t, rep, "firewall", doctor.Fail, []string{"iptables-legacy filter FORWARD drops new connections", "policy drop"},
			[]string{
				fmt.Sprintf("iptables-legacy -I FORWARD -i %s -o %s -j ACCEPT", gw1.Iface, iface),
				fmt.Sprintf("iptables-legacy -I FORWARD -i %s -o %s -j ACCEPT", iface, gw1.Iface),
			})
		// The printed fix is the fix: apply it as the admin would, and
		// doctor must read the rules it asked for and go green.
		sh(t, gw1, r.Fix)
		waitPing(t, s1.host(), s2.host().Addr, 3*time.Second)
		rep, _ = n.doctor(s1, "--no-probe")
		wantCheck(t, rep, "firewall", doctor.OK, nil, nil)
	})

	t.Run("overlapping network", func(t *testing.T) {
		addr := s2.office.LAN.Addr().Next().Next().Next() // in office2's LAN
		sh(t, gw1, fmt.Sprintf("ip link add dtov0 type veth peer name dtov1; ip addr add %s/%d dev dtov0", addr, s2.office.LAN.Bits()))
		t.Cleanup(func() { sh(t, gw1, "ip link del dtov0 2>/dev/null || true") })
		rep, _ := n.doctor(s1, "--no-probe")
		wantCheck(t, rep, "overlap", doctor.Fail, []string{"dtov0 has " + addr.String(), "office2's LAN " + s2.office.LAN.String()}, []string{"move dtov0 off"})
		sh(t, gw1, "ip link del dtov0")
		rep, _ = n.doctor(s1, "--no-probe")
		wantCheck(t, rep, "overlap", doctor.OK, nil, nil)
	})

	t.Run("small tcp buffers", func(t *testing.T) {
		// tcp_rmem is per network namespace; net.core.rmem_max is only
		// read here (the fake tests cover it), never written.
		orig := sh(t, gw1, "cat /proc/sys/net/ipv4/tcp_rmem")
		sh(t, gw1, "echo '4096 8192 8192' > /proc/sys/net/ipv4/tcp_rmem")
		t.Cleanup(func() { sh(t, gw1, fmt.Sprintf("echo '%s' > /proc/sys/net/ipv4/tcp_rmem", orig)) })
		rep, _ := n.doctor(s1, "--rate", "10gbit")
		wantCheck(t, rep, "tcp-buffers", doctor.Warn, []string{"net.ipv4.tcp_rmem max = 8192"}, []string{"sysctl -w net.ipv4.tcp_rmem=\"4096 8192 ", "/etc/sysctl.d/90-lanlink.conf"})
		sh(t, gw1, fmt.Sprintf("echo '%s' > /proc/sys/net/ipv4/tcp_rmem", orig))
		rep, _ = n.doctor(s1, "--rate", "10gbit")
		wantCheck(t, rep, "tcp-buffers", doctor.OK, nil, nil)
	})

	t.Run("path MTU black hole", func(t *testing.T) {
		// A veth drops frames larger than its MTU on receive without an
		// ICMP error: full-size tunnel packets to office2 vanish.
		r2 := s2.office.Router
		wan := s2.office.WANIface
		sh(t, r2, "ip link set dev "+wan+" mtu 1400")
		t.Cleanup(func() { sh(t, r2, "ip link set dev "+wan+" mtu 1500") })
		rep, code := n.doctor(s1)
		r := wantCheck(t, rep, "mtu:office2", doctor.Fail, []string{"MTU is 1420"}, []string{"in the [network] section of " + n.plan})
		// WireGuard over IPv4 adds 60 bytes and pads to 16; a veth
		// tolerates 4 bytes of VLAN tag beyond its MTU: 1344 passes.
		var got int
		if _, err := fmt.Sscanf(r.Detail, "path MTU to office2 is %d bytes", &got); err != nil || got < 1320 || got > 1344 {
			t.Errorf("measured path MTU %d (%v), want 1320…1344: %s", got, err, r.Detail)
		}
		if want := fmt.Sprintf("set `mtu = %d`", got); !strings.Contains(r.Fix, want) {
			t.Errorf("fix lacks %q: %s", want, r.Fix)
		}
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		sh(t, r2, "ip link set dev "+wan+" mtu 1500")
		rep, _ = n.doctor(s1)
		wantCheck(t, rep, "mtu:office2", doctor.OK, nil, nil)
	})

	t.Run("routes", func(t *testing.T) {
		routes := func() ([]doctor.SiteRoutes, int) {
			out, code := n.execSplit(gw1, 30*time.Second, lanlinkBin, "routes", "--json", "-f", n.plan, "--key", s1.key, "--interface", iface)
			var srs []doctor.SiteRoutes
			if err := json.Unmarshal(out, &srs); err != nil {
				t.Fatalf("routes output %q: %v", out, err)
			}
			return srs, code
		}
		state := func(srs []doctor.SiteRoutes, site, dst string) doctor.RouterRoute {
			for _, sr := range srs {
				for _, r := range sr.Routes {
					if sr.Site == site && r.Dst.String() == dst {
						return r
					}
				}
			}
			t.Fatalf("no route %s for %s in %+v", dst, site, srs)
			return doctor.RouterRoute{}
		}
		remote := s2.office.LAN.String()
		srs, code := routes()
		if r := state(srs, s1.name, remote); r.State != doctor.RouteInPlace || r.Via != s1.office.GatewayLAN {
			t.Errorf("route %s on office1's router: %+v, want in place via %s", remote, r, s1.office.GatewayLAN)
		}
		if r := state(srs, s2.name, s1.office.LAN.String()); r.State != "" || r.Via.IsValid() {
			t.Errorf("office2's route checked from office1's gateway: %+v", r)
		}
		if code != 0 {
			t.Errorf("exit %d with every route in place, want 0", code)
		}
		r1 := s1.office.Router
		sh(t, r1, fmt.Sprintf("ip route del %s via %s", remote, s1.office.GatewayLAN))
		t.Cleanup(func() { sh(t, r1, fmt.Sprintf("ip route replace %s via %s", remote, s1.office.GatewayLAN)) })
		srs, code = routes()
		if r := state(srs, s1.name, remote); r.State != doctor.RouteMissing {
			t.Errorf("removed route reported %+v, want missing", r)
		}
		if code != 1 {
			t.Errorf("exit %d with a missing route, want 1", code)
		}
		text, _ := n.execSplit(gw1, 30*time.Second, lanlinkBin, "routes", s1.name, "-f", n.plan, "--key", s1.key, "--interface", iface)
		line := fmt.Sprintf("ip route add %s via %s", remote, s1.office.GatewayLAN)
		if !strings.Contains(string(text), line) || !strings.Contains(string(text), "missing") {
			t.Errorf("routes output lacks %q marked missing:\n%s", line, text)
		}
		// The printed line is the fix.
		sh(t, r1, line)
		if srs, _ = routes(); state(srs, s1.name, remote).State != doctor.RouteInPlace {
			t.Errorf("route restored with the printed line but reported %+v", state(srs, s1.name, remote))
		}
	})

	t.Run("wrong peer key", func(t *testing.T) {
		other, err := wgtypes.GeneratePrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		run(t, "site", "set", s2.name, "-f", n.plan, "--public-key", other.PublicKey().String())
		t.Cleanup(func() { run(t, "site", "set", s2.name, "-f", n.plan, "--public-key", s2.pub) })
		n.waitPeerState(s1, s2.name, "never", 10*time.Second)
		rep, _ := n.doctor(s1)
		wantCheck(t, rep, "handshake:office2", doctor.Fail, []string{"never had a handshake", "nothing comes back", "not its key"}, []string{"lanlink doctor` on office2's gateway"})
		// And office2's own doctor names the cause.
		rep2, _ := n.doctor(s2, "--no-probe")
		wantCheck(t, rep2, "site", doctor.Fail, []string{"public key " + other.PublicKey().String(), s2.pub}, []string{"lanlink site set office2 --public-key " + s2.pub})

		run(t, "site", "set", s2.name, "-f", n.plan, "--public-key", s2.pub)
		n.waitPlanAccepted(s2, 10*time.Second)
		deadline := time.Now().Add(20 * time.Second)
		for {
			rep, _ = n.doctor(s1, "--no-probe")
			if r, _ := check(rep, "handshake:office2"); r.Status == doctor.OK || time.Now().After(deadline) {
				break
			}
			waitPing(t, s1.host(), s2.host().Addr, 5*time.Second)
		}
		wantCheck(t, rep, "handshake:office2", doctor.OK, nil, nil)
	})

	t.Run("agent not running", func(t *testing.T) {
		s1.down(t)
		rep, code := n.doctor(s1)
		wantCheck(t, rep, "agent", doctor.Fail, []string{"no lanlink agent"}, []string{"lanlink up -f " + n.plan})
		wantCheck(t, rep, "handshake:office2", doctor.Skip, []string{"not running"}, nil)
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		n.up(s1)
		n.waitUp(s1)
		waitPing(t, s1.host(), s2.host().Addr, 10*time.Second)
		rep, code = n.doctor(s1)
		wantGreen(t, rep, code)
	})
}

// waitPeerState waits until s's agent shows peer in state.
func (n *network) waitPeerState(s *site, peer, state string, within time.Duration) {
	n.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if st, err := s.status(); err == nil {
			for _, p := range st.Peers {
				if p.Site == peer && p.State == state {
					return
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	n.t.Fatalf("%s: peer %s not %s within %v", s.name, peer, state, within)
}

// waitPlanAccepted waits until s's agent has no rejected plan.
func (n *network) waitPlanAccepted(s *site, within time.Duration) {
	n.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if st, err := s.status(); err == nil && st.PlanError == "" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	n.t.Fatalf("%s: plan still rejected after %v", s.name, within)
}
