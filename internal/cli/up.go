package cli

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"lanlink/internal/agent"
	"lanlink/internal/metrics"
	"lanlink/internal/sdnotify"
)

// agentFlags are the flags shared by the commands that run or talk to an
// agent.
type agentFlags struct {
	iface    string
	stateDir string
}

func (f *agentFlags) register(cmd *cobra.Command, e *env) {
	cmd.Flags().StringVar(&f.iface, "interface", "lanlink0", "the tunnel interface")
	def := agent.DefaultStateDir
	if d := e.getenv("LANLINK_STATE_DIR"); d != "" {
		def = d
	}
	cmd.Flags().StringVar(&f.stateDir, "state-dir", def, "where agents keep control sockets, locks and journals ($LANLINK_STATE_DIR)")
	cmd.Flags().MarkHidden("state-dir")
}

func (f *agentFlags) client() *agent.Client {
	return &agent.Client{StateDir: f.stateDir, Interface: f.iface}
}

func newUpCmd(e *env) *cobra.Command {
	var (
		af          agentFlags
		keyFile     string
		site        string
		backend     string
		metricsAddr string
		cpuprof     string
		repairEvery time.Duration
	)
	cmd := &cobra.Command{
		Use:   "up [--key FILE] [--site NAME] [--interface NAME] [--backend auto|kernel|userspace] [--metrics ADDR]",
		Short: "Run this gateway's site agent in the foreground",
		Long: `Bring this gateway's site up and keep it running: find the site in the plan
by the public key of the local private key (or --site), create the WireGuard
interface (kernel WireGuard when the kernel has it, embedded userspace
WireGuard otherwise), set its address, peers and routes to every remote LAN,
and turn on forwarding. Applying is all-or-nothing.

The agent reloads the plan when the file changes, on SIGHUP and on
"lanlink reload". SIGINT, SIGTERM or "lanlink down" stop it and leave the
host as it was before.

--metrics 127.0.0.1:9587 serves Prometheus metrics at /metrics on that
address (off by default): per peer handshake time and age, bytes received
and sent and up/down, the plan generation and rejected reloads.`,
		Args: args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch backend {
			case "auto", "kernel", "userspace":
			default:
				return usagef("up: --backend must be auto, kernel or userspace, not %q", backend)
			}
			if cpuprof != "" {
				stop, err := startCPUProfile(cpuprof)
				if err != nil {
					return err
				}
				defer stop()
			}
			ctx := cmd.Context()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			reload := make(chan struct{}, 1)
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			go func() {
				for {
					select {
					case <-ctx.Done():
						return
					case <-hup:
						select {
						case reload <- struct{}{}:
						default:
						}
					}
				}
			}()
			log := e.agentLogger()
			// The metrics address is taken before the site comes up, so
			// a busy port fails `up` without touching the host.
			var running atomic.Pointer[agent.Agent]
			if metricsAddr != "" {
				ms, err := metrics.Start(metricsAddr, func(ctx context.Context) (agent.Status, error) {
					if a := running.Load(); a != nil {
						return a.Status(ctx)
					}
					return agent.Status{}, errors.New("the site is still coming up")
				}, log)
				if err != nil {
					return err
				}
				defer ms.Close()
			}
			a, err := agent.Start(ctx, agent.Options{
				PlanPath:    e.planPath,
				KeyPath:     keyFile,
				Site:        site,
				Interface:   af.iface,
				Backend:     backend,
				StateDir:    af.stateDir,
				Logger:      log,
				Reload:      reload,
				RepairEvery: repairEvery,
				Notify: func(state string) {
					if err := sdnotify.Notify(state); err != nil {
						log.Warn("notify service manager", "err", err)
					}
				},
			})
			if err != nil {
				return err
			}
			running.Store(a)
			if interval, ok := sdnotify.WatchdogInterval(); ok {
				// The watchdog is fed only while the agent's loop answers
				// its own control socket, so a wedged agent is restarted.
				c := af.client()
				c.Timeout = interval / 4
				go sdnotify.Watchdog(ctx, interval, func() bool {
					_, err := c.Status(ctx)
					return err == nil
				})
			}
			return a.Wait(ctx)
		},
	}
	af.register(cmd, e)
	cmd.Flags().StringVar(&keyFile, "key", e.defaultKey(), "this gateway's private key")
	cmd.Flags().StringVar(&site, "site", "", "this gateway's site (default: found by the key's public key)")
	cmd.Flags().StringVar(&backend, "backend", "auto", "WireGuard backend: auto, kernel or userspace")
	cmd.Flags().StringVar(&cpuprof, "cpuprofile", e.getenv("LANLINK_CPUPROFILE"), "write a CPU profile of the agent to this file until it stops ($LANLINK_CPUPROFILE)")
	cmd.Flags().MarkHidden("cpuprofile")
	cmd.Flags().DurationVar(&repairEvery, "repair-every", 0, "how often to re-check the host network for drift besides kernel events (default 10s; negative: never repair, e.g. to watch what something else changes)")
	cmd.Flags().MarkHidden("repair-every")
	cmd.Flags().StringVar(&metricsAddr, "metrics", "", "serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9587 (off by default)")
	return cmd
}

// agentLogger logs at Info: an agent's log is its record of what it changed
// on the host.
func (e *env) agentLogger() *slog.Logger {
	level := slog.LevelInfo
	if e.verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
}
