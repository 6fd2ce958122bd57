package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"lanlink/internal/lab"
)

// recoveryLimit is what issue 4 promises for faults 2 and 3: traffic flows
// again within 5 s.
const recoveryLimit = 5 * time.Second

// transfer runs a checksummed TCP transfer and fails the test if it does
// not complete.
func transfer(t *testing.T, from, to *lab.Node, size int64) lab.TransferResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := lab.Transfer(ctx, from, to, size)
	if err != nil {
		t.Fatalf("transfer %s → %s: %v", from.Name, to.Name, err)
	}
	return res
}

// Fault 2: kill -9 the agent of one office and start it again. Traffic
// flows again within 5 s in both directions — also towards the restarted
// office, whose peer still holds the session the dead agent's device had.
func TestAgentKilledAndRestarted(t *testing.T) {
	t.Parallel()
	n, a, b := connectedPair(t)

	runs := 1
	if figures() {
		runs = 5
	}
	var times []time.Duration
	for i := range runs {
		// The far side sends first: the restarted side must not wait for
		// traffic of its own to get the tunnel back.
		d := killAndRestart(t, n, a, func() {
			waitPing(t, b.host(), a.host().Addr, recoveryLimit)
		})
		t.Logf("run %d: kill -9 of %s's agent: %v from restart to %s reaching %s", i+1, a.name, d.Round(time.Millisecond), b.host().Name, a.host().Name)
		times = append(times, d)
	}
	if figures() {
		t.Logf("FIGURE fault 2 (kill -9 + restart, far side sends): median recovery %v over %d runs (%v)", median(times).Round(time.Millisecond), runs, times)
	}
	waitPing(t, a.host(), b.host().Addr, recoveryLimit)
	res := transfer(t, b.host(), a.host(), 8<<20)
	t.Logf("8 MiB %s → %s after restart: %.0f Mbit/s", b.host().Name, a.host().Name, res.BitsPerSecond()/1e6)
}

// killAndRestart kills s's agent with SIGKILL, starts it again, and returns
// how long after the restart began probe succeeded.
func killAndRestart(t *testing.T, n *network, s *site, probe func()) time.Duration {
	t.Helper()
	if err := s.proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s.proc.Wait(10 * time.Second)
	start := time.Now()
	n.up(s)
	probe()
	d := time.Since(start)
	n.waitUp(s)
	return d
}

// Fault 3: one office's WAN link goes down for 30 s while a LAN host keeps
// trying to reach it, then comes back: traffic flows again within 5 s of
// restoring.
func TestWANOutage(t *testing.T) {
	t.Parallel()
	n, a, b := connectedPair(t)

	runs := 1
	if figures() {
		runs = 3
	}
	var times []time.Duration
	for i := range runs {
		d := wanOutage(t, n.lab, b.office, 30*time.Second, func() {
			waitPing(t, a.host(), b.host().Addr, recoveryLimit)
		}, a.host(), b.host().Addr)
		t.Logf("run %d: 30 s WAN outage of %s: %s reached %s %v after the link came back", i+1, b.office.Name, a.host().Name, b.host().Name, d.Round(time.Millisecond))
		times = append(times, d)
	}
	if figures() {
		t.Logf("FIGURE fault 3 (30 s WAN outage): median recovery %v over %d runs (%v)", median(times).Round(time.Millisecond), runs, times)
	}
	waitPing(t, b.host(), a.host().Addr, recoveryLimit)
	res := transfer(t, a.host(), b.host(), 8<<20)
	t.Logf("8 MiB %s → %s after the outage: %.0f Mbit/s", a.host().Name, b.host().Name, res.BitsPerSecond()/1e6)
}

// wanOutage takes office o's WAN link down for d while from pings to once
// a second (as users keep trying), brings it back, and returns how long
// after that probe succeeded.
func wanOutage(t *testing.T, l *lab.Lab, o *lab.Office, d time.Duration, probe func(), from *lab.Node, to netip.Addr) time.Duration {
	t.Helper()
	ctx := context.Background()
	setWANLink(t, l, o, false)
	restored := false
	defer func() {
		if !restored {
			setWANLink(t, l, o, true)
		}
	}()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		pctx, cancel := context.WithTimeout(ctx, min(time.Until(end), time.Second))
		if from.Ping(pctx, to, 1) == nil {
			cancel()
			t.Fatalf("%s reached %s while %s's WAN link was down", from.Name, to, o.Name)
		}
		cancel()
		time.Sleep(min(time.Until(end), time.Second))
	}
	setWANLink(t, l, o, true)
	restored = true
	start := time.Now()
	probe()
	return time.Since(start)
}

