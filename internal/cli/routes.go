package cli

import (
	"encoding/json"

	"github.com/spf13/cobra"

	"lanlink/internal/doctor"
	"lanlink/internal/plan"
)

func newRoutesCmd(e *env) *cobra.Command {
	var (
		af      agentFlags
		keyFile string
		asJSON  bool
		noProbe bool
	)
	cmd := &cobra.Command{
		Use:   "routes [SITE] [--json]",
		Short: "Show the static routes each office's LAN router needs",
		Long: `Print, for every office (or SITE), the static routes its LAN router needs:
each remote LAN via that office's gateway, as ip route lines and as an
instruction for routers configured through a web page.

Run on a gateway, it fills in the gateway's LAN address for its own office
and checks each route: it sends the LAN router an echo request whose source
is an address in the remote LAN and watches whether the reply comes back
through this gateway (which it does only if the router has the route).
Other offices show a <gateway LAN address> placeholder. Exit status 1 when
a required route is missing.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			p, err := plan.Load(e.planPath)
			if err != nil {
				return err
			}
			obs, err := doctor.NewObserver(doctor.ObserverOptions{PlanPath: e.planPath, KeyPath: keyFile, StateDir: af.stateDir, Interface: af.iface})
			if err != nil {
				obs = nil // print the routes without local details
			}
			o := doctor.RoutesOptions{Observer: obs, Interface: af.iface, NoProbe: noProbe}
			if len(a) == 1 {
				o.Site = a[0]
			}
			srs, err := doctor.Routes(cmd.Context(), p, o)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(srs); err != nil {
					return err
				}
			} else {
				doctor.WriteRoutes(e.stdout, srs)
			}
			if doctor.RoutesMissing(srs) {
				return silentError{}
			}
			return nil
		},
	}
	af.register(cmd, e)
	cmd.Flags().StringVar(&keyFile, "key", e.defaultKey(), "this gateway's private key (finds its office)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the routes as JSON")
	cmd.Flags().BoolVar(&noProbe, "no-probe", false, "do not check whether the routes are in place")
	return cmd
}
