package wgconf

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"lanlink/internal/plan"
	"lanlink/internal/testutil"
)

// TestStockToolsAcceptRender proves the rendered files work with the stock
// tools: wg-quick strip reads them, and wg-quick up (with userspace
// wireguard-go, inside a network namespace of the test's own) produces the
// peers, allowed IPs and routes of the SiteConfig. Nothing leaves the
// namespace: it has no route out, and every endpoint is a documentation
// address, never a name to resolve.
func TestStockToolsAcceptRender(t *testing.T) {
	testutil.RequireRoot(t)
	for _, tool := range []string{"wg", "wg-quick", "wireguard-go", "ip", "nft", "sysctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not installed; .ci/run installs it", tool)
			}
			t.Skipf("%s not installed (apt-get install wireguard-tools wireguard-go nftables)", tool)
		}
	}
	seeds := map[string]byte{"mesh-gamma": seedGamma, "nat-site": seedNat1, "relay-hub": seedHub, "ipv6": seedAlpha, "mesh-alpha": seedAlpha, "mesh-beta": seedBeta}
	for name := range renderCases() {
		for _, embed := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/embed=%v", name, embed), func(t *testing.T) {
				t.Parallel()
				c := renderCases()[name] // own copy: it is modified below
				seed, ok := seeds[name]
				if !ok {
					t.Fatalf("no key seed for case %s", name)
				}
				// Names resolve through DNS, which must not happen here.
				for i := range c.Peers {
					if c.Peers[i].Endpoint != "" {
						c.Peers[i].Endpoint = fmt.Sprintf("192.0.2.%d:%d", 100+i, 51820+i)
					}
				}
				wgQuickUp(t, c, testKey(seed), embed)
			})
		}
	}
}

