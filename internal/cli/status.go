package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"lanlink/internal/agent"
)

func newStatusCmd(e *env) *cobra.Command {
	var (
		af     agentFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "status [--interface NAME] [--json]",
		Short: "Show the running agent's site and every peer's state",
		Args:  args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := af.client().Status(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			writeStatus(e.stdout, st, time.Now())
			return nil
		},
	}
	af.register(cmd, e)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return cmd
}

func writeStatus(w io.Writer, st *agent.Status, now time.Time) {
	var addrs []string
	for _, a := range st.Addresses {
		addrs = append(addrs, a.String())
	}
	fmt.Fprintf(w, "site %s (network %s) on %s, %s backend, pid %d\n", st.Site, st.Network, st.Interface, st.Backend, st.PID)
	fmt.Fprintf(w, "  address %s, listening on UDP %d, up %s, plan %s generation %d\n",
		strings.Join(addrs, ", "), st.ListenPort, now.Sub(st.Started).Round(time.Second), st.Plan, st.Generation)
	if st.PlanError != "" {
		fmt.Fprintf(w, "  plan rejected: %s\n  (still running generation %d; fix the plan and it is picked up)\n", st.PlanError, st.Generation)
	}
	for _, p := range st.Problems {
		fmt.Fprintf(w, "  problem: %s\n", p)
	}
	if st.Repairs > 0 {
		fmt.Fprintf(w, "  repaired %d piece(s) of host state someone else changed since start (see the log)\n", st.Repairs)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tSTATE\tENDPOINT\tHANDSHAKE\tRX\tTX\tLANS")
	for _, p := range st.Peers {
		ep := p.Actual
		if ep == "" {
			ep = p.Endpoint
		}
		if p.Endpoint != "" && p.Actual != "" && p.Endpoint != p.Actual {
			ep = p.Endpoint + " (" + p.Actual + ")"
		}
		if ep == "" {
			ep = "(dials in)"
		}
		hs := "never"
		if !p.LastHandshake.IsZero() {
			hs = fmt.Sprintf("%s ago", time.Duration(p.HandshakeAge*float64(time.Second)))
		}
		var lans []string
		for _, l := range p.LANs {
			lans = append(lans, l.String())
		}
		if len(p.Via) > 0 {
			lans = append(lans, "relays "+strings.Join(p.Via, ","))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Site, p.State, ep, hs, bytesIEC(p.RxBytes), bytesIEC(p.TxBytes), strings.Join(lans, " "))
	}
	tw.Flush()
}

func bytesIEC(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
