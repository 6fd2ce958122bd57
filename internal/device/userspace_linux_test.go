package device

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"lanlink/internal/testutil"
)

// The root tests run each side of a tunnel as a child process started with
// `ip netns exec NS <this test binary>`, which TestMain turns into a small
// helper driven over stdin/stdout. A whole process inside a namespace is
// the robust choice: wireguard-go opens its UDP sockets from its own
// goroutines (on link-up events and listen-port changes), so pinning one
// locked OS thread to a namespace would not cover them. It is also exactly
// how lanlink runs in production and in the lab.

const helperEnv = "LANLINK_DEVICE_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(helperMain())
	}
	os.Exit(m.Run())
}

type helperReq struct {
	Op     string  `json:"op"` // configure, stats, echo, roundtrip
	Config *Config `json:"config,omitempty"`
	Addr   string  `json:"addr,omitempty"`
}

type helperResp struct {
	Err     string      `json:"err,omitempty"`
	InUse   bool        `json:"in_use,omitempty"`
	Backend string      `json:"backend,omitempty"`
	Stats   []PeerStats `json:"stats,omitempty"`
}

// helperMain opens a device named $LANLINK_DEVICE_NAME and serves requests
// until stdin closes, then closes the device and exits.
func helperMain() int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	enc := json.NewEncoder(os.Stdout)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	d, err := Open(ctx, OpenOptions{
		Name:    os.Getenv("LANLINK_DEVICE_NAME"),
		Backend: os.Getenv("LANLINK_DEVICE_BACKEND"),
		Logger:  log,
	})
	cancel()
	if err != nil {
		var inUse *InUseError
		enc.Encode(helperResp{Err: err.Error(), InUse: errors.As(err, &inUse)})
		return 0
	}
	defer d.Close()
	enc.Encode(helperResp{Backend: d.Backend()})

	dec := json.NewDecoder(os.Stdin)
	for {
		var req helperReq
		if err := dec.Decode(&req); err != nil {
			return 0 // parent closed stdin (or died): clean up and go
		}
		var resp helperResp
		switch req.Op {
		case "configure":
			err = d.Configure(*req.Config)
		case "stats":
			resp.Stats, err = d.Stats()
		case "close":
			err = d.Close()
		case "echo":
			err = udpEcho(req.Addr)
		case "roundtrip":
			err = udpRoundTrip(req.Addr)
		default:
			err = fmt.Errorf("unknown op %q", req.Op)
		}
		if err != nil {
			resp.Err = err.Error()
		}
		enc.Encode(resp)
	}
}

// udpEcho answers every datagram sent to addr until the process exits.
func udpEcho(addr string) error {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return err
	}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	return nil
}

// udpRoundTrip sends to addr until one datagram comes back, for at most
// about 10 s (the first one waits for the WireGuard handshake).
func udpRoundTrip(addr string) error {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 64)
	for i := range 20 {
		msg := fmt.Sprintf("lanlink-%d", i)
		if _, err := c.Write([]byte(msg)); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := c.Read(buf)
		if err == nil && string(buf[:n]) == msg {
			return nil
		}
	}
	return fmt.Errorf("no echo from %s in 20 tries", addr)
}

// helper is one child process holding one device in one namespace.
type helper struct {
	t      *testing.T
	cmd    *exec.Cmd
	enc    *json.Encoder
	resps  chan helperResp
	stderr *syncBuffer
	first  helperResp
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startHelper(t *testing.T, ns, name, backend string) *helper {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, exe)
	cmd.Env = append(os.Environ(), helperEnv+"=1", "LANLINK_DEVICE_NAME="+name, "LANLINK_DEVICE_BACKEND="+backend)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	h := &helper{t: t, cmd: cmd, enc: json.NewEncoder(stdin), resps: make(chan helperResp), stderr: &syncBuffer{}}
	cmd.Stderr = h.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper in %s: %v", ns, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(h.resps)
		dec := json.NewDecoder(stdout)
		for {
			var r helperResp
			if err := dec.Decode(&r); err != nil {
				return
			}
			select {
			case h.resps <- r:
			case <-done:
				return
			}
		}
	}()
	t.Cleanup(func() {
		stdin.Close() // the helper closes its device and exits
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("helper %s in %s did not exit; killing pid %d", name, ns, cmd.Process.Pid)
			cmd.Process.Kill()
			<-exited
		}
		close(done)
		if t.Failed() {
			t.Logf("helper %s stderr:\n%s", name, h.stderr.String())
		}
	})
	h.first = h.next()
	return h
}

