package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"lanlink/internal/lab"
	"lanlink/internal/wanem"
)

func newLabCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Virtual offices on this machine, with lanlink on every gateway",
		Long: `Build the seed's setup on this machine in network namespaces: offices with an
internet router (NAT, one forwarded UDP port), a gateway server running
"lanlink up", and LAN hosts, joined by an "internet" that can emulate a long,
lossy, rate-limited WAN. Nothing outside the lab's namespaces changes; WAN
addresses come from the documentation ranges. Needs root.

Start with "lanlink lab demo".`,
		Args: args(),
	}
	cmd.AddCommand(newLabUpCmd(e), newLabDownCmd(e), newLabStatusCmd(e), newLabExecCmd(e), newLabDemoCmd(e), newLabWANEmCmd(e))
	return cmd
}

// labFailAfter is a test hook: `lab up` fails right after the named step
// (keys, agents, wan, reach). Set with the hidden --fail-after flag.
type labUpOpts struct {
	name      string
	offices   int
	hosts     int
	ipv6      bool
	rtt       time.Duration
	rate      string
	loss      string
	keep      bool
	failAfter string
	within    time.Duration
}

func newLabUpCmd(e *env) *cobra.Command {
	var o labUpOpts
	cmd := &cobra.Command{
		Use:   "up [--offices N] [--hosts N] [--rtt 80ms] [--rate 1gbit] [--loss 0.1%] [--name NAME]",
		Short: "Build a lab that keeps running, with lanlink on every gateway",
		Long: `Build a lab of --offices offices (2…8) and leave it running: a key on every
gateway, a plan with every office as a site (endpoint: the office's WAN
address, port 51820), "lanlink up" on every gateway. Returns once every LAN
host reaches every other. Then use "lanlink lab status", "lanlink lab exec"
and "lanlink lab down".

WAN emulation between the offices: --rtt is the round trip added (half in
each direction), --loss the packet loss in each direction, --rate the
bandwidth of each office's internet link (tc tbf on the internet side of
the link, so it shapes what the office receives).

One lab per --name (default "default"); its record is under /run/lanlink-lab.
If anything fails, everything built so far is removed (unless
--keep-on-failure; then "lanlink lab down" removes it).`,
		Args: args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireRoot("up"); err != nil {
				return err
			}
			return labUp(cmd.Context(), e, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.name, "name", "default", "the lab's name, to run several")
	f.IntVar(&o.offices, "offices", 3, "number of offices, 2…8")
	f.IntVar(&o.hosts, "hosts", 1, "LAN hosts per office besides the gateway, 1…16")
	f.BoolVar(&o.ipv6, "ipv6", false, "dual stack: every office also gets an IPv6 LAN, and the plan an IPv6 tunnel prefix (the WAN stays IPv4)")
	f.DurationVar(&o.rtt, "rtt", 0, "round-trip time the WAN adds between offices, e.g. 80ms")
	f.StringVar(&o.rate, "rate", "", "bandwidth of each office's internet link, e.g. 500mbit or 1gbit")
	f.StringVar(&o.loss, "loss", "", "packet loss in each direction, e.g. 0.1%")
	f.BoolVar(&o.keep, "keep-on-failure", false, "leave a failed lab in place for inspection")
	f.DurationVar(&o.within, "timeout", 60*time.Second, "how long to wait for every LAN host to reach every other")
	f.StringVar(&o.failAfter, "fail-after", "", "test hook: fail after this step")
	f.MarkHidden("fail-after")
	return cmd
}

// parseLoss takes "0.1%" or "0.001".
func parseLoss(s string) (float64, error) {
	if s == "" {
		return 0, nil
	}
	t, pct := strings.CutSuffix(strings.TrimSpace(s), "%")
	v, err := strconv.ParseFloat(t, 64)
	if pct {
		v /= 100
	}
	if err != nil || !(v >= 0 && v <= 1) {
		return 0, usagef("lab: --loss %q: want a percentage like 0.1%% or a probability like 0.001", s)
	}
	return v, nil
}

func labUp(ctx context.Context, e *env, o labUpOpts) (err error) {
	if err := checkLabName(o.name); err != nil {
		return err
	}
	if o.offices < lab.MinOffices || o.offices > lab.MaxOffices {
		return usagef("lab up: --offices %d: want %d…%d", o.offices, lab.MinOffices, lab.MaxOffices)
	}
	if o.hosts < 1 || o.hosts > lab.MaxHostsPerOffice {
		return usagef("lab up: --hosts %d: want 1…%d", o.hosts, lab.MaxHostsPerOffice)
	}
	if o.rtt < 0 || o.rtt > 10*time.Second {
		return usagef("lab up: --rtt %v: want 0…10s", o.rtt)
	}
	if o.rate != "" {
		if _, err := wanem.ParseRate(o.rate); err != nil {
			return usagef("lab up: --rate: %v", err)
		}
	}
	loss, err := parseLoss(o.loss)
	if err != nil {
		return err
	}
	if st, err := loadLabState(o.name); err == nil {
		return fmt.Errorf("lab %q is already up (id %s, created %s): use it, or remove it with `lanlink lab down --name %s`, or pick another --name",
			o.name, st.ID, st.Created.Format(time.RFC3339), o.name)
	}
	bin, err := labBinary()
	if err != nil {
		return err
	}
	start := time.Now()
	st := &labState{Name: o.name, ID: labID(o.name), Binary: bin, Created: start}
	if o.rtt > 0 || o.rate != "" || loss > 0 {
		st.WAN = &labWAN{Rate: o.rate, Loss: loss}
		if o.rtt > 0 {
			st.WAN.RTT = o.rtt.String()
		}
	}
	// The record exists before the first namespace, so whatever happens
	// next, `lab down` finds what to remove.
	if err := st.save(); err != nil {
		return err
	}
	var l *lab.Lab
	defer func() {
		if err == nil {
			return
		}
		if o.keep {
			if l != nil {
				l.Detach()
			}
			err = fmt.Errorf("%w\nthe failed lab is left in place: inspect it with `lanlink lab status --name %s`, remove it with `lanlink lab down --name %s`", err, o.name, o.name)
			return
		}
		var errs []error
		if l != nil {
			errs = append(errs, l.Close())
		}
		errs = append(errs, os.RemoveAll(labStateDir(o.name)))
		if cerr := errors.Join(errs...); cerr != nil {
			err = fmt.Errorf("%w\nremoving the half-built lab also failed: %v; run `lanlink lab down --name %s`", err, cerr, o.name)
		}
	}()
	step := func(name string) error {
		if err := st.save(); err != nil {
			return err
		}
		if o.failAfter == name {
			return fmt.Errorf("lab up: injected failure after step %q", name)
		}
		return ctx.Err()
	}

	fmt.Fprintf(e.stdout, "building lab %q (id %s): %d offices, %d host(s) each…\n", o.name, st.ID, o.offices, o.hosts)
	l, err = lab.New(ctx, nil, lab.Config{Offices: o.offices, HostsPerOffice: o.hosts, ID: st.ID, IPv6: o.ipv6})
	if err != nil {
		if strings.Contains(err.Error(), "in use") {
			err = fmt.Errorf("%w\nleftovers of an earlier lab %q? remove them with `lanlink lab down --name %s`", err, o.name, o.name)
		}
		return err
	}
	st.Dir = l.Dir()
	st.Internet = &labNode{Namespace: l.Internet.Name, Addr: l.Internet.Addr.String(), RunDir: l.Internet.RunDir}
	n, err := newLabNet(e, l, bin, true)
	if err != nil {
		return err
	}
	n.ipv6 = o.ipv6
	st.Plan = n.plan
	n.onProc = func(role string, p *lab.Proc) error {
		st.Procs = append(st.Procs, procRecord(role, p))
		return st.save()
	}
	if err := step("lab"); err != nil {
		return err
	}
	if err := n.initPlan(ctx); err != nil {
		return err
	}
	for _, off := range l.Offices {
		s, err := n.addSite(ctx, off)
		if err != nil {
			return err
		}
		st.Offices = append(st.Offices, officeRecord(off, s.name, s.tunnels))
	}
	if err := step("keys"); err != nil {
		return err
	}
	if st.WAN != nil {
		if err := n.startWAN(ctx, o.rtt, o.rate, loss); err != nil {
			return err
		}
		if err := step("wan"); err != nil {
			return err
		}
	}
	agentsAt := time.Now()
	for _, s := range n.sites {
		if err := n.startAgent(ctx, s); err != nil {
			return err
		}
	}
	if err := step("agents"); err != nil {
		return err
	}
	if err := n.waitAgents(ctx, n.sites, 20*time.Second); err != nil {
		return err
	}
	pairs := n.reachAll(ctx, n.sites, n.sites, o.within)
	if err := reachErr(pairs); err != nil {
		return fmt.Errorf("LAN hosts do not all reach each other within %v: %w", o.within, err)
	}
	allAt := time.Since(agentsAt)
	st.Complete = true
	if err := step("reach"); err != nil {
		return err
	}
	l.Detach()

	var b bytes.Buffer
	fmt.Fprintf(&b, "\nlab %q (id %s) is up: %d offices, lanlink on every gateway (built in %s; every LAN host reached every other %s after the agents started)\n\n",
		o.name, st.ID, o.offices, fmtSec(time.Since(start)), fmtSec(allAt))
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  OFFICE\tLAN\tWAN (endpoint)\tGATEWAY\tHOSTS\tTUNNEL")
	for _, s := range n.sites {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", s.name, joinValid(s.office.LAN, s.office.LAN6), s.office.Endpoint(), s.office.GatewayLAN, addrList(s.office.Hosts), strings.Join(s.tunnels, " "))
	}
	tw.Flush()
	if st.WAN != nil {
		fmt.Fprintf(&b, "\n  WAN: %s\n", wanSummary(st.WAN))
	}
	fmt.Fprintf(&b, "\n")
	writeMatrix(&b, n.sites, pairs)
	self := selfCmd(bin)
	nm := ""
	if o.name != "default" {
		nm = " --name " + o.name
	}
	fmt.Fprintf(&b, "\nnext:\n  sudo %s lab exec%s office1 -- ping -c 3 %s\n", self, nm, l.Offices[1].Hosts[0].Addr)
	if a6 := l.Offices[1].Hosts[0].Addr6; a6.IsValid() {
		fmt.Fprintf(&b, "  sudo %s lab exec%s office1 -- ping -c 3 %s\n", self, nm, a6)
	}
	fmt.Fprintf(&b, "  sudo %s lab exec%s office2/gw -- ip route\n  sudo %s lab status%s\n  sudo %s lab down%s\n",
		self, nm, self, nm, self, nm)
	_, err = e.stdout.Write(b.Bytes())
	return err
}

func wanSummary(w *labWAN) string {
	var parts []string
	if w.RTT != "" {
		parts = append(parts, w.RTT+" RTT added (half each way)")
	}
	if w.Loss > 0 {
		parts = append(parts, fmt.Sprintf("%g%% loss each way", w.Loss*100))
	}
	if w.Rate != "" {
		parts = append(parts, w.Rate+" per office link")
	}
	return strings.Join(parts, ", ")
}

func newLabDownCmd(e *env) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "down [--name NAME]",
		Short: "Stop every process of the lab and remove all of it",
		Long: `Stop every process the lab started (SIGTERM, then SIGKILL), delete all of
the lab's network namespaces and remove its files. Works on a lab whose
"lab up" failed half-way or whose record is lost (the namespaces carry the
lab's ID), and does nothing when there is nothing to remove.`,
		Args: args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkLabName(name); err != nil {
				return err
			}
			if err := requireRoot("down"); err != nil {
				return err
			}
			return labDown(cmd.Context(), e, name)
		},
	}
	cmd.Flags().StringVar(&name, "name", "default", "the lab's name")
	return cmd
}

