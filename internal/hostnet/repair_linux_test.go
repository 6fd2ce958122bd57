//go:build linux

package hostnet

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func stepLines(ss []Step) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.String())
	}
	return out
}

// Someone undoes a piece of lanlink's host state; Repair puts back exactly
// that (the namespace is as Set left it, line for line), reports it, and a
// second Repair finds nothing to do. The forwarding journal keeps the
// pre-lanlink value, so Close still restores it.
func TestRepairRestoresDrift(t *testing.T) {
	tests := []struct {
		name  string
		drift func(t *testing.T, tn *testNS)
		want  []string
	}{
		{"route deleted", func(t *testing.T, tn *testNS) { tn.ip(t, "route", "del", "192.168.20.0/24", "dev", "lanlink0") },
			[]string{"ip route add 192.168.20.0/24 dev lanlink0"}},
		{"IPv6 route flushed", func(t *testing.T, tn *testNS) { tn.ip(t, "-6", "route", "flush", "proto", "76") },
			[]string{"ip route add fd00:20::/64 dev lanlink0"}},
		// The kernel drops a link's IPv4 routes with its last IPv4 address.
		{"address deleted", func(t *testing.T, tn *testNS) { tn.ip(t, "addr", "del", "10.255.0.1/24", "dev", "lanlink0") },
			[]string{"ip addr add 10.255.0.1/24 dev lanlink0", "ip route add 192.168.20.0/24 dev lanlink0"}},
		{"MTU changed", func(t *testing.T, tn *testNS) { tn.ip(t, "link", "set", "lanlink0", "mtu", "1500") },
			[]string{"ip link set dev lanlink0 mtu 1380"}},
		{"forwarding off", func(t *testing.T, tn *testNS) { tn.writeSysctl(t, IPv4, "0") },
			[]string{"sysctl net.ipv4.ip_forward=1"}},
		// Down takes the routes and the IPv6 addresses with it.
		{"link down", func(t *testing.T, tn *testNS) { tn.ip(t, "link", "set", "lanlink0", "down") },
			[]string{"ip addr add fd00:ff::1/64 dev lanlink0", "ip link set dev lanlink0 up", "ip route add 192.168.20.0/24 dev lanlink0", "ip route add fd00:20::/64 dev lanlink0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkRootUntouched(t)
			tn := newTestNS(t)
			tn.noDAD(t)
			h := tn.host(t)
			if err := h.Set(full); err != nil {
				t.Fatal(err)
			}
			good := tn.dump(t)
			if rep, err := h.Repair(); err != nil || !rep.Clean() {
				t.Fatalf("Repair before any drift = %+v, %v; want clean", rep, err)
			}
			tt.drift(t, tn)
			if diff := cmp.Diff(good, tn.dump(t)); diff == "" {
				t.Fatal("the drift changed nothing: the test proves nothing")
			}
			rep, err := h.Repair()
			if err != nil {
				t.Fatalf("Repair: %v", err)
			}
			if diff := cmp.Diff(tt.want, stepLines(rep.Restored)); diff != "" {
				t.Errorf("restored (-want +got):\n%s", diff)
			}
			if len(rep.Conflicts) > 0 {
				t.Errorf("conflicts: %v", rep.Conflicts)
			}
			if diff := cmp.Diff(good, tn.dump(t)); diff != "" {
				t.Errorf("namespace after Repair (-as Set left it +now):\n%s", diff)
			}
			if rep, err := h.Repair(); err != nil || !rep.Clean() {
				t.Errorf("second Repair = %+v, %v; want clean", rep, err)
			}
			j, err := readJournal(tn.dir, "lanlink0")
			if err != nil || j == nil {
				t.Fatalf("journal: %v, %v", j, err)
			}
			if r, _ := j.forward(IPv4); r.Previous != "0" {
				t.Errorf("journaled previous ip_forward = %q, want the pre-lanlink 0", r.Previous)
			}
			if err := h.Close(); err != nil {
				t.Fatal(err)
			}
			if got := tn.readSysctl(t, IPv4); got != "0" {
				t.Errorf("ip_forward after Close = %s, want the pre-lanlink 0", got)
			}
			if got := tn.ours(t); len(got) != 0 {
				t.Errorf("lanlink0 after Close still has %v", got)
			}
		})
	}
}

