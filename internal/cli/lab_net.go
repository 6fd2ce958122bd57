package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"lanlink/internal/agent"
	"lanlink/internal/lab"
	"lanlink/internal/wanem"
)

// labNet is lanlink running on a lab: one plan with every office as a
// site, a key on every gateway, an agent per gateway. `lab up` and
// `lab demo` share it.
type labNet struct {
	e        *env
	l        *lab.Lab
	bin      string // the lanlink binary the agents run
	plan     string
	logs     string
	detached bool // agents outlive this process (lab up)
	ipv6     bool // dual stack: IPv6 LANs and tunnel prefix too
	sites    []*labSite
	wan      *labWANRun
	// onProc is called after every process start, so lab up can record
	// PIDs before anything else can fail.
	onProc func(role string, p *lab.Proc) error
}

type labSite struct {
	name    string
	office  *lab.Office
	pub     string
	tunnels []string // its tunnel address in each tunnel prefix
	agent   *lab.Proc
}

// labWANRun is the running WAN emulation.
type labWANRun struct {
	rtt  time.Duration
	rate string
	loss float64
	proc *lab.Proc
}

func newLabNet(e *env, l *lab.Lab, bin string, detached bool) (*labNet, error) {
	n := &labNet{e: e, l: l, bin: bin, detached: detached,
		plan: filepath.Join(l.Dir(), "network.toml"), logs: filepath.Join(l.Dir(), "logs")}
	if err := os.MkdirAll(n.logs, 0o755); err != nil {
		return nil, fmt.Errorf("lab log directory: %w", err)
	}
	return n, nil
}

// subRun is run, set in init: a direct reference would make the commands
// table refer to itself through lab up.
var subRun func(ctx context.Context, e *env, args []string) int

func init() { subRun = run }

