package agent

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"lanlink/internal/firewall"
	"lanlink/internal/plan"
)

// The site's masquerade and mss_clamp follow the plan, live, and a
// firewall that refuses a new plan leaves the running configuration as it
// was — device, host and firewall.
func TestFirewallFollowsThePlan(t *testing.T) {
	on := true
	sites := append([]plan.SiteSpec{}, threeSites...)
	sites[0].Masquerade = &on
	n := newTestNet(t, sites...)
	sys := newFakeSystem()
	_, c := startAgent(t, n, sys)

	masq := firewall.Render(firewall.Config{Interface: "lltest0", Masquerade: true})
	if diff := cmp.Diff(masq, sys.fw.Ruleset()); diff != "" {
		t.Fatalf("firewall after start (-want +got):\n%s", diff)
	}

	// A firewall failure rejects the plan and keeps everything as it was.
	hostBefore := sys.host.State()
	devBefore, _ := sys.dev.Current()
	sys.fw.FailNextSet(nil)
	n.edit(t, func(data []byte) ([]byte, error) {
		data, err := plan.SetSite(n.planPath, data, "alpha", plan.SiteChange{MSSClamp: &on, LANs: []string{"192.168.10.0/24", "192.168.11.0/24"}})
		if err != nil {
			return nil, err
		}
		return plan.SetSite(n.planPath, data, "beta", plan.SiteChange{LANs: []string{"192.168.20.0/24", "192.168.21.0/24"}})
	})
	if _, err := c.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "injected firewall failure") {
		t.Fatalf("reload with a failing firewall: %v, want the plan rejected", err)
	}
	if diff := cmp.Diff(masq, sys.fw.Ruleset()); diff != "" {
		t.Errorf("firewall after a rejected plan (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(hostBefore, sys.host.State()); diff != "" {
		t.Errorf("host after a rejected plan (-want +got):\n%s", diff)
	}
	if devAfter, _ := sys.dev.Current(); fmt.Sprintf("%+v", devAfter) != fmt.Sprintf("%+v", devBefore) {
		t.Errorf("device after a rejected plan:\n%+v\nwant\n%+v", devAfter, devBefore)
	}

	// The same plan applies once the firewall accepts it.
	if _, err := c.Reload(context.Background()); err != nil {
		t.Fatalf("reload: %v", err)
	}
	both := firewall.Render(firewall.Config{Interface: "lltest0", Masquerade: true, MSSClamp: true})
	if diff := cmp.Diff(both, sys.fw.Ruleset()); diff != "" {
		t.Errorf("firewall after reload (-want +got):\n%s", diff)
	}

	if err := c.Down(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !sys.fw.Closed() || sys.fw.Ruleset() != "" {
		t.Errorf("after down: firewall closed %t, ruleset %q; want closed and empty", sys.fw.Closed(), sys.fw.Ruleset())
	}
}
