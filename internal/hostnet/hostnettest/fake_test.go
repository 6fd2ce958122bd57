package hostnettest

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"lanlink/internal/hostnet"
)

func pfx(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, x := range s {
		out = append(out, netip.MustParsePrefix(x))
	}
	return out
}

var base = hostnet.Config{
	Interface: "lanlink0",
	Addresses: pfx("10.255.0.1/24"),
	MTU:       1420,
	Routes:    pfx("192.168.20.0/24"),
	Forward4:  true,
}

var baseState = []string{
	"ip addr add 10.255.0.1/24 dev lanlink0",
	"ip link set dev lanlink0 mtu 1420",
	"ip link set dev lanlink0 up",
	"ip route add 192.168.20.0/24 dev lanlink0",
	"sysctl net.ipv4.ip_forward=1",
}

func TestFakeSet(t *testing.T) {
	withRoutes := base.Clone()
	withRoutes.Routes = pfx("192.168.20.0/24", "192.168.30.0/24")
	tests := []struct {
		name      string
		configs   []hostnet.Config
		wantState []string
		wantLog   int // number of changes after the first Set
	}{
		{"one set", []hostnet.Config{base}, baseState, 0},
		{"same config twice changes nothing", []hostnet.Config{base, base}, baseState, 0},
		{
			"added route changes only that", []hostnet.Config{base, withRoutes},
			[]string{
				"ip addr add 10.255.0.1/24 dev lanlink0",
				"ip link set dev lanlink0 mtu 1420",
				"ip link set dev lanlink0 up",
				"ip route add 192.168.20.0/24 dev lanlink0",
				"ip route add 192.168.30.0/24 dev lanlink0",
				"sysctl net.ipv4.ip_forward=1",
			}, 1,
		},
		{"removed route goes", []hostnet.Config{withRoutes, base}, baseState, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f Fake
			for _, c := range tt.configs {
				if err := f.Set(c); err != nil {
					t.Fatalf("Set: %v", err)
				}
			}
			if diff := cmp.Diff(tt.wantState, f.State()); diff != "" {
				t.Errorf("State mismatch (-want +got):\n%s", diff)
			}
			first := len(hostnet.Diff(hostnet.Config{}, tt.configs[0]))
			if got := len(f.Log()) - first; got != tt.wantLog {
				t.Errorf("later Sets made %d changes, want %d; log:\n%v", got, tt.wantLog, f.Log())
			}
		})
	}
}

func TestFakeFailStepRollsBack(t *testing.T) {
	var f Fake
	if err := f.Set(base); err != nil {
		t.Fatal(err)
	}
	next := base.Clone()
	next.Routes = pfx("192.168.30.0/24", "192.168.40.0/24")
	// Steps: del .20, add .30, add .40: fail the last.
	f.FailStep(3, nil)
	err := f.Set(next)
	if !errors.Is(err, ErrInjected) {
		t.Fatalf("Set = %v, want ErrInjected", err)
	}
	if diff := cmp.Diff(baseState, f.State()); diff != "" {
		t.Errorf("state after failed Set not rolled back (-want +got):\n%s", diff)
	}
	wantTail := []string{
		"ip route del 192.168.20.0/24 dev lanlink0",
		"ip route add 192.168.30.0/24 dev lanlink0",
		"undo: ip route add 192.168.30.0/24 dev lanlink0",
		"undo: ip route del 192.168.20.0/24 dev lanlink0",
	}
	log := f.Log()
	if diff := cmp.Diff(wantTail, log[len(log)-len(wantTail):]); diff != "" {
		t.Errorf("log tail mismatch (-want +got):\n%s", diff)
	}
	// The failure is one-shot and the old config still counts as applied.
	if err := f.Set(next); err != nil {
		t.Fatalf("retry Set: %v", err)
	}
	if diff := cmp.Diff(next.Routes, f.Config().Routes, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("applied routes mismatch (-want +got):\n%s", diff)
	}
}

func TestFakeClose(t *testing.T) {
	var f Fake
	if err := f.Set(base); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	want := []string{"ip link set dev lanlink0 mtu 1420", "ip link set dev lanlink0 up"}
	if diff := cmp.Diff(want, f.State()); diff != "" {
		t.Errorf("state after Close (-want +got):\n%s", diff)
	}
	if err := f.Set(base); err == nil {
		t.Error("Set after Close succeeded, want error")
	}
	if !f.Closed() {
		t.Error("Closed() = false after Close")
	}
}

func steps(ss []hostnet.Step) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.String())
	}
	return out
}

// Drift takes lines away, Repair puts exactly those back and reports
// them; a route someone pointed elsewhere is a conflict, not restored.
func TestFakeRepair(t *testing.T) {
	tests := []struct {
		name          string
		drift         []string
		elsewhere     string
		wantRestored  []string
		wantConflicts int
	}{
		{"nothing drifted", nil, "", nil, 0},
		{"route and forwarding", []string{"ip route add 192.168.20.0/24 dev lanlink0", "sysctl net.ipv4.ip_forward=1"}, "",
			[]string{"ip route add 192.168.20.0/24 dev lanlink0", "sysctl net.ipv4.ip_forward=1"}, 0},
		{"link down", []string{"ip link set dev lanlink0 up"}, "", []string{"ip link set dev lanlink0 up"}, 0},
		{"route elsewhere", []string{"sysctl net.ipv4.ip_forward=1"}, "192.168.20.0/24", []string{"sysctl net.ipv4.ip_forward=1"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f Fake
			if err := f.Set(base); err != nil {
				t.Fatal(err)
			}
			for _, l := range tt.drift {
				if !f.Drift(l) {
					t.Fatalf("Drift(%q): line not in state", l)
				}
			}
			want := baseState
			if tt.elsewhere != "" {
				f.RouteElsewhere(netip.MustParsePrefix(tt.elsewhere), "eth1")
				want = []string{baseState[0], baseState[1], baseState[2], baseState[4]}
			}
			rep, err := f.Repair()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantRestored, steps(rep.Restored)); diff != "" {
				t.Errorf("restored (-want +got):\n%s", diff)
			}
			if len(rep.Conflicts) != tt.wantConflicts {
				t.Errorf("conflicts = %v, want %d", rep.Conflicts, tt.wantConflicts)
			}
			if diff := cmp.Diff(want, f.State()); diff != "" {
				t.Errorf("state after Repair (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFakeRepairAllOrNothing(t *testing.T) {
	var f Fake
	if err := f.Set(base); err != nil {
		t.Fatal(err)
	}
	f.Drift("ip addr add 10.255.0.1/24 dev lanlink0")
	f.Drift("ip route add 192.168.20.0/24 dev lanlink0")
	drifted := f.State()
	f.FailStep(2, nil)
	if _, err := f.Repair(); !errors.Is(err, ErrInjected) {
		t.Fatalf("Repair = %v, want the injected failure", err)
	}
	if diff := cmp.Diff(drifted, f.State()); diff != "" {
		t.Errorf("state after a failed Repair (-want +got):\n%s", diff)
	}
	if _, err := f.Repair(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(baseState, f.State()); diff != "" {
		t.Errorf("state after Repair (-want +got):\n%s", diff)
	}
}