// lanlink runs a lanlink command in this process (plan edits need no
// namespace) and returns its stdout.
func (n *labNet) lanlink(ctx context.Context, args ...string) (string, error) {
	var out, errb bytes.Buffer
	sub := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	if code := subRun(ctx, sub, args); code != ExitOK {
		return out.String(), fmt.Errorf("lanlink %s: %s", strings.Join(args, " "), strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// The lab's tunnel prefixes: private, and used by no lab LAN.
const (
	labTunnel  = "10.255.0.0/24"
	labTunnel6 = "fd4c:6cff::/64"
)

func (n *labNet) initPlan(ctx context.Context) error {
	args := []string{"init", "-f", n.plan, "--tunnel", labTunnel, "--name", "lab"}
	if n.ipv6 {
		args = append(args, "--tunnel", labTunnel6)
	}
	_, err := n.lanlink(ctx, args...)
	return err
}

// addSite creates the office's key on its gateway (with the same binary,
// inside the gateway, so the private key is written into the gateway's own
// /run and never handled here) and adds the office to the plan.
func (n *labNet) addSite(ctx context.Context, o *lab.Office) (*labSite, error) {
	s := &labSite{name: fmt.Sprintf("office%d", o.Index), office: o}
	out, err := o.Gateway.Exec(ctx, n.bin, "keygen", "--key", labKeyPath)
	if err != nil {
		return nil, fmt.Errorf("keygen on %s's gateway: %w", s.name, err)
	}
	s.pub = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	args := []string{"site", "add", s.name, "-f", n.plan, "--public-key", s.pub, "--lan", o.LAN.String()}
	if o.LAN6.IsValid() {
		args = append(args, "--lan", o.LAN6.String())
	}
	out2, err := n.lanlink(ctx, append(args, "--endpoint", o.Endpoint().String())...)
	if err != nil {
		return nil, err
	}
	s.tunnels = strings.Fields(out2) // one per tunnel prefix
	n.sites = append(n.sites, s)
	return s, nil
}

// tunnel is the site's first (IPv4) tunnel address.
func (s *labSite) tunnel() string {
	if len(s.tunnels) == 0 {
		return ""
	}
	return s.tunnels[0]
}

// joinValid lists the valid prefixes, space-separated.
func joinValid(ps ...netip.Prefix) string {
	var out []string
	for _, p := range ps {
		if p.IsValid() {
			out = append(out, p.String())
		}
	}
	return strings.Join(out, " ")
}

// startAgent runs `lanlink up` on the site's gateway.
func (n *labNet) startAgent(ctx context.Context, s *labSite) error {
	argv := []string{n.bin, "up", "-f", n.plan, "--key", labKeyPath, "--interface", labIface}
	log := filepath.Join(n.logs, s.name+"-agent.log")
	var p *lab.Proc
	var err error
	if n.detached {
		p, err = s.office.Gateway.StartDetached(argv, log)
	} else {
		p, err = s.office.Gateway.Start(ctx, argv, log)
	}
	if err != nil {
		return fmt.Errorf("start lanlink up on %s's gateway: %w", s.name, err)
	}
	s.agent = p
	if n.onProc != nil {
		return n.onProc("agent "+s.name, p)
	}
	return nil
}

// waitAgents waits until every agent answers on its control socket.
func (n *labNet) waitAgents(ctx context.Context, sites []*labSite, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for _, s := range sites {
		for {
			if _, err := n.status(ctx, s); err == nil {
				break
			}
			select {
			case <-s.agent.Done():
				return fmt.Errorf("lanlink up on %s's gateway exited:\n%s", s.name, tail(s.agent.Output(), 20))
			case <-ctx.Done():
				return fmt.Errorf("lanlink up on %s's gateway did not answer within %v; its log:\n%s", s.name, within, tail(s.agent.Output(), 20))
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

func (n *labNet) status(ctx context.Context, s *labSite) (*agent.Status, error) {
	return labClient(s.office.Gateway.RunDir).Status(ctx)
}

// labClient talks to the agent of a gateway whose /run is runDir.
func labClient(runDir string) *agent.Client {
	return &agent.Client{StateDir: filepath.Join(runDir, "lanlink"), Interface: labIface, Timeout: 5 * time.Second}
}

func tail(b []byte, lines int) string {
	s := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(s) > lines {
		s = s[len(s)-lines:]
	}
	return "  " + strings.Join(s, "\n  ")
}

// startWAN starts the delay line in the internet namespace (a child
// process of the same binary: `lanlink lab wanem`) and routes every
// office link through it, and rate-limits each office link.
//
// Every packet between two offices enters the internet namespace once, on
// the sender's office link, and the policy rule for that link sends it
// through the line once; so each direction gets Delay = rtt/2 and Loss,
// and a round trip gets rtt.
func (n *labNet) startWAN(ctx context.Context, rtt time.Duration, rate string, loss float64) error {
	w := &labWANRun{rtt: rtt, rate: rate, loss: loss}
	n.wan = w
	if rtt > 0 || loss > 0 {
		cfg := wanem.Config{TUN: labWANTUN, Delay: rtt / 2, Loss: loss}
		argv := append([]string{n.bin, "lab", "wanem"}, wanem.Args("", cfg)...)
		log := filepath.Join(n.logs, "wanem.log")
		var p *lab.Proc
		var err error
		if n.detached {
			p, err = n.l.Internet.StartDetached(argv, log)
		} else {
			p, err = n.l.Internet.Start(ctx, argv, log)
		}
		if err != nil {
			return fmt.Errorf("start WAN delay line: %w", err)
		}
		w.proc = p
		if n.onProc != nil {
			if err := n.onProc("wanem", p); err != nil {
				return err
			}
		}
	}
	for _, o := range n.l.Offices {
		if err := n.wanOffice(ctx, o); err != nil {
			return err
		}
	}
	return nil
}

// wanOffice puts one office link behind the WAN emulation (also for an
// office added later).
func (n *labNet) wanOffice(ctx context.Context, o *lab.Office) error {
	w := n.wan
	if w == nil {
		return nil
	}
	inet := n.l.Internet.Name
	if w.proc != nil {
		if _, err := wanem.Install(ctx, inet, []string{o.InternetIface}, labWANTUN, labWANRule); err != nil {
			return fmt.Errorf("route office %d's link through the delay line: %w; delay line log:\n%s", o.Index, err, tail(w.proc.Output(), 10))
		}
	}
	if w.rate != "" {
		if _, err := wanem.SetRate(ctx, inet, o.InternetIface, w.rate, w.rtt+time.Millisecond); err != nil {
			return fmt.Errorf("rate limit office %d's link: %w", o.Index, err)
		}
	}
	return nil
}

// reach is the result of one LAN host reaching another.
type reach struct {
	from, to *labSite
	dst      netip.Addr    // to's first host: its IPv4, or (dual stack) its IPv6 address
	first    time.Duration // to the first reply
	rtt      time.Duration // median of a few echoes after that
	err      error
}

// reachAll pings, in parallel, from the first host of every `from` site to
// the first host of every `to` site (skipping a site to itself), over IPv4
// and, on a dual-stack lab, over IPv6 too, until each answers or within
// runs out, then measures a few echoes.
func (n *labNet) reachAll(ctx context.Context, from, to []*labSite, within time.Duration) []reach {
	var pairs []reach
	for _, a := range from {
		for _, b := range to {
			if a == b {
				continue
			}
			h := b.office.Hosts[0]
			pairs = append(pairs, reach{from: a, to: b, dst: h.Addr})
			if n.ipv6 && h.Addr6.IsValid() {
				pairs = append(pairs, reach{from: a, to: b, dst: h.Addr6})
			}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var wg sync.WaitGroup
	for i := range pairs {
		wg.Go(func() {
			p := &pairs[i]
			src := p.from.office.Hosts[0]
			p.first, p.err = src.PingUntil(ctx, p.dst, 20*time.Millisecond)
			if p.err != nil {
				return
			}
			res, err := src.PingStats(ctx, p.dst, 3, 20*time.Millisecond)
			if err != nil {
				p.err = err
				return
			}
			p.rtt = res.Median()
		})
	}
	wg.Wait()
	return pairs
}

func reachErr(pairs []reach) error {
	var errs []error
	for _, p := range pairs {
		if p.err != nil {
			errs = append(errs, fmt.Errorf("%s → %s (%s): %w", p.from.name, p.to.name, p.dst, p.err))
		}
	}
	return errors.Join(errs...)
}

// writeMatrix prints who reaches whom, with RTTs.
func writeMatrix(w io.Writer, sites []*labSite, pairs []reach) {
	res := map[[2]*labSite][]reach{}
	for _, p := range pairs {
		k := [2]*labSite{p.from, p.to}
		res[k] = append(res[k], p)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprint(tw, "  from \\ to")
	for _, b := range sites {
		fmt.Fprintf(tw, "\t%s %s", b.name, b.office.Hosts[0].Addr)
	}
	fmt.Fprintln(tw)
	for _, a := range sites {
		fmt.Fprintf(tw, "  %s %s", a.name, a.office.Hosts[0].Addr)
		for _, b := range sites {
			var cells []string
			for _, p := range res[[2]*labSite{a, b}] {
				cell := "✓ " + fmtMs(p.rtt)
				if p.err != nil {
					cell = "✗ unreachable"
				}
				if p.dst.Is6() {
					cell = "v6 " + cell
				}
				cells = append(cells, cell)
			}
			if len(cells) == 0 {
				cells = []string{"—"}
			}
			fmt.Fprintf(tw, "\t%s", strings.Join(cells, ", "))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

func fmtMs(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

func fmtSec(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// labBinary is the binary that runs the agents: this one.
func labBinary() (string, error) {
	bin, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find the lanlink binary to run on the gateways: %w", err)
	}
	return bin, nil
}

// selfCmd is how to call this binary in hints: `go run` binaries vanish.
func selfCmd(bin string) string {
	if strings.Contains(bin, "go-build") {
		return "go run ./cmd/lanlink"
	}
	return bin
}

func requireRoot(what string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("lab %s needs root: it creates network namespaces, interfaces and processes in them "+
			"(nothing outside them changes); run it with sudo, e.g. `sudo go run ./cmd/lanlink lab %s`", what, what)
	}
	return nil
}

func addrList(nodes []*lab.Node) string {
	var s []string
	for _, nd := range nodes {
		s = append(s, nd.Addr.String())
	}
	return strings.Join(s, ", ")
}
