package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"lanlink/internal/agent"
	"lanlink/internal/lab"
)

// A third office added to the plan while a TCP transfer runs between the
// first two: it becomes reachable from both without restarting anything,
// the transfer never stalls, and the first two peers keep their session
// (WireGuard would handshake anew if a reload reset the peer).
func TestReloadAddsOfficeLive(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, netOpts{offices: 3})
	a, b, c := n.sites[0], n.sites[1], n.sites[2]
	// The new office's gateway gets the new plan first, as an admin would
	// copy it there before starting it; the running two get it later.
	full, err := os.ReadFile(n.plan)
	if err != nil {
		t.Fatal(err)
	}
	cPlan := filepath.Join(n.dir, "network-office3.toml")
	if err := os.WriteFile(cPlan, full, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "site", "remove", c.name, "-f", n.plan)
	n.sites = n.sites[:2]
	n.upAll()
	waitPing(t, a.host(), b.host().Addr, 10*time.Second)
	n.start(c, cPlan, nil, nil) // its own copy of the plan, as on a gateway that got the new plan first
	n.waitUp(c)
	settle(t, a, b)
	hsA, hsB := a.peer(t, b).handshake, b.peer(t, a).handshake
	if hsA.IsZero() || hsB.IsZero() {
		t.Fatalf("no handshake between %s and %s before the reload", a.name, b.name)
	}

	// 12 MiB at 24 Mbit/s: about 4 s, so the reload happens mid-transfer.
	throttle(t, a.host(), "24mbit")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var (
		res     lab.TransferResult
		xferErr error
		done    = make(chan struct{})
	)
	go func() {
		defer close(done)
		res, xferErr = lab.Transfer(ctx, a.host(), b.host(), 12<<20)
	}()
	// Progress as b's WireGuard sees it, every 100 ms.
	var maxGap time.Duration
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		last, lastAt := int64(-1), time.Now()
		for {
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
			}
			ps, err := b.wgPeers()
			if err != nil {
				continue
			}
			if rx := ps[a.pub].rx; rx != last {
				if last >= 0 {
					maxGap = max(maxGap, time.Since(lastAt))
				}
				last, lastAt = rx, time.Now()
			}
		}
	}()

	time.Sleep(time.Second)
	n.addSite(c, true)
	n.sites = append(n.sites, c)
	reach := waitPing(t, a.host(), c.host().Addr, 10*time.Second)
	t.Logf("plan change → %s reaches the new office: %v", a.host().Name, reach.Round(time.Millisecond))
	if isDone(done) {
		t.Errorf("the transfer ended before the new office was reachable; the test did not overlap them")
	}
	<-done
	wg.Wait()
	if xferErr != nil {
		t.Fatalf("transfer during the reload: %v", xferErr)
	}
	t.Logf("12 MiB %s → %s across the reload: %.1f Mbit/s, longest progress gap %v", a.host().Name, b.host().Name, res.BitsPerSecond()/1e6, maxGap.Round(time.Millisecond))
	if maxGap > time.Second {
		t.Errorf("the transfer stalled for %v during the reload", maxGap)
	}
	if got := a.peer(t, b).handshake; !got.Equal(hsA) {
		t.Errorf("%s's handshake with %s changed across the reload (%v → %v): the peer was reset", a.name, b.name, hsA, got)
	}
	if got := b.peer(t, a).handshake; !got.Equal(hsB) {
		t.Errorf("%s's handshake with %s changed across the reload (%v → %v): the peer was reset", b.name, a.name, hsB, got)
	}
	waitPing(t, b.host(), c.host().Addr, 5*time.Second)
	waitPing(t, c.host(), a.host().Addr, 5*time.Second)
	for _, s := range []*site{a, b} {
		st, err := s.status()
		if err != nil {
			t.Fatal(err)
		}
		if st.Generation != 2 || len(st.Peers) != 2 || st.PlanError != "" {
			t.Errorf("%s after the reload: generation %d, %d peers, plan error %q; want 2, 2, none", s.name, st.Generation, len(st.Peers), st.PlanError)
		}
	}

	if figures() {
		var times []time.Duration
		for range 5 {
			run(t, "site", "remove", c.name, "-f", n.plan)
			for _, s := range []*site{a, b} {
				waitStatus(t, s, 10*time.Second, "office3 removed", func(st *agent.Status) bool { return len(st.Peers) == 1 })
			}
			start := time.Now()
			n.addSite(c, true)
			waitPing(t, a.host(), c.host().Addr, 10*time.Second)
			times = append(times, time.Since(start))
		}
		t.Logf("FIGURE plan change → new office reachable: median %v over %d runs (%v)", median(times).Round(time.Millisecond), len(times), times)
	}
}

