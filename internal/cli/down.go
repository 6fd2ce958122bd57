package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newDownCmd(e *env) *cobra.Command {
	var af agentFlags
	cmd := &cobra.Command{
		Use:   "down [--interface NAME]",
		Short: "Stop the site agent and undo its changes",
		Long: `Stop the agent running on the interface and wait until it has removed the
interface, its routes and sockets and put forwarding back as it was.`,
		Args: args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := af.client().Down(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "lanlink on %s stopped\n", af.iface)
			return nil
		},
	}
	af.register(cmd, e)
	return cmd
}

func newReloadCmd(e *env) *cobra.Command {
	var af agentFlags
	cmd := &cobra.Command{
		Use:   "reload [--interface NAME]",
		Short: "Make the running agent apply the plan file now",
		Long: `Ask the running agent to re-read the plan and key and apply the difference.
Tunnels to unchanged peers keep their sessions. If the new plan is invalid the
agent keeps running the old one and this command exits non-zero with why.`,
		Args: args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := af.client().Reload(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "plan applied: site %s, %d peers, generation %d\n", st.Site, len(st.Peers), st.Generation)
			return nil
		},
	}
	af.register(cmd, e)
	return cmd
}
