package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"lanlink/internal/plan"
)

func newCheckCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Validate the plan: print ok or every problem found",
		Long: `Validate the plan before anything touches a machine. Prints "ok: N sites",
or every problem found (file, line, site, field and how to fix it) and exits 1.`,
		Args: args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := e.loadPlan()
			var ps plan.Problems
			if errors.As(err, &ps) {
				// The problems are the answer the user asked for.
				fmt.Fprintln(e.stdout, ps.Error())
				return silentError{}
			}
			if err != nil {
				return err
			}
			// A plan that parses derives for every site (Parse checks
			// paths between sites too; plan's FuzzParse holds it to
			// that), so check does not derive 1000 configs to say ok.
			fmt.Fprintf(e.stdout, "ok: %d sites\n", len(p.Sites))
			return nil
		},
	}
}
