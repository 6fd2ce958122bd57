//go:build linux

package hostnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"lanlink/internal/testutil"
)

// testNS is a fresh network namespace with a down "lanlink0" as the
// stand-in tunnel interface and an up "eth1" as some other interface.
// Forwarding starts at 0. Everything the tests change is inside it.
type testNS struct {
	name string
	path string
	ns   netns.NsHandle
	nl   *netlink.Handle
	dir  string // state dir
}

func newTestNS(t *testing.T) *testNS {
	t.Helper()
	name := testutil.Netns(t, "lnhn")
	tn := &testNS{name: name, path: "/run/netns/" + name, dir: t.TempDir()}
	ns, err := netns.GetFromPath(tn.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	self, err := netns.GetFromPath("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	if ns.Equal(self) {
		t.Fatalf("namespace %s is the test process's own namespace; refusing to go on", name)
	}
	tn.ns = ns
	if tn.nl, err = netlink.NewHandleAt(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tn.nl.Close)
	tn.ip(t, "link", "set", "lo", "up")
	// This kernel has no dummy driver, so veth pairs stand in, both ends
	// inside the namespace; the peers stay up so carrier never changes.
	for _, l := range []string{"lanlink0", "eth1"} {
		tn.ip(t, "link", "add", l, "type", "veth", "peer", "name", l+"p")
		// No IPv6 link-local addresses: they come and go with the link
		// state and would make before/after dumps differ for reasons not ours.
		tn.ip(t, "link", "set", l, "addrgenmode", "none")
		tn.ip(t, "link", "set", l+"p", "addrgenmode", "none")
		tn.ip(t, "link", "set", l+"p", "up")
	}
	tn.ip(t, "link", "set", "eth1", "up")
	// Up and down once: the first up attaches a qdisc and lets the peer
	// gain a multicast route, kernel side effects a rollback's "link set
	// down" rightly does not revert and dumps should not report.
	tn.ip(t, "link", "set", "lanlink0", "up")
	tn.ip(t, "link", "set", "lanlink0", "down")
	tn.ip(t, "addr", "add", "192.168.10.1/24", "dev", "eth1")
	tn.writeSysctl(t, IPv4, "0")
	tn.writeSysctl(t, IPv6, "0")
	return tn
}

func ipCmd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (tn *testNS) ip(t *testing.T, args ...string) string {
	t.Helper()
	return ipCmd(t, append([]string{"-n", tn.name}, args...)...)
}

// readSysctl and writeSysctl go through `ip netns exec`, independently of
// the code under test, to check what it did inside the namespace.
func (tn *testNS) readSysctl(t *testing.T, f Family) string {
	t.Helper()
	return strings.TrimSpace(ipCmd(t, "netns", "exec", tn.name, "cat", sysctlPath(f)))
}

func (tn *testNS) writeSysctl(t *testing.T, f Family, v string) {
	t.Helper()
	ipCmd(t, "netns", "exec", tn.name, "sh", "-c", "echo "+v+" > "+sysctlPath(f))
}

// dump is everything in the namespace Set may touch, as sorted lines.
func (tn *testNS) dump(t *testing.T) []string {
	t.Helper()
	var lines []string
	for _, args := range [][]string{
		{"-o", "link", "show"},
		{"-o", "addr", "show"},
		{"-4", "route", "show", "table", "all"},
		{"-6", "route", "show", "table", "all"},
	} {
		for _, l := range strings.Split(tn.ip(t, args...), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				lines = append(lines, l)
			}
		}
	}
	lines = append(lines, "ip_forward="+tn.readSysctl(t, IPv4), "ipv6 forwarding="+tn.readSysctl(t, IPv6))
	slices.Sort(lines)
	return lines
}

