package firewalltest

import (
	"errors"
	"net"
	"testing"

	"github.com/google/go-cmp/cmp"

	"lanlink/internal/firewall"
)

func TestFake(t *testing.T) {
	t.Parallel()
	var f Fake
	cfg := firewall.Config{Interface: "lanlink0", Masquerade: true}
	if err := f.Set(cfg); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(firewall.Render(cfg), f.Ruleset()); diff != "" {
		t.Errorf("Ruleset (-want +got):\n%s", diff)
	}
	f.FailNextSet(nil)
	if err := f.Set(firewall.Config{Interface: "lanlink0"}); !errors.Is(err, ErrInjected) {
		t.Fatalf("failed Set = %v, want ErrInjected", err)
	}
	if diff := cmp.Diff(firewall.Render(cfg), f.Ruleset()); diff != "" {
		t.Errorf("a failed Set changed the ruleset (-want +got):\n%s", diff)
	}
	if err := f.Close(); err != nil || f.Ruleset() != "" || !f.Closed() {
		t.Errorf("Close = %v, Ruleset %q, Closed %t; want nil, empty, true", err, f.Ruleset(), f.Closed())
	}
	if err := f.Set(cfg); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Set after Close = %v, want net.ErrClosed", err)
	}
}

func TestFakeRepair(t *testing.T) {
	t.Parallel()
	var f Fake
	cfg := firewall.Config{Interface: "lanlink0", Masquerade: true}
	if err := f.Set(cfg); err != nil {
		t.Fatal(err)
	}
	if rebuilt, err := f.Repair(); rebuilt || err != nil {
		t.Errorf("Repair with nothing drifted = %t, %v; want false, nil", rebuilt, err)
	}
	f.Drift()
	if f.Ruleset() != "" {
		t.Fatalf("Ruleset after Drift = %q, want empty", f.Ruleset())
	}
	f.FailNextSet(nil)
	if _, err := f.Repair(); !errors.Is(err, ErrInjected) || f.Ruleset() != "" {
		t.Fatalf("failing Repair = %v, ruleset %q; want ErrInjected and nothing rebuilt", err, f.Ruleset())
	}
	if rebuilt, err := f.Repair(); !rebuilt || err != nil {
		t.Fatalf("Repair after Drift = %t, %v; want true, nil", rebuilt, err)
	}
	if diff := cmp.Diff(firewall.Render(cfg), f.Ruleset()); diff != "" {
		t.Errorf("Ruleset after Repair (-want +got):\n%s", diff)
	}
	if f.Repairs() != 1 {
		t.Errorf("Repairs = %d, want 1", f.Repairs())
	}
}