// setWANLink switches the office's WAN link like an unplugged uplink: the
// internet side of the office link goes down, so the router loses carrier
// but keeps its address and routes. Taking a link down deletes the routes
// through it, so bringing it up restores the internet's host route to the
// office, as the lab built it.
func setWANLink(t *testing.T, l *lab.Lab, o *lab.Office, up bool) {
	t.Helper()
	ctx := context.Background()
	inet := l.Internet
	argvs := [][]string{{"ip", "link", "set", "dev", o.InternetIface, "down"}}
	if up {
		argvs = [][]string{
			{"ip", "link", "set", "dev", o.InternetIface, "up"},
			{"ip", "route", "replace", netip.PrefixFrom(o.WAN, 32).String(), "dev", o.InternetIface},
		}
	}
	for _, argv := range argvs {
		if out, err := inet.Exec(ctx, argv...); err != nil {
			t.Fatalf("WAN link of %s: %v: %s", o.Name, err, out)
		}
	}
}

// Fault 4: an office's public address changes, and its DNS name (here the
// gateways' own /etc/hosts, which the test controls) follows. The others
// reconnect without restarting anything, both ways WireGuard and lanlink
// offer:
//
//	(a) nobody in the moved office sends: the other gateways' agents see
//	    the peer stop answering, re-resolve its name and follow it;
//	(b) the moved office sends first: WireGuard on the other side roams to
//	    the packets' new source address, before DNS has caught up.
func TestEndpointMoves(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, netOpts{offices: 2})
	a, b := n.sites[0], n.sites[1]
	name := func(s *site) string { return s.name + ".lanlink.test" }
	hosts := func(addrs map[*site]netip.Addr) string {
		var sb strings.Builder
		sb.WriteString("127.0.0.1 localhost\n")
		for _, s := range n.sites {
			fmt.Fprintf(&sb, "%s %s\n", addrs[s], name(s))
		}
		return sb.String()
	}
	addrs := map[*site]netip.Addr{a: a.office.WAN, b: b.office.WAN}
	for _, s := range n.sites {
		writeNetnsHosts(t, s.office.Gateway, hosts(addrs))
		run(t, "site", "set", s.name, "-f", n.plan, "--endpoint", fmt.Sprintf("%s:%d", name(s), s.office.Port))
	}
	n.upAll()
	waitPing(t, a.host(), b.host().Addr, 10*time.Second)
	waitPing(t, b.host(), a.host().Addr, 5*time.Second)

	runs := 1
	if figures() {
		runs = 3
	}
	var times []time.Duration
	for i := range runs {
		// (a) b moves and its name follows; only a's LAN sends.
		next := netip.AddrFrom4([4]byte{203, 0, 113, byte(50 + 2*i)})
		moveWAN(t, b.office, next)
		addrs[b] = next
		writeNetnsHosts(t, a.office.Gateway, hosts(addrs))
		start := time.Now()
		waitPing(t, a.host(), b.host().Addr, 60*time.Second)
		d := time.Since(start)
		times = append(times, d)
		t.Logf("run %d: %s moved to %v; %s reached %s again after %v (re-resolution)", i+1, b.name, next, a.host().Name, b.host().Name, d.Round(time.Millisecond))
		if got := a.peer(t, b).endpoint; got != netip.AddrPortFrom(next, uint16(b.office.Port)).String() {
			t.Errorf("%s's endpoint for %s is %s, want the re-resolved %v", a.name, b.name, got, next)
		}
	}
	if figures() {
		t.Logf("FIGURE fault 4a (address change, re-resolution): median recovery %v over %d runs (%v)", median(times).Round(time.Millisecond), runs, times)
	}

	// (b) b moves again, but its name keeps the old address: b's LAN
	// sends first and a roams to where the authenticated packets come from.
	roamed := netip.MustParseAddr("203.0.113.99")
	moveWAN(t, b.office, roamed)
	start := time.Now()
	waitPing(t, b.host(), a.host().Addr, 10*time.Second)
	t.Logf("%s moved to %v (DNS not updated); %s reached %s after %v (roaming)", b.name, roamed, b.host().Name, a.host().Name, time.Since(start).Round(time.Millisecond))
	if got := a.peer(t, b).endpoint; got != netip.AddrPortFrom(roamed, uint16(b.office.Port)).String() {
		t.Errorf("%s's endpoint for %s is %s, want the roamed %v", a.name, b.name, got, roamed)
	}
	waitPing(t, a.host(), b.host().Addr, 5*time.Second)
	res := transfer(t, a.host(), b.host(), 8<<20)
	t.Logf("8 MiB %s → %s after the moves: %.0f Mbit/s", a.host().Name, b.host().Name, res.BitsPerSecond()/1e6)
	// Neither agent restarted.
	for _, s := range n.sites {
		select {
		case <-s.proc.Done():
			t.Errorf("agent of %s exited", s.name)
		default:
		}
	}
}

