package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"lanlink/internal/lab"
)

// Two offices: LAN hosts reach each other both ways (ICMP and a checksummed
// TCP transfer), gateways reach each other's tunnel address, and the stock
// wg tool sees the peer with a recent handshake.
func TestTwoOffices(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, netOpts{offices: 2})
	n.upAll()
	a, b := n.sites[0], n.sites[1]

	waitPing(t, a.host(), b.host().Addr, 10*time.Second)
	waitPing(t, b.host(), a.host().Addr, 5*time.Second)
	waitPing(t, a.office.Gateway, b.tunnel, 5*time.Second)
	waitPing(t, b.office.Gateway, a.tunnel, 5*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, dir := range []struct{ from, to *lab.Node }{{a.host(), b.host()}, {b.host(), a.host()}} {
		res, err := lab.Transfer(ctx, dir.from, dir.to, 16<<20)
		if err != nil {
			t.Fatalf("transfer %s → %s: %v", dir.from.Name, dir.to.Name, err)
		}
		t.Logf("16 MiB %s → %s: %.0f Mbit/s, sha256 %x", dir.from.Name, dir.to.Name, res.BitsPerSecond()/1e6, res.SHA256[:6])
	}

	// The stock tool works on the interface (UAPI socket at the standard path).
	out, err := a.office.Gateway.Exec(ctx, "wg", "show", iface, "latest-handshakes")
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(out))
	if len(fields) != 2 || fields[0] != b.pub {
		t.Fatalf("wg show latest-handshakes = %q, want peer %s", out, b.pub)
	}
	ts, _ := strconv.ParseInt(fields[1], 10, 64)
	if age := time.Since(time.Unix(ts, 0)); ts == 0 || age > time.Minute {
		t.Errorf("wg show: handshake with %s is %v old, want recent", b.name, age)
	}

	st, err := a.status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Site != a.name || len(st.Peers) != 1 || st.Peers[0].State != "up" || st.Peers[0].RxBytes < 16<<20 {
		t.Errorf("status of %s = %+v", a.name, st)
	}
}

// Three offices, full mesh: every LAN host reaches every other.
func TestThreeOfficesFullMesh(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, netOpts{offices: 3})
	n.upAll()
	allReach(t, n.sites, 10*time.Second)
	for _, s := range n.sites {
		st, err := s.status()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range st.Peers {
			if p.State != "up" {
				t.Errorf("%s: peer %s is %s, want up", s.name, p.Site, p.State)
			}
		}
	}
}

// A site behind NAT without port forwarding (no endpoint) dials out and
// keeps its mapping open; two such sites reach each other through the hub.
func TestNATSitesRelayThroughHub(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, netOpts{offices: 3, noFwd: []int{2, 3}})
	n.upAll()
	allReach(t, n.sites, 15*time.Second)
}

// A third office added to the plan: restarting the agents with the new plan
// connects it. (Live reload without restart is covered by the reload tests.)
func TestThirdOfficeAfterRestart(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, netOpts{offices: 3})
	third := n.sites[2]
	// Start with only the first two offices in the plan.
	run(t, "site", "remove", third.name, "-f", n.plan)
	n.sites = n.sites[:2]
	n.upAll()
	waitPing(t, n.sites[0].host(), n.sites[1].host().Addr, 10*time.Second)

	for _, s := range n.sites {
		if err := s.proc.Stop(10 * time.Second); err != nil {
			t.Fatalf("stop %s: %v", s.name, err)
		}
	}
	n.addSite(third, true)
	n.sites = append(n.sites, third)
	n.upAll()
	allReach(t, n.sites, 10*time.Second)
}

