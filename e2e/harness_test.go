package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"lanlink/internal/agent"
	"lanlink/internal/lab"
	"lanlink/internal/testutil"
)

// lanlinkBin is the lanlink binary under test, built once by TestMain.
var lanlinkBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lanlink-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	lanlinkBin = filepath.Join(dir, "lanlink")
	build := exec.Command("go", "build", "-o", lanlinkBin, "lanlink/cmd/lanlink")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build lanlink:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const iface = "lanlink0" // every gateway has its own namespace and /run

// net is a lab whose offices are sites of one plan.
type network struct {
	t     testing.TB
	lab   *lab.Lab
	dir   string
	plan  string
	sites []*site
	// upArgs are extra flags for every `lanlink up` of this network.
	upArgs []string
}

type site struct {
	name   string
	office *lab.Office
	key    string
	pub    string
	proc   *lab.Proc
	log    string
	tunnel netip.Addr
	// tunnel6 is its IPv6 tunnel address on a dual-stack network.
	tunnel6 netip.Addr
	// logShown: a cleanup shows the agent log if the test fails.
	logShown bool
}

type netOpts struct {
	offices int
	noFwd   []int // offices (1-based) behind NAT without port forward: no endpoint
	// ipv6: dual-stack offices (each LAN also has an IPv6 /64) and a
	// second, IPv6 tunnel prefix. The WAN stays IPv4.
	ipv6 bool
	// wan6: ipv6, and the WAN is dual-stack too (lab.Config.IPv6WAN):
	// every site's endpoint in the plan is its IPv6 one, so WireGuard
	// runs over IPv6.
	wan6 bool
}

// tunnel6 is the IPv6 tunnel prefix of a dual-stack network.
const tunnel6 = "fd55:4c4c::/64"

// newNetwork builds a lab, creates a key on every gateway and a plan with
// every office as a site. Nothing runs yet.
func newNetwork(t testing.TB, o netOpts) *network {
	t.Helper()
	testutil.RequireRoot(t)
	ctx := context.Background()
	if o.wan6 {
		o.ipv6 = true
	}
	l, err := lab.New(ctx, t, lab.Config{Offices: o.offices, NoPortForward: o.noFwd, IPv6: o.ipv6, IPv6WAN: o.wan6})
	if err != nil {
		t.Fatalf("build lab: %v", err)
	}
	n := &network{t: t, lab: l, dir: t.TempDir()}
	n.plan = filepath.Join(n.dir, "network.toml")
	initArgs := []string{"init", "-f", n.plan, "--tunnel", "10.255.0.0/24", "--name", "e2e"}
	if o.ipv6 {
		initArgs = append(initArgs, "--tunnel", tunnel6)
	}
	run(t, initArgs...)
	for _, off := range l.Offices {
		s := &site{name: fmt.Sprintf("office%d", off.Index), office: off, key: filepath.Join(n.dir, off.Name, "private.key"), log: filepath.Join(n.dir, off.Name+".log")}
		out, err := off.Gateway.Exec(ctx, lanlinkBin, "keygen", "--key", s.key)
		if err != nil {
			t.Fatalf("keygen on %s: %v", off.Name, err)
		}
		s.pub = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
		n.sites = append(n.sites, s)
	}
	for _, s := range n.sites {
		n.addSite(s, !contains(o.noFwd, s.office.Index))
	}
	return n
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func (n *network) addSite(s *site, endpoint bool) {
	n.t.Helper()
	args := []string{"site", "add", s.name, "-f", n.plan, "--public-key", s.pub, "--lan", s.office.LAN.String()}
	if s.office.LAN6.IsValid() {
		args = append(args, "--lan", s.office.LAN6.String())
	}
	if endpoint {
		ep := s.office.Endpoint()
		if s.office.WAN6.IsValid() { // netOpts.wan6
			ep = s.office.Endpoint6()
		}
		args = append(args, "--endpoint", ep.String())
	}
	addrs := strings.Fields(run(n.t, args...)) // one per tunnel prefix
	s.tunnel = netip.MustParseAddr(addrs[0])
	if len(addrs) > 1 {
		s.tunnel6 = netip.MustParseAddr(addrs[1])
	}
}

// run runs the lanlink CLI outside the lab (plan editing needs no namespace).
func run(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, lanlinkBin, args...).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("lanlink %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return string(out)
}

// lanlink runs the lanlink CLI on s's gateway.
func (s *site) lanlink(ctx context.Context, args ...string) (string, error) {
	out, err := s.office.Gateway.Exec(ctx, append([]string{lanlinkBin}, args...)...)
	return string(out), err
}

// up starts s's agent in the background on the network's plan, with the
// network's upArgs and any extra `lanlink up` flags.
func (n *network) up(s *site, extra ...string) {
	n.t.Helper()
	n.start(s, n.plan, nil, append(append([]string(nil), n.upArgs...), extra...))
}

// start runs `lanlink up` on s's gateway with the given plan file,
// environment (NAME=VALUE) and flags. The agent's log is shown when the
// test fails, once per site however often its agent was restarted.
func (n *network) start(s *site, planPath string, env, flags []string) {
	n.t.Helper()
	argv := append([]string{lanlinkBin, "up", "-f", planPath, "--key", s.key, "--interface", iface}, flags...)
	if len(env) > 0 {
		argv = append(append([]string{"env"}, env...), argv...)
	}
	p, err := s.office.Gateway.Start(context.Background(), argv, s.log)
	if err != nil {
		n.t.Fatalf("start agent on %s: %v", s.name, err)
	}
	s.proc = p
	if s.logShown {
		return
	}
	s.logShown = true
	n.t.Cleanup(func() {
		if n.t.Failed() {
			b, _ := os.ReadFile(s.log)
			n.t.Logf("agent log of %s:\n%s", s.name, b)
		}
	})
}

func (n *network) upAll() {
	n.t.Helper()
	for _, s := range n.sites {
		n.up(s)
	}
	for _, s := range n.sites {
		n.waitUp(s)
	}
}

// waitUp waits until s's agent answers status.
func (n *network) waitUp(s *site) *agent.Status {
	n.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		st, err := s.status()
		if err == nil {
			return st
		}
		lastErr = err
		select {
		case <-s.proc.Done():
			b, _ := os.ReadFile(s.log)
			n.t.Fatalf("agent on %s exited:\n%s", s.name, b)
		case <-time.After(50 * time.Millisecond):
		}
	}
	n.t.Fatalf("agent on %s not up within 15 s: %v", s.name, lastErr)
	return nil
}