func isDone(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// exitCode is the exit status of a failed lanlink run in a lab node (0 if
// it succeeded, -1 if it did not run).
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// An invalid plan written while traffic flows changes nothing: the
// transfer completes, routes and WireGuard stay as they were, `lanlink
// status` says "plan rejected: <reason>", `lanlink reload` exits 1 with
// the reason. SIGHUP re-reads the plan. Fixing the file recovers.
func TestInvalidPlanRejectedLive(t *testing.T) {
	t.Parallel()
	n, a, b := connectedPair(t)
	ctx := context.Background()
	good, err := os.ReadFile(n.plan)
	if err != nil {
		t.Fatal(err)
	}
	gw := a.office.Gateway
	state := func() string {
		t.Helper()
		out, err := gw.Exec(ctx, "wg", "show", iface, "allowed-ips")
		if err != nil {
			t.Fatal(err)
		}
		return snapshot(t, gw) + "wg allowed-ips:\n" + string(out)
	}
	before := state()
	settle(t, a, b)
	hs := a.peer(t, b).handshake

	// 12 MiB at 16 Mbit/s: about 6 s, spanning the rejections below.
	throttle(t, a.host(), "16mbit")
	xctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var xferErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, xferErr = lab.Transfer(xctx, a.host(), b.host(), 12<<20)
	}()

	write := func(data []byte) {
		t.Helper()
		tmp := n.plan + ".tmp"
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, n.plan); err != nil {
			t.Fatal(err)
		}
	}
	rejected := 0
	for _, tt := range []struct {
		name   string
		bad    func()
		reason string
	}{
		{"broken TOML", func() { write(append(append([]byte{}, good...), "\n[[site]\n"...)) }, "network.toml"},
		{"overlapping LAN", func() {
			write([]byte(strings.Replace(string(good), `lan = ["`+b.office.LAN.String()+`"]`, `lan = ["`+a.office.LAN.String()+`"]`, 1)))
		}, a.office.LAN.String()},
		{"plan file gone", func() {
			if err := os.Remove(n.plan); err != nil {
				t.Fatal(err)
			}
		}, "network.toml"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.bad()
			rejected++
			st := waitStatus(t, a, 5*time.Second, "plan rejected", func(st *agent.Status) bool { return st.ReloadErrors == rejected })
			if st.PlanError == "" || !strings.Contains(st.PlanError, tt.reason) || st.Generation != 1 {
				t.Errorf("status: plan_error %q, generation %d; want a reason naming %q, generation 1", st.PlanError, st.Generation, tt.reason)
			}
			out, err := a.lanlink(ctx, "status", "--interface", iface)
			if err != nil || !strings.Contains(out, "plan rejected: ") {
				t.Errorf("lanlink status: %v\n%s\nwant a line \"plan rejected: …\"", err, out)
			}
			out, err = a.lanlink(ctx, "reload", "--interface", iface)
			rejected++ // reload re-reads and rejects again
			if code := exitCode(err); code != 1 || !strings.Contains(out, "plan rejected: ") || !strings.Contains(out, tt.reason) {
				t.Errorf("lanlink reload: exit %d (%v), output:\n%s\nwant exit 1 and the reason", code, err, out)
			}
			if diff := lineDiff(before, state()); diff != "" {
				t.Errorf("gateway changed by a rejected plan:\n%s", diff)
			}
			waitPing(t, a.host(), b.host().Addr, 2*time.Second)
		})
	}

	t.Run("SIGHUP re-reads the plan", func(t *testing.T) {
		if err := a.proc.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		rejected++
		waitStatus(t, a, 5*time.Second, "reload after SIGHUP", func(st *agent.Status) bool { return st.ReloadErrors == rejected })
		if isDone(a.proc.Done()) {
			t.Fatal("SIGHUP stopped the agent")
		}
	})

	t.Run("fixing the plan recovers", func(t *testing.T) {
		write(good)
		extra := "192.168.21.0/24"
		run(t, "site", "set", b.name, "-f", n.plan, "--lan", b.office.LAN.String(), "--lan", extra)
		st := waitStatus(t, a, 5*time.Second, "fixed plan applied", func(st *agent.Status) bool { return st.Generation == 2 && st.PlanError == "" })
		if len(st.Peers) != 1 || len(st.Peers[0].LANs) != 2 {
			t.Errorf("status after the fix: %+v", st.Peers)
		}
		out, err := gw.Exec(ctx, "ip", "route", "show", extra)
		if err != nil || !strings.Contains(string(out), "dev "+iface) {
			t.Errorf("route to %s after the fix: %v %q", extra, err, out)
		}
		out2, err := a.lanlink(ctx, "reload", "--interface", iface)
		if code := exitCode(err); code != 0 || !strings.Contains(out2, "plan applied") {
			t.Errorf("lanlink reload of a good plan: exit %d, output %q", code, out2)
		}
		out2, err = a.lanlink(ctx, "reload", "--interface", "llnone0")
		if code := exitCode(err); code != 1 || !strings.Contains(out2, "no lanlink agent is running") {
			t.Errorf("lanlink reload without an agent: exit %d, output %q", code, out2)
		}
	})

	<-done
	if xferErr != nil {
		t.Fatalf("transfer while plans were rejected: %v", xferErr)
	}
	if got := a.peer(t, b).handshake; !got.Equal(hs) {
		t.Errorf("handshake changed (%v → %v): a rejected or unrelated plan change reset the peer", hs, got)
	}
}

