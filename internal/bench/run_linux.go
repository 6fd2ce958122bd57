package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"lanlink/internal/lab"
	"lanlink/internal/wanem"
)

// Options shape a bench run.
type Options struct {
	// Planes to measure (AllPlanes when empty). PlaneRaw is always added:
	// added RTT and the raw-link target are relative to it.
	Planes []string
	// Scenarios to measure (DefaultScenarios when empty).
	Scenarios []Scenario
	// Rounds per plane and scenario; planes are interleaved within a
	// round, so a burst of load from elsewhere hits all of them.
	Rounds int
	// Duration of each iperf3 test, after Omit seconds of warm-up that
	// iperf3 leaves out of its result.
	Duration, Omit time.Duration
	// LanlinkBin is the lanlink binary; WGGoBin the upstream wireguard-go
	// program; DebianWGGo Debian's. Empty: built (the first two) or
	// /usr/bin/wireguard-go.
	LanlinkBin, WGGoBin, DebianWGGo string
	// ProfileDir, when set, makes the lanlink agents of the first
	// scenario's first round write CPU profiles there
	// (lanlink-o1.pprof, lanlink-o2.pprof).
	ProfileDir string
	// LanlinkEnv is extra environment for the lanlink agents ("GOGC=400"),
	// for experiments with runtime settings.
	LanlinkEnv []string
	// WorkDir holds keys, configs and logs; a temporary directory when "".
	WorkDir string
	// Progress receives one line per measurement; nil discards.
	Progress io.Writer
	// Logger receives lab and emulator events; nil discards.
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if len(o.Planes) == 0 {
		o.Planes = slices.Clone(AllPlanes)
	}
	for _, p := range o.Planes {
		if !slices.Contains(AllPlanes, p) {
			return o, fmt.Errorf("unknown data plane %q: want one of %s", p, strings.Join(AllPlanes, ", "))
		}
	}
	if !slices.Contains(o.Planes, PlaneRaw) {
		o.Planes = append([]string{PlaneRaw}, o.Planes...)
	}
	// Display order, whatever order they were given in.
	slices.SortStableFunc(o.Planes, func(a, b string) int {
		return slices.Index(AllPlanes, a) - slices.Index(AllPlanes, b)
	})
	o.Planes = slices.Compact(o.Planes)
	if len(o.Scenarios) == 0 {
		o.Scenarios = DefaultScenarios
	}
	if o.Rounds <= 0 {
		o.Rounds = 3
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Omit < 0 {
		o.Omit = 0
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// env is one bench run's lab and the paths every plane needs.
type env struct {
	opts  Options
	dir   string
	lab   *lab.Lab
	offs  [2]*lab.Office
	gws   [2]*lab.Node
	hosts [2]*lab.Node
}

// Run builds a two-office lab, measures every plane in every scenario and
// returns the report. A plane that fails in a round is recorded with its
// error and the run goes on.
func Run(ctx context.Context, opts Options) (*Report, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("the bench builds network namespaces and TUN devices: run it as root")
	}
	rep := &Report{
		Date:      time.Now().UTC(),
		Host:      hostInfo(),
		Scenarios: opts.Scenarios,
		Options:   ReportOptions{Duration: opts.Duration, Omit: opts.Omit, Rounds: opts.Rounds, Planes: opts.Planes},
		Versions:  map[string]string{},
	}
	dir := opts.WorkDir
	if dir == "" {
		dir, err = os.MkdirTemp("", "lanlink-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
	}
	if err := prepareBinaries(ctx, &opts, dir, rep.Versions); err != nil {
		return nil, err
	}

	l, err := lab.New(ctx, nil, lab.Config{Offices: 2, Logger: opts.Logger})
	if err != nil {
		return nil, fmt.Errorf("build lab: %w", err)
	}
	defer l.Close()
	rep.LabID = l.ID
	e := &env{opts: opts, dir: dir, lab: l}
	for i := range 2 {
		e.offs[i] = l.Offices[i]
		e.gws[i] = l.Offices[i].Gateway
		e.hosts[i] = l.Offices[i].Hosts[0]
	}
	if err := e.prepareLab(ctx); err != nil {
		return nil, err
	}
	planes := map[string]plane{}
	for _, name := range opts.Planes {
		p := newPlane(name)
		if err := p.prepare(ctx, e); err != nil {
			return nil, fmt.Errorf("prepare %s: %w", name, err)
		}
		planes[name] = p
	}

	for _, sc := range opts.Scenarios {
		undo, err := e.emulate(ctx, sc)
		if err != nil {
			return nil, fmt.Errorf("WAN emulation %s: %w", sc.Label(), err)
		}
		rows := map[string]*Row{}
		for _, name := range opts.Planes {
			rows[name] = &Row{Scenario: sc.Name, Plane: name}
		}
		for round := 1; round <= opts.Rounds; round++ {
			for _, name := range rotate(opts.Planes, round-1) {
				if ctx.Err() != nil {
					undo()
					return nil, ctx.Err()
				}
				profile := ""
				if opts.ProfileDir != "" && round == 1 && sc.Name == opts.Scenarios[0].Name && name == PlaneLanlink {
					profile = opts.ProfileDir
				}
				s := e.measure(ctx, planes[name], round, profile)
				rows[name].Samples = append(rows[name].Samples, s)
				if s.Err != "" {
					fmt.Fprintf(opts.Progress, "%-12s round %d %-20s FAILED: %s\n", sc.Name, round, name, s.Err)
				} else {
					fmt.Fprintf(opts.Progress, "%-12s round %d %-20s tcp1 %7.0f  tcp4 %7.0f Mbit/s  rtt %8.3f ms  cpu %6.2f s/GB  retr %d\n",
						sc.Name, round, name, float64(s.TCP1Mbps), float64(s.TCP4Mbps), float64(s.RTTms), float64(s.CPUPerGB), s.Retrans1)
				}
			}
		}
		if err := undo(); err != nil {
			return nil, fmt.Errorf("remove WAN emulation %s: %w", sc.Label(), err)
		}
		for _, name := range opts.Planes {
			rep.Rows = append(rep.Rows, *rows[name])
		}
	}
	Summarize(rep.Rows)
	rep.Host.LoadAfter = loadavg()
	rep.Emulator = "raw rows of emulated scenarios are the emulator's own ceiling (wanem delay line in the internet namespace + tbf on its office-facing ports)"
	return rep, nil
}

// rotate starts the round's order at a different plane each round, so no
// plane always runs first (right after the lab settles) or last.
func rotate(planes []string, k int) []string {
	if len(planes) == 0 {
		return nil
	}
	k %= len(planes)
	return append(slices.Clone(planes[k:]), planes[:k]...)
}

func hostInfo() HostInfo {
	h := HostInfo{CPUs: runtime.NumCPU(), LoadBefore: loadavg()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				h.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return h
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// prepareBinaries builds lanlink and the upstream wireguard-go program
// when not given, and records versions.
func prepareBinaries(ctx context.Context, o *Options, dir string, versions map[string]string) error {
	root, err := moduleRoot(ctx)
	needBuild := (o.LanlinkBin == "" && slices.Contains(o.Planes, PlaneLanlink)) || (o.WGGoBin == "" && slices.Contains(o.Planes, PlaneWGGoUp))
	if needBuild && err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		return err
	}
	build := func(out, pkg string) error {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %w: %s", pkg, err, b)
		}
		return nil
	}
	if o.LanlinkBin == "" && slices.Contains(o.Planes, PlaneLanlink) {
		o.LanlinkBin = filepath.Join(dir, "bin", "lanlink")
		if err := build(o.LanlinkBin, "lanlink/cmd/lanlink"); err != nil {
			return err
		}
	}
	if o.WGGoBin == "" && slices.Contains(o.Planes, PlaneWGGoUp) {
		// Built inside lanlink's module, so it is exactly the
		// golang.zx2c4.com/wireguard version (and x/sys, x/crypto
		// versions) that lanlink embeds.
		o.WGGoBin = filepath.Join(dir, "bin", "wireguard-go")
		if err := build(o.WGGoBin, "golang.zx2c4.com/wireguard"); err != nil {
			return err
		}
	}
	if o.DebianWGGo == "" {
		o.DebianWGGo = "/usr/bin/wireguard-go"
	}
	if root != "" {
		cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Version}}", "golang.zx2c4.com/wireguard")
		cmd.Dir = root
		if b, err := cmd.Output(); err == nil {
			versions["golang.zx2c4.com/wireguard"] = strings.TrimSpace(string(b))
		}
		cmd = exec.CommandContext(ctx, "git", "describe", "--always", "--dirty")
		cmd.Dir = root
		if b, err := cmd.Output(); err == nil {
			versions["lanlink"] = strings.TrimSpace(string(b))
		}
	}
	versions["go"] = runtime.Version()
	for _, pkg := range []string{"wireguard-go", "openvpn", "openssh-server", "nebula", "iperf3"} {
		if b, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Version}", pkg).Output(); err == nil && len(b) > 0 {
			versions["debian:"+pkg] = string(b)
		}
	}
	return nil
}

