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
