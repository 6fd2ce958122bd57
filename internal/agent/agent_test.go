package agent

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"lanlink/internal/device"
	"lanlink/internal/device/devicetest"
	"lanlink/internal/firewall"
	"lanlink/internal/firewall/firewalltest"
	"lanlink/internal/hostnet"
	"lanlink/internal/hostnet/hostnettest"
	"lanlink/internal/keys"
	"lanlink/internal/plan"
)

// fakeSystem hands out fakes and records what the agent asked of the OS.
type fakeSystem struct {
	mu      sync.Mutex
	dev     *devicetest.Fake
	host    *hostnettest.Fake
	fw      *firewalltest.Fake
	opened  int
	exists  map[string]string
	names   map[string][]netip.Addr
	cleaned []string
	openErr error
}

func newFakeSystem() *fakeSystem {
	return &fakeSystem{host: &hostnettest.Fake{}, fw: &firewalltest.Fake{}, exists: map[string]string{}, names: map[string][]netip.Addr{}}
}

func (s *fakeSystem) CleanLeftovers(stateDir, iface, backend string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleaned = append(s.cleaned, iface+":"+backend)
	return nil
}

func (s *fakeSystem) InterfaceExists(name string) (bool, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kind, ok := s.exists[name]
	return ok, kind, nil
}

func (s *fakeSystem) OpenDevice(_ context.Context, o device.OpenOptions) (device.Device, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.openErr != nil {
		return nil, s.openErr
	}
	s.opened++
	s.dev = devicetest.New(o.Name)
	return s.dev, nil
}

func (s *fakeSystem) NewHost(hostnet.Options) (hostnet.Host, error) { return s.host, nil }

func (s *fakeSystem) NewFirewall(firewall.Options) (firewall.Firewall, error) { return s.fw, nil }

func (s *fakeSystem) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.names[host]; ok {
		return a, nil
	}
	return nil, errors.New("no such host")
}

func (s *fakeSystem) setName(host string, addrs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.names[host] = nil
	for _, a := range addrs {
		s.names[host] = append(s.names[host], netip.MustParseAddr(a))
	}
}

// testNet is a plan with sites alpha (local), beta and gamma on disk.
type testNet struct {
	dir, planPath, keyPath string
	pubs                   map[string]wgtypes.Key
}

func newTestNet(t *testing.T, sites ...plan.SiteSpec) *testNet {
	t.Helper()
	dir := t.TempDir()
	n := &testNet{dir: dir, planPath: filepath.Join(dir, "network.toml"), keyPath: filepath.Join(dir, "keys", "private.key"), pubs: map[string]wgtypes.Key{}}
	pub, err := keys.Generate(n.keyPath, false)
	if err != nil {
		t.Fatal(err)
	}
	data, err := plan.New("test", []netip.Prefix{netip.MustParsePrefix("10.255.0.0/24")}, 51820)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range sites {
		if i == 0 {
			s.PublicKey = pub.String()
		} else if s.PublicKey == "" {
			k, _ := wgtypes.GeneratePrivateKey()
			s.PublicKey = k.PublicKey().String()
		}
		n.pubs[s.Name], _ = wgtypes.ParseKey(s.PublicKey)
		if data, _, err = plan.AddSite(n.planPath, data, s); err != nil {
			t.Fatal(err)
		}
	}
	n.write(t, data)
	return n
}

func (n *testNet) write(t *testing.T, data []byte) {
	t.Helper()
	tmp := n.planPath + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, n.planPath); err != nil {
		t.Fatal(err)
	}
}

func (n *testNet) edit(t *testing.T, f func(data []byte) ([]byte, error)) {
	t.Helper()
	data, err := os.ReadFile(n.planPath)
	if err != nil {
		t.Fatal(err)
	}
	out, err := f(data)
	if err != nil {
		t.Fatal(err)
	}
	n.write(t, out)
}

var threeSites = []plan.SiteSpec{
	{Name: "alpha", LANs: []string{"192.168.10.0/24"}, Endpoint: "192.0.2.1:51820"},
	{Name: "beta", LANs: []string{"192.168.20.0/24"}, Endpoint: "beta.example.test:51820"},
	{Name: "gamma", LANs: []string{"192.168.30.0/24"}},
}

