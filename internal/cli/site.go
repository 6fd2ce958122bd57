package cli

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"lanlink/internal/plan"
)

func newSiteCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "site",
		Short: "Add, change, remove and list the offices in the plan",
		Long: `Add, change, remove and list the offices (sites) in the plan. Edits keep the
file's comments and layout, write it atomically with its mode, and leave it
byte for byte as it was when they fail.`,
		Args: args(),
	}
	cmd.AddCommand(newSiteAddCmd(e), newSiteSetCmd(e), newSiteRemoveCmd(e), newSiteListCmd(e))
	return cmd
}

func newSiteAddCmd(e *env) *cobra.Command {
	var (
		spec        plan.SiteSpec
		masq, clamp bool
	)
	cmd := &cobra.Command{
		Use:   "add NAME --public-key KEY --lan CIDR [--lan CIDR ...] [--endpoint HOST:PORT] [--address IP]",
		Short: "Add an office and print its tunnel address",
		Long: `Add an office to the plan. Its tunnel address is the lowest free one in each
tunnel prefix (existing sites are never renumbered) unless --address is given;
the address is printed, one per tunnel prefix. A site without --endpoint only
dials out (behind NAT without port forwarding) and is reached through the hub.`,
		Example: "  lanlink site add alpha --public-key $(ssh gw-a lanlink pubkey) \\\n" +
			"      --lan 192.168.10.0/24 --endpoint office-a.example.com:51820",
		Args: args("NAME"),
		RunE: func(cmd *cobra.Command, a []string) error {
			spec.Name = a[0]
			if spec.PublicKey == "" {
				return usagef("site add: give the site's public key with --public-key (run `lanlink keygen` on its gateway)")
			}
			if len(spec.LANs) == 0 {
				return usagef("site add: give the office's LAN with --lan CIDR (repeat for more)")
			}
			if cmd.Flags().Changed("masquerade") {
				spec.Masquerade = &masq
			}
			if cmd.Flags().Changed("mss-clamp") {
				spec.MSSClamp = &clamp
			}
			var added *plan.Site
			err := e.editPlan(func(path string, data []byte) (out []byte, err error) {
				out, added, err = plan.AddSite(path, data, spec)
				return out, err
			})
			if err != nil {
				return err
			}
			for _, a := range added.Addresses {
				fmt.Fprintln(e.stdout, a)
			}
			e.log.Debug("site added", "site", spec.Name, "plan", e.planPath)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&spec.PublicKey, "public-key", "", "the site's public key, printed by `lanlink keygen` on its gateway")
	f.StringArrayVar(&spec.LANs, "lan", nil, "a LAN behind the gateway (CIDR); repeat for more")
	f.StringVar(&spec.Endpoint, "endpoint", "", "HOST:PORT where other sites reach it; leave out when behind NAT")
	f.StringArrayVar(&spec.Address, "address", nil, "tunnel address instead of the lowest free one; one per tunnel prefix")
	f.Uint16Var(&spec.Port, "port", 0, "own UDP listen port (default: the network's)")
	f.BoolVar(&masq, "masquerade", false, "NAT traffic from the tunnel into the LAN (when LAN hosts lack a route back)")
	f.BoolVar(&clamp, "mss-clamp", false, "clamp TCP MSS on the tunnel to its MTU")
	return cmd
}

func newSiteSetCmd(e *env) *cobra.Command {
	var (
		endpoint, pubkey string
		lans             []string
		port             uint16
		masq, clamp      bool
	)
	cmd := &cobra.Command{
		Use:   "set NAME [--endpoint HOST:PORT] [--lan CIDR ...] [--public-key KEY] [--port N] [--masquerade[=false]] [--mss-clamp[=false]]",
		Short: "Change an office: only the flags given change",
		Long: `Change a site. Only the settings given as flags change; --lan replaces the
whole LAN list; --endpoint "" makes the site one that only dials out;
--port 0 returns it to the network's port.`,
		Args: args("NAME"),
		RunE: func(cmd *cobra.Command, a []string) error {
			var c plan.SiteChange
			f := cmd.Flags()
			changed := false
			if f.Changed("endpoint") {
				c.Endpoint, changed = &endpoint, true
			}
			if f.Changed("public-key") {
				c.PublicKey, changed = &pubkey, true
			}
			if f.Changed("lan") {
				if len(lans) == 0 {
					return usagef("site set: --lan needs a CIDR; a site needs at least one LAN")
				}
				c.LANs, changed = lans, true
			}
			if f.Changed("port") {
				c.Port, changed = &port, true
			}
			if f.Changed("masquerade") {
				c.Masquerade, changed = &masq, true
			}
			if f.Changed("mss-clamp") {
				c.MSSClamp, changed = &clamp, true
			}
			if !changed {
				return usagef("site set %s: nothing to change; give at least one of --endpoint, --lan, --public-key, --port, --masquerade, --mss-clamp", a[0])
			}
			return e.editPlan(func(path string, data []byte) ([]byte, error) {
				return plan.SetSite(path, data, a[0], c)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&endpoint, "endpoint", "", `new HOST:PORT; "" for a site that only dials out`)
	f.StringArrayVar(&lans, "lan", nil, "new LAN list (CIDR); repeat for more")
	f.StringVar(&pubkey, "public-key", "", "new public key (after `lanlink keygen --force` on its gateway)")
	f.Uint16Var(&port, "port", 0, "own UDP listen port; 0 for the network's")
	f.BoolVar(&masq, "masquerade", false, "NAT traffic from the tunnel into the LAN")
	f.BoolVar(&clamp, "mss-clamp", false, "clamp TCP MSS on the tunnel")
	return cmd
}

func newSiteRemoveCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove an office from the plan",
		Args:  args("NAME"),
		RunE: func(cmd *cobra.Command, a []string) error {
			return e.editPlan(func(path string, data []byte) ([]byte, error) {
				return plan.RemoveSite(path, data, a[0])
			})
		},
	}
}

// siteJSON is a site as `site list --json` shows it.
type siteJSON struct {
	Name       string         `json:"name"`
	PublicKey  string         `json:"public_key"`
	Endpoint   string         `json:"endpoint,omitempty"`
	LANs       []netip.Prefix `json:"lans"`
	Addresses  []netip.Addr   `json:"addresses"`
	Port       uint16         `json:"port,omitempty"`
	Masquerade bool           `json:"masquerade,omitempty"`
	MSSClamp   bool           `json:"mss_clamp,omitempty"`
}

func newSiteListCmd(e *env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [--json]",
		Short: "List the offices: name, tunnel address, endpoint, LANs",
		Args:  args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := e.loadPlan()
			if err != nil {
				return err
			}
			if asJSON {
				out := make([]siteJSON, 0, len(p.Sites))
				for _, s := range p.Sites {
					out = append(out, siteJSON{
						Name: s.Name, PublicKey: s.PublicKey.String(), Endpoint: s.Endpoint,
						LANs: s.LANs, Addresses: s.Addresses, Port: s.Port,
						Masquerade: s.Masquerade, MSSClamp: s.MSSClamp,
					})
				}
				return writeJSON(e, out)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tADDRESS\tENDPOINT\tLANS")
			for _, s := range p.Sites {
				ep := s.Endpoint
				if ep == "" {
					ep = "- (dials out)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, join(s.Addresses), ep, join(s.LANs))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON for scripts")
	return cmd
}

func join[T fmt.Stringer](xs []T) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = x.String()
	}
	return strings.Join(s, ",")
}

func writeJSON(e *env, v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