// A private key change on one gateway (`lanlink keygen --force`) and in
// the plan (`lanlink site set NAME --public-key`): the site reloads its
// own key, its peers the new public key, and traffic flows again.
func TestKeyChangeLive(t *testing.T) {
	t.Parallel()
	n, a, b := connectedPair(t)
	ctx := context.Background()
	out, err := b.lanlink(ctx, "keygen", "--force", "--key", b.key)
	if err != nil {
		t.Fatalf("keygen --force: %v: %s", err, out)
	}
	old := b.pub
	b.pub = strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
	if b.pub == old || len(b.pub) != 44 {
		t.Fatalf("keygen --force printed %q; want a new public key", b.pub)
	}
	start := time.Now()
	run(t, "site", "set", b.name, "-f", n.plan, "--public-key", b.pub)
	for _, s := range n.sites {
		waitStatus(t, s, 10*time.Second, "new key applied", func(st *agent.Status) bool { return st.Generation >= 2 && st.PlanError == "" })
	}
	waitPing(t, a.host(), b.host().Addr, 10*time.Second)
	t.Logf("plan change → traffic with the new key: %v", time.Since(start).Round(time.Millisecond))
	waitPing(t, b.host(), a.host().Addr, 5*time.Second)
	if _, ok := a.peerMap(t)[old]; ok {
		t.Errorf("%s still has a peer with %s's old key", a.name, b.name)
	}
	if p := a.peer(t, b); p.handshake.Before(start) {
		t.Errorf("%s has no handshake with %s's new key (last %v)", a.name, b.name, p.handshake)
	}
	res := transfer(t, a.host(), b.host(), 8<<20)
	t.Logf("8 MiB after the key change: %.0f Mbit/s", res.BitsPerSecond()/1e6)
}

func (s *site) peerMap(t *testing.T) map[string]wgPeer {
	t.Helper()
	ps, err := s.wgPeers()
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// settle waits until the session between a and b is settled. Both agents
// ask for a handshake when they start; initiations that cross end in one
// more handshake 5 s later (WireGuard's retry), so a test that compares
// handshake times must start from a session at least that old.
func settle(t *testing.T, a, b *site) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if hs := a.peer(t, b).handshake; !hs.IsZero() && time.Since(hs) > 6*time.Second {
			return
		}
	}
	t.Fatalf("no settled session between %s and %s within 15 s", a.name, b.name)
}