func startAgent(t *testing.T, n *testNet, sys *fakeSystem, mod ...func(*Options)) (*Agent, *Client) {
	t.Helper()
	o := Options{PlanPath: n.planPath, KeyPath: n.keyPath, Interface: "lltest0", StateDir: filepath.Join(n.dir, "run"), WatchEvery: -1, System: sys}
	for _, m := range mod {
		m(&o)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := Start(ctx, o)
	if err != nil {
		cancel()
		t.Fatalf("Start: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Wait(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("agent did not stop within 10 s")
		}
	})
	return a, &Client{StateDir: o.StateDir, Interface: o.Interface, Timeout: 10 * time.Second}
}

func TestStartAppliesTheSitesDesiredState(t *testing.T) {
	n := newTestNet(t, threeSites...)
	sys := newFakeSystem()
	sys.setName("beta.example.test", "2001:db8::2", "198.51.100.20")
	_, c := startAgent(t, n, sys)

	cfgs := sys.dev.Configs()
	if len(cfgs) == 0 {
		t.Fatal("device was never configured")
	}
	// The first configuration is the site's; the ones after it only ask
	// for handshakes (see TestStartAnnouncesToPeersWithEndpoints).
	cur := cfgs[0]
	var got []string
	for _, p := range cur.Peers {
		got = append(got, p.PublicKey.String()+" "+p.Endpoint.String()+" "+strings.Trim(strings.Join(strings.Fields(strings.Trim(strings.ReplaceAll(prefixList(p.AllowedIPs), ",", " "), "[]")), ","), " "))
	}
	want := []string{
		n.pubs["beta"].String() + " 198.51.100.20:51820 10.255.0.2/32,192.168.20.0/24",
		n.pubs["gamma"].String() + " invalid AddrPort 10.255.0.3/32,192.168.30.0/24",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("device peers (-want +got):\n%s", diff)
	}
	wantHost := []string{
		"ip addr add 10.255.0.1/24 dev lltest0",
		"ip link set dev lltest0 mtu 1420",
		"ip link set dev lltest0 up",
		"ip route add 192.168.20.0/24 dev lltest0",
		"ip route add 192.168.30.0/24 dev lltest0",
		"sysctl net.ipv4.ip_forward=1",
	}
	if diff := cmp.Diff(wantHost, sys.host.State()); diff != "" {
		t.Errorf("host state (-want +got):\n%s", diff)
	}

	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Site != "alpha" || st.Backend != "userspace" || st.Generation != 1 || len(st.Peers) != 2 || st.Peers[0].State != PeerNever {
		t.Errorf("status = %+v", st)
	}
	info, err := os.Stat(SocketPath(filepath.Join(n.dir, "run"), "lltest0"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("control socket: %v, mode %v; want 0600", err, info.Mode().Perm())
	}
}

func prefixList(ps []netip.Prefix) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, ",")
}

func TestDownUndoesEverything(t *testing.T) {
	n := newTestNet(t, threeSites...)
	sys := newFakeSystem()
	_, c := startAgent(t, n, sys)
	if err := c.Down(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !sys.dev.Closed() || !sys.host.Closed() {
		t.Errorf("after down: device closed %v, host closed %v; want both", sys.dev.Closed(), sys.host.Closed())
	}
	// MTU and link state go with the interface itself.
	for _, line := range sys.host.State() {
		if !strings.HasPrefix(line, "ip link set") {
			t.Errorf("left behind after down: %q", line)
		}
	}
	if _, err := c.Status(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Errorf("status after down: %v, want ErrNotRunning", err)
	}
}

func TestStartRefusesWithoutTouchingTheHost(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(*testing.T, *testNet, *fakeSystem, *Options)
		wantErr string
	}{
		{"unknown key", func(t *testing.T, n *testNet, s *fakeSystem, o *Options) {
			n.edit(t, func(d []byte) ([]byte, error) { return plan.RemoveSite(n.planPath, d, "alpha") })
		}, "lanlink site add NAME --public-key"},
		{"site named but key differs", func(t *testing.T, n *testNet, s *fakeSystem, o *Options) { o.Site = "beta" }, "lanlink site set beta --public-key"},
		{"no such site", func(t *testing.T, n *testNet, s *fakeSystem, o *Options) { o.Site = "delta" }, `no site named "delta"`},
		{"interface taken", func(t *testing.T, n *testNet, s *fakeSystem, o *Options) { s.exists["lltest0"] = "veth" }, "interface lltest0 already exists (veth)"},
		{"device fails", func(t *testing.T, n *testNet, s *fakeSystem, o *Options) {
			s.openErr = errors.New("listen port 51820 in use")
		}, "port 51820 in use"},
		{"broken plan", func(t *testing.T, n *testNet, s *fakeSystem, o *Options) { n.write(t, []byte("[network\n")) }, "network.toml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newTestNet(t, threeSites...)
			sys := newFakeSystem()
			o := Options{PlanPath: n.planPath, KeyPath: n.keyPath, Interface: "lltest0", StateDir: filepath.Join(n.dir, "run"), WatchEvery: -1, System: sys}
			tt.setup(t, n, sys, &o)
			_, err := Start(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Start error = %v, want it to contain %q", err, tt.wantErr)
			}
			if got := sys.host.State(); len(got) != 0 {
				t.Errorf("host changed: %q", got)
			}
			if sys.dev != nil && !sys.dev.Closed() {
				t.Error("device left open")
			}
			if held, _ := lockHeld(lockPath(o.StateDir, o.Interface)); held {
				t.Error("lock still held after failed start")
			}
		})
	}
}