func moduleRoot(ctx context.Context) (string, error) {
	b, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find lanlink's module (go env GOMOD): %w", err)
	}
	mod := strings.TrimSpace(string(b))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run the bench from lanlink's source tree (go env GOMOD is empty)")
	}
	return filepath.Dir(mod), nil
}

// sh runs a shell script in node n, bounded by 30 s.
func sh(ctx context.Context, n *lab.Node, script string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := n.Exec(ctx, "sh", "-ec", script)
	return string(out), err
}

func addrN(p netip.Prefix, n int) netip.Addr {
	a := p.Addr().As4()
	a[3] += byte(n)
	return netip.AddrFrom4(a)
}

// internetCore is the internet namespace's address on the WAN range.
var internetCore = netip.MustParseAddr("198.51.100.1")

// TCP buffer limits for the LAN hosts and gateways: a 1 Gbit/s × 80 ms
// path needs 10 MB in flight, the default tcp_wmem maximum is 4 MB. These
// sysctls are per network namespace (verified on this kernel: writing one
// in a namespace leaves the root namespace's value alone).
const (
	tcpRmem = "4096 131072 67108864"
	tcpWmem = "4096 16384 67108864"
)

// benchSSHPort is forwarded by each office router to its gateway, for the
// `ssh -w` plane (the lab forwards only the WireGuard UDP port).
const benchSSHPort = 2222

