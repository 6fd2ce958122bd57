package lab

import (
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"lanlink/internal/testutil"
)

func TestAddOffice(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	l := newLab(t, Config{Offices: 2})
	ctx := testCtx(t, time.Minute)
	o3, err := l.AddOffice(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if o3.Index != 3 || len(l.Offices) != 3 || o3.LAN != netip.MustParsePrefix("192.168.30.0/24") ||
		o3.WAN != netip.MustParseAddr("198.51.100.13") || len(o3.Hosts) != 1 {
		t.Fatalf("office 3: index %d LAN %v WAN %v hosts %d; lab has %d offices", o3.Index, o3.LAN, o3.WAN, len(o3.Hosts), len(l.Offices))
	}
	if n := len(labNamespaces(t, l.ID)); n != 1+3*3 {
		t.Errorf("lab has %d namespaces after AddOffice, want 10", n)
	}
	// Across the routed internet, old office to new and back.
	if err := l.Offices[0].Gateway.Ping(ctx, o3.WAN, 2); err != nil {
		t.Error(err)
	}
	if ok, _ := udpArrives(t, l.Offices[1].Gateway, o3.Endpoint(), o3.Gateway, netip.AddrPortFrom(o3.GatewayLAN, uint16(o3.Port))); !ok {
		t.Errorf("port forward of the new office does not reach its gateway")
	}
	// Every old router routes the new LAN to its own gateway, as for the
	// first offices.
	for _, o := range l.Offices[:2] {
		out, err := o.Router.Exec(ctx, "ip", "route", "show", o3.LAN.String())
		if err != nil || !strings.Contains(string(out), "via "+o.GatewayLAN.String()) {
			t.Errorf("router of office %d: route to %v = %q, %v; want via %v", o.Index, o3.LAN, out, err, o.GatewayLAN)
		}
	}
	out, err := o3.Router.Exec(ctx, "ip", "route", "show", "192.168.10.0/24")
	if err != nil || !strings.Contains(string(out), "via "+o3.GatewayLAN.String()) {
		t.Errorf("new router: route to office 1's LAN = %q, %v", out, err)
	}

	// Past MaxOffices it refuses and leaves the lab as it was.
	for len(l.Offices) < MaxOffices {
		if _, err := l.AddOffice(ctx); err != nil {
			t.Fatal(err)
		}
	}
	before := labNamespaces(t, l.ID)
	if _, err := l.AddOffice(ctx); !errors.Is(err, ErrConfig) {
		t.Errorf("AddOffice beyond %d offices = %v, want ErrConfig", MaxOffices, err)
	}
	if diff := len(labNamespaces(t, l.ID)) - len(before); diff != 0 || len(l.Offices) != MaxOffices {
		t.Errorf("failed AddOffice changed the lab: %d namespaces more, %d offices", diff, len(l.Offices))
	}
}

func TestAddOfficeFailureIsUndone(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	l := newLab(t, Config{Offices: 2})
	l.cfg.failAt = "o3-lan"
	before := labNamespaces(t, l.ID)
	if _, err := l.AddOffice(testCtx(t, time.Minute)); err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("AddOffice with an injected failure = %v", err)
	}
	if diff := cmpNames(before, labNamespaces(t, l.ID)); diff != "" || len(l.Offices) != 2 {
		t.Errorf("half-added office not removed: %s; %d offices", diff, len(l.Offices))
	}
}

func cmpNames(want, got []string) string {
	slices.Sort(want)
	slices.Sort(got)
	if slices.Equal(want, got) {
		return ""
	}
	return "want " + strings.Join(want, ",") + " got " + strings.Join(got, ",")
}