// Fault 6: an office behind NAT without port forwarding keeps its tunnel
// up across its router's NAT mapping timeout by keepalive, so traffic that
// the public office starts gets through at once after a long idle time.
// The router's UDP conntrack timeouts are cut to 10 s (in its namespace
// only) and the plan's keepalive to 5 s, so that 25 s idle spans the
// timeout more than twice.
func TestNATMappingKeptByKeepalive(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, netOpts{offices: 2, noFwd: []int{2}})
	a, b := n.sites[0], n.sites[1]
	data, err := os.ReadFile(n.plan)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(data), "# keepalive = 25", "keepalive = 5", 1)
	if edited == string(data) {
		t.Fatal("plan template has no keepalive line to edit")
	}
	if err := os.WriteFile(n.plan, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, key := range []string{"nf_conntrack_udp_timeout", "nf_conntrack_udp_timeout_stream"} {
		path := filepath.Join("/proc/sys/net/netfilter", key)
		if out, err := b.office.Router.Exec(ctx, "sh", "-c", "echo 10 > "+path+" && cat "+path); err != nil || strings.TrimSpace(string(out)) != "10" {
			t.Fatalf("set %s in %s: %v: %s", key, b.office.Router.Name, err, out)
		}
	}
	n.upAll()
	// b dials out; a learns b's NAT mapping from b's packets.
	waitPing(t, b.host(), a.host().Addr, 10*time.Second)
	waitPing(t, a.host(), b.host().Addr, 5*time.Second)
	if ka := a.peer(t, b).keepalive; ka != 0 {
		t.Errorf("%s keeps alive towards %s every %d s; only the NATed side should", a.name, b.name, ka)
	}
	if ka := b.peer(t, a).keepalive; ka != 5 {
		t.Errorf("%s keeps alive towards %s every %d s, want the plan's 5", b.name, a.name, ka)
	}

	time.Sleep(25 * time.Second) // no user traffic: only keepalives
	ctx2, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := a.host().Ping(ctx2, b.host().Addr, 3); err != nil {
		t.Fatalf("after 25 s idle, %s cannot reach %s behind NAT: %v", a.host().Name, b.host().Name, err)
	}
	res := transfer(t, a.host(), b.host(), 4<<20)
	t.Logf("4 MiB %s → %s behind NAT after 25 s idle: %.0f Mbit/s", a.host().Name, b.host().Name, res.BitsPerSecond()/1e6)
}

// moveWAN gives office o's router a new public address and, like a real
// router whose WAN address changes (a new DHCP lease takes the interface
// down and up), drops its connection-tracking state. Linux forgets only
// masqueraded entries by itself; a port-forward (DNAT) entry would keep
// rewriting the gateway's packets to the old, gone address for as long as
// they keep coming.
func moveWAN(t *testing.T, o *lab.Office, addr netip.Addr) {
	t.Helper()
	if err := o.ChangeWANAddress(context.Background(), addr); err != nil {
		t.Fatal(err)
	}
}