func labDown(ctx context.Context, e *env, name string) error {
	id := labID(name)
	st, err := loadLabState(name)
	switch {
	case err == nil:
		id = st.ID
	case errors.Is(err, errNoLab):
		st = nil
	default:
		fmt.Fprintf(e.stderr, "lanlink: %v; removing lab %s by its namespaces\n", err, id)
		st = nil
	}
	var errs []error
	stopped := 0
	if st != nil {
		for _, p := range st.Procs {
			if lab.PIDAlive(p.PID, p.StartTime) {
				stopped++
			}
			if err := lab.StopPID(p.PID, p.StartTime, lab.StopGrace); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", p.Role, err))
			}
		}
	}
	// Whatever else still runs in the lab's namespaces (a record lost, a
	// shell from lab exec) was started for the lab and goes with it.
	pids, err := lab.ProcessesIn(id)
	if err != nil {
		errs = append(errs, err)
	}
	for _, pid := range pids {
		stopped++
		if err := lab.StopPID(pid, 0, lab.StopGrace); err != nil {
			errs = append(errs, err)
		}
	}
	removed, err := lab.CleanupLeftovers(ctx, id)
	if err != nil {
		errs = append(errs, err)
	}
	if st != nil && st.Dir != "" {
		if err := os.RemoveAll(st.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		if err := os.RemoveAll(labStateDir(name)); err != nil {
			errs = append(errs, err)
		}
		_ = os.Remove(labStateRoot) // only when no other lab is left
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lab %q (id %s) not fully removed: %w", name, id, err)
	}
	if st == nil && len(removed) == 0 && stopped == 0 {
		fmt.Fprintf(e.stdout, "no lab %q: nothing to remove\n", name)
		return nil
	}
	fmt.Fprintf(e.stdout, "lab %q (id %s) removed: %d process(es) stopped, %d namespace(s) deleted\n", name, id, stopped, len(removed))
	return nil
}

