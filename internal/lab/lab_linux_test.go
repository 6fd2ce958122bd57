package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"lanlink/internal/testutil"
)

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func newLab(t *testing.T, cfg Config) *Lab {
	t.Helper()
	l, err := New(testCtx(t, time.Minute), t, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return l
}

// labNamespaces lists the named namespaces of lab id, as `ip netns list`
// would show them.
func labNamespaces(t *testing.T, id string) []string {
	t.Helper()
	out, err := runCmd(t.Context(), nil, "ip", "netns", "list")
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	var got []string
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.HasPrefix(name, id+"-") {
			got = append(got, name)
		}
	}
	return got
}

// closeLeavesNothing closes l and checks that its namespaces and directory
// are gone.
func closeLeavesNothing(t *testing.T, l *Lab) {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := labNamespaces(t, l.ID); len(got) != 0 {
		t.Errorf("namespaces left after Close: %v", got)
	}
	if _, err := os.Stat(labDir(l.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lab directory after Close: %v, want it removed", err)
	}
}

// udpArrives sends a unique token from `from` to dst and reports whether
// a UDP socket bound to listen in `at` received it, and from which address.
func udpArrives(t *testing.T, from *Node, dst netip.AddrPort, at *Node, listen netip.AddrPort) (bool, netip.Addr) {
	t.Helper()
	ln, err := at.ListenUDP(listen)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := from.DialUDP(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	token := fmt.Sprintf("lab-%s-%d", from.Name, time.Now().UnixNano())
	got := make(chan netip.Addr, 1)
	go func() {
		buf := make([]byte, 256)
		ln.SetReadDeadline(time.Now().Add(2 * time.Second))
		for {
			n, src, err := ln.ReadFromUDPAddrPort(buf)
			if err != nil {
				close(got)
				return
			}
			if string(buf[:n]) == token {
				got <- src.Addr().Unmap()
				return
			}
		}
	}()
	for range 3 {
		// Errors (e.g. ICMP port unreachable reported on a connected
		// socket) just mean this copy did not arrive.
		_, _ = c.Write([]byte(token))
		time.Sleep(100 * time.Millisecond)
	}
	src, ok := <-got
	return ok, src
}

func TestTwoOffices(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	l := newLab(t, Config{Offices: 2, HostsPerOffice: 2})
	ctx := testCtx(t, 2*time.Minute)
	o1, o2 := l.Offices[0], l.Offices[1]

	t.Run("addressing", func(t *testing.T) {
		type nodeAddr struct{ Name, Addr string }
		var got []nodeAddr
		for _, o := range l.Offices {
			got = append(got, nodeAddr{o.Router.Name, o.Router.Addr.String()}, nodeAddr{o.Gateway.Name, o.Gateway.Addr.String()})
			for _, h := range o.Hosts {
				got = append(got, nodeAddr{h.Name, h.Addr.String()})
			}
			got = append(got, nodeAddr{o.Name + " WAN", o.WAN.String()})
		}
		id := l.ID
		want := []nodeAddr{
			{id + "-o1r", "192.168.10.1"}, {id + "-o1g", "192.168.10.2"}, {id + "-o1h1", "192.168.10.10"}, {id + "-o1h2", "192.168.10.11"}, {"o1 WAN", "198.51.100.11"},
			{id + "-o2r", "192.168.20.1"}, {id + "-o2g", "192.168.20.2"}, {id + "-o2h1", "192.168.20.10"}, {id + "-o2h2", "192.168.20.11"}, {"o2 WAN", "198.51.100.12"},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("addressing (-want +got):\n%s", diff)
		}
		if o1.GatewayLAN != o1.Gateway.Addr || o1.Endpoint() != netip.MustParseAddrPort("198.51.100.11:51820") {
			t.Errorf("GatewayLAN %v, Endpoint %v", o1.GatewayLAN, o1.Endpoint())
		}
		if o1.LAN6.IsValid() || o1.GatewayLAN6.IsValid() || o1.Router.Addr6.IsValid() || o1.Hosts[0].Addr6.IsValid() {
			t.Errorf("IPv6 addressing without Config.IPv6: LAN6 %v GatewayLAN6 %v router %v host %v",
				o1.LAN6, o1.GatewayLAN6, o1.Router.Addr6, o1.Hosts[0].Addr6)
		}
		for _, name := range labNamespaces(t, id) {
			if !nsNameRe.MatchString(name) {
				t.Errorf("namespace %q does not follow the lab scheme", name)
			}
		}
		if n := len(labNamespaces(t, id)); n != 1+2*4 {
			t.Errorf("lab has %d namespaces, want 9", n)
		}
	})

	t.Run("forwarding only on routers", func(t *testing.T) {
		for _, tc := range []struct {
			node *Node
			want string
		}{{o1.Router, "1"}, {l.Internet, "1"}, {o1.Gateway, "0"}, {o1.Hosts[0], "0"}} {
			out, err := tc.node.Exec(ctx, "cat", "/proc/sys/net/ipv4/ip_forward")
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(string(out)); got != tc.want {
				t.Errorf("ip_forward in %s = %s, want %s", tc.node.Name, got, tc.want)
			}
		}
	})

	t.Run("each node has its own /run", func(t *testing.T) {
		if _, err := o1.Gateway.Exec(ctx, "sh", "-c", "mkdir -p /var/run/lanlink && echo o1 > /run/lanlink/probe"); err != nil {
			t.Fatal(err)
		}
		if _, err := o2.Gateway.Exec(ctx, "sh", "-c", "mkdir -p /run/lanlink && echo o2 > /run/lanlink/probe"); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			n    *Node
			want string
		}{{o1.Gateway, "o1\n"}, {o2.Gateway, "o2\n"}} {
			got, err := os.ReadFile(filepath.Join(tc.n.RunDir, "lanlink", "probe"))
			if err != nil || string(got) != tc.want {
				t.Errorf("%s/lanlink/probe = %q, %v; want %q", tc.n.RunDir, got, err, tc.want)
			}
			out, err := tc.n.Exec(ctx, "cat", "/run/lanlink/probe")
			if err != nil || string(out) != tc.want {
				t.Errorf("/run/lanlink/probe in %s = %q, %v; want %q", tc.n.Name, out, err, tc.want)
			}
		}
		if _, err := os.Stat("/run/lanlink/probe"); err == nil {
			t.Errorf("a node's /run write reached the host's /run")
		}
	})

	t.Run("LAN host pings router and gateway", func(t *testing.T) {
		for _, dst := range []netip.Addr{o1.Router.Addr, o1.GatewayLAN, o1.Hosts[1].Addr} {
			if err := o1.Hosts[0].Ping(ctx, dst, 2); err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("gateway reaches the other office's WAN address", func(t *testing.T) {
		if err := o1.Gateway.Ping(ctx, o2.WAN, 2); err != nil {
			t.Error(err)
		}
	})

	t.Run("remote LAN is not reachable without a tunnel", func(t *testing.T) {
		if err := o1.Hosts[0].Ping(ctx, o2.Hosts[0].Addr, 1); err == nil {
			t.Errorf("office 2's host answered office 1's host with no VPN in between")
		}
	})

	t.Run("port forward reaches the gateway behind NAT", func(t *testing.T) {
		ok, src := udpArrives(t, o1.Gateway, o2.Endpoint(), o2.Gateway, netip.AddrPortFrom(o2.GatewayLAN, uint16(o2.Port)))
		if !ok {
			t.Fatalf("UDP to %v from office 1's gateway did not reach office 2's gateway", o2.Endpoint())
		}
		if src != o1.WAN {
			t.Errorf("packet arrived from %v, want office 1's masqueraded WAN address %v", src, o1.WAN)
		}
	})

	t.Run("remote LAN traffic is routed to the local gateway", func(t *testing.T) {
		out, err := o1.Router.Exec(ctx, "ip", "route", "get", o2.Hosts[0].Addr.String(),
			"from", o1.Hosts[0].Addr.String(), "iif", o1.Router.Iface)
		if err != nil {
			t.Fatal(err)
		}
		if want := "via " + o1.GatewayLAN.String(); !strings.Contains(string(out), want) {
			t.Errorf("router route to office 2's host: %q, want %q", out, want)
		}
		// And observe it: the gateway sees the host's packets to the
		// remote LAN.
		if n := sentThroughGateway(t, o1.Gateway, o1.Hosts[0], o1.Hosts[0].Addr, o2.Hosts[0].Addr); n != 3 {
			t.Errorf("gateway saw %d of the host's 3 packets to the remote LAN", n)
		}
	})

	t.Run("WAN address change", func(t *testing.T) {
		newWAN := netip.MustParseAddr("203.0.113.12")
		if err := o2.ChangeWANAddress(ctx, newWAN); err != nil {
			t.Fatal(err)
		}
		if o2.WAN != newWAN {
			t.Fatalf("WAN = %v after change, want %v", o2.WAN, newWAN)
		}
		if err := o1.Gateway.Ping(ctx, newWAN, 2); err != nil {
			t.Errorf("new address across the internet core: %v", err)
		}
		if ok, _ := udpArrives(t, o1.Gateway, o2.Endpoint(), o2.Gateway, netip.AddrPortFrom(o2.GatewayLAN, uint16(o2.Port))); !ok {
			t.Errorf("port forward did not follow the WAN address change to %v", o2.Endpoint())
		}
		if err := o1.Gateway.Ping(ctx, netip.MustParseAddr("198.51.100.12"), 1); err == nil {
			t.Errorf("old WAN address still answers")
		}
		for _, bad := range []string{"203.0.113.1", "198.51.100.11", "192.0.2.7", "10.0.0.1"} {
			if err := o2.ChangeWANAddress(ctx, netip.MustParseAddr(bad)); !errors.Is(err, ErrConfig) {
				t.Errorf("ChangeWANAddress(%s) = %v, want ErrConfig", bad, err)
			}
		}
	})
}

func TestNoPortForward(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	l := newLab(t, Config{Offices: 2, NoPortForward: []int{2}, Port: 7777})
	o1, o2 := l.Offices[0], l.Offices[1]
	if o1.Port != 7777 || !o1.PortForward || o2.PortForward {
		t.Fatalf("office 1 port %d forward %v, office 2 forward %v", o1.Port, o1.PortForward, o2.PortForward)
	}
	if ok, _ := udpArrives(t, o1.Gateway, o2.Endpoint(), o2.Gateway, netip.AddrPortFrom(o2.GatewayLAN, 7777)); ok {
		t.Errorf("UDP to office 2's WAN reached its gateway although office 2 has no port forward")
	}
	// The control: the same probe the other way works.
	if ok, _ := udpArrives(t, o2.Gateway, o1.Endpoint(), o1.Gateway, netip.AddrPortFrom(o1.GatewayLAN, 7777)); !ok {
		t.Errorf("UDP to office 1's forwarded port %v did not reach its gateway", o1.Endpoint())
	}
}

func TestTransfer(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	l := newLab(t, Config{Offices: 2})
	o := l.Offices[0]
	const size = 16 << 20
	res, err := Transfer(testCtx(t, time.Minute), o.Hosts[0], o.Gateway, size)
	if err != nil {
		t.Fatal(err)
	}
	if res.Bytes != size || res.Duration <= 0 || res.SHA256 == ([32]byte{}) {
		t.Errorf("result %+v, want %d bytes in a positive duration with a checksum", res, size)
	}
	t.Logf("16 MiB host → gateway in %v (%.0f Mbit/s)", res.Duration, res.BitsPerSecond()/1e6)

	// Transfers leave no sockets behind for Close to find.
	l.mu.Lock()
	open := len(l.closers)
	l.mu.Unlock()
	if open != 0 {
		t.Errorf("%d sockets still tracked after Transfer", open)
	}
	// Across an office boundary with no tunnel it must fail, bounded.
	if _, err := Transfer(testCtx(t, 3*time.Second), o.Hosts[0], l.Offices[1].Hosts[0], 1024); err == nil {
		t.Errorf("transfer to office 2's LAN succeeded with no VPN in between")
	}
}

func TestCloseRemovesEverything(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	l, err := New(testCtx(t, time.Minute), nil, Config{Offices: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ctx := testCtx(t, time.Minute)
	logfile := t.TempDir() + "/sleep.log"
	var procs []*Proc
	for _, n := range []*Node{l.Offices[0].Gateway, l.Offices[1].Hosts[0]} {
		p, err := n.Start(ctx, []string{"sh", "-c", "echo started in $(ip -br addr show dev " + n.Iface + "); exec sleep 300"}, logfile)
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
		logfile = "" // second one in memory
	}
	// A process ignoring SIGTERM must be killed too.
	stubborn, err := l.Offices[0].Hosts[0].Start(ctx, []string{"sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done"}, "")
	if err != nil {
		t.Fatal(err)
	}
	procs = append(procs, stubborn)
	ln, err := l.Offices[1].Gateway.ListenTCP(netip.MustParseAddrPort("0.0.0.0:0"))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, p := range procs {
		for !strings.Contains(string(p.Output()), "started in") && !strings.Contains(string(p.Output()), "ready") && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if err := syscall.Kill(p.PID, 0); err != nil {
			t.Fatalf("pid %d not running before Close: %v", p.PID, err)
		}
	}
	if out := string(procs[0].Output()); !strings.Contains(out, l.Offices[0].GatewayLAN.String()) {
		t.Errorf("process did not run in its namespace; output %q", out)
	}
	if len(labNamespaces(t, l.ID)) == 0 {
		t.Fatal("no namespaces before Close")
	}

	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := labNamespaces(t, l.ID); len(got) != 0 {
		t.Errorf("namespaces left after Close: %v", got)
	}
	for _, p := range procs {
		if err := syscall.Kill(p.PID, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("pid %d (%s) still exists after Close: kill(0) = %v", p.PID, p.Argv[0], err)
		}
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("listener after Close: Accept = %v, want net.ErrClosed", err)
	}
	if _, err := os.Stat(l.Offices[0].Gateway.RunDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("node run directory after Close: %v, want it removed", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := l.Offices[0].Gateway.Start(ctx, []string{"true"}, ""); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close = %v, want ErrClosed", err)
	}
}

func TestProcStopsWithContext(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	l := newLab(t, Config{Offices: 2})
	ctx, cancel := context.WithCancel(t.Context())
	p, err := l.Offices[0].Gateway.Start(ctx, []string{"sleep", "300"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(100 * time.Millisecond); !errors.Is(err, ErrStillRunning) {
		t.Fatalf("Wait = %v, want ErrStillRunning", err)
	}
	cancel()
	if err := p.Wait(StopGrace + time.Second); err == nil || errors.Is(err, ErrStillRunning) {
		t.Errorf("after ctx cancel: Wait = %v, want killed by signal", err)
	}
	q, err := l.Offices[0].Gateway.Start(t.Context(), []string{"sh", "-c", "exit 3"}, "")
	if err != nil {
		t.Fatal(err)
	}
	var ee interface{ ExitCode() int }
	if err := q.Wait(5 * time.Second); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("Wait = %v, want exit status 3", err)
	}
}

func TestNewFailsHalfway(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	for _, tc := range []struct {
		name  string
		cfg   Config
		steps []string
	}{
		{"ipv4", Config{Offices: 2}, []string{"internet", "o1-router", "o1-lan", "o2-lan", "o2-nat", "done"}},
		{"ipv6", Config{Offices: 2, IPv6: true}, []string{"o1-router", "o1-lan", "o2-nat"}},
		{"ipv6-wan", Config{Offices: 2, IPv6: true, IPv6WAN: true}, []string{"internet", "o1-router", "o2-nat"}},
	} {
		for _, step := range tc.steps {
			t.Run(tc.name+"/"+step, func(t *testing.T) {
				t.Parallel()
				cfg := tc.cfg
				cfg.ID, cfg.failAt = NewID(), step
				l, err := New(testCtx(t, time.Minute), t, cfg)
				if err == nil || !strings.Contains(err.Error(), "injected failure") {
					t.Fatalf("New = %v, %v; want the injected failure", l, err)
				}
				if l != nil {
					t.Errorf("New returned a lab with its error")
				}
				if got := labNamespaces(t, cfg.ID); len(got) != 0 {
					t.Errorf("namespaces left after failed New: %v", got)
				}
				if _, err := os.Stat(labDir(cfg.ID)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("lab directory after failed New: %v, want it removed", err)
				}
			})
		}
	}
}

func TestIDInUseIsRefused(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	l := newLab(t, Config{Offices: 2})
	_, err := New(testCtx(t, time.Minute), t, Config{Offices: 2, ID: l.ID})
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("New with the ID of a live lab = %v, want an in-use error", err)
	}
	// The refused New must not have touched the live lab.
	if n := len(labNamespaces(t, l.ID)); n != 7 {
		t.Errorf("live lab has %d namespaces, want 7", n)
	}
	if err := l.Offices[0].Hosts[0].Ping(testCtx(t, 10*time.Second), l.Offices[0].GatewayLAN, 1); err != nil {
		t.Error(err)
	}
}

func TestParallelLabsDoNotCollide(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	var mu sync.Mutex
	ids := map[string]bool{}
	for i := range 3 {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			// Same addresses in every lab: only namespace isolation keeps
			// the labs apart.
			l := newLab(t, Config{Offices: 3})
			mu.Lock()
			if ids[l.ID] {
				t.Errorf("lab ID %s used twice", l.ID)
			}
			ids[l.ID] = true
			mu.Unlock()
			o1, o3 := l.Offices[0], l.Offices[2]
			if ok, _ := udpArrives(t, o1.Gateway, o3.Endpoint(), o3.Gateway, netip.AddrPortFrom(o3.GatewayLAN, uint16(o3.Port))); !ok {
				t.Errorf("lab %s: port forward office 1 → office 3 failed", l.ID)
			}
			if err := o3.Hosts[0].Ping(testCtx(t, 10*time.Second), o3.GatewayLAN, 1); err != nil {
				t.Error(err)
			}
			if n := len(labNamespaces(t, l.ID)); n != 1+3*3 {
				t.Errorf("lab %s has %d namespaces, want 10", l.ID, n)
			}
		})
	}
}

func TestCleanupLeftovers(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	ctx := testCtx(t, time.Minute)
	dead := NewID()
	// A dead lab's namespaces, plus names that merely look similar.
	ours := []string{dead + "-inet", dead + "-o1r", dead + "-o1h3"}
	foreign := []string{dead + "-other", dead + "x-inet"}
	for _, name := range append(append([]string(nil), ours...), foreign...) {
		if out, err := runCmd(ctx, nil, "ip", "netns", "add", name); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", name, err, out)
		}
		t.Cleanup(func() {
			runCmd(context.Background(), nil, "ip", "netns", "delete", name)
		})
	}
	if err := os.MkdirAll(filepath.Join(labDir(dead), dead+"-o1r", "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(labDir(dead)) })
	removed, err := CleanupLeftovers(ctx, dead)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{dead + "-inet", dead + "-o1h3", dead + "-o1r"}, removed); diff != "" {
		t.Errorf("removed (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(labDir(dead)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dead lab's directory: %v, want it removed", err)
	}
	all, err := listNetns()
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, name := range all {
		if strings.HasPrefix(name, dead) {
			left = append(left, name)
		}
	}
	if diff := cmp.Diff(foreign, left, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("left (-want +got):\n%s", diff)
	}

	live := newLab(t, Config{Offices: 2})
	removed, err = CleanupLeftovers(ctx, live.ID)
	if !errors.Is(err, ErrLabInUse) || len(removed) != 0 {
		t.Errorf("CleanupLeftovers(live lab) = %v, %v; want nothing removed and ErrLabInUse", removed, err)
	}
	if n := len(labNamespaces(t, live.ID)); n != 7 {
		t.Errorf("live lab has %d namespaces after CleanupLeftovers, want 7", n)
	}
	if _, err := os.Stat(live.Offices[0].Gateway.RunDir); err != nil {
		t.Errorf("live lab's run directory: %v", err)
	}
	if _, err := CleanupLeftovers(ctx, "x; rm"); !errors.Is(err, ErrConfig) {
		t.Errorf("bad ID: %v, want ErrConfig", err)
	}
}

func TestConfigValidate(t *testing.T) {
	lan := func(s string) func(int) netip.Prefix {
		return func(i int) netip.Prefix {
			if i == 2 {
				return netip.MustParsePrefix(s)
			}
			return netip.MustParsePrefix("10.1.0.0/24")
		}
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // substring of the error; "" for valid
	}{
		{"minimal", Config{Offices: 2}, ""},
		{"max", Config{Offices: 8, HostsPerOffice: 16, Port: 65535, NoPortForward: []int{8}, ID: "ll0a9z"}, ""},
		{"one office", Config{Offices: 1}, "Offices = 1"},
		{"nine offices", Config{Offices: 9}, "Offices = 9"},
		{"hosts", Config{Offices: 2, HostsPerOffice: 17}, "HostsPerOffice"},
		{"port", Config{Offices: 2, Port: 70000}, "Port"},
		{"no forward office", Config{Offices: 2, NoPortForward: []int{3}}, "NoPortForward"},
		{"id", Config{Offices: 2, ID: "LL12345"}, "ID"},
		{"overlap", Config{Offices: 2, LANPrefix: lan("10.1.0.0/16")}, "overlaps office 1"},
		{"public LAN", Config{Offices: 2, LANPrefix: lan("198.51.100.0/24")}, "private"},
		{"host bits", Config{Offices: 2, LANPrefix: lan("10.2.0.1/24")}, "host bits"},
		{"ipv6", Config{Offices: 2, LANPrefix: lan("fd00::/64")}, "IPv4"},
		{"too small", Config{Offices: 2, LANPrefix: lan("10.2.0.0/28")}, "/16…/27"},
		{"custom ok", Config{Offices: 2, LANPrefix: lan("172.16.5.0/27")}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.cfg.withDefaults().validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("validate: %v", err)
			case tc.want != "" && (!errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("validate = %v, want ErrConfig mentioning %q", err, tc.want)
			}
		})
	}
}

func TestNames(t *testing.T) {
	id := NewID()
	if !idRe.MatchString(id) {
		t.Fatalf("NewID() = %q does not match the scheme", id)
	}
	for _, name := range []string{nsInternet(id), nsRouter(id, 8), nsGateway(id, 1), nsHost(id, 8, MaxHostsPerOffice-1)} {
		if !nsNameRe.MatchString(name) {
			t.Errorf("%q does not match the scheme that Close and CleanupLeftovers delete by", name)
		}
	}
	for _, iface := range []string{id + "-ib", id + "-i8", id + "-wan", id + "-lan", id + "-eth0", id + "-pg", id + "-ph16"} {
		if len(iface) > 15 {
			t.Errorf("interface name %q longer than 15", iface)
		}
	}
}

// sentThroughGateway sends 3 UDP packets from host (source src) to dst
// and returns how many of them gw's prerouting hook counted (waiting up to
// 2 s for all 3). The counting table is removed again.
func sentThroughGateway(t *testing.T, gw, host *Node, src, dst netip.Addr) int {
	t.Helper()
	ctx := context.Background()
	fam, match := "ip", "ip"
	if dst.Is6() {
		fam, match = "ip6", "ip6"
	}
	rules := fmt.Sprintf("table %s labtest {\n\tchain pre {\n\t\ttype filter hook prerouting priority 0; policy accept;\n\t\t%s saddr %s %s daddr %s udp dport 9 counter\n\t}\n}\n",
		fam, match, src, match, dst)
	if _, err := gw.execInput(ctx, []byte(rules), "nft", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	defer gw.Exec(ctx, "nft", "delete", "table", fam, "labtest")
	c, err := host.DialUDP(netip.AddrPortFrom(dst, 9))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 3 {
		if _, err := c.Write([]byte("to the remote LAN")); err != nil {
			t.Fatal(err)
		}
	}
	var packets int
	for deadline := time.Now().Add(2 * time.Second); packets < 3 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		out, err := gw.Exec(ctx, "nft", "list", "chain", fam, "labtest", "pre")
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`packets (\d+)`).FindStringSubmatch(string(out))
		if m == nil {
			t.Fatalf("no counter in %s", out)
		}
		packets, _ = strconv.Atoi(m[1])
	}
	return packets
}