func wgQuickUp(t *testing.T, c *plan.SiteConfig, priv wgtypes.Key, embed bool) {
	t.Helper()
	suffix := randHex(t, 4)
	ns, ifname := "lanlink-wgq-"+suffix, "llq"+suffix
	dir := t.TempDir()
	opts := Options{Interface: ifname, KeyFile: filepath.Join(dir, "private.key")}
	if embed {
		k := priv
		opts.PrivateKey = &k
	}
	if err := os.WriteFile(opts.KeyFile, []byte(priv.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Render(&buf, c, opts); err != nil {
		t.Fatalf("Render: %v", err)
	}
	conf := filepath.Join(dir, ifname+".conf")
	if err := os.WriteFile(conf, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	rendered, err := Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}

	// wg-quick strip: what wg setconf gets must parse and hold the peers.
	stripped := run(t, "wg-quick", "strip", conf)
	sf, err := Parse([]byte(stripped))
	if err != nil {
		t.Fatalf("wg-quick strip output does not parse: %v\n%s", err, stripped)
	}
	if diff := cmp.Diff(withoutComments(rendered.Peers), withoutComments(sf.Peers), cmpOpts); diff != "" {
		t.Errorf("peers after wg-quick strip (-want +got):\n%s", diff)
	}

	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() {
		// Down first so PostDown runs, then the namespace; check that
		// the wireguard-go wg-quick started is gone with it.
		nsRunErr(ns, "wg-quick", "down", conf)
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
		waitWireguardGoGone(t, ifname)
	})
	if out, err := nsRunErr(ns, "wg-quick", "up", conf); err != nil {
		t.Fatalf("wg-quick up: %v\n%s\n--- file:\n%s", err, out, buf.Bytes())
	}

	// Interface and peers as wg sees them.
	dump := strings.Split(strings.TrimSpace(nsRun(t, ns, "wg", "show", ifname, "dump")), "\n")
	head := strings.Split(dump[0], "\t")
	if len(head) != 4 || head[1] != c.PublicKey.String() || head[2] != strconv.Itoa(c.ListenPort) {
		t.Errorf("interface: public key or port differ from the site's %s %d (private key loaded?)", c.PublicKey, c.ListenPort)
	}
	type wgPeer struct {
		Endpoint   string
		AllowedIPs []string
		Keepalive  string
	}
	gotPeers := map[string]wgPeer{}
	for _, l := range dump[1:] {
		f := strings.Split(l, "\t")
		if len(f) != 8 {
			t.Fatalf("wg show dump peer line with %d fields", len(f))
		}
		ips := strings.Split(f[3], ",")
		slices.Sort(ips)
		gotPeers[f[0]] = wgPeer{Endpoint: f[2], AllowedIPs: ips, Keepalive: f[7]}
	}
	wantPeers := map[string]wgPeer{}
	for _, p := range c.Peers {
		wp := wgPeer{Endpoint: "(none)", Keepalive: "off"}
		if p.Endpoint != "" {
			wp.Endpoint = p.Endpoint
		}
		if p.PersistentKeepalive > 0 {
			wp.Keepalive = strconv.Itoa(int(p.PersistentKeepalive / time.Second))
		}
		for _, a := range p.AllowedIPs {
			wp.AllowedIPs = append(wp.AllowedIPs, a.Masked().String())
		}
		slices.Sort(wp.AllowedIPs)
		wantPeers[p.PublicKey.String()] = wp
	}
	if diff := cmp.Diff(wantPeers, gotPeers); diff != "" {
		t.Errorf("wg show peers (-want +got):\n%s", diff)
	}

	// Routes: the interface's own prefixes and exactly the SiteConfig's.
	var want []string
	for _, a := range c.Addresses {
		want = append(want, a.Masked().String())
	}
	for _, r := range c.Routes {
		want = append(want, r.String())
	}
	slices.Sort(want)
	var got []string
	for _, fam := range []string{"-4", "-6"} {
		for _, l := range strings.Split(nsRun(t, ns, "ip", fam, "route", "show", "dev", ifname), "\n") {
			fs := strings.Fields(l)
			if len(fs) == 0 || fs[0] == "fe80::/64" {
				continue
			}
			p, err := parsePrefix(fs[0])
			if err != nil {
				t.Fatalf("route line %q: %v", l, err)
			}
			got = append(got, p.String())
		}
	}
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("routes on %s (-want +got):\n%s", ifname, diff)
	}

	mtu := strings.TrimSpace(nsRun(t, ns, "cat", "/sys/class/net/"+ifname+"/mtu"))
	if mtu != strconv.Itoa(c.MTU) {
		t.Errorf("MTU %s, want %d", mtu, c.MTU)
	}
	if fwd := strings.TrimSpace(nsRun(t, ns, "sysctl", "-n", "net.ipv4.ip_forward")); fwd != "1" {
		t.Errorf("net.ipv4.ip_forward = %s in the namespace, want 1", fwd)
	}
	if c.Masquerade || c.MSSClamp {
		table := nsRun(t, ns, "nft", "list", "table", "inet", "lanlink_"+ifname)
		for want, on := range map[string]bool{"masquerade": c.Masquerade, "maxseg size set rt mtu": c.MSSClamp} {
			if on && !strings.Contains(table, want) {
				t.Errorf("nft table lacks %q:\n%s", want, table)
			}
		}
		if out, err := nsRunErr(ns, "wg-quick", "down", conf); err != nil {
			t.Fatalf("wg-quick down: %v\n%s", err, out)
		}
		if _, err := nsRunErr(ns, "nft", "list", "table", "inet", "lanlink_"+ifname); err == nil {
			t.Error("nft table still there after wg-quick down")
		}
	}
}

func withoutComments(ps []Peer) []Peer {
	out := slices.Clone(ps)
	for i := range out {
		out[i].Comments = nil
	}
	return out
}

func randHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)[:n*2]
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func nsRun(t *testing.T, ns, name string, args ...string) string {
	t.Helper()
	out, err := nsRunErr(ns, name, args...)
	if err != nil {
		t.Fatalf("in %s: %s %s: %v\n%s", ns, name, strings.Join(args, " "), err, out)
	}
	return out
}

func nsRunErr(ns, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
	cmd.Env = append(os.Environ(),
		"WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go",
		"WG_ENDPOINT_RESOLUTION_RETRIES=0",
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// wireguard-go daemonizes and keeps the output pipes open; do not
	// wait for them past the command's own exit.
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if errors.Is(err, exec.ErrWaitDelay) {
		err = nil
	}
	return out.String(), err
}

// waitWireguardGoGone waits (bounded) for the wireguard-go that wg-quick
// started for ifname to exit, as it does when its TUN device goes away
// with the namespace; a straggler is killed by PID. The interface name is
// unique to this test, so the process is ours.
func waitWireguardGoGone(t *testing.T, ifname string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids := wireguardGoPIDs(ifname)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, pid := range pids {
				if p, err := os.FindProcess(pid); err == nil {
					p.Kill()
				}
			}
			t.Errorf("wireguard-go %s still running 5s after its namespace was deleted; killed %v", ifname, pids)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func wireguardGoPIDs(ifname string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) == 2 && filepath.Base(args[0]) == "wireguard-go" && args[1] == ifname {
			pids = append(pids, pid)
		}
	}
	return pids
}
