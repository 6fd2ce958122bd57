package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"lanlink/internal/device"
	"lanlink/internal/firewall"
	"lanlink/internal/hostnet"
	"lanlink/internal/keys"
	"lanlink/internal/plan"
)

// Options configure an agent. Zero values get the documented defaults.
type Options struct {
	PlanPath  string // default plan.DefaultPath
	KeyPath   string // default keys.DefaultPath
	Site      string // "" = find the site by the local public key
	Interface string // default "lanlink0"
	Backend   string // "auto" (default), "kernel" or "userspace"
	StateDir  string // default DefaultStateDir
	Logger    *slog.Logger

	// Reload delivers external reload requests (SIGHUP).
	Reload <-chan struct{}
	// Notify receives service-manager state changes ("READY=1",
	// "RELOADING=1", "STOPPING=1", "STATUS=…"); nil ignores them.
	Notify func(state string)
	// WatchEvery is how often the plan and key files are checked for
	// changes besides the kernel's file events, which apply a change
	// within 0.1 s (default 1 s; negative disables watching). See
	// watch.go.
	WatchEvery time.Duration
	// ResolveEvery is how often DNS endpoints are re-resolved
	// (default 5 min). Peers whose handshake is older than the rekey
	// window are re-resolved on the next health tick regardless.
	ResolveEvery time.Duration
	// RepairEvery is how often the host network and firewall state is
	// checked against what was applied, and what someone removed is put
	// back (default 10 s; kernel events about the interface trigger a
	// check in between; negative disables repairing). See repair.go.
	RepairEvery time.Duration
	// noFileEvents leaves the plan and key files to the periodic check
	// (tests of that check).
	noFileEvents bool

	// System is the OS boundary; nil means the real one.
	System System
}