// A detached process survives Detach and the end of the lab's owner; only
// StopPID, by PID and start time, stops it, and CleanupLeftovers then
// removes everything. Here the "owner" is this test, so "survives" is
// checked after Detach, which is what lets the owner exit.
func TestDetachedLabOutlivesItsOwner(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	l, err := New(testCtx(t, time.Minute), nil, Config{Offices: 2})
	if err != nil {
		t.Fatal(err)
	}
	id, dir := l.ID, l.Dir()
	t.Cleanup(func() { // in case an assertion below fails early
		for _, pid := range mustProcs(t, id) {
			_ = StopPID(pid, 0, time.Second)
		}
		_, _ = CleanupLeftovers(testCtx(t, time.Minute), id)
	})
	gw := l.Offices[0].Gateway
	p, err := gw.StartDetached([]string{"sleep", "300"}, filepath.Join(dir, "sleep.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Detached || p.StartTime == 0 || !PIDAlive(p.PID, p.StartTime) {
		t.Fatalf("detached proc %+v not alive", p)
	}
	// A wrong start time is another process: never signalled.
	if PIDAlive(p.PID, p.StartTime+1) {
		t.Errorf("PIDAlive matched a different start time")
	}
	// The process runs in the gateway's namespace (once `ip netns exec`
	// has entered it).
	var got []int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got = mustProcs(t, id); slices.Contains(got, p.PID) {
			break
		}
	}
	if !slices.Contains(got, p.PID) {
		t.Errorf("ProcessesIn(%s) = %v, want it to include %d", id, got, p.PID)
	}
	l.Detach()
	if err := l.Close(); err != nil { // a no-op after Detach
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if !PIDAlive(p.PID, p.StartTime) {
		t.Fatalf("detached process died with Detach")
	}
	if n := len(labNamespaces(t, id)); n != 7 {
		t.Fatalf("%d namespaces after Detach, want all 7 kept", n)
	}
	// While it runs, the lab is in use.
	if _, err := CleanupLeftovers(testCtx(t, time.Minute), id); !errors.Is(err, ErrLabInUse) {
		t.Errorf("CleanupLeftovers with a process in the lab = %v, want ErrLabInUse", err)
	}
	if err := StopPID(p.PID, p.StartTime, time.Second); err != nil {
		t.Fatal(err)
	}
	if PIDAlive(p.PID, p.StartTime) {
		t.Errorf("pid %d alive after StopPID", p.PID)
	}
	removed, err := CleanupLeftovers(testCtx(t, time.Minute), id)
	if err != nil || len(removed) != 7 {
		t.Errorf("CleanupLeftovers = %v, %v; want 7 namespaces", removed, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lab directory %s left (stat: %v)", dir, err)
	}
}

func mustProcs(t *testing.T, id string) []int {
	t.Helper()
	pids, err := ProcessesIn(id)
	if err != nil {
		t.Fatal(err)
	}
	return pids
}

func TestCloseStopsDetachedProcesses(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	l, err := New(testCtx(t, time.Minute), nil, Config{Offices: 2})
	if err != nil {
		t.Fatal(err)
	}
	p, err := l.Internet.StartDetached([]string{"sleep", "300"}, filepath.Join(l.Dir(), "sleep.log"))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if PIDAlive(p.PID, p.StartTime) {
		t.Errorf("detached process %d survived Close before Detach", p.PID)
	}
}

func TestPingStatsAndUntil(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	l := newLab(t, Config{Offices: 2})
	ctx := testCtx(t, time.Minute)
	h, o2 := l.Offices[0].Hosts[0], l.Offices[1]
	res, err := h.PingStats(ctx, l.Offices[0].Router.Addr, 3, 10*time.Millisecond)
	if err != nil || res.Sent != 3 || len(res.RTTs) != 3 || res.Median() <= 0 || res.Median() > time.Second {
		t.Errorf("PingStats to the router: %+v, %v", res, err)
	}
	d, err := h.PingUntil(ctx, o2.WAN, 10*time.Millisecond)
	if err != nil || d <= 0 || d > 5*time.Second {
		t.Errorf("PingUntil office 2's WAN: %v, %v", d, err)
	}
	// No path to the remote LAN without a tunnel: bounded by ctx.
	short := testCtx(t, 300*time.Millisecond)
	if _, err := h.PingUntil(short, o2.Hosts[0].Addr, 10*time.Millisecond); err == nil {
		t.Errorf("PingUntil reached office 2's LAN with no VPN")
	}
	if res, err := h.PingStats(ctx, o2.Hosts[0].Addr, 1, 0); err == nil || len(res.RTTs) != 0 {
		t.Errorf("PingStats to an unreachable host: %+v, %v", res, err)
	}
}

// Command wraps like Exec and works from a record (Name and RunDir only).
func TestCommandFromRecord(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	l := newLab(t, Config{Offices: 2})
	gw := l.Offices[1].Gateway
	rec := &Node{Name: gw.Name, RunDir: gw.RunDir}
	argv := rec.Command("sh", "-c", "ip -o -4 addr show dev "+gw.Iface+"; echo x > /run/probe")
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), gw.Addr.String()+"/24") {
		t.Fatalf("%v: %v\n%s", argv, err, out)
	}
	if b, err := os.ReadFile(filepath.Join(gw.RunDir, "probe")); err != nil || string(b) != "x\n" {
		t.Errorf("the command's /run is not the node's RunDir: %q, %v", b, err)
	}
}
