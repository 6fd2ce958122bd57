package agent

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"lanlink/internal/firewall"
	"lanlink/internal/plan"
)

// logBuf is a concurrency-safe log sink for asserting what the agent logs.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines returns the logged lines that contain all of subs.
func (l *logBuf) lines(subs ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range strings.Split(l.b.String(), "\n") {
		ok := line != ""
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// waitFor polls the agent's status until ok accepts it.
func waitFor(t *testing.T, c *Client, what string, ok func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var st *Status
	var err error
	for time.Now().Before(deadline) {
		if st, err = c.Status(context.Background()); err == nil && ok(*st) {
			return *st
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s not reached within 5 s (last status %+v, err %v)", what, st, err)
	return Status{}
}

// waitWatching waits until the agent's loop subscribed to the fake host's
// and firewall's events, so that Notify reaches it.
func waitWatching(t *testing.T, sys *fakeSystem) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for sys.host.Watchers() == 0 || sys.fw.Watchers() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not subscribe to events within 5 s (host %d, firewall %d)", sys.host.Watchers(), sys.fw.Watchers())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// What someone removes behind the agent's back comes back and is logged,
// whether the kernel reports it (events) or only the periodic check
// notices (forwarding, the firewall).
func TestRepairRestoresDrift(t *testing.T) {
	on := true
	sites := append([]plan.SiteSpec{}, threeSites...)
	sites[0].Masquerade = &on
	for _, tc := range []struct {
		name   string
		every  time.Duration
		notify func(*fakeSystem)
	}{
		{"kernel event", time.Hour, func(sys *fakeSystem) { sys.host.Notify() }},
		{"nftables event", time.Hour, func(sys *fakeSystem) { sys.fw.Notify() }},
		{"periodic check", 20 * time.Millisecond, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newTestNet(t, sites...)
			sys := newFakeSystem()
			var logs logBuf
			_, c := startAgent(t, n, sys, func(o *Options) {
				o.RepairEvery = tc.every
				o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			})
			good := sys.host.State()
			ruleset := sys.fw.Ruleset()
			for _, l := range []string{"ip route add 192.168.20.0/24 dev lltest0", "sysctl net.ipv4.ip_forward=1", "ip link set dev lltest0 up"} {
				if !sys.host.Drift(l) {
					t.Fatalf("%q not in the fake host's state %q", l, good)
				}
			}
			sys.fw.Drift()
			if tc.notify != nil {
				waitWatching(t, sys)
				tc.notify(sys)
			}
			waitFor(t, c, "4 repairs", func(st Status) bool { return st.Repairs == 4 })
			if diff := cmp.Diff(good, sys.host.State()); diff != "" {
				t.Errorf("host after repair (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(ruleset, sys.fw.Ruleset()); diff != "" {
				t.Errorf("firewall after repair (-want +got):\n%s", diff)
			}
			for _, want := range [][]string{
				{"level=WARN", "restored", "ip route add 192.168.20.0/24 dev lltest0"},
				{"level=WARN", "restored", "ip link set dev lltest0 up"},
				{"level=WARN", "forwarding was turned off", "sysctl=net.ipv4.ip_forward"},
				{"level=WARN", "firewall table", "rebuilt"},
			} {
				if got := logs.lines(want...); len(got) != 1 {
					t.Errorf("log lines with %q: %q, want one", want, got)
				}
			}
			if st, err := c.Status(context.Background()); err != nil || len(st.Problems) != 0 {
				t.Errorf("status problems = %q, %v; want none", st.Problems, err)
			}
		})
	}
}

// A route to a remote LAN that someone pointed elsewhere is not fought:
// it is logged once however often the check runs, shown in status with
// its fix, and once it is gone the agent's own route comes back.
func TestRepairLeavesConflictAloneAndReportsItOnce(t *testing.T) {
	n := newTestNet(t, threeSites...)
	sys := newFakeSystem()
	var logs logBuf
	_, c := startAgent(t, n, sys, func(o *Options) {
		o.RepairEvery = 5 * time.Millisecond
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	beta := netip.MustParsePrefix("192.168.20.0/24")
	sys.host.RouteElsewhere(beta, "192.168.10.254 dev eth1")
	st := waitFor(t, c, "a problem in status", func(st Status) bool { return len(st.Problems) > 0 })
	want := []string{"left alone: route 192.168.20.0/24 already exists via 192.168.10.254 dev eth1 on this host (site beta's LAN): remove it (ip route del 192.168.20.0/24) or fix the plan"}
	if diff := cmp.Diff(want, st.Problems); diff != "" {
		t.Errorf("status problems (-want +got):\n%s", diff)
	}
	time.Sleep(100 * time.Millisecond) // some 20 more checks
	if got := logs.lines("level=ERROR", "192.168.20.0/24"); len(got) != 1 {
		t.Errorf("error lines about the conflict: %q, want exactly one", got)
	}
	for _, l := range sys.host.State() {
		if strings.Contains(l, "192.168.20.0/24") {
			t.Errorf("the agent put its route back over someone else's: %q", l)
		}
	}
	if st.Repairs != 0 {
		t.Errorf("repairs = %d, want 0", st.Repairs)
	}

	sys.host.ClearElsewhere(beta)
	waitFor(t, c, "problems cleared", func(st Status) bool { return len(st.Problems) == 0 && st.Repairs == 1 })
	if !contains(sys.host.State(), "ip route add 192.168.20.0/24 dev lltest0") {
		t.Errorf("route not restored once free: %q", sys.host.State())
	}
	if got := logs.lines("level=INFO", "host problem cleared", "192.168.20.0/24"); len(got) != 1 {
		t.Errorf("cleared lines: %q, want one", got)
	}
}

// A firewall that cannot be repaired is a problem in status, not a crash,
// and clears once a later check succeeds.
func TestRepairFailureIsAProblem(t *testing.T) {
	on := true
	sites := append([]plan.SiteSpec{}, threeSites...)
	sites[0].MSSClamp = &on
	n := newTestNet(t, sites...)
	sys := newFakeSystem()
	_, c := startAgent(t, n, sys, func(o *Options) { o.RepairEvery = time.Hour })
	sys.fw.Drift()
	sys.fw.FailNextSet(nil)
	waitWatching(t, sys)
	sys.host.Notify()
	st := waitFor(t, c, "a problem in status", func(st Status) bool { return len(st.Problems) > 0 })
	if len(st.Problems) != 1 || !strings.Contains(st.Problems[0], "repair firewall: injected firewall failure") {
		t.Errorf("problems = %q", st.Problems)
	}
	sys.host.Notify()
	waitFor(t, c, "problem cleared", func(st Status) bool { return len(st.Problems) == 0 && st.Repairs == 1 })
	if diff := cmp.Diff(firewall.Render(firewall.Config{Interface: "lltest0", MSSClamp: true}), sys.fw.Ruleset()); diff != "" {
		t.Errorf("firewall (-want +got):\n%s", diff)
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

// RepairEvery < 0 turns repairing off: drift stays, nothing subscribes.
func TestRepairDisabled(t *testing.T) {
	n := newTestNet(t, threeSites...)
	sys := newFakeSystem()
	_, c := startAgent(t, n, sys, func(o *Options) { o.RepairEvery = -1 })
	sys.host.Drift("sysctl net.ipv4.ip_forward=1")
	drifted := sys.host.State()
	sys.host.Notify()
	time.Sleep(300 * time.Millisecond)
	if st, err := c.Status(context.Background()); err != nil || st.Repairs != 0 {
		t.Errorf("status = %+v, %v; want no repairs", st, err)
	}
	if diff := cmp.Diff(drifted, sys.host.State()); diff != "" {
		t.Errorf("host changed with repairing off (-want +got):\n%s", diff)
	}
	if w := sys.host.Watchers(); w != 0 {
		t.Errorf("%d event subscriptions with repairing off, want 0", w)
	}
}