// A route to our prefix through another interface, or our address on
// another interface, is someone's deliberate choice: Repair reports it
// (with the fix), never touches it, repairs everything else, and puts its
// own route back once the other one is gone.
func TestRepairLeavesConflictsAlone(t *testing.T) {
	tests := []struct {
		name      string
		take      [][]string // ip -n NS commands
		release   [][]string
		wantIn    string // in the conflict's message
		restored  []string
		afterFree []string
	}{
		{"route via another interface",
			[][]string{{"route", "del", "192.168.20.0/24", "dev", "lanlink0"}, {"route", "add", "192.168.20.0/24", "via", "192.168.10.254", "dev", "eth1"}},
			[][]string{{"route", "del", "192.168.20.0/24", "via", "192.168.10.254", "dev", "eth1"}},
			"route 192.168.20.0/24 already exists via 192.168.10.254 dev eth1 on this host (site beta's LAN)",
			[]string{"sysctl net.ipv4.ip_forward=1"},
			[]string{"ip route add 192.168.20.0/24 dev lanlink0"}},
		{"replaced by a blackhole",
			[][]string{{"route", "del", "192.168.20.0/24", "dev", "lanlink0"}, {"route", "add", "blackhole", "192.168.20.0/24"}},
			[][]string{{"route", "del", "blackhole", "192.168.20.0/24"}},
			"as a blackhole route",
			[]string{"sysctl net.ipv4.ip_forward=1"},
			[]string{"ip route add 192.168.20.0/24 dev lanlink0"}},
		{"address on another interface",
			[][]string{{"addr", "del", "10.255.0.1/24", "dev", "lanlink0"}, {"addr", "add", "10.255.0.1/24", "dev", "eth1"}},
			[][]string{{"addr", "del", "10.255.0.1/24", "dev", "eth1"}},
			"address 10.255.0.1 is already configured on eth1",
			// Its IPv4 route went with the address and comes back.
			[]string{"ip route add 192.168.20.0/24 dev lanlink0", "sysctl net.ipv4.ip_forward=1"},
			[]string{"ip addr add 10.255.0.1/24 dev lanlink0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkRootUntouched(t)
			tn := newTestNS(t)
			tn.noDAD(t)
			h := tn.host(t)
			cfg := full.Clone()
			cfg.RouteOwners = map[netip.Prefix]string{pfx("192.168.20.0/24")[0]: "beta"}
			if err := h.Set(cfg); err != nil {
				t.Fatal(err)
			}
			good := tn.dump(t)
			for _, c := range tt.take {
				tn.ip(t, c...)
			}
			tn.writeSysctl(t, IPv4, "0") // something Repair must still fix
			taken := tn.dump(t)
			for i := range 2 {
				rep, err := h.Repair()
				if err != nil {
					t.Fatalf("Repair #%d: %v", i+1, err)
				}
				if len(rep.Conflicts) != 1 || !strings.Contains(rep.Conflicts[0].Error(), tt.wantIn) {
					t.Errorf("Repair #%d conflicts = %v, want one containing %q", i+1, rep.Conflicts, tt.wantIn)
				}
				want := tt.restored
				if i > 0 {
					want = nil
				}
				if diff := cmp.Diff(want, stepLines(rep.Restored)); diff != "" {
					t.Errorf("Repair #%d restored (-want +got):\n%s", i+1, diff)
				}
			}
			// Only what was not in the way changed.
			var changed []string
			after := tn.dump(t)
			for _, l := range after {
				if !contains(taken, l) {
					changed = append(changed, l)
				}
			}
			for _, l := range taken {
				if !contains(after, l) && !strings.HasPrefix(l, "ip_forward=") {
					t.Errorf("Repair removed %q", l)
				}
			}
			t.Logf("added by Repair: %q", changed)

			for _, c := range tt.release {
				tn.ip(t, c...)
			}
			rep, err := h.Repair()
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Conflicts) != 0 {
				t.Errorf("conflicts after the other one is gone: %v", rep.Conflicts)
			}
			if diff := cmp.Diff(tt.afterFree, stepLines(rep.Restored)); diff != "" {
				t.Errorf("restored once free (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(good, tn.dump(t)); diff != "" {
				t.Errorf("namespace once free (-as Set left it +now):\n%s", diff)
			}
		})
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// A failing step undoes the restorations of the same call.
func TestRepairAllOrNothing(t *testing.T) {
	checkRootUntouched(t)
	tn := newTestNS(t)
	tn.noDAD(t)
	h := tn.host(t)
	if err := h.Set(full); err != nil {
		t.Fatal(err)
	}
	tn.ip(t, "link", "set", "lanlink0", "mtu", "1500")
	tn.ip(t, "route", "del", "192.168.20.0/24", "dev", "lanlink0")
	drifted := tn.dump(t)
	boom := errors.New("boom")
	h.failStep = func(i int, s Step) error {
		if s.Op == OpRouteAdd {
			return boom
		}
		return nil
	}
	if _, err := h.Repair(); !errors.Is(err, boom) {
		t.Fatalf("Repair = %v, want the injected failure", err)
	}
	if diff := cmp.Diff(drifted, tn.dump(t)); diff != "" {
		t.Errorf("namespace after a failed Repair (-before +after):\n%s", diff)
	}
	h.failStep = nil
	rep, err := h.Repair()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"ip link set dev lanlink0 mtu 1380", "ip route add 192.168.20.0/24 dev lanlink0"}, stepLines(rep.Restored)); diff != "" {
		t.Errorf("restored (-want +got):\n%s", diff)
	}
}

// noDAD turns duplicate address detection off in the namespace, so an
// IPv6 address is the same ("tentative" or not) in every dump however
// quickly the tests take them.
func (tn *testNS) noDAD(t *testing.T) {
	t.Helper()
	ipCmd(t, "netns", "exec", tn.name, "sh", "-c", "for i in all default lanlink0 eth1; do echo 0 > /proc/sys/net/ipv6/conf/$i/accept_dad; done")
}

// Changes wakes its reader when someone touches the interface's routes,
// and closes when the context ends.
func TestChangesReportsDrift(t *testing.T) {
	checkRootUntouched(t)
	tn := newTestNS(t)
	tn.noDAD(t)
	h := tn.host(t)
	if err := h.Set(full); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := h.Changes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Drain what Set's own changes may still deliver.
	for quiet := false; !quiet; {
		select {
		case <-ch:
		case <-time.After(300 * time.Millisecond):
			quiet = true
		}
	}
	for _, drift := range []struct {
		what string
		do   func()
	}{
		{"deleting a route of ours", func() { tn.ip(t, "route", "del", "192.168.20.0/24", "dev", "lanlink0") }},
		{"turning forwarding off", func() { tn.writeSysctl(t, IPv4, "0") }},
	} {
		drift.do()
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("no change reported within 5 s of %s", drift.what)
		}
		for quiet := false; !quiet; {
			select {
			case <-ch:
			case <-time.After(300 * time.Millisecond):
				quiet = true
			}
		}
	}
	cancel()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("Changes channel not closed within 5 s of the context ending")
		}
	}
}