// down and SIGTERM leave the gateway exactly as before up; up twice is
// refused; up after kill -9 cleans up and comes up.
func TestDownLeavesNothing(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, netOpts{offices: 2})
	a, b := n.sites[0], n.sites[1]
	gw := a.office.Gateway
	before := snapshot(t, gw)
	n.upAll()
	waitPing(t, a.host(), b.host().Addr, 10*time.Second)
	ctx := context.Background()

	t.Run("up twice is refused", func(t *testing.T) {
		out, err := a.lanlink(ctx, "up", "-f", n.plan, "--key", a.key, "--interface", iface)
		if err == nil || !strings.Contains(out, "already running on "+iface) {
			t.Fatalf("second up: err %v, output %q; want a refusal", err, out)
		}
		waitPing(t, a.host(), b.host().Addr, 5*time.Second)
	})

	t.Run("down", func(t *testing.T) {
		a.down(t)
		if diff := lineDiff(before, snapshot(t, gw)); diff != "" {
			t.Errorf("gateway after down differs from before up:\n%s", diff)
		}
	})

	t.Run("SIGTERM", func(t *testing.T) {
		n.up(a)
		n.waitUp(a)
		waitPing(t, a.host(), b.host().Addr, 10*time.Second)
		if err := a.proc.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := a.proc.Wait(10 * time.Second); err != nil {
			t.Fatalf("agent did not exit after SIGTERM: %v", err)
		}
		if diff := lineDiff(before, snapshot(t, gw)); diff != "" {
			t.Errorf("gateway after SIGTERM differs from before up:\n%s", diff)
		}
	})

	t.Run("up after kill -9", func(t *testing.T) {
		n.up(a)
		n.waitUp(a)
		if err := a.proc.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		a.proc.Wait(10 * time.Second)
		n.up(a)
		n.waitUp(a)
		waitPing(t, a.host(), b.host().Addr, 10*time.Second)
		a.down(t)
		if diff := lineDiff(before, snapshot(t, gw)); diff != "" {
			t.Errorf("gateway after kill -9, up, down differs from before:\n%s", diff)
		}
	})
}

// Dual stack: each office has an IPv4 and an IPv6 LAN, the plan an IPv4
// and an IPv6 tunnel prefix (the WAN between offices stays IPv4). LAN hosts
// reach each other over both families, ICMP and a checksummed TCP transfer
// over IPv6; gateways reach each other's IPv6 tunnel address; the agent
// turned IPv6 forwarding on, status lists both LANs, and `down` leaves the
// gateway as it was, IPv6 forwarding off again included.
func TestDualStack(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, netOpts{offices: 2, ipv6: true})
	a, b := n.sites[0], n.sites[1]
	if !a.host().Addr6.IsValid() || !b.tunnel6.IsValid() {
		t.Fatalf("no IPv6 in the lab or plan: host %v, tunnel %v", a.host().Addr6, b.tunnel6)
	}
	gw := a.office.Gateway
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fwd6 := func() string {
		out, err := gw.Exec(ctx, "cat", "/proc/sys/net/ipv6/conf/all/forwarding")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	if v := fwd6(); v != "0" {
		t.Fatalf("office 1's gateway IPv6 forwarding before up = %s; the test needs 0 to prove up and down change it", v)
	}
	before := snapshot(t, gw)
	n.upAll()

	waitPing(t, a.host(), b.host().Addr, 10*time.Second)
	waitPing(t, a.host(), b.host().Addr6, 5*time.Second)
	waitPing(t, b.host(), a.host().Addr6, 5*time.Second)
	waitPing(t, a.office.Gateway, b.tunnel6, 5*time.Second)
	waitPing(t, b.office.Gateway, a.tunnel6, 5*time.Second)
	for _, dir := range []struct{ from, to *lab.Node }{{a.host(), b.host()}, {b.host(), a.host()}} {
		res, err := lab.TransferTo(ctx, dir.from, dir.to, dir.to.Addr6, 16<<20)
		if err != nil {
			t.Fatalf("transfer over IPv6 %s → %s: %v", dir.from.Name, dir.to.Name, err)
		}
		t.Logf("16 MiB over IPv6 %s → [%s]: %.0f Mbit/s, sha256 %x", dir.from.Name, dir.to.Addr6, res.BitsPerSecond()/1e6, res.SHA256[:6])
	}
	if v := fwd6(); v != "1" {
		t.Errorf("IPv6 forwarding on office 1's gateway while up = %s, want 1", v)
	}
	st, err := a.status()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Peers) != 1 || !slices.Contains(st.Peers[0].LANs, b.office.LAN6) || !slices.Contains(st.Peers[0].LANs, b.office.LAN) {
		t.Errorf("status of %s: peers %+v, want %s with LANs %s and %s", a.name, st.Peers, b.name, b.office.LAN, b.office.LAN6)
	}

	a.down(t)
	if diff := lineDiff(before, snapshot(t, gw)); diff != "" {
		t.Errorf("gateway after down differs from before up:\n%s", diff)
	}
}

// allReach waits until every site's LAN host reaches every other's.
func allReach(t *testing.T, sites []*site, within time.Duration) {
	t.Helper()
	for _, from := range sites {
		for _, to := range sites {
			if from != to {
				waitPing(t, from.host(), to.host().Addr, within)
			}
		}
	}
}