func newLabStatusCmd(e *env) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "status [--name NAME]",
		Short: "Show the lab's offices, processes and every gateway's lanlink status",
		Args:  args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkLabName(name); err != nil {
				return err
			}
			st, err := loadLabState(name)
			if err != nil {
				return err
			}
			return labStatus(cmd.Context(), e, st)
		},
	}
	cmd.Flags().StringVar(&name, "name", "default", "the lab's name")
	return cmd
}

func labStatus(ctx context.Context, e *env, st *labState) error {
	w := e.stdout
	state := "up"
	if !st.Complete {
		state = "INCOMPLETE (lab up failed or is still running; `lanlink lab down` removes it)"
	}
	fmt.Fprintf(w, "lab %q (id %s), created %s: %s\n", st.Name, st.ID, st.Created.Format(time.RFC3339), state)
	if st.WAN != nil {
		fmt.Fprintf(w, "  WAN: %s\n", wanSummary(st.WAN))
	}
	fmt.Fprintf(w, "  plan %s\n\n", st.Plan)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  OFFICE\tLAN\tWAN\tROUTER\tGATEWAY\tHOSTS")
	for _, o := range st.Offices {
		var hosts []string
		for _, h := range o.Hosts {
			hosts = append(hosts, h.Namespace+" "+h.Addr)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", o.Site, strings.TrimSpace(o.LAN+" "+o.LAN6), o.WAN, o.Router.Namespace, o.Gateway.Namespace+" "+o.Gateway.Addr, strings.Join(hosts, ", "))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  PROCESS\tNAMESPACE\tPID\tSTATE\tLOG")
	dead := 0
	for _, p := range st.Procs {
		s := "running"
		if !lab.PIDAlive(p.PID, p.StartTime) {
			s, dead = "DEAD", dead+1
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\t%s\n", p.Role, p.Namespace, p.PID, s, p.Log)
	}
	tw.Flush()
	for _, o := range st.Offices {
		fmt.Fprintf(w, "\n== %s gateway (%s): lanlink status\n", o.Site, o.Gateway.Namespace)
		as, err := labClient(o.Gateway.RunDir).Status(ctx)
		if err != nil {
			fmt.Fprintf(w, "  not answering: %v\n", err)
			dead++
			continue
		}
		var b bytes.Buffer
		writeStatus(&b, as, time.Now())
		for _, line := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
			fmt.Fprintln(w, "  "+line)
		}
	}
	if dead > 0 {
		return fmt.Errorf("lab %q: %d process(es) dead or not answering", st.Name, dead)
	}
	return nil
}

func newLabExecCmd(e *env) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "exec OFFICE[/host|/hostN|/gw|/router] -- CMD [ARG...]",
		Short: "Run a command on one of the lab's machines",
		Long: `Run CMD in one machine of the lab: its network namespace, with its own /run
(so "lanlink status" on a gateway talks to that gateway's agent). OFFICE is
office1, o1 or 1; the default machine is the office's first LAN host;
"internet" is the namespace between the offices. stdin, stdout and stderr
are the command's, and so is the exit code.`,
		Example: "  sudo lanlink lab exec office1 -- ping -c 3 192.168.20.10\n" +
			"  sudo lanlink lab exec o2/gw -- lanlink status\n" +
			"  sudo lanlink lab exec 1/host -- ip -o addr",
		Args: func(cmd *cobra.Command, a []string) error {
			if len(a) < 2 || cmd.ArgsLenAtDash() != 1 {
				return usagef("lab exec: want OFFICE[/host|/gw|/router] -- CMD [ARG...]")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := checkLabName(name); err != nil {
				return err
			}
			if err := requireRoot("exec"); err != nil {
				return err
			}
			st, err := loadLabState(name)
			if err != nil {
				return err
			}
			nd, _, err := st.node(a[0])
			if err != nil {
				return err
			}
			return labExec(e, nd.node().Command(a[1:]...), labEnv(st))
		},
	}
	cmd.Flags().StringVar(&name, "name", "default", "the lab's name")
	return cmd
}

