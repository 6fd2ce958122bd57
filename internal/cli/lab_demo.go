package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"lanlink/internal/lab"
)

func newLabDemoCmd(e *env) *cobra.Command {
	var within time.Duration
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Three offices, joined; a fourth added live; then everything removed",
		Long: `A guided run in network namespaces on this machine (root needed; nothing
outside the lab changes): three virtual offices, each with a router, a
gateway and a LAN host; a key made on every gateway; one plan; "lanlink up"
on every gateway. It shows every LAN host reaching every other, one
gateway's "lanlink status", then adds a fourth office while the others keep
running (one "lanlink site add" on the plan they watch), shows everyone
reaching it, prints a summary with timings, and removes everything, also on
Ctrl-C or failure.`,
		Args: args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireRoot("demo"); err != nil {
				return err
			}
			return labDemo(cmd.Context(), e, within)
		},
	}
	cmd.Flags().DurationVar(&within, "timeout", 30*time.Second, "how long to wait for each reachability check")
	return cmd
}

func labDemo(ctx context.Context, e *env, within time.Duration) (err error) {
	w := e.stdout
	say := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	bin, err := labBinary()
	if err != nil {
		return err
	}
	t0 := time.Now()
	say("lanlink lab demo: virtual offices in network namespaces on this machine\n\n")
	say("1. Building three offices (router with NAT and one port forward, gateway, LAN host) and an internet between them…\n")
	l, err := lab.New(ctx, nil, lab.Config{Offices: 3})
	if err != nil {
		return err
	}
	id := l.ID
	defer func() {
		cerr := l.Close()
		left, _ := lab.ProcessesIn(id)
		if cerr == nil && len(left) == 0 && labNamespacesLeft(id) == 0 {
			say("\ncleaned up: every namespace, process and file of lab %s removed\n", id)
			return
		}
		err = errors.Join(err, cerr, fmt.Errorf("lab %s not fully removed (processes %v); run `lanlink lab down`", id, left))
	}()
	buildTime := time.Since(t0)
	n, err := newLabNet(e, l, bin, false)
	if err != nil {
		return err
	}
	say("   done in %s (lab id %s)\n\n", fmtSec(buildTime), id)

	say("2. On every gateway: `lanlink keygen` (the private key stays in that gateway's /run); one plan with every office:\n")
	if err := n.initPlan(ctx); err != nil {
		return err
	}
	for _, o := range l.Offices {
		s, err := n.addSite(ctx, o)
		if err != nil {
			return err
		}
		say("   lanlink site add %s --lan %s --endpoint %s --public-key %s…  → tunnel %s\n",
			s.name, o.LAN, o.Endpoint(), s.pub[:8], s.tunnel())
	}
	say("\n3. `lanlink up` on the three gateways…\n")
	agentsAt := time.Now()
	for _, s := range n.sites {
		if err := n.startAgent(ctx, s); err != nil {
			return err
		}
	}
	a, b := n.sites[0], n.sites[1]
	firstCtx, cancel := context.WithTimeout(ctx, within)
	first, err := a.office.Hosts[0].PingUntil(firstCtx, b.office.Hosts[0].Addr, 10*time.Millisecond)
	cancel()
	if err != nil {
		return fmt.Errorf("first packet %s → %s: %w\n%s's agent log:\n%s", a.name, b.name, err, a.name, tail(a.agent.Output(), 20))
	}
	first = time.Since(agentsAt)
	say("   first packet from %s's LAN host to %s's answered %s after the agents started\n", a.name, b.name, fmtSec(first))
	pairs := n.reachAll(ctx, n.sites, n.sites, within)
	allAt := time.Since(agentsAt)
	if err := reachErr(pairs); err != nil {
		return fmt.Errorf("not every LAN host reaches every other: %w", err)
	}
	say("   every LAN host reaches every other (%d pairs, %s after the agents started); ping RTTs:\n\n", len(pairs), fmtSec(allAt))
	var m bytes.Buffer
	writeMatrix(&m, n.sites, pairs)
	say("%s\n", m.String())

	say("4. `lanlink status` on %s's gateway:\n\n", a.name)
	st, err := n.status(ctx, a)
	if err != nil {
		return fmt.Errorf("status of %s: %w", a.name, err)
	}
	var sb bytes.Buffer
	writeStatus(&sb, st, time.Now())
	say("   %s\n\n", strings.ReplaceAll(strings.TrimRight(sb.String(), "\n"), "\n", "\n   "))
	genBefore := map[*labSite]int{}
	pidBefore := map[*labSite]int{}
	for _, s := range n.sites {
		if st, err := n.status(ctx, s); err == nil {
			genBefore[s] = int(st.Generation)
		}
		pidBefore[s] = s.agent.PID
	}

	say("5. A fourth office joins while the others keep running:\n")
	addAt := time.Now()
	o4, err := l.AddOffice(ctx)
	if err != nil {
		return err
	}
	say("   new namespaces for office 4 (LAN %s, WAN %s) in %s\n", o4.LAN, o4.WAN, fmtSec(time.Since(addAt)))
	old := append([]*labSite(nil), n.sites...)
	planAt := time.Now()
	s4, err := n.addSite(ctx, o4)
	if err != nil {
		return err
	}
	say("   keygen on its gateway; lanlink site add %s --lan %s --endpoint %s  → tunnel %s\n", s4.name, o4.LAN, o4.Endpoint(), s4.tunnel())
	say("   (the running agents watch the plan file and pick the new site up by themselves)\n")
	if err := n.startAgent(ctx, s4); err != nil {
		return err
	}
	say("   lanlink up on office4's gateway\n")
	newPairs := append(n.reachAll(ctx, old, []*labSite{s4}, within), n.reachAll(ctx, []*labSite{s4}, old, within)...)
	joinAt := time.Since(planAt)
	if err := reachErr(newPairs); err != nil {
		return fmt.Errorf("the new office is not reachable from everyone: %w", err)
	}
	restarted := 0
	var reloads []string
	for _, s := range old {
		select {
		case <-s.agent.Done():
			restarted++
			continue
		default:
		}
		st, err := n.status(ctx, s)
		if err != nil || s.agent.PID != pidBefore[s] {
			restarted++
			continue
		}
		reloads = append(reloads, fmt.Sprintf("%s generation %d→%d", s.name, genBefore[s], st.Generation))
	}
	if restarted > 0 {
		return fmt.Errorf("%d of the running agents did not survive the new office", restarted)
	}
	say("   office4 reaches everyone and everyone reaches office4, %s after the site was added; the other agents reloaded without a restart (%s)\n\n",
		fmtSec(joinAt), strings.Join(reloads, ", "))
	all := n.reachAll(ctx, n.sites, n.sites, within)
	if err := reachErr(all); err != nil {
		return fmt.Errorf("not every LAN host reaches every other after adding office4: %w", err)
	}
	m.Reset()
	writeMatrix(&m, n.sites, all)
	say("%s\n", m.String())

	say("Summary\n")
	say("  offices:                  4 (3 at first, 1 added live), each with router/NAT, gateway and LAN host\n")
	say("  lab built in:             %s\n", fmtSec(buildTime))
	say("  time to first packet:     %s after `lanlink up` on the gateways\n", fmtSec(first))
	say("  all %d pairs reachable:    %s after `lanlink up`\n", len(pairs), fmtSec(allAt))
	say("  4th office reachable:     %s after `lanlink site add` (no agent restarted)\n", fmtSec(joinAt))
	say("  result:                   all reachable: %d of %d LAN host pairs answer\n", len(all), len(all))
	say("  total:                    %s\n", fmtSec(time.Since(t0)))
	say("\nnext: `sudo %s lab up` keeps a lab running for you to explore (lab exec, lab status, lab down)\n", selfCmd(bin))
	return nil
}

// labNamespacesLeft counts named namespaces of lab id.
func labNamespacesLeft(id string) int {
	ents, _ := os.ReadDir("/run/netns")
	n := 0
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), id+"-") {
			n++
		}
	}
	return n
}