func (tn *testNS) host(t *testing.T) *host {
	t.Helper()
	h, err := newHost(Options{StateDir: tn.dir, NetnsPath: tn.path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func (tn *testNS) link(t *testing.T, name string) netlink.Link {
	t.Helper()
	l, err := tn.nl.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// ours lists what lanlink0 carries that Set manages: its addresses and the
// main-table routes through it, tagged with their protocol.
func (tn *testNS) ours(t *testing.T) []string {
	t.Helper()
	l := tn.link(t, "lanlink0")
	var out []string
	addrs, err := tn.nl.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		out = append(out, "addr "+fromIPNet(a.IPNet).String())
	}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := tn.nl.RouteListFiltered(fam, &netlink.Route{LinkIndex: l.Attrs().Index, Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Protocol == unix.RTPROT_KERNEL {
				continue // prefix routes of the addresses
			}
			out = append(out, fmt.Sprintf("route %s proto %d", routeDst(r, fam), r.Protocol))
		}
	}
	slices.Sort(out)
	return out
}

// rootSysctls reads the root namespace's forwarding switches (reading
// only), so tests can prove they never changed them.
func rootSysctls(t *testing.T) [2]string {
	t.Helper()
	var v [2]string
	for i, f := range []Family{IPv4, IPv6} {
		b, err := os.ReadFile(sysctlPath(f))
		if err != nil {
			t.Fatal(err)
		}
		v[i] = strings.TrimSpace(string(b))
	}
	return v
}

func checkRootUntouched(t *testing.T) {
	t.Helper()
	before := rootSysctls(t)
	t.Cleanup(func() {
		if after := rootSysctls(t); after != before {
			t.Errorf("root namespace forwarding changed from %v to %v", before, after)
		}
	})
}

var full = Config{
	Interface: "lanlink0",
	Addresses: pfx("10.255.0.1/24", "fd00:ff::1/64"),
	MTU:       1380,
	Routes:    pfx("192.168.20.0/24", "fd00:20::/64"),
	Forward4:  true,
	Forward6:  true,
}

func TestSetAppliesAndCloseUndoes(t *testing.T) {
	checkRootUntouched(t)
	tn := newTestNS(t)
	h := tn.host(t)

	if err := h.Set(full); err != nil {
		t.Fatalf("Set: %v", err)
	}
	l := tn.link(t, "lanlink0")
	if l.Attrs().MTU != 1380 || l.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("lanlink0 MTU %d flags %v, want 1380 and up", l.Attrs().MTU, l.Attrs().Flags)
	}
	want := []string{
		"addr 10.255.0.1/24",
		"addr fd00:ff::1/64",
		"route 192.168.20.0/24 proto 76",
		"route fd00:20::/64 proto 76",
	}
	if diff := cmp.Diff(want, tn.ours(t)); diff != "" {
		t.Errorf("lanlink0 after Set (-want +got):\n%s", diff)
	}
	for _, f := range []Family{IPv4, IPv6} {
		if got := tn.readSysctl(t, f); got != "1" {
			t.Errorf("%s = %s in the namespace, want 1", f.SysctlName(), got)
		}
	}
	j, err := readJournal(tn.dir, "lanlink0")
	if err != nil || j == nil {
		t.Fatalf("journal after Set: %v, %v", j, err)
	}
	if diff := cmp.Diff(&journal{
		Interface: "lanlink0",
		Addresses: full.Addresses,
		Routes:    full.Routes,
		Forward: []forwardRecord{
			{Family: IPv4, Sysctl: "net.ipv4.ip_forward", Previous: "0", Set: "1"},
			{Family: IPv6, Sysctl: "net.ipv6.conf.all.forwarding", Previous: "0", Set: "1"},
		},
	}, j, prefixEqual); diff != "" {
		t.Errorf("journal (-want +got):\n%s", diff)
	}

	t.Run("same config again changes nothing", func(t *testing.T) {
		before := tn.dump(t)
		calls := 0
		h.failStep = func(int, Step) error { calls++; return nil }
		defer func() { h.failStep = nil }()
		if err := h.Set(full.Clone()); err != nil {
			t.Fatal(err)
		}
		if calls != 0 {
			t.Errorf("identical Set ran %d steps, want 0", calls)
		}
		if diff := cmp.Diff(before, tn.dump(t)); diff != "" {
			t.Errorf("namespace changed (-before +after):\n%s", diff)
		}
	})

	t.Run("new route adds only it", func(t *testing.T) {
		before := tn.dump(t)
		next := full.Clone()
		next.Routes = append(next.Routes, pfx("192.168.30.0/24")...)
		if err := h.Set(next); err != nil {
			t.Fatal(err)
		}
		after := tn.dump(t)
		var added []string
		for _, l := range after {
			if !slices.Contains(before, l) {
				added = append(added, l)
			}
		}
		wantAdded := []string{"192.168.30.0/24 dev lanlink0 proto 76 scope link"}
		if diff := cmp.Diff(wantAdded, added); diff != "" {
			t.Errorf("lines added to the namespace (-want +got):\n%s", diff)
		}
		if len(after) != len(before)+1 {
			t.Errorf("namespace went from %d to %d lines, want one more:\n%s", len(before), len(after), cmp.Diff(before, after))
		}
		if err := h.Set(full); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(before, tn.dump(t)); diff != "" {
			t.Errorf("removing the route again (-before +after):\n%s", diff)
		}
	})

	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := tn.ours(t); len(got) != 0 {
		t.Errorf("lanlink0 after Close still has %v", got)
	}
	for _, f := range []Family{IPv4, IPv6} {
		if got := tn.readSysctl(t, f); got != "0" {
			t.Errorf("%s = %s after Close, want the previous 0", f.SysctlName(), got)
		}
	}
	if _, err := os.Stat(journalPath(tn.dir, "lanlink0")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("journal after Close: %v, want it removed", err)
	}
}

func TestSetConflictsChangeNothing(t *testing.T) {
	tests := []struct {
		name    string
		fixture [][]string // ip -n NS commands
		cfg     func(c *Config)
		wantErr string
		wantIs  error
	}{
		{
			name:    "equal route via another interface",
			fixture: [][]string{{"route", "add", "192.168.20.0/24", "dev", "eth1"}},
			wantErr: "route 192.168.20.0/24 already exists via eth1 on this host (site beta's LAN): remove it (ip route del 192.168.20.0/24) or fix the plan",
		},
		{
			name:    "more specific route via another interface",
			fixture: [][]string{{"route", "add", "192.168.20.128/25", "via", "192.168.10.254"}},
			wantErr: "route 192.168.20.128/25 via 192.168.10.254 dev eth1 on this host overlaps 192.168.20.0/24 (site beta's LAN)",
		},
		{
			name:    "blackhole route",
			fixture: [][]string{{"route", "add", "blackhole", "192.168.20.0/24"}},
			wantErr: "route 192.168.20.0/24 already exists as a blackhole route on this host",
		},
		{
			name:    "IPv6 route via another interface",
			fixture: [][]string{{"-6", "route", "add", "fd00:20::/64", "dev", "eth1"}},
			wantErr: "route fd00:20::/64 already exists via eth1 on this host",
		},
		{
			name:    "tunnel address on another interface",
			fixture: [][]string{{"addr", "add", "10.255.0.1/32", "dev", "eth1"}},
			wantErr: "address 10.255.0.1 is already configured on eth1 on this host (as 10.255.0.1/32)",
		},
		{
			name:    "missing interface",
			cfg:     func(c *Config) { c.Interface = "nosuch0" },
			wantErr: "interface nosuch0: interface does not exist on this host",
			wantIs:  ErrNoInterface,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkRootUntouched(t)
			tn := newTestNS(t)
			for _, f := range tt.fixture {
				tn.ip(t, f...)
			}
			cfg := full.Clone()
			cfg.RouteOwners = map[netip.Prefix]string{netip.MustParsePrefix("192.168.20.0/24"): "beta"}
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			before := tn.dump(t)
			err := tn.host(t).Set(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Set = %v\nwant error containing %q", err, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Set error %v is not %v", err, tt.wantIs)
			}
			var ce *ConflictError
			if tt.wantIs == nil && !errors.As(err, &ce) {
				t.Errorf("Set error %v carries no *ConflictError", err)
			}
			if diff := cmp.Diff(before, tn.dump(t)); diff != "" {
				t.Errorf("namespace changed by a failed Set (-before +after):\n%s", diff)
			}
		})
	}
}