// System is everything the agent needs from the operating system. The real
// one is in system_linux.go; tests inject fakes.
type System interface {
	// CleanLeftovers undoes what a crashed agent on iface left behind.
	CleanLeftovers(stateDir, iface string, backend string) error
	// InterfaceExists reports whether a network interface by that name
	// exists, and its kind ("wireguard", "tun", "dummy", …).
	InterfaceExists(name string) (bool, string, error)
	OpenDevice(ctx context.Context, o device.OpenOptions) (device.Device, error)
	NewHost(o hostnet.Options) (hostnet.Host, error)
	// NewFirewall manages the site's masquerade and MSS clamping rules.
	NewFirewall(o firewall.Options) (firewall.Firewall, error)
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// UnknownKeyError is returned when the local key's site is not in the plan.
type UnknownKeyError struct {
	PlanPath  string
	PublicKey wgtypes.Key
}

func (e *UnknownKeyError) Error() string {
	return fmt.Sprintf("this gateway's public key %s is not in the plan %s; add this office with:\n  lanlink site add NAME --public-key %s --lan CIDR [--endpoint HOST:PORT]\nthen copy the plan here (or start with --site NAME)", e.PublicKey, e.PlanPath, e.PublicKey)
}

// AlreadyRunningError is returned by Run when an agent already runs on the interface.
type AlreadyRunningError struct{ Interface string }

func (e *AlreadyRunningError) Error() string {
	return fmt.Sprintf("lanlink is already running on %s; see `lanlink status --interface %s`, stop it with `lanlink down --interface %s`", e.Interface, e.Interface, e.Interface)
}

// Agent is one running site.
type Agent struct {
	o   Options
	log *slog.Logger
	sys System

	lock    *os.File
	dev     device.Device
	host    hostnet.Host
	fw      firewall.Firewall
	ln      net.Listener
	started time.Time

	// Owned by the loop goroutine.
	key        wgtypes.Key
	cfg        *plan.SiteConfig
	devCfg     device.Config
	resolved   map[wgtypes.Key]netip.AddrPort // endpoint last given to the device, per peer
	generation int
	reloadErrs int
	planErr    string
	planStamp  fileStamp
	keyStamp   fileStamp
	health     map[wgtypes.Key]*peerHealth
	files      <-chan struct{} // plan or key directory changed (nil: no events)
	stopFiles  context.CancelFunc
	later      map[wgtypes.Key]time.Time // deferred announces, since when
	laterTimer *time.Timer               // fires announceDue
	drift      driftState

	reqs chan ctlRequest
	wg   sync.WaitGroup
}

type ctlRequest struct {
	op    string
	reply chan response
}

func (o *Options) setDefaults() {
	if o.PlanPath == "" {
		o.PlanPath = plan.DefaultPath
	}
	if o.KeyPath == "" {
		o.KeyPath = keys.DefaultPath
	}
	if o.Interface == "" {
		o.Interface = "lanlink0"
	}
	if o.Backend == "" {
		o.Backend = "auto"
	}
	if o.StateDir == "" {
		o.StateDir = DefaultStateDir
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Notify == nil {
		o.Notify = func(string) {}
	}
	if o.WatchEvery == 0 {
		o.WatchEvery = time.Second
	}
	if o.ResolveEvery == 0 {
		o.ResolveEvery = 5 * time.Minute
	}
	if o.RepairEvery == 0 {
		o.RepairEvery = defaultRepairEvery
	}
	if o.System == nil {
		o.System = realSystem{}
	}
}

// Run brings the site up, keeps it in line with the plan until ctx is
// cancelled or `lanlink down` is received, and then undoes everything. If
// bringing up fails, nothing of it is left behind.
func Run(ctx context.Context, o Options) error {
	a, err := Start(ctx, o)
	if err != nil {
		return err
	}
	return a.Wait(ctx)
}

// Start brings the site up and returns once it is serving. Wait keeps it
// running.
func Start(ctx context.Context, o Options) (*Agent, error) {
	o.setDefaults()
	a := &Agent{o: o, log: o.Logger.With("interface", o.Interface), sys: o.System, reqs: make(chan ctlRequest), resolved: map[wgtypes.Key]netip.AddrPort{}, later: map[wgtypes.Key]time.Time{}}
	var err error
	if a.lock, err = acquireLock(lockPath(o.StateDir, o.Interface)); err != nil {
		if errors.Is(err, errLocked) {
			return nil, &AlreadyRunningError{Interface: o.Interface}
		}
		return nil, err
	}
	up := false
	defer func() {
		if !up {
			a.teardown()
		}
	}()

	// Everything that can be checked without touching the host is
	// checked first, so a bad plan or key changes nothing.
	key, cfg, err := a.load()
	if err != nil {
		return nil, err
	}
	if err := a.sys.CleanLeftovers(o.StateDir, o.Interface, readAgentState(o.StateDir, o.Interface).Backend); err != nil {
		return nil, fmt.Errorf("clean up after a previous agent on %s: %w", o.Interface, err)
	}
	if ok, kind, err := a.sys.InterfaceExists(o.Interface); err != nil {
		return nil, err
	} else if ok {
		return nil, fmt.Errorf("interface %s already exists (%s) and is not lanlink's; choose another name with --interface, or remove it if it is unused", o.Interface, kind)
	}

	a.dev, err = a.sys.OpenDevice(ctx, device.OpenOptions{Name: o.Interface, MTU: cfg.MTU, Backend: o.Backend, Logger: a.log})
	if err != nil {
		return nil, fmt.Errorf("create interface %s: %w", o.Interface, err)
	}
	writeAgentState(o.StateDir, o.Interface, agentState{PID: os.Getpid(), Backend: a.dev.Backend()})
	a.log.Info("interface created", "backend", a.dev.Backend(), "site", cfg.Site)

	if a.host, err = a.sys.NewHost(hostnet.Options{Logger: a.log, StateDir: o.StateDir}); err != nil {
		return nil, err
	}
	if a.fw, err = a.sys.NewFirewall(firewall.Options{Logger: a.log}); err != nil {
		return nil, err
	}
	if err := a.apply(ctx, key, cfg); err != nil {
		return nil, err
	}
	a.generation = 1
	a.laterTimer = time.NewTimer(time.Hour)
	a.laterTimer.Stop()
	a.announce(nil)

	if err := a.listen(); err != nil {
		return nil, err
	}
	a.started = time.Now()
	if o.WatchEvery >= 0 && !o.noFileEvents {
		// Subscribed before Start returns, so that no change made after
		// it is missed.
		var watchCtx context.Context
		watchCtx, a.stopFiles = context.WithCancel(context.Background())
		a.files = a.watchFiles(watchCtx)
	}
	a.log.Info("site up", "site", cfg.Site, "network", cfg.Network, "peers", len(cfg.Peers), "routes", len(cfg.Routes))
	o.Notify("READY=1")
	o.Notify("STATUS=" + a.summary())
	up = true
	return a, nil
}

// load reads the key and the plan and derives this site's desired state.
func (a *Agent) load() (wgtypes.Key, *plan.SiteConfig, error) {
	key, err := keys.Load(a.o.KeyPath)
	if err != nil {
		return wgtypes.Key{}, nil, err
	}
	p, err := plan.Load(a.o.PlanPath)
	if err != nil {
		return wgtypes.Key{}, nil, err
	}
	pub := key.PublicKey()
	name := a.o.Site
	if name == "" {
		s, ok := p.SiteByKey(pub)
		if !ok {
			return wgtypes.Key{}, nil, &UnknownKeyError{PlanPath: a.o.PlanPath, PublicKey: pub}
		}
		name = s.Name
	} else if s, ok := p.Site(name); !ok {
		return wgtypes.Key{}, nil, fmt.Errorf("%s: no site named %q in the plan; `lanlink site list` shows the sites", a.o.PlanPath, name)
	} else if s.PublicKey != pub {
		return wgtypes.Key{}, nil, fmt.Errorf("%s: site %q: public_key is %s but the key in %s has public key %s; fix it with `lanlink site set %s --public-key %s`", a.o.PlanPath, name, s.PublicKey, a.o.KeyPath, pub, name, pub)
	}
	cfg, err := p.SiteConfig(name)
	if err != nil {
		return wgtypes.Key{}, nil, err
	}
	a.planStamp = stamp(a.o.PlanPath)
	a.keyStamp = stamp(a.o.KeyPath)
	return key, cfg, nil
}

// apply makes the device and the host match cfg, changing only the
// difference from what is applied now. If any part fails, the previous
// state is restored.
func (a *Agent) apply(ctx context.Context, key wgtypes.Key, cfg *plan.SiteConfig) error {
	want := a.deviceConfig(ctx, key, cfg)
	prev, prevCfg := a.devCfg, a.cfg
	if err := a.dev.Configure(want); err != nil {
		if prevCfg != nil {
			a.restoreDevice(prev)
		}
		return fmt.Errorf("configure WireGuard on %s: %w", a.o.Interface, err)
	}
	if err := a.host.Set(hostConfig(a.o.Interface, cfg)); err != nil {
		if prevCfg != nil {
			a.restoreDevice(prev)
		}
		return err
	}
	if err := a.fw.Set(firewallConfig(a.o.Interface, cfg)); err != nil {
		if prevCfg != nil {
			if err := a.host.Set(hostConfig(a.o.Interface, prevCfg)); err != nil {
				a.log.Error("restore previous host network configuration", "err", err)
			}
			a.restoreDevice(prev)
		}
		return err
	}
	a.key, a.cfg, a.devCfg = key, cfg, want
	for _, p := range want.Peers {
		if p.Endpoint.IsValid() {
			a.resolved[p.PublicKey] = p.Endpoint
		}
	}
	return nil
}

func (a *Agent) restoreDevice(prev device.Config) {
	if err := a.dev.Configure(prev); err != nil {
		a.log.Error("restore previous WireGuard configuration", "err", err)
	}
}

// hostConfig is the host-network part of a site's desired state.
func hostConfig(iface string, cfg *plan.SiteConfig) hostnet.Config {
	hc := hostnet.Config{Interface: iface, Addresses: cfg.Addresses, MTU: cfg.MTU, Routes: cfg.Routes}
	owners := map[netip.Prefix]string{}
	for _, p := range cfg.Peers {
		for _, l := range p.LANs {
			owners[l] = p.Site
		}
	}
	hc.RouteOwners = owners
	// Forwarding is what makes a gateway a gateway: LAN traffic enters on
	// one interface and leaves through the tunnel.
	for _, pfx := range append(append([]netip.Prefix{}, cfg.Addresses...), cfg.Routes...) {
		if pfx.Addr().Is4() {
			hc.Forward4 = true
		} else {
			hc.Forward6 = true
		}
	}
	return hc
}

// firewallConfig is the nftables part of a site's desired state.
func firewallConfig(iface string, cfg *plan.SiteConfig) firewall.Config {
	return firewall.Config{Interface: iface, Masquerade: cfg.Masquerade, MSSClamp: cfg.MSSClamp}
}

// Wait runs the agent until ctx is done or `down` is received, then undoes
// everything.
func (a *Agent) Wait(ctx context.Context) error {
	defer a.teardown()
	watch := time.NewTicker(max(a.o.WatchEvery, time.Millisecond))
	if a.o.WatchEvery < 0 {
		watch.Stop()
	}
	defer watch.Stop()
	resolve := time.NewTicker(a.o.ResolveEvery)
	defer resolve.Stop()
	health := time.NewTicker(healthEvery)
	defer health.Stop()
	repairs, stopRepair := a.startRepair(ctx)
	defer stopRepair()
	var settle <-chan time.Time // pending check after file events
	for {
		select {
		case <-ctx.Done():
			a.log.Info("stopping", "reason", context.Cause(ctx))
			a.o.Notify("STOPPING=1")
			return nil
		case <-a.o.Reload:
			a.reload(ctx, "signal")
		case <-a.files:
			if settle == nil {
				settle = time.After(fileSettle)
			}
		case <-settle:
			settle = nil
			a.reloadIfChanged(ctx)
		case <-watch.C:
			a.reloadIfChanged(ctx)
		case <-resolve.C:
			a.reresolve(ctx, nil)
		case <-health.C:
			a.checkHealth(ctx, time.Now())
		case <-a.laterTimer.C:
			a.announceDue()
		case why := <-repairs:
			a.repair(why)
		case r := <-a.reqs:
			switch r.op {
			case OpStatus:
				st := a.status()
				r.reply <- response{OK: true, Status: &st}
			case OpReload:
				err := a.reload(ctx, "lanlink reload")
				st := a.status()
				if err != nil {
					r.reply <- response{Error: "plan rejected: " + err.Error(), Status: &st}
				} else {
					r.reply <- response{OK: true, Status: &st}
				}
			case OpDown:
				r.reply <- response{OK: true}
				a.log.Info("stopping", "reason", "lanlink down")
				a.o.Notify("STOPPING=1")
				return nil
			default:
				r.reply <- response{Error: fmt.Sprintf("unknown operation %q", r.op)}
			}
		}
	}
}

// reloadIfChanged reloads when the plan or key file is not the one last
// applied (or rejected).
func (a *Agent) reloadIfChanged(ctx context.Context) {
	if stamp(a.o.PlanPath) != a.planStamp || stamp(a.o.KeyPath) != a.keyStamp {
		a.reload(ctx, "file changed")
	}
}

// reload re-reads plan and key and applies the difference. A plan that does
// not load or apply is rejected: the running configuration stays as it was.
func (a *Agent) reload(ctx context.Context, why string) error {
	a.o.Notify("RELOADING=1")
	defer a.o.Notify("READY=1")
	key, cfg, err := a.load()
	if err == nil {
		if key == a.key && cfg.Equal(a.cfg) {
			a.planErr = ""
			return nil
		}
		oldKey, known := a.key, map[wgtypes.Key]bool{}
		for _, p := range a.cfg.Peers {
			known[p.PublicKey] = true
		}
		if err = a.apply(ctx, key, cfg); err == nil {
			// New peers, and all of them after a key change, get a
			// handshake now rather than on the first packet.
			fresh := map[wgtypes.Key]bool{}
			for _, p := range cfg.Peers {
				fresh[p.PublicKey] = key != oldKey || !known[p.PublicKey]
			}
			a.announce(fresh)
		}
	}
	if err != nil {
		// Remember the stamps of the rejected files so that the watcher
		// does not retry the same bad plan every second.
		a.planStamp, a.keyStamp = stamp(a.o.PlanPath), stamp(a.o.KeyPath)
		a.planErr = err.Error()
		a.reloadErrs++
		a.log.Error("plan rejected; keeping the running configuration", "why", why, "err", err)
		a.o.Notify("STATUS=plan rejected: " + err.Error())
		return err
	}
	a.planErr = ""
	a.generation++
	a.log.Info("plan applied", "why", why, "generation", a.generation, "peers", len(cfg.Peers), "routes", len(cfg.Routes))
	a.o.Notify("STATUS=" + a.summary())
	return nil
}

func (a *Agent) summary() string {
	return fmt.Sprintf("site %s: %d peers, %d routes, plan generation %d", a.cfg.Site, len(a.cfg.Peers), len(a.cfg.Routes), a.generation)
}

func (a *Agent) status() Status {
	st := Status{
		Network: a.cfg.Network, Site: a.cfg.Site, PublicKey: a.cfg.PublicKey.String(),
		Backend: a.dev.Backend(), Interface: a.o.Interface, Addresses: a.cfg.Addresses,
		ListenPort: a.cfg.ListenPort, PID: os.Getpid(), Started: a.started, Plan: a.o.PlanPath,
		Generation: a.generation, PlanError: a.planErr, ReloadErrors: a.reloadErrs,
	}
	stats, err := a.dev.Stats()
	if err != nil {
		a.log.Error("read WireGuard statistics", "err", err)
	}
	st.Peers = peerStatuses(a.cfg, stats, time.Now())
	st.Problems, st.Repairs = a.drift.problems, a.drift.repairs
	return st
}

// Status returns the agent's current status. It is safe to call from any
// goroutine while Wait runs (metrics, watchdog); it is answered by the loop.
func (a *Agent) Status(ctx context.Context) (Status, error) {
	r := ctlRequest{op: OpStatus, reply: make(chan response, 1)}
	select {
	case a.reqs <- r:
	case <-ctx.Done():
		return Status{}, ctx.Err()
	}
	select {
	case resp := <-r.reply:
		return *resp.Status, nil
	case <-ctx.Done():
		return Status{}, ctx.Err()
	}
}

// teardown undoes everything Start did, in reverse. It is safe on a
// partially started agent.
func (a *Agent) teardown() {
	if a.stopFiles != nil {
		a.stopFiles()
	}
	if a.ln != nil {
		a.ln.Close()
		a.wg.Wait()
	}
	if a.fw != nil {
		if err := a.fw.Close(); err != nil {
			a.log.Error("remove firewall rules", "err", err)
		}
	}
	if a.host != nil {
		if err := a.host.Close(); err != nil {
			a.log.Error("restore host network", "err", err)
		}
	}
	if a.dev != nil {
		if err := a.dev.Close(); err != nil {
			a.log.Error("remove interface", "err", err)
		}
	}
	removeAgentState(a.o.StateDir, a.o.Interface)
	if a.lock != nil {
		a.lock.Close() // releases the flock
	}
}

// agentState records what the running agent created, so that the next
// `up` after a crash knows what to remove (a kernel interface outlives its
// agent; a userspace one does not).
type agentState struct {
	PID     int    `json:"pid"`
	Backend string `json:"backend"`
}

func agentStatePath(dir, iface string) string { return fmt.Sprintf("%s/%s.agent.json", dir, iface) }

func readAgentState(dir, iface string) agentState {
	var s agentState
	if b, err := os.ReadFile(agentStatePath(dir, iface)); err == nil {
		_ = json.Unmarshal(b, &s)
	}
	return s
}

func writeAgentState(dir, iface string, s agentState) {
	b, _ := json.Marshal(s)
	_ = os.WriteFile(agentStatePath(dir, iface), b, 0o600)
}

func removeAgentState(dir, iface string) { _ = os.Remove(agentStatePath(dir, iface)) }

// fileStamp identifies a version of a file cheaply. Editors often replace
// files by rename, so the inode is part of it.
type fileStamp struct {
	ino   uint64
	size  int64
	mtime time.Time
	err   bool
}