func (s *site) status() (*agent.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := s.lanlink(ctx, "status", "--json", "--interface", iface)
	if err != nil {
		return nil, err
	}
	var st agent.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return nil, fmt.Errorf("status output %q: %w", out, err)
	}
	return &st, nil
}

// host is the first LAN host of office s.
func (s *site) host() *lab.Node { return s.office.Hosts[0] }

// waitPing waits until from reaches to (bounded), returning how long it took.
func waitPing(t testing.TB, from *lab.Node, to netip.Addr, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err = from.Ping(ctx, to, 1)
		cancel()
		if err == nil {
			return time.Since(start)
		}
	}
	t.Fatalf("%s cannot reach %s within %v: %v", from.Name, to, within, err)
	return 0
}

// snapshot is everything of a node's network state that lanlink may touch.
func snapshot(t testing.TB, n *lab.Node) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	for _, argv := range [][]string{
		{"ip", "-o", "link", "show"},
		{"ip", "-o", "addr", "show"},
		{"ip", "route", "show", "table", "all"},
		{"cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"},
		{"sh", "-c", "ls /run/lanlink /run/wireguard 2>/dev/null | grep -v '^/run' | grep -v '\\.lock$' || true"},
	} {
		out, err := n.Exec(ctx, argv...)
		if err != nil {
			t.Fatalf("snapshot %s: %v", n.Name, err)
		}
		b.WriteString(strings.Join(argv, " ") + ":\n" + normalizeSnapshot(string(out)))
	}
	return b.String()
}

// normalizeSnapshot drops what changes on its own: address lifetimes, and
// IPv6 link-local addresses of the lab's interfaces, which finish duplicate
// address detection (and gain a local route) at their own pace.
func normalizeSnapshot(s string) string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "fe80:") {
			continue
		}
		if i := strings.Index(line, "valid_lft"); i >= 0 {
			line = line[:i]
		}
		out = append(out, strings.TrimSpace(line))
	}
	return strings.Join(out, "\n") + "\n"
}

// --- helpers for the reload and fault tests (issue 4) ---

// wgPeer is one peer as the gateway's WireGuard device reports it.
type wgPeer struct {
	endpoint  string
	handshake time.Time
	rx, tx    int64
	keepalive int
}