func TestHostFailureRollsBackTheDevice(t *testing.T) {
	n := newTestNet(t, threeSites...)
	sys := newFakeSystem()
	sys.host.FailStep(4, errors.New("route 192.168.20.0/24 already exists via eth1"))
	o := Options{PlanPath: n.planPath, KeyPath: n.keyPath, Interface: "lltest0", StateDir: filepath.Join(n.dir, "run"), WatchEvery: -1, System: sys}
	_, err := Start(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "already exists via eth1") {
		t.Fatalf("Start error = %v", err)
	}
	if !sys.dev.Closed() {
		t.Error("device left open after host failure")
	}
	if got := sys.host.State(); len(got) != 0 {
		t.Errorf("host state after failed start: %q", got)
	}
}

func TestSecondAgentOnTheSameInterfaceIsRefused(t *testing.T) {
	n := newTestNet(t, threeSites...)
	startAgent(t, n, newFakeSystem())
	o := Options{PlanPath: n.planPath, KeyPath: n.keyPath, Interface: "lltest0", StateDir: filepath.Join(n.dir, "run"), WatchEvery: -1, System: newFakeSystem()}
	_, err := Start(context.Background(), o)
	var are *AlreadyRunningError
	if !errors.As(err, &are) {
		t.Fatalf("second Start error = %v, want AlreadyRunningError", err)
	}
}