// labExec runs argv with the user's terminal. Run as the lanlink process
// itself (stdio are the process's own), it replaces this process, so exit
// code and signals are the command's without any forwarding; called
// in-process with other writers, it runs a child and fails on a non-zero
// exit.
func labExec(e *env, argv, environ []string) error {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return fmt.Errorf("lab exec: %w", err)
	}
	if e.stdin == os.Stdin && e.stdout == os.Stdout && e.stderr == os.Stderr {
		return fmt.Errorf("lab exec: %w", syscall.Exec(path, argv, environ))
	}
	c := exec.Command(path, argv[1:]...)
	c.Env = environ
	c.Stdin, c.Stdout, c.Stderr = e.stdin, e.stdout, e.stderr
	if err := c.Run(); err != nil {
		return fmt.Errorf("lab exec: %w", err)
	}
	return nil
}

// labEnv is the environment of a command run by lab exec: the lab's lanlink
// binary first on PATH, and the lab's plan and the gateway's key as the
// defaults, so that `lanlink status`, `check` or `doctor` work there as on
// a real gateway, without flags.
func labEnv(st *labState) []string {
	env := os.Environ()
	path := filepath.Dir(st.Binary)
	for i, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			path += ":" + strings.TrimPrefix(kv, "PATH=")
			env = append(env[:i:i], env[i+1:]...)
			break
		}
	}
	return append(env, "PATH="+path, "LANLINK_PLAN="+st.Plan, "LANLINK_KEY="+labKeyPath)
}

// newLabWANEmCmd is the delay line's process (`lanlink lab wanem`), which
// lab up starts in the internet namespace.
func newLabWANEmCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:                "wanem --tun NAME [--delay D] [--loss P]",
		Short:              "Run the WAN delay line (started by lab up)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, a []string) error {
			if code := wanem.Main(a); code != 0 {
				return silentError{}
			}
			return nil
		},
	}
}