// wgPeers reads s's WireGuard state, keyed by the peers' base64 public
// keys, through the device's UAPI socket (in the gateway's own /run). It
// is cheap enough to poll every 100 ms.
func (s *site) wgPeers() (map[string]wgPeer, error) {
	path := filepath.Join(s.office.Gateway.RunDir, "wireguard", iface+".sock")
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "get=1\n\n"); err != nil {
		return nil, err
	}
	out := map[string]wgPeer{}
	var key string
	var p wgPeer
	var sec, nsec int64
	flush := func() {
		if key != "" {
			if sec != 0 || nsec != 0 {
				p.handshake = time.Unix(sec, nsec)
			}
			out[key] = p
		}
	}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			break
		}
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "public_key":
			flush()
			b, err := hex.DecodeString(v)
			if err != nil {
				return nil, fmt.Errorf("UAPI public_key %q: %w", v, err)
			}
			key, p, sec, nsec = base64.StdEncoding.EncodeToString(b), wgPeer{}, 0, 0
		case "endpoint":
			p.endpoint = v
		case "last_handshake_time_sec":
			sec, _ = strconv.ParseInt(v, 10, 64)
		case "last_handshake_time_nsec":
			nsec, _ = strconv.ParseInt(v, 10, 64)
		case "rx_bytes":
			p.rx, _ = strconv.ParseInt(v, 10, 64)
		case "tx_bytes":
			p.tx, _ = strconv.ParseInt(v, 10, 64)
		case "persistent_keepalive_interval":
			p.keepalive, _ = strconv.Atoi(v)
		case "errno":
			if v != "0" {
				return nil, fmt.Errorf("UAPI get on %s: errno %s", s.name, v)
			}
		}
	}
	flush()
	return out, sc.Err()
}

// peer returns s's WireGuard view of other, failing the test if absent.
func (s *site) peer(t *testing.T, other *site) wgPeer {
	t.Helper()
	ps, err := s.wgPeers()
	if err != nil {
		t.Fatalf("read WireGuard state of %s: %v", s.name, err)
	}
	p, ok := ps[other.pub]
	if !ok {
		t.Fatalf("%s has no WireGuard peer %s", s.name, other.name)
	}
	return p
}

// throttle limits what node sends to rate (a tc rate such as "24mbit"), so
// that a modest transfer lasts long enough to span a reload or a fault.
// The qdisc lives in the node's namespace and goes with it.
func throttle(t *testing.T, node *lab.Node, rate string) {
	t.Helper()
	if out, err := node.Exec(context.Background(), "tc", "qdisc", "add", "dev", node.Iface, "root", "tbf", "rate", rate, "burst", "32kb", "latency", "200ms"); err != nil {
		t.Fatalf("throttle %s: %v: %s", node.Name, err, out)
	}
}

// writeNetnsHosts gives every command later started in node's namespace
// its own /etc/hosts (`ip netns exec` bind-mounts /etc/netns/NS/hosts).
// The file is rewritten in place, never replaced: the bind mounts of
// running processes hold its inode. The directory goes in t.Cleanup.
func writeNetnsHosts(t *testing.T, node *lab.Node, content string) {
	t.Helper()
	netnsEtcOnce.Do(func() {
		_, err := os.Stat("/etc/netns")
		netnsEtcCreated = os.IsNotExist(err)
	})
	dir := filepath.Join("/etc/netns", node.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.RemoveAll(dir)
		if netnsEtcCreated {
			os.Remove("/etc/netns") // only if empty: other tests may still use it
		}
	})
	f, err := os.OpenFile(filepath.Join(dir, "hosts"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// netnsEtcCreated: /etc/netns did not exist before the first
// writeNetnsHosts, so the tests remove it again when it is empty.
var (
	netnsEtcOnce    sync.Once
	netnsEtcCreated bool
)

// waitStatus polls s's status until ok accepts it.
func waitStatus(t *testing.T, s *site, within time.Duration, what string, ok func(*agent.Status) bool) *agent.Status {
	t.Helper()
	deadline := time.Now().Add(within)
	var last *agent.Status
	var err error
	for time.Now().Before(deadline) {
		if last, err = s.status(); err == nil && ok(last) {
			return last
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: %s not reached within %v (last status %+v, err %v)", s.name, what, within, last, err)
	return nil
}

// figures reports whether the slow figure loops should run
// (LANLINK_FIGURES=1); the tests themselves assert one run each.
func figures() bool { return os.Getenv("LANLINK_FIGURES") == "1" }

// median of durations (sorted copy).
func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	slices.Sort(s)
	return s[len(s)/2]
}

// connectedPair is the common start of the two-office tests: both agents
// up, and each LAN host reaching the other.
func connectedPair(t *testing.T) (n *network, a, b *site) {
	t.Helper()
	n = newNetwork(t, netOpts{offices: 2})
	n.upAll()
	a, b = n.sites[0], n.sites[1]
	waitPing(t, a.host(), b.host().Addr, 10*time.Second)
	waitPing(t, b.host(), a.host().Addr, 5*time.Second)
	return n, a, b
}

// down runs `lanlink down` on s's gateway and waits for its agent to exit.
func (s *site) down(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := s.lanlink(ctx, "down", "--interface", iface); err != nil {
		t.Fatalf("down on %s: %v: %s", s.name, err, out)
	}
	if err := s.proc.Wait(10 * time.Second); err != nil {
		t.Fatalf("agent on %s did not exit after down: %v", s.name, err)
	}
}