func (h *helper) next() helperResp {
	h.t.Helper()
	select {
	case r, ok := <-h.resps:
		if !ok {
			h.t.Fatalf("helper exited early; stderr:\n%s", h.stderr.String())
		}
		return r
	case <-time.After(20 * time.Second):
		h.t.Fatalf("helper did not answer in 20s; stderr:\n%s", h.stderr.String())
	}
	return helperResp{}
}

// send sends req and returns the answer, error or not.
func (h *helper) send(req helperReq) helperResp {
	h.t.Helper()
	if err := h.enc.Encode(req); err != nil {
		h.t.Fatalf("send %s to helper: %v", req.Op, err)
	}
	return h.next()
}

// call sends req and fails the test if the helper reports an error.
func (h *helper) call(req helperReq) helperResp {
	h.t.Helper()
	r := h.send(req)
	if r.Err != "" {
		h.t.Fatalf("helper %s: %s", req.Op, r.Err)
	}
	return r
}

func (h *helper) configure(cfg Config) {
	h.t.Helper()
	h.call(helperReq{Op: "configure", Config: &cfg})
}

func (h *helper) stats(peer wgtypes.Key) PeerStats {
	h.t.Helper()
	for _, s := range h.call(helperReq{Op: "stats"}).Stats {
		if s.PublicKey == peer {
			return s
		}
	}
	h.t.Fatalf("stats have no peer %s", peer)
	return PeerStats{}
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func uniqueSuffix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 3)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newNetns creates a network namespace that is deleted when the test ends.
func newNetns(t *testing.T, name string) {
	t.Helper()
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("delete netns %s: %v\n%s", name, err, out)
		}
	})
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
}