// prepareLab teaches the internet namespace the office LANs (for the raw
// plane, whose routers then route LAN to LAN through it), sets the TCP
// buffer limits, forwarding on the gateways, and the SSH port forward.
func (e *env) prepareLab(ctx context.Context) error {
	inet := e.lab.Internet
	var script strings.Builder
	for _, o := range e.offs {
		fmt.Fprintf(&script, "ip route replace %s via %s\n", o.LAN, o.WAN)
	}
	if _, err := sh(ctx, inet, script.String()); err != nil {
		return err
	}
	for i, o := range e.offs {
		s := fmt.Sprintf("nft add rule ip lanlink_lab prerouting iifname %q tcp dport %d dnat to %s\n", o.WANIface, benchSSHPort, o.GatewayLAN)
		if _, err := sh(ctx, o.Router, s); err != nil {
			return err
		}
		bufs := fmt.Sprintf("echo %q > /proc/sys/net/ipv4/tcp_rmem\necho %q > /proc/sys/net/ipv4/tcp_wmem\n", tcpRmem, tcpWmem)
		if _, err := sh(ctx, e.hosts[i], bufs); err != nil {
			return err
		}
		if _, err := sh(ctx, e.gws[i], bufs+"echo 1 > /proc/sys/net/ipv4/ip_forward\n"); err != nil {
			return err
		}
	}
	// Prove the internet is routed as intended before measuring anything.
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := e.offs[0].Router.Ping(pctx, e.offs[1].WAN, 3); err != nil {
		return fmt.Errorf("router to router across the internet namespace: %w", err)
	}
	return nil
}

// emulate applies a scenario's WAN conditions in the internet namespace: a
// wanem delay line (RTT/2 each way: a packet between offices enters the
// internet once, on its sender's office link, and is routed through the
// line once) and a tbf rate limit on each office link. It returns the
// undo.
func (e *env) emulate(ctx context.Context, sc Scenario) (func() error, error) {
	if sc.RTT == 0 && sc.Rate == "" {
		return func() error { return nil }, nil
	}
	inet := e.lab.Internet
	var undos []func() error
	undo := func() error {
		var errs []error
		for i := len(undos) - 1; i >= 0; i-- {
			errs = append(errs, undos[i]())
		}
		undos = nil
		return errors.Join(errs...)
	}
	if sc.RTT > 0 {
		tun := "bwan0"
		line, err := wanem.Start(context.WithoutCancel(ctx), inet.Name, wanem.Config{TUN: tun, Delay: sc.RTT / 2, Logger: e.opts.Logger})
		if err != nil {
			return nil, err
		}
		undos = append(undos, line.Close)
		var links []string
		for _, o := range e.offs {
			links = append(links, o.InternetIface)
		}
		u, err := wanem.Install(ctx, inet.Name, links, tun, 100)
		if err != nil {
			return nil, errors.Join(err, undo())
		}
		undos = append(undos, u)
	}
	if sc.Rate != "" {
		for _, o := range e.offs {
			u, err := wanem.SetRate(ctx, inet.Name, o.InternetIface, sc.Rate, sc.RTT)
			if err != nil {
				return nil, errors.Join(err, undo())
			}
			undos = append(undos, u)
		}
	}
	return undo, nil
}
