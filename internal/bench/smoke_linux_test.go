package bench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"lanlink/internal/testutil"
)

// TestRunSmoke proves the harness end to end in a few seconds: a real lab,
// the raw routed link and lanlink's userspace tunnel, one round of 1 s
// iperf3 tests. It checks that figures come out and make sense, not how
// fast anything is (benchmarks are not timed tests).
func TestRunSmoke(t *testing.T) {
	testutil.RequireRoot(t)
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Fatal("iperf3 is needed (apt-get install iperf3; .ci/run installs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	rep, err := Run(ctx, Options{
		Planes:    []string{PlaneLanlink},
		Scenarios: DefaultScenarios[:1],
		Rounds:    1,
		Duration:  time.Second,
		WorkDir:   t.TempDir(),
		Progress:  &progress,
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Logf("progress:\n%s", progress.String())

	if len(rep.Rows) != 2 {
		t.Fatalf("rows = %d, want 2 (raw is always added): %+v", len(rep.Rows), rep.Rows)
	}
	for _, row := range rep.Rows {
		if row.OK != 1 {
			t.Errorf("%s: %d of %d rounds ok: %+v", row.Plane, row.OK, len(row.Samples), row.Samples)
			continue
		}
		s := row.Samples[0]
		if !(s.TCP1Mbps > 1) || !(s.TCP4Mbps > 1) {
			t.Errorf("%s: goodput 1 stream %v, 4 streams %v Mbit/s: want > 1", row.Plane, s.TCP1Mbps, s.TCP4Mbps)
		}
		if !(s.RTTms > 0 && s.RTTms < 100) {
			t.Errorf("%s: RTT %v ms, want within (0, 100) on the plain lab", row.Plane, s.RTTms)
		}
		if s.Bytes <= 0 {
			t.Errorf("%s: bytes moved %d, want > 0", row.Plane, s.Bytes)
		}
		switch row.Plane {
		case PlaneRaw:
			if !s.CPUPerGB.IsNaN() {
				t.Errorf("raw: CPU per GB %v, want none (kernel path)", s.CPUPerGB)
			}
		case PlaneLanlink:
			// Moving data through a userspace tunnel costs the agents
			// CPU: a zero would mean the wrong processes were counted.
			if !(s.CPUSec > 0) || !(s.CPUPerGB > 0) {
				t.Errorf("lanlink: CPU %v s, %v s/GB: want > 0", s.CPUSec, s.CPUPerGB)
			}
		}
	}
	if rep.LabID == "" {
		t.Fatal("report has no lab ID")
	}
	ents, err := os.ReadDir("/run/netns")
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), rep.LabID+"-") {
			t.Errorf("namespace %s left behind", e.Name())
		}
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil || !strings.Contains(table.String(), "lanlink (userspace)") {
		t.Errorf("table (err %v):\n%s", err, table.String())
	}
}
