package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"lanlink/internal/fsutil"
	"lanlink/internal/plan"
)

func newInitCmd(e *env) *cobra.Command {
	var (
		tunnels []string
		name    string
		port    uint16
	)
	cmd := &cobra.Command{
		Use:   "init --tunnel CIDR [--tunnel CIDR6] [--name NAME] [--port 51820]",
		Short: "Create a new network plan",
		Long: `Create a new network plan file with its tunnel prefixes (one IPv4 and/or
one IPv6 private prefix that no LAN uses). An existing file is never replaced.`,
		Example: "  lanlink init --tunnel 10.255.0.0/24 --name acme",
		Args:    args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(tunnels) == 0 {
				return usagef("init: give the tunnel prefix with --tunnel, e.g. --tunnel 10.255.0.0/24")
			}
			var ps []netip.Prefix
			for _, t := range tunnels {
				p, err := netip.ParsePrefix(t)
				if err != nil {
					return usagef("init: --tunnel %q is not a prefix: want one like 10.255.0.0/24 or fd00:ff::/64", t)
				}
				ps = append(ps, p)
			}
			text, err := plan.New(name, ps, port)
			if err != nil {
				return err
			}
			path := e.planPath
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return fmt.Errorf("create plan directory: %w", err)
			}
			// Public keys and addresses only: readable by all is fine,
			// and the plan is meant to be copied around.
			if err := fsutil.WriteFileExclusive(path, text, 0o644); err != nil {
				if errors.Is(err, fs.ErrExist) {
					return fmt.Errorf("%s already exists: refusing to replace a plan; "+
						"edit it with `lanlink site add|set|remove` or by hand, or give another file with -f", path)
				}
				return fmt.Errorf("write plan: %w", err)
			}
			fmt.Fprintf(e.stderr, "created %s\nnext: run `lanlink keygen` on each gateway, then `lanlink site add` here for each office\n", path)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&tunnels, "tunnel", nil, "tunnel prefix (CIDR); repeat for IPv4 and IPv6")
	cmd.Flags().StringVar(&name, "name", "lanlink", "network name (letters, digits, '-')")
	cmd.Flags().Uint16Var(&port, "port", plan.DefaultPort, "default UDP listen port of every site")
	return cmd
}
