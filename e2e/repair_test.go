package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"lanlink/internal/agent"
	"lanlink/internal/firewall"
)

// Self-healing: while both agents run, someone on office 2's gateway
// deletes the route to office 1's LAN, turns ip_forward off, flushes the
// nftables ruleset (masquerade is on, and office 2's router has no route
// back, so traffic needs it), and sets lanlink0 down. Each time office 1's
// host reaches office 2's host again within seconds without anyone
// touching the agent (the kernel's and nftables' events wake it; its
// periodic check is off), the agent logs what it restored, and status is clean
// again. `lanlink down` afterwards leaves the gateway as it was before up,
// ip_forward's original 0 included, although the agent turned forwarding
// back on after someone else had turned it off.
func TestRepairsHostDrift(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, netOpts{offices: 2})
	a, m := n.sites[0], n.sites[1]
	gw := m.office.Gateway
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if out, err := gw.Exec(ctx, "cat", "/proc/sys/net/ipv4/ip_forward"); err != nil || strings.TrimSpace(string(out)) != "0" {
		t.Fatalf("office 2's gateway ip_forward before up = %q, %v; the test needs 0 to prove down restores it", out, err)
	}
	before := snapshot(t, gw)
	if _, err := m.office.Router.Exec(ctx, "ip", "route", "del", a.office.LAN.String()); err != nil {
		t.Fatalf("remove office 2 router's route to office 1's LAN: %v", err)
	}
	run(t, "site", "set", m.name, "-f", n.plan, "--masquerade")
	// No periodic check within the test: every repair below must come
	// from a kernel or nftables event.
	n.upArgs = []string{"--repair-every", "1h"}
	n.upAll()
	waitPing(t, a.host(), m.host().Addr, 10*time.Second)

	repairs := 0
	for _, tc := range []struct {
		name   string
		argv   []string
		logged string
	}{
		{"route to the remote LAN deleted", []string{"ip", "route", "del", a.office.LAN.String(), "dev", iface},
			"restored=\"ip route add " + a.office.LAN.String() + " dev " + iface + "\""},
		{"ip_forward set to 0", []string{"sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward"},
			"sysctl=net.ipv4.ip_forward"},
		{"nftables ruleset flushed", []string{"nft", "flush", "ruleset"},
			"table=\"inet " + firewall.TableName(iface) + "\""},
		{"lanlink0 set down", []string{"ip", "link", "set", iface, "down"},
			"restored=\"ip link set dev " + iface + " up\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if out, err := gw.Exec(ctx, tc.argv...); err != nil {
				t.Fatalf("%s: %v: %s", strings.Join(tc.argv, " "), err, out)
			}
			took := waitPing(t, a.host(), m.host().Addr, 5*time.Second) // kernel and nftables events repair at once
			st := waitStatus(t, m, 5*time.Second, "repair counted", func(st *agent.Status) bool { return st.Repairs > repairs })
			if len(st.Problems) != 0 {
				t.Errorf("status problems after repair: %q", st.Problems)
			}
			repairs = st.Repairs
			t.Logf("%s: traffic back after %v; repairs so far %d", tc.name, took.Round(10*time.Millisecond), repairs)
			b, _ := os.ReadFile(m.log)
			if !strings.Contains(string(b), tc.logged) {
				t.Errorf("agent log of %s has no line with %s", m.name, tc.logged)
			}
		})
	}
	if out, err := gw.Exec(ctx, "nft", "list", "table", "inet", firewall.TableName(iface)); err != nil {
		t.Errorf("lanlink's table after the repairs: %v: %s", err, out)
	}

	for _, s := range []*site{m, a} {
		s.down(t)
	}
	if diff := lineDiff(before, snapshot(t, gw)); diff != "" {
		t.Errorf("office 2's gateway after down differs from before up:\n%s", diff)
	}
	if out, err := gw.Exec(ctx, "nft", "list", "ruleset"); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("nftables ruleset after down = %q, %v; want empty", out, err)
	}
}
