package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"lanlink/internal/lab"
	"lanlink/internal/testutil"
)

// The `lanlink lab` tests run the real binary, so the processes `lab up`
// leaves behind are real detached processes of a process that has exited.

// labCLI runs `lanlink lab ARGS…` and returns stdout+stderr and the exit code.
func labCLI(t *testing.T, timeout time.Duration, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, lanlinkBin, append([]string{"lab"}, args...)...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee) && ctx.Err() == nil:
		return string(out), ee.ExitCode()
	default:
		t.Fatalf("lanlink lab %s: %v\n%s", strings.Join(args, " "), err, out)
		return "", -1
	}
}

// labRecord is the part of `lab up`'s state file the tests check against.
type labRecord struct {
	ID    string `json:"id"`
	Dir   string `json:"dir"`
	Procs []struct {
		Role      string `json:"role"`
		PID       int    `json:"pid"`
		StartTime uint64 `json:"start_time"`
	} `json:"procs"`
}

func labStateFile(name string) string { return filepath.Join("/run/lanlink-lab", name, "state.json") }

func readLabRecord(t *testing.T, name string) labRecord {
	t.Helper()
	b, err := os.ReadFile(labStateFile(name))
	if err != nil {
		t.Fatalf("lab state: %v", err)
	}
	var r labRecord
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("lab state: %v\n%s", err, b)
	}
	if r.ID == "" {
		t.Fatalf("lab state has no ID:\n%s", b)
	}
	return r
}

// newLabName returns a lab name unique to this test run and registers a
// `lab down` for it, so a failing test leaves nothing behind either.
func newLabName(t *testing.T) string {
	t.Helper()
	testutil.RequireRoot(t)
	name := fmt.Sprintf("e2e-%08x", rand.Uint32())
	t.Cleanup(func() {
		if out, code := labCLI(t, time.Minute, "down", "--name", name); code != 0 {
			t.Errorf("cleanup: lab down --name %s: exit %d\n%s", name, code, out)
		}
	})
	return name
}

// assertLabGone checks that nothing of the lab is left: no namespace with
// its ID, no recorded process, no state directory, no lab directory.
func assertLabGone(t *testing.T, name string, rec labRecord) {
	t.Helper()
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), rec.ID+"-") {
			t.Errorf("namespace %s is left", e.Name())
		}
	}
	for _, p := range rec.Procs {
		if lab.PIDAlive(p.PID, p.StartTime) {
			t.Errorf("%s (pid %d) still runs", p.Role, p.PID)
		}
	}
	for _, dir := range []string{filepath.Dir(labStateFile(name)), rec.Dir} {
		if dir == "" {
			continue
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is left (stat: %v)", dir, err)
		}
	}
}

func TestLabUpStatusExecDown(t *testing.T) {
	t.Parallel()
	name := newLabName(t)
	out, code := labCLI(t, 2*time.Minute, "up", "--name", name, "--offices", "2", "--hosts", "2")
	if code != 0 {
		t.Fatalf("lab up: exit %d\n%s", code, out)
	}
	rec := readLabRecord(t, name)
	for _, want := range []string{"is up: 2 offices", "office1  192.168.10.0/24", "198.51.100.12:51820", "✓"} {
		if !strings.Contains(out, want) {
			t.Errorf("lab up summary lacks %q:\n%s", want, out)
		}
	}
	if len(rec.Procs) != 2 {
		t.Fatalf("recorded processes %+v, want the two agents", rec.Procs)
	}
	for _, p := range rec.Procs {
		if !lab.PIDAlive(p.PID, p.StartTime) {
			t.Errorf("%s (pid %d) is not running after lab up returned", p.Role, p.PID)
		}
	}

	t.Run("status", func(t *testing.T) {
		out, code := labCLI(t, time.Minute, "status", "--name", name)
		if code != 0 {
			t.Fatalf("lab status: exit %d\n%s", code, out)
		}
		for _, want := range []string{
			"agent office1", "agent office2", "running",
			"site office1 (network lab) on lanlink0", "site office2 (network lab) on lanlink0",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("lab status lacks %q:\n%s", want, out)
			}
		}
		if n := regexp.MustCompile(`(?m)^\s+office\d\s+up\s`).FindAllString(out, -1); len(n) != 2 {
			t.Errorf("lab status shows %d peers up, want 2 (each gateway sees the other):\n%s", len(n), out)
		}
	})

	t.Run("exec", func(t *testing.T) {
		for _, tc := range []struct {
			node string
			want string
		}{
			{"office1", "inet 192.168.10.10/24"},
			{"o1/host2", "inet 192.168.10.11/24"},
			{"2/gw", "inet 192.168.20.2/24"},
			{"office2/router", "inet 198.51.100.12/24"},
		} {
			t.Run(tc.node, func(t *testing.T) {
				out, code := labCLI(t, 30*time.Second, "exec", "--name", name, tc.node, "--", "ip", "-o", "addr")
				if code != 0 || !strings.Contains(out, tc.want) {
					t.Errorf("lab exec %s -- ip -o addr: exit %d, want %q in:\n%s", tc.node, code, tc.want, out)
				}
			})
		}
		// Through the tunnel, from a LAN host, with the exit code passed on.
		out, code := labCLI(t, 30*time.Second, "exec", "--name", name, "office1", "--", "ping", "-c", "2", "-W", "2", "192.168.20.11")
		if code != 0 {
			t.Errorf("ping office2's second host from office1: exit %d\n%s", code, out)
		}
		if _, code := labCLI(t, 30*time.Second, "exec", "--name", name, "office1", "--", "sh", "-c", "exit 7"); code != 7 {
			t.Errorf("exit code of `sh -c 'exit 7'` came back as %d", code)
		}
		// The gateway's /run is its own: lanlink status there finds its agent.
		out, code = labCLI(t, 30*time.Second, "exec", "--name", name, "o2/gw", "--", lanlinkBin, "status")
		if code != 0 || !strings.Contains(out, "site office2") {
			t.Errorf("lanlink status on office2's gateway: exit %d\n%s", code, out)
		}
		// lab exec puts the lab's lanlink first on PATH and makes the lab's
		// plan and the gateway's key the defaults, so commands that read
		// them work with no flags.
		out, code = labCLI(t, 30*time.Second, "exec", "--name", name, "o2/gw", "--", "lanlink", "routes", "--no-probe")
		if code != 0 || !strings.Contains(out, "office2") {
			t.Errorf("lanlink routes (plan and key from lab exec's environment) on office2's gateway: exit %d\n%s", code, out)
		}
	})

	out, code = labCLI(t, time.Minute, "down", "--name", name)
	if code != 0 || !strings.Contains(out, "2 process(es) stopped, 9 namespace(s) deleted") {
		t.Errorf("lab down: exit %d\n%s", code, out)
	}
	assertLabGone(t, name, rec)
	// Idempotent.
	if out, code := labCLI(t, time.Minute, "down", "--name", name); code != 0 || !strings.Contains(out, "nothing to remove") {
		t.Errorf("second lab down: exit %d\n%s", code, out)
	}
}

