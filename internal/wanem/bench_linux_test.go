package wanem

import (
	"os"
	"os/exec"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"lanlink/internal/testutil"
)

// TestCeiling measures what a single TCP stream gets through the delay line
// with no delay and no rate limit (the emulator's own ceiling) next to plain
// forwarding through E. It takes ~15 s of both cores, so it only runs with
// LANLINK_BENCH=1. LANLINK_BENCH_CPUPROFILE=file writes a CPU profile of
// the delay line's run.
func TestCeiling(t *testing.T) {
	if os.Getenv("LANLINK_BENCH") != "1" {
		t.Skip("benchmark: set LANLINK_BENCH=1 to measure the delay line's ceiling")
	}
	testutil.RequireRoot(t)
	tp := newTopo(t)
	// Room for a 40 ms × several Gbit/s window at both ends, so the delayed
	// run measures the line and not the default 6 MiB socket buffers.
	for _, ns := range []string{tp.A, tp.B} {
		sh(t, "ip", "netns", "exec", ns, "sysctl", "-qw",
			"net.ipv4.tcp_rmem=4096 131072 67108864", "net.ipv4.tcp_wmem=4096 16384 67108864")
	}
	const secs = 5
	plain := tp.iperf(t, secs)
	t.Logf("plain forwarding through E: %.2f Gbit/s", plain/1e9)

	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{name: "raw frames, no delay", cfg: Config{}},
		// Any loss at all selects the split/coalesce path.
		{name: "split segments, no delay", cfg: Config{Loss: 1e-12}},
		{name: "raw frames, 2x20ms delay", cfg: Config{Delay: 20 * time.Millisecond}},
	} {
		l := tp.startLineOnce(t, tc.cfg)
		if f := os.Getenv("LANLINK_BENCH_CPUPROFILE"); f != "" {
			pf, err := os.Create(f + "." + strings.ReplaceAll(tc.name, " ", "_"))
			if err != nil {
				t.Fatal(err)
			}
			if err := pprof.StartCPUProfile(pf); err != nil {
				t.Fatal(err)
			}
		}
		got := tp.iperf(t, secs)
		pprof.StopCPUProfile() // no-op when not profiling
		st := l.stop(t)
		t.Logf("through the delay line, %s: %.2f Gbit/s (%.0f %% of plain); line: %v", tc.name, got/1e9, 100*got/plain, st)
		if tc.cfg.Delay == 0 && got < 1e9 {
			t.Errorf("delay line ceiling %.2f Gbit/s is below 1 Gbit/s: it would be the bottleneck of a 1 Gbit/s benchmark", got/1e9)
		}
	}
	if out, err := exec.Command("ip", "-n", tp.E, "-s", "link", "show", "dev", ifEB).CombinedOutput(); err == nil {
		t.Logf("E's interface towards B:\n%s", out)
	}
}
