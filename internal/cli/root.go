package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"lanlink/internal/keys"
	"lanlink/internal/plan"
)

// Exit codes of Run.
const (
	ExitOK      = 0 // done
	ExitFailure = 1 // the command failed, or check found problems
	ExitUsage   = 2 // the command line itself is wrong
)

// commands are the top-level commands. A new command is one file with a
// constructor and one line here.
var commands = []func(*env) *cobra.Command{
	newInitCmd,
	newKeygenCmd,
	newPubkeyCmd,
	newSiteCmd,
	newCheckCmd,
	newRenderCmd,
	newServiceCmd,
	newUpCmd,
	newDownCmd,
	newReloadCmd,
	newStatusCmd,
	newLabCmd,
	newDoctorCmd,
	newRoutesCmd,
}

// env is what a command may use of the outside world; tests fill it in.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
	getenv func(string) string

	planPath string // -f/--plan, after defaults
	verbose  bool
}

// Run runs the lanlink command line args (without the program name) and
// returns the process exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return run(ctx, &env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv}, args)
}

func run(ctx context.Context, e *env, args []string) int {
	root := newRoot(e)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ps plan.Problems
	var ue usageError
	switch {
	case errors.As(err, &silentError{}):
	case errors.As(err, &ps):
		fmt.Fprintln(e.stderr, ps.Error())
	case errors.As(err, &ue) || isCobraUsage(err):
		fmt.Fprintf(e.stderr, "lanlink: %v\nRun 'lanlink help' or add --help to a command for usage.\n", err)
		return ExitUsage
	default:
		fmt.Fprintf(e.stderr, "lanlink: %v\n", err)
	}
	return ExitFailure
}

func newRoot(e *env) *cobra.Command {
	defaultPlan := plan.DefaultPath
	if p := e.getenv("LANLINK_PLAN"); p != "" {
		defaultPlan = p
	}
	root := &cobra.Command{
		Use:   "lanlink",
		Short: "Join office LANs into one network over WireGuard",
		Long: `lanlink joins office LANs into one network over WireGuard.

One plan file describes the whole network and is copied to every gateway;
private keys are created on their gateway and never leave it.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		// Commands log through e.log; set it up once flags are parsed.
		PersistentPreRun: func(cmd *cobra.Command, args []string) {
			level := slog.LevelWarn
			if e.verbose {
				level = slog.LevelDebug
			}
			e.log = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
		},
	}
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.PersistentFlags().StringVarP(&e.planPath, "plan", "f", defaultPlan,
		"the network plan file (default from $LANLINK_PLAN when set)")
	root.PersistentFlags().BoolVarP(&e.verbose, "verbose", "v", false, "log debug details to stderr")
	root.CompletionOptions.DisableDefaultCmd = true
	for _, c := range commands {
		root.AddCommand(c(e))
	}
	e.log = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return root
}

// defaultKey is the private key file commands use without --key:
// $LANLINK_KEY when set (the lab sets it on its gateways), else the
// standard path.
func (e *env) defaultKey() string {
	if k := e.getenv("LANLINK_KEY"); k != "" {
		return k
	}
	return keys.DefaultPath
}

// usageError marks a wrong command line (exit code 2).
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// silentError is a failure the command has already reported.
type silentError struct{}

func (silentError) Error() string { return "failed" }

// isCobraUsage recognises the errors cobra makes itself for a wrong
// command line, which carry no type to test.
func isCobraUsage(err error) bool {
	s := err.Error()
	return strings.HasPrefix(s, "unknown command") ||
		strings.HasPrefix(s, "required flag") ||
		strings.HasPrefix(s, "invalid argument") ||
		strings.HasPrefix(s, "unknown flag") ||
		strings.HasPrefix(s, "unknown shorthand flag")
}

// args returns a cobra.PositionalArgs that wants exactly the named
// arguments, so a mistake gets a usage error naming what is missing.
func args(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		path := strings.TrimPrefix(cmd.CommandPath(), "lanlink ")
		switch {
		case len(a) < len(names):
			return usagef("%s: missing %s", path, strings.Join(names[len(a):], " "))
		case len(a) > len(names):
			return usagef("%s: unexpected argument %q", path, a[len(names)])
		}
		return nil
	}
}