func TestSetNotAConflict(t *testing.T) {
	checkRootUntouched(t)
	tn := newTestNS(t)
	// A default route elsewhere is less specific: ours wins. An identical
	// route through lanlink0 that someone else added (proto static) and an
	// address already on lanlink0 are used as they are, and stay after Close.
	tn.ip(t, "route", "add", "default", "via", "192.168.10.254")
	tn.ip(t, "link", "set", "lanlink0", "up")
	tn.ip(t, "route", "add", "192.168.20.0/24", "dev", "lanlink0", "proto", "static")
	tn.ip(t, "addr", "add", "10.255.0.1/24", "dev", "lanlink0")
	// A leftover route of ours without a journal is adopted, so it goes.
	tn.ip(t, "route", "add", "192.168.40.0/24", "dev", "lanlink0", "proto", "76")
	cfg := full.Clone()
	cfg.Routes = pfx("192.168.20.0/24", "192.168.40.0/24", "fd00:20::/64")
	h := tn.host(t)
	if err := h.Set(cfg); err != nil {
		t.Fatalf("Set: %v", err)
	}
	want := []string{
		"addr 10.255.0.1/24",
		"addr fd00:ff::1/64",
		"route 192.168.20.0/24 proto 4",
		"route 192.168.40.0/24 proto 76",
		"route fd00:20::/64 proto 76",
	}
	if diff := cmp.Diff(want, tn.ours(t)); diff != "" {
		t.Errorf("lanlink0 after Set (-want +got):\n%s", diff)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	want = []string{"addr 10.255.0.1/24", "route 192.168.20.0/24 proto 4"}
	if diff := cmp.Diff(want, tn.ours(t)); diff != "" {
		t.Errorf("lanlink0 after Close: someone else's state must stay, ours go (-want +got):\n%s", diff)
	}
}

func TestSetRollsBackOnFailure(t *testing.T) {
	t.Run("first Set", func(t *testing.T) {
		checkRootUntouched(t)
		tn := newTestNS(t)
		before := tn.dump(t)
		h := tn.host(t)
		steps := Diff(Config{}, full)
		last := len(steps) - 1 // the IPv6 forwarding step: everything else ran
		h.failStep = func(i int, s Step) error {
			if i == last {
				return errors.New("boom")
			}
			return nil
		}
		err := h.Set(full)
		if err == nil || !strings.Contains(err.Error(), "sysctl net.ipv6.conf.all.forwarding=1: boom") || !strings.Contains(err.Error(), "were undone") {
			t.Fatalf("Set = %v, want the failed step, its cause, and that earlier changes were undone", err)
		}
		if diff := cmp.Diff(before, tn.dump(t)); diff != "" {
			t.Errorf("namespace not rolled back (-before +after):\n%s", diff)
		}
		j, err := readJournal(tn.dir, "lanlink0")
		if err != nil {
			t.Fatal(err)
		}
		if j != nil && !j.empty() {
			t.Errorf("journal after rollback lists %+v, want nothing", j)
		}
		// The Host is still usable and applies everything on the next try.
		h.failStep = nil
		if err := h.Set(full); err != nil {
			t.Fatalf("Set after rollback: %v", err)
		}
		if got := len(tn.ours(t)); got != 4 {
			t.Errorf("after retry lanlink0 has %d addresses+routes, want 4", got)
		}
	})
	t.Run("update", func(t *testing.T) {
		checkRootUntouched(t)
		tn := newTestNS(t)
		h := tn.host(t)
		if err := h.Set(full); err != nil {
			t.Fatal(err)
		}
		before := tn.dump(t)
		jBefore, _ := readJournal(tn.dir, "lanlink0")
		next := full.Clone()
		next.Addresses = pfx("10.255.0.1/16", "fd00:ff::1/64")
		next.Routes = pfx("192.168.30.0/24", "fd00:20::/64")
		next.MTU = 1300
		next.Forward4 = false
		// del route, del addr, add addr, MTU, add route, restore forwarding: fail the last.
		h.failStep = func(i int, s Step) error {
			if s.Op == OpForwardRestore {
				return errors.New("boom")
			}
			return nil
		}
		if err := h.Set(next); err == nil {
			t.Fatal("Set succeeded, want the injected failure")
		}
		if diff := cmp.Diff(before, tn.dump(t)); diff != "" {
			t.Errorf("namespace not rolled back (-before +after):\n%s", diff)
		}
		jAfter, _ := readJournal(tn.dir, "lanlink0")
		if diff := cmp.Diff(jBefore, jAfter, prefixEqual, cmp.Transformer("sort", func(ps []netip.Prefix) []string {
			var s []string
			for _, p := range ps {
				s = append(s, p.String())
			}
			slices.Sort(s)
			return s
		})); diff != "" {
			t.Errorf("journal not rolled back (-before +after):\n%s", diff)
		}
		h.failStep = nil
		if err := h.Set(next); err != nil {
			t.Fatalf("Set after rollback: %v", err)
		}
		if got := tn.readSysctl(t, IPv4); got != "0" {
			t.Errorf("ip_forward = %s after Forward4 turned off, want previous 0", got)
		}
	})
}

func TestCloseKeepsSomeoneElsesForwarding(t *testing.T) {
	checkRootUntouched(t)
	tn := newTestNS(t)
	h := tn.host(t)
	if err := h.Set(full); err != nil {
		t.Fatal(err)
	}
	// Someone else decides about forwarding after lanlink set it to 1.
	tn.writeSysctl(t, IPv4, "2")
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if got := tn.readSysctl(t, IPv4); got != "2" {
		t.Errorf("ip_forward = %s after Close, want someone else's 2 left alone", got)
	}
	if got := tn.readSysctl(t, IPv6); got != "0" {
		t.Errorf("ipv6 forwarding = %s after Close, want the previous 0", got)
	}
}

func TestForwardingAlreadyOnStaysOn(t *testing.T) {
	checkRootUntouched(t)
	tn := newTestNS(t)
	tn.writeSysctl(t, IPv4, "1")
	h := tn.host(t)
	if err := h.Set(full); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if got := tn.readSysctl(t, IPv4); got != "1" {
		t.Errorf("ip_forward = %s after Close, want 1 as it was before lanlink", got)
	}
}

// crash leaves h's changes in place and drops it without Close, like a
// killed agent.
func crash(h *host) {
	h.nl.Close()
	h.ns.Close()
	h.closed = true // keeps the test's cleanup Close from undoing anything
}

// inNamespace runs fn on a thread inside ns, as the agent runs under
// `ip netns exec`. The thread is dropped if it cannot be moved back.
func inNamespace(t *testing.T, ns netns.NsHandle, fn func() error) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		cur, err := netns.Get()
		if err != nil || !cur.Equal(ns) {
			errc <- fmt.Errorf("thread not in the test namespace (%v)", err)
			return
		}
		cur.Close()
		err = fn()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

func TestRecover(t *testing.T) {
	tests := []struct {
		name    string
		between func(t *testing.T, tn *testNS)
		recover func(t *testing.T, tn *testNS) error
	}{
		{
			name: "Recover in the current namespace",
			recover: func(t *testing.T, tn *testNS) error {
				return inNamespace(t, tn.ns, func() error { return Recover(tn.dir, "lanlink0", nil) })
			},
		},
		{
			name:    "interface gone with the agent",
			between: func(t *testing.T, tn *testNS) { tn.ip(t, "link", "del", "lanlink0") },
			recover: func(t *testing.T, tn *testNS) error {
				return Options{StateDir: tn.dir, NetnsPath: tn.path}.recover("lanlink0")
			},
		},
		{
			name: "first Set of the next Host",
			recover: func(t *testing.T, tn *testNS) error {
				h := tn.host(t)
				next := full.Clone()
				next.Routes = pfx("192.168.30.0/24")
				next.Forward6 = false
				if err := h.Set(next); err != nil {
					return err
				}
				want := []string{"addr 10.255.0.1/24", "addr fd00:ff::1/64", "route 192.168.30.0/24 proto 76"}
				if diff := cmp.Diff(want, tn.ours(t)); diff != "" {
					t.Errorf("after the next Host's Set only its config may remain (-want +got):\n%s", diff)
				}
				if got := tn.readSysctl(t, IPv6); got != "0" {
					t.Errorf("ipv6 forwarding = %s, want the crashed agent's change undone", got)
				}
				return h.Close()
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkRootUntouched(t)
			tn := newTestNS(t)
			// lanlink0 up with its MTU beforehand, so only what the journal
			// covers differs after a crash.
			tn.ip(t, "link", "set", "lanlink0", "up", "mtu", "1380")
			before := tn.dump(t)
			h := tn.host(t)
			if err := h.Set(full); err != nil {
				t.Fatal(err)
			}
			crash(h)
			if tt.between != nil {
				tt.between(t, tn)
			}
			if err := tt.recover(t, tn); err != nil {
				t.Fatalf("recover: %v", err)
			}
			if tt.between == nil {
				if diff := cmp.Diff(before, tn.dump(t)); diff != "" {
					t.Errorf("namespace after recovery (-before crash +after):\n%s", diff)
				}
			}
			for _, f := range []Family{IPv4, IPv6} {
				if got := tn.readSysctl(t, f); got != "0" {
					t.Errorf("%s = %s after recovery, want the previous 0", f.SysctlName(), got)
				}
			}
			if _, err := os.Stat(journalPath(tn.dir, "lanlink0")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("journal after recovery: %v, want it removed", err)
			}
		})
	}
}

func TestRecoverWithoutJournal(t *testing.T) {
	if err := Recover(t.TempDir(), "lanlink0", nil); err != nil {
		t.Errorf("Recover with no journal = %v, want nil (nothing to do, nothing touched)", err)
	}
}
