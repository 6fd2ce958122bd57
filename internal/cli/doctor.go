package cli

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"lanlink/internal/doctor"
)

func newDoctorCmd(e *env) *cobra.Command {
	var (
		af      agentFlags
		keyFile string
		site    string
		rate    string
		asJSON  bool
		noProbe bool
	)
	cmd := &cobra.Command{
		Use:   "doctor [--json] [--rate RATE] [--site NAME]",
		Short: "Diagnose this gateway and print the fix for each problem",
		Long: `Check this gateway, with or without the agent running: the plan and key,
the agent and its UDP port, IP forwarding, reverse path filtering, firewall
rules between the LAN and the tunnel, networks overlapping the plan, each
peer's handshake, the path MTU to each peer and TCP buffers against the
bandwidth-delay product at --rate. Each finding comes with the command or
line that fixes it; doctor itself changes nothing.

It pings each peer's tunnel address (which also starts a handshake). Exit
status 1 when a check failed; warnings alone exit 0.`,
		Args: args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			bps, err := parseRate(rate)
			if err != nil {
				return usagef("doctor: --rate: %v", err)
			}
			obs, err := doctor.NewObserver(doctor.ObserverOptions{PlanPath: e.planPath, KeyPath: keyFile, StateDir: af.stateDir, Interface: af.iface})
			if err != nil {
				return err
			}
			rs := doctor.Run(cmd.Context(), doctor.Options{Observer: obs, PlanPath: e.planPath, Interface: af.iface, Site: site, Rate: bps, NoProbe: noProbe})
			if asJSON {
				if err := doctor.WriteJSON(e.stdout, rs); err != nil {
					return err
				}
			} else {
				doctor.WriteText(e.stdout, rs)
			}
			if doctor.Failed(rs) {
				return silentError{}
			}
			return nil
		},
	}
	af.register(cmd, e)
	cmd.Flags().StringVar(&keyFile, "key", e.defaultKey(), "this gateway's private key")
	cmd.Flags().StringVar(&site, "site", "", "this gateway's site (default: the agent's, else found by the key)")
	cmd.Flags().StringVar(&rate, "rate", "1gbit", "link rate for sizing TCP buffers (e.g. 100mbit, 1gbit, 10gbit)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the results as JSON")
	cmd.Flags().BoolVar(&noProbe, "no-probe", false, "do not ping the peers (no RTT, path MTU or buffer checks)")
	return cmd
}

// parseRate reads "100mbit", "1gbit", "1.5g", "800m" or plain bits/s.
func parseRate(s string) (float64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "/s"), "bit")
	t = strings.TrimSuffix(t, "bps")
	mult := 1.0
	switch {
	case strings.HasSuffix(t, "k"):
		mult, t = 1e3, strings.TrimSuffix(t, "k")
	case strings.HasSuffix(t, "m"):
		mult, t = 1e6, strings.TrimSuffix(t, "m")
	case strings.HasSuffix(t, "g"):
		mult, t = 1e9, strings.TrimSuffix(t, "g")
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("%q is not a rate like 100mbit or 1gbit", s)
	}
	return v * mult, nil
}