// `lab up --ipv6`: dual-stack offices and plan; the summary shows each
// office's IPv6 LAN and IPv6 reachability between every pair, and a LAN
// host reaches another office's host over IPv6 through lab exec.
func TestLabUpIPv6(t *testing.T) {
	t.Parallel()
	name := newLabName(t)
	out, code := labCLI(t, 2*time.Minute, "up", "--name", name, "--offices", "2", "--ipv6")
	if code != 0 {
		t.Fatalf("lab up --ipv6: exit %d\n%s", code, out)
	}
	rec := readLabRecord(t, name)
	for _, want := range []string{"192.168.10.0/24 fd4c:6c00:0:10::/64", "10.255.0.2 fd4c:6cff::2", "v6 ✓"} {
		if !strings.Contains(out, want) {
			t.Errorf("lab up summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "✗") {
		t.Errorf("lab up summary has an unreachable pair:\n%s", out)
	}
	out, code = labCLI(t, 30*time.Second, "exec", "--name", name, "office1", "--", "ping", "-c", "2", "-W", "2", "fd4c:6c00:0:20::a")
	if code != 0 {
		t.Errorf("ping office2's host over IPv6 from office1: exit %d\n%s", code, out)
	}
	if out, code := labCLI(t, time.Minute, "down", "--name", name); code != 0 {
		t.Errorf("lab down: exit %d\n%s", code, out)
	}
	assertLabGone(t, name, rec)
}

func TestLabDownAfterFailedUp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		keep     bool // --keep-on-failure: lab up leaves it, lab down removes it
		loseFile bool // and the state file is lost before lab down
	}{
		{name: "lab up cleans up after itself"},
		{name: "lab down after a kept failure", keep: true},
		{name: "lab down without the state file", keep: true, loseFile: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			name := newLabName(t)
			args := []string{"up", "--name", name, "--offices", "2", "--rtt", "10ms", "--fail-after", "agents"}
			if tc.keep {
				args = append(args, "--keep-on-failure")
			}
			// Read the record while lab up runs: it is written before the
			// first namespace and after every process start.
			out, code := labCLI(t, 2*time.Minute, args...)
			if code != 1 || !strings.Contains(out, `injected failure after step "agents"`) {
				t.Fatalf("lab up with an injected failure: exit %d, want 1 and the failure named\n%s", code, out)
			}
			if !tc.keep {
				// Nothing may be left, and the ID is the name's.
				ents, _ := os.ReadDir("/run/netns")
				for _, e := range ents {
					if strings.Contains(out, "(id "+strings.SplitN(e.Name(), "-", 2)[0]+")") {
						t.Errorf("namespace %s left by a failed lab up", e.Name())
					}
				}
				if _, err := os.Stat(filepath.Dir(labStateFile(name))); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("state directory left by a failed lab up (stat: %v)", err)
				}
				return
			}
			rec := readLabRecord(t, name)
			if len(rec.Procs) != 3 { // the delay line and two agents
				t.Fatalf("recorded processes %+v, want wanem and two agents", rec.Procs)
			}
			for _, p := range rec.Procs {
				if !lab.PIDAlive(p.PID, p.StartTime) {
					t.Errorf("%s (pid %d) not running in the kept lab", p.Role, p.PID)
				}
			}
			if tc.loseFile {
				if err := os.Remove(labStateFile(name)); err != nil {
					t.Fatal(err)
				}
			}
			out, code = labCLI(t, time.Minute, "down", "--name", name)
			if code != 0 || !strings.Contains(out, "3 process(es) stopped, 7 namespace(s) deleted") {
				t.Errorf("lab down: exit %d\n%s", code, out)
			}
			assertLabGone(t, name, rec)
		})
	}
}