func newKey(t *testing.T) wgtypes.Key {
	t.Helper()
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// waitUntil polls cond for at most 5 s and reports failure as failMsg.
func waitUntil(t *testing.T, failMsg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Error(failMsg)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestUserspaceTunnel joins two namespaces over a veth with the userspace
// backend and checks traffic, stats, stock wg, the session-keeping
// reconfigure and Close.
func TestUserspaceTunnel(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()

	sfx := uniqueSuffix(t)
	nsA, nsB := "lldev-"+sfx+"-a", "lldev-"+sfx+"-b"
	ifA, ifB := "lldA"+sfx, "lldB"+sfx
	newNetns(t, nsA)
	newNetns(t, nsB)
	// The veth is created inside nsA with its peer directly in nsB: the
	// root namespace never sees it.
	run(t, "ip", "-n", nsA, "link", "add", "wan0", "type", "veth", "peer", "name", "wan0", "netns", nsB)
	run(t, "ip", "-n", nsA, "addr", "add", "198.51.100.1/24", "dev", "wan0")
	run(t, "ip", "-n", nsB, "addr", "add", "198.51.100.2/24", "dev", "wan0")
	run(t, "ip", "-n", nsA, "link", "set", "wan0", "up")
	run(t, "ip", "-n", nsB, "link", "set", "wan0", "up")

	a := startHelper(t, nsA, ifA, BackendUserspace)
	if a.first.Err != "" {
		t.Fatalf("open %s: %s", ifA, a.first.Err)
	}
	b := startHelper(t, nsB, ifB, BackendUserspace)
	if b.first.Err != "" {
		t.Fatalf("open %s: %s", ifB, b.first.Err)
	}
	for _, h := range []*helper{a, b} {
		if h.first.Backend != BackendUserspace {
			t.Fatalf("Backend() = %q, want userspace", h.first.Backend)
		}
	}
	if out := run(t, "ip", "-n", nsA, "link", "show", ifA); !strings.Contains(out, ",UP") || !strings.Contains(out, "mtu 1420") {
		t.Errorf("%s after Open is not up with MTU 1420:\n%s", ifA, out)
	}

	// The UAPI socket path is shared by all namespaces: the same name in
	// another namespace must be refused while A runs.
	dup := startHelper(t, nsB, ifA, BackendUserspace)
	if !dup.first.InUse || !strings.Contains(dup.first.Err, "in use by a running WireGuard process") {
		t.Errorf("second Open of %s = %q, want in-use error", ifA, dup.first.Err)
	}

	run(t, "ip", "-n", nsA, "addr", "add", "10.77.0.1/24", "dev", ifA)
	run(t, "ip", "-n", nsB, "addr", "add", "10.77.0.2/24", "dev", ifB)

	kA, kB := newKey(t), newKey(t)
	cfgA := Config{PrivateKey: kA, ListenPort: 51820, Peers: []PeerConfig{{
		PublicKey:  kB.PublicKey(),
		Endpoint:   netip.MustParseAddrPort("198.51.100.2:51820"),
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.77.0.2/32")},
	}}}
	cfgB := Config{PrivateKey: kB, ListenPort: 51820, Peers: []PeerConfig{{
		PublicKey:  kA.PublicKey(),
		Endpoint:   netip.MustParseAddrPort("198.51.100.1:51820"),
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.77.0.1/32")},
	}}}
	a.configure(cfgA)
	b.configure(cfgB)
	if s := a.stats(kB.PublicKey()); !s.LastHandshake.IsZero() {
		t.Errorf("LastHandshake before any traffic = %v, want zero", s.LastHandshake)
	}

	b.call(helperReq{Op: "echo", Addr: "10.77.0.2:9000"})
	a.call(helperReq{Op: "roundtrip", Addr: "10.77.0.2:9000"})

	// wireguard-go adds to tx_bytes after the send returns, so the echo
	// can overtake the counter: poll briefly.
	var s1 PeerStats
	waitUntil(t, "A's stats for B never showed bytes both ways", func() bool {
		s1 = a.stats(kB.PublicKey())
		return s1.RxBytes > 0 && s1.TxBytes > 0
	})
	if s1.LastHandshake.IsZero() || s1.RxBytes == 0 || s1.TxBytes == 0 {
		t.Fatalf("after traffic A's stats for B = %+v, want a handshake and bytes both ways", s1)
	}
	if want := netip.MustParseAddrPort("198.51.100.2:51820"); s1.Endpoint != want {
		t.Errorf("A's endpoint for B = %v, want %v", s1.Endpoint, want)
	}
	if s := b.stats(kA.PublicKey()); s.LastHandshake.IsZero() || s.RxBytes == 0 {
		t.Errorf("B's stats for A = %+v, want a handshake and received bytes", s)
	}

	// Stock wg reaches the userspace device through the UAPI socket. The
	// first dump line holds the private key: never print it.
	dump := strings.Split(strings.TrimSpace(run(t, "wg", "show", ifA, "dump")), "\n")
	var peerLine []string
	for _, l := range dump[1:] {
		if f := strings.Split(l, "\t"); f[0] == kB.PublicKey().String() {
			peerLine = f
		}
	}
	switch {
	case len(peerLine) != 8:
		t.Errorf("wg show %s dump has no peer line for B: %q", ifA, dump[1:])
	case peerLine[2] != "198.51.100.2:51820" || peerLine[3] != "10.77.0.2/32" || peerLine[4] == "0" || peerLine[5] == "0":
		t.Errorf("wg show %s dump peer line = %q, want endpoint, allowed IP, handshake and rx", ifA, peerLine)
	}

	// Reload: B unchanged plus a new peer C; twice, as a reload may be.
	// B's session must survive: the traffic after it flows without a new
	// handshake, so B's LastHandshake stays exactly the same.
	kC := newKey(t)
	cfgA2 := cfgA
	cfgA2.Peers = append([]PeerConfig{}, cfgA.Peers...)
	cfgA2.Peers = append(cfgA2.Peers, PeerConfig{
		PublicKey:  kC.PublicKey(),
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.77.0.3/32")},
	})
	a.configure(cfgA2)
	a.configure(cfgA2)
	a.call(helperReq{Op: "roundtrip", Addr: "10.77.0.2:9000"})
	var s2 PeerStats
	waitUntil(t, "A's counters for B did not grow", func() bool {
		s2 = a.stats(kB.PublicKey())
		return s2.RxBytes > s1.RxBytes && s2.TxBytes > s1.TxBytes
	})
	if !s2.LastHandshake.Equal(s1.LastHandshake) {
		t.Errorf("B's LastHandshake changed across a reload that kept B: %v -> %v (session was reset)", s1.LastHandshake, s2.LastHandshake)
	}
	if c := a.stats(kC.PublicKey()); !c.LastHandshake.IsZero() || c.Endpoint.IsValid() {
		t.Errorf("new peer C stats = %+v, want no handshake and no endpoint", c)
	}

	a.call(helperReq{Op: "close"})
	waitUntil(t, "interface "+ifA+" still there 5s after Close", func() bool {
		return exec.Command("ip", "-n", nsA, "link", "show", ifA).Run() != nil
	})
	waitUntil(t, "UAPI socket of "+ifA+" still there 5s after Close", func() bool {
		_, err := os.Lstat(uapiSocketPath(ifA))
		return errors.Is(err, os.ErrNotExist)
	})
	if r := a.send(helperReq{Op: "stats"}); r.Err != net.ErrClosed.Error() {
		t.Errorf("Stats after Close: error %q, want %q", r.Err, net.ErrClosed)
	}
	if r := a.send(helperReq{Op: "close"}); r.Err != net.ErrClosed.Error() {
		t.Errorf("second Close: error %q, want %q", r.Err, net.ErrClosed)
	}
}

// TestOpenAuto checks the real kernel probe: auto picks kernel WireGuard
// when the module is loaded and falls back to userspace otherwise.
func TestOpenAuto(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	sfx := uniqueSuffix(t)
	ns, name := "lldev-"+sfx+"-auto", "lldX"+sfx
	newNetns(t, ns)
	want := BackendUserspace
	if _, err := os.Stat("/sys/module/wireguard"); err == nil {
		want = BackendKernel
	}
	h := startHelper(t, ns, name, BackendAuto)
	if h.first.Err != "" || h.first.Backend != want {
		t.Fatalf("auto Open = backend %q, error %q; want backend %q", h.first.Backend, h.first.Err, want)
	}
	// stderr is copied asynchronously, so the log may trail the answer.
	waitUntil(t, "the backend choice was not logged", func() bool {
		return strings.Contains(h.stderr.String(), "backend="+want)
	})
	if want == BackendUserspace {
		k := startHelper(t, ns, "lldK"+sfx, BackendKernel)
		if !strings.Contains(k.first.Err, "kernel WireGuard is not available") {
			t.Errorf("kernel Open without the module: error %q, want 'kernel WireGuard is not available'", k.first.Err)
		}
	}
}

// TestOpenNameTaken checks that Open refuses an interface it did not make.
func TestOpenNameTaken(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	sfx := uniqueSuffix(t)
	ns, name := "lldev-"+sfx+"-taken", "lldT"+sfx
	newNetns(t, ns)
	run(t, "ip", "-n", ns, "link", "add", name, "type", "veth", "peer", "name", "peer0")
	h := startHelper(t, ns, name, BackendAuto)
	if !h.first.InUse || !strings.Contains(h.first.Err, "already exists (type veth)") {
		t.Fatalf("Open of existing veth %s: in use %v, error %q; want an in-use error naming the type", name, h.first.InUse, h.first.Err)
	}
	if out := run(t, "ip", "-n", ns, "-d", "link", "show", name); !strings.Contains(out, "veth") {
		t.Errorf("the existing interface was changed:\n%s", out)
	}
}