func TestReloadChangesOnlyTheDifference(t *testing.T) {
	n := newTestNet(t, threeSites...)
	sys := newFakeSystem()
	sys.setName("beta.example.test", "198.51.100.20")
	_, c := startAgent(t, n, sys)
	before := len(sys.dev.Configs())

	// Reloading an unchanged plan changes nothing at all.
	if _, err := c.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := len(sys.dev.Configs()); got != before {
		t.Errorf("unchanged reload configured the device (%d → %d configs)", before, got)
	}

	n.edit(t, func(d []byte) ([]byte, error) {
		k, _ := wgtypes.GeneratePrivateKey()
		out, _, err := plan.AddSite(n.planPath, d, plan.SiteSpec{Name: "delta", PublicKey: k.PublicKey().String(), LANs: []string{"192.168.40.0/24"}, Endpoint: "203.0.113.4:51820"})
		return out, err
	})
	st, err := c.Reload(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Generation != 2 || len(st.Peers) != 3 {
		t.Errorf("after adding delta: generation %d, %d peers", st.Generation, len(st.Peers))
	}
	cur, _ := sys.dev.Current()
	for _, p := range cur.Peers {
		// Existing peers get no endpoint: the device keeps what it has
		// (possibly roamed); only the new peer's endpoint is set.
		isDelta := p.Endpoint == netip.MustParseAddrPort("203.0.113.4:51820")
		if p.Endpoint.IsValid() && !isDelta {
			t.Errorf("reload re-set the endpoint of an unchanged peer: %v", p.Endpoint)
		}
	}
	if !slicesContains(sys.host.State(), "ip route add 192.168.40.0/24 dev lltest0") {
		t.Errorf("no route to delta's LAN: %q", sys.host.State())
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestInvalidPlanIsRejectedAndTheRunningConfigKept(t *testing.T) {
	n := newTestNet(t, threeSites...)
	sys := newFakeSystem()
	_, c := startAgent(t, n, sys)
	good, _ := os.ReadFile(n.planPath)
	devBefore, hostBefore := len(sys.dev.Configs()), sys.host.State()

	n.write(t, append(append([]byte{}, good...), []byte("\n[[site]]\nname = \"bad name!\"\n")...))
	_, err := c.Reload(context.Background())
	if err == nil || !strings.Contains(err.Error(), "plan rejected:") {
		t.Fatalf("reload of a bad plan: %v, want a rejection", err)
	}
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.PlanError == "" || st.Generation != 1 {
		t.Errorf("status after rejection: plan_error %q generation %d", st.PlanError, st.Generation)
	}
	if got := len(sys.dev.Configs()); got != devBefore {
		t.Error("device was reconfigured by a rejected plan")
	}
	if diff := cmp.Diff(hostBefore, sys.host.State()); diff != "" {
		t.Errorf("host changed by a rejected plan (-before +after):\n%s", diff)
	}

	n.write(t, good)
	if _, err := c.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.Status(context.Background()); st.PlanError != "" {
		t.Errorf("plan error not cleared after fixing: %q", st.PlanError)
	}
}

// A changed plan is applied by itself: through the kernel's file events
// (the periodic check is an hour away), and through the periodic check
// alone where there are none.
func TestFileWatchReloads(t *testing.T) {
	for _, tc := range []struct {
		name   string
		every  time.Duration
		events bool
	}{
		{"file events", time.Hour, true},
		{"periodic check", 20 * time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testFileWatchReloads(t, tc.every, tc.events)
		})
	}
}

func testFileWatchReloads(t *testing.T, every time.Duration, events bool) {
	n := newTestNet(t, threeSites...)
	sys := newFakeSystem()
	_, c := startAgent(t, n, sys, func(o *Options) { o.WatchEvery, o.noFileEvents = every, !events })
	n.edit(t, func(d []byte) ([]byte, error) { return plan.RemoveSite(n.planPath, d, "gamma") })
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		st, err := c.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Generation == 2 {
			if len(st.Peers) != 1 || slicesContains(sys.host.State(), "ip route add 192.168.30.0/24 dev lltest0") {
				t.Errorf("gamma not removed: peers %d, host %q", len(st.Peers), sys.host.State())
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("plan change was not picked up within 5 s")
}

func TestMovedEndpointIsReresolved(t *testing.T) {
	n := newTestNet(t, threeSites...)
	sys := newFakeSystem()
	sys.setName("beta.example.test", "198.51.100.20")
	a := startIdle(t, n, sys) // no loop: this test drives re-resolution itself
	sys.setName("beta.example.test", "203.0.113.20")
	before := len(sys.dev.Configs())
	a.reresolve(context.Background(), nil)
	cfgs := sys.dev.Configs()
	if len(cfgs) != before+1 {
		t.Fatalf("re-resolving a moved name configured the device %d times, want 1", len(cfgs)-before)
	}
	last := cfgs[len(cfgs)-1]
	var got []string
	for _, p := range last.Peers {
		if p.Endpoint.IsValid() {
			got = append(got, p.Endpoint.String())
		}
	}
	if diff := cmp.Diff([]string{"203.0.113.20:51820"}, got); diff != "" {
		t.Errorf("endpoints set (-want +got):\n%s", diff)
	}
	a.reresolve(context.Background(), nil)
	if len(sys.dev.Configs()) != before+1 {
		t.Error("re-resolving an unchanged name reconfigured the device")
	}
}

func TestPeerStatuses(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	k1, _ := wgtypes.GeneratePrivateKey()
	k2, _ := wgtypes.GeneratePrivateKey()
	k3, _ := wgtypes.GeneratePrivateKey()
	cfg := &plan.SiteConfig{Peers: []plan.Peer{
		{Site: "b", PublicKey: k1.PublicKey()}, {Site: "c", PublicKey: k2.PublicKey()}, {Site: "d", PublicKey: k3.PublicKey()},
	}}
	stats := []device.PeerStats{
		{PublicKey: k1.PublicKey(), LastHandshake: now.Add(-10 * time.Second), RxBytes: 5, TxBytes: 7, Endpoint: netip.MustParseAddrPort("192.0.2.9:51820")},
		{PublicKey: k2.PublicKey(), LastHandshake: now.Add(-10 * time.Minute)},
	}
	got := peerStatuses(cfg, stats, now)
	var states []string
	for _, p := range got {
		states = append(states, p.Site+"="+p.State)
	}
	if diff := cmp.Diff([]string{"b=up", "c=stale", "d=never"}, states); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	if got[0].Actual != "192.0.2.9:51820" || got[0].HandshakeAge != 10 || got[0].RxBytes != 5 {
		t.Errorf("peer b = %+v", got[0])
	}
}