var pingTimeRe = regexp.MustCompile(`time=([0-9.]+) ms`)

// labPingRTT pings dst from a lab node count times and returns the lower
// quartile and the median RTT.
func labPingRTT(t *testing.T, name, node, dst string, count int) (q1, median time.Duration) {
	t.Helper()
	out, code := labCLI(t, time.Minute, "exec", "--name", name, node, "--", "ping", "-n", "-c", strconv.Itoa(count), "-i", "0.05", "-W", "2", dst)
	if code != 0 {
		t.Fatalf("ping %s from %s: exit %d\n%s", dst, node, code, out)
	}
	var rtts []time.Duration
	for _, m := range pingTimeRe.FindAllStringSubmatch(out, -1) {
		ms, _ := strconv.ParseFloat(m[1], 64)
		rtts = append(rtts, time.Duration(ms*float64(time.Millisecond)))
	}
	if len(rtts) < count*8/10 {
		t.Fatalf("only %d of %d pings from %s to %s answered:\n%s", len(rtts), count, node, dst, out)
	}
	slices.Sort(rtts)
	return rtts[len(rtts)/4], rtts[len(rtts)/2]
}

// TestLabUpRTT checks the emulated WAN's round trip. Not parallel: on a
// small machine, other tests' CPU load delays the delay line's and the
// agents' threads, which shows up as RTT. For the same reason the 10 %
// bound is checked on the lower quartile of 30 echoes (a delay line can
// make no echo early, so a quartile below the bound means the line delays
// too little); the median is logged next to it.
func TestLabUpRTT(t *testing.T) {
	const rtt = 40 * time.Millisecond
	name := newLabName(t)
	out, code := labCLI(t, 2*time.Minute, "up", "--name", name, "--offices", "2", "--rtt", rtt.String())
	if code != 0 {
		t.Fatalf("lab up --rtt %v: exit %d\n%s", rtt, code, out)
	}
	within := func(got, want, slack time.Duration) bool {
		return got >= want-want/10 && got <= want+want/10+slack
	}
	// The WAN itself: router to router, through the delay line only.
	wanQ1, wanMed := labPingRTT(t, name, "office1/router", "198.51.100.12", 30)
	if !within(wanQ1, rtt, 0) {
		t.Errorf("WAN RTT office1 → office2 router: lower quartile %v (median %v), want %v ± 10%%", wanQ1, wanMed, rtt)
	}
	// LAN host to LAN host through the tunnels: the WAN's RTT plus the
	// tunnel's own (userspace WireGuard on both gateways), a few ms at most.
	lanQ1, lanMed := labPingRTT(t, name, "office1", "192.168.20.10", 30)
	if !within(lanQ1, rtt, 5*time.Millisecond) {
		t.Errorf("LAN host RTT office1 → office2 through lanlink: lower quartile %v (median %v), want %v ± 10%% plus at most 5ms of tunnel", lanQ1, lanMed, rtt)
	}
	t.Logf("asked %v: WAN lower quartile %v, median %v; LAN-to-LAN through lanlink lower quartile %v, median %v", rtt, wanQ1, wanMed, lanQ1, lanMed)
}

func TestLabDemo(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	start := time.Now()
	out, code := labCLI(t, 2*time.Minute, "demo")
	took := time.Since(start)
	t.Logf("lanlink lab demo (%v):\n%s", took.Round(time.Millisecond), out)
	if code != 0 {
		t.Fatalf("lab demo: exit %d", code)
	}
	for _, want := range []string{
		"every LAN host reaches every other (6 pairs",
		"office4 reaches everyone and everyone reaches office4",
		"reloaded without a restart",
		"all reachable: 12 of 12 LAN host pairs answer",
		"cleaned up: every namespace, process and file of lab",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if strings.Contains(out, "✗") {
		t.Errorf("demo shows an unreachable pair")
	}
	m := regexp.MustCompile(`lab id (ll[0-9a-z]{4})`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("demo output names no lab id")
	}
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), m[1]+"-") {
			t.Errorf("namespace %s left by the demo", e.Name())
		}
	}
	if _, err := os.Stat(filepath.Join(os.TempDir(), "lanlink-lab-"+m[1])); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lab directory left by the demo (stat: %v)", err)
	}
	if took > time.Minute {
		t.Errorf("demo took %v, want well under a minute", took)
	}
}