// lineDiff lists the lines only in a (-) or only in b (+).
func lineDiff(a, b string) string {
	count := map[string]int{}
	for _, l := range strings.Split(a, "\n") {
		count[l]++
	}
	for _, l := range strings.Split(b, "\n") {
		count[l]--
	}
	var out []string
	for l, c := range count {
		switch {
		case c > 0:
			out = append(out, "- "+l)
		case c < 0:
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// A peer sending from a source address outside its allowed IPs gets those
// packets dropped by the receiving side; the same packet from an allowed
// source arrives.
func TestSpoofedSourceIsDropped(t *testing.T) {
	t.Parallel()
	_, a, b := connectedPair(t)
	ctx := context.Background()
	gw := a.office.Gateway
	// 192.168.99.1 is in no site's LANs. Gateway a routes b's LAN into the
	// tunnel whatever the source, so only b's WireGuard can drop it.
	if _, err := gw.Exec(ctx, "ip", "addr", "add", "192.168.99.1/32", "dev", "lo"); err != nil {
		t.Fatal(err)
	}
	ln, err := b.host().ListenUDP(netip.AddrPortFrom(b.host().Addr, 9999))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	send := func(src string, msg string) {
		t.Helper()
		cmd := fmt.Sprintf("printf %s | socat -u STDIN UDP4-SENDTO:%s:9999,bind=%s", msg, b.host().Addr, src)
		if out, err := gw.Exec(ctx, "sh", "-c", cmd); err != nil {
			t.Fatalf("send from %s: %v: %s", src, err, out)
		}
	}
	for i := 0; i < 3; i++ {
		send("192.168.99.1", "spoofed")
		send(a.office.GatewayLAN.String(), "allowed")
	}
	got := map[string]int{}
	buf := make([]byte, 64)
	for {
		ln.SetReadDeadline(time.Now().Add(2 * time.Second))
		k, from, err := ln.ReadFromUDPAddrPort(buf)
		if err != nil {
			break
		}
		got[string(buf[:k])+" from "+from.Addr().String()]++
	}
	want := "allowed from " + a.office.GatewayLAN.String()
	if got[want] != 3 || len(got) != 1 {
		t.Errorf("received %v; want exactly 3 × %q and nothing spoofed", got, want)
	}
}

// Conflicts: each gets a clear error and leaves the gateway unchanged.
func TestConflictsLeaveHostUnchanged(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, netOpts{offices: 2})
	a, b := n.sites[0], n.sites[1]
	gw := a.office.Gateway
	ctx := context.Background()
	tests := []struct {
		name    string
		setup   []string
		undo    []string
		wantErr string
	}{
		{"interface name taken", []string{"ip", "link", "add", iface, "type", "veth", "peer", "name", "llconflict"}, []string{"ip", "link", "del", iface}, "interface " + iface + " already exists"},
		{"remote LAN already routed", []string{"ip", "route", "add", b.office.LAN.String(), "via", a.office.Router.Addr.String()}, []string{"ip", "route", "del", b.office.LAN.String()}, "route " + b.office.LAN.String() + " already exists"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if out, err := gw.Exec(ctx, tt.setup...); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			defer gw.Exec(ctx, tt.undo...)
			before := snapshot(t, gw)
			out, err := a.lanlink(ctx, "up", "-f", n.plan, "--key", a.key, "--interface", iface)
			if err == nil || !strings.Contains(out, tt.wantErr) {
				t.Fatalf("up: err %v, output:\n%s\nwant an error containing %q", err, out, tt.wantErr)
			}
			if diff := lineDiff(before, snapshot(t, gw)); diff != "" {
				t.Errorf("gateway changed by a failed up:\n%s", diff)
			}
		})
	}
	t.Run("port in use", func(t *testing.T) {
		ln, err := gw.ListenUDP(netip.MustParseAddrPort("0.0.0.0:51820"))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		before := snapshot(t, gw)
		out, err := a.lanlink(ctx, "up", "-f", n.plan, "--key", a.key, "--interface", iface)
		if err == nil || !strings.Contains(out, "51820") {
			t.Fatalf("up: err %v, output:\n%s\nwant an error naming port 51820", err, out)
		}
		if diff := lineDiff(before, snapshot(t, gw)); diff != "" {
			t.Errorf("gateway changed by a failed up:\n%s", diff)
		}
	})
}
