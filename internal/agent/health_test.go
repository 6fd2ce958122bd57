package agent

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"lanlink/internal/device"
	"lanlink/internal/keys"
	"lanlink/internal/plan"
)

// startIdle starts an agent without its loop, so that a test may call the
// loop's methods (checkHealth) itself without racing the tickers.
func startIdle(t *testing.T, n *testNet, sys *fakeSystem) *Agent {
	t.Helper()
	a, err := Start(context.Background(), Options{PlanPath: n.planPath, KeyPath: n.keyPath, Interface: "lltest0", StateDir: filepath.Join(n.dir, "run"), WatchEvery: -1, System: sys})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(a.teardown)
	return a
}

// keepalives lists "site=seconds" for every peer of a device config, and
// whether any endpoint is set.
func keepalives(n *testNet, c device.Config) (map[string]int, bool) {
	names := map[wgtypes.Key]string{}
	for name, k := range n.pubs {
		names[k] = name
	}
	out := map[string]int{}
	endpoints := false
	for _, p := range c.Peers {
		out[names[p.PublicKey]] = int(p.PersistentKeepalive.Seconds())
		endpoints = endpoints || p.Endpoint.IsValid()
	}
	return out, endpoints
}

// A fresh agent makes its device handshake with every peer that has an
// endpoint, so that peers still holding a session with the agent's
// previous incarnation (kill -9, crash) switch at once: keepalive switched
// on, then back to the plan's value, without touching endpoints.
func TestStartAnnouncesToPeersWithEndpoints(t *testing.T) {
	sites := append([]plan.SiteSpec(nil), threeSites...)
	sites[1].PublicKey = topKey(0).String() // above ours: we break ties, at once
	n := newTestNet(t, sites...)
	sys := newFakeSystem()
	sys.setName("beta.example.test", "198.51.100.20")
	startIdle(t, n, sys)
	cfgs := sys.dev.Configs()
	if len(cfgs) != 3 {
		t.Fatalf("device configured %d times, want 3 (site, keepalive on, keepalive off)", len(cfgs))
	}
	on, eps := keepalives(n, cfgs[1])
	if diff := cmp.Diff(map[string]int{"beta": 25, "gamma": 0}, on); diff != "" || eps {
		t.Errorf("announce (-want +got):\n%s\nendpoints set: %v", diff, eps)
	}
	off, eps := keepalives(n, cfgs[2])
	if diff := cmp.Diff(map[string]int{"beta": 0, "gamma": 0}, off); diff != "" || eps {
		t.Errorf("after announce (-want +got):\n%s\nendpoints set: %v", diff, eps)
	}
}

func TestReloadAnnounces(t *testing.T) {
	tests := []struct {
		name string
		edit func(t *testing.T, n *testNet)
		want map[string]int
	}{
		{"only to a new peer", func(t *testing.T, n *testNet) {
			k := topKey(1)
			n.pubs["delta"] = k
			n.edit(t, func(d []byte) ([]byte, error) {
				out, _, err := plan.AddSite(n.planPath, d, plan.SiteSpec{Name: "delta", PublicKey: k.String(), LANs: []string{"192.168.40.0/24"}, Endpoint: "203.0.113.4:51820"})
				return out, err
			})
		}, map[string]int{"beta": 0, "gamma": 0, "delta": 25}},
		{"to everyone after a key change", func(t *testing.T, n *testNet) {
			pub, err := keys.Generate(n.keyPath, true)
			if err != nil {
				t.Fatal(err)
			}
			s := pub.String()
			n.edit(t, func(d []byte) ([]byte, error) {
				return plan.SetSite(n.planPath, d, "alpha", plan.SiteChange{PublicKey: &s})
			})
		}, map[string]int{"beta": 25, "gamma": 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sites := append([]plan.SiteSpec(nil), threeSites...)
			sites[1].PublicKey = topKey(0).String() // above ours, also after a key change
			n := newTestNet(t, sites...)
			sys := newFakeSystem()
			sys.setName("beta.example.test", "198.51.100.20")
			_, c := startAgent(t, n, sys)
			before := len(sys.dev.Configs())
			tt.edit(t, n)
			if _, err := c.Reload(context.Background()); err != nil {
				t.Fatal(err)
			}
			cfgs := sys.dev.Configs()[before:]
			if len(cfgs) != 3 {
				t.Fatalf("reload configured the device %d times, want 3 (plan, keepalive on, off)", len(cfgs))
			}
			key, _ := keys.Load(n.keyPath)
			if cfgs[0].PrivateKey != key {
				t.Error("device does not have the current private key")
			}
			on, _ := keepalives(n, cfgs[1])
			if diff := cmp.Diff(tt.want, on); diff != "" {
				t.Errorf("announce (-want +got):\n%s", diff)
			}
		})
	}
}

// A peer with a DNS endpoint that we send to but that stops answering is
// re-resolved after unresponsiveAfter, then at most every reresolveGap
// while it stays silent; one that answers, or one we do not send to, is
// left alone.
func TestSilentPeerIsReresolved(t *testing.T) {
	n := newTestNet(t, threeSites...)
	sys := newFakeSystem()
	sys.setName("beta.example.test", "198.51.100.20")
	a := startIdle(t, n, sys)
	beta := n.pubs["beta"]
	t0 := time.Now()
	hs := t0.Add(-30 * time.Second) // recent: not the rekey-window path
	tick := func(at time.Duration, rx, tx int64) {
		sys.dev.SetStats([]device.PeerStats{{PublicKey: beta, LastHandshake: hs, RxBytes: rx, TxBytes: tx}})
		a.checkHealth(context.Background(), t0.Add(at))
	}
	endpoint := func() string {
		cur, _ := sys.dev.Current()
		for _, p := range cur.Peers {
			if p.PublicKey == beta && p.Endpoint.IsValid() {
				return p.Endpoint.String()
			}
		}
		return ""
	}
	tick(0, 100, 100)
	sys.setName("beta.example.test", "203.0.113.20")
	configs := len(sys.dev.Configs())

	tick(2*time.Second, 200, 200) // answering
	tick(4*time.Second, 200, 200) // idle: we send nothing
	tick(8*time.Second, 200, 200)
	if got := len(sys.dev.Configs()); got != configs {
		t.Fatalf("a peer that answers or is idle was re-resolved (%d configs, want %d)", got, configs)
	}
	tick(10*time.Second, 200, 300) // sending, silent for 8 s
	if got := endpoint(); got != "203.0.113.20:51820" {
		t.Fatalf("silent peer's endpoint = %q, want the re-resolved 203.0.113.20:51820", got)
	}
	sys.setName("beta.example.test", "203.0.113.21")
	configs = len(sys.dev.Configs())
	tick(12*time.Second, 200, 400) // still silent, but looked up 2 s ago
	if got := len(sys.dev.Configs()); got != configs {
		t.Errorf("re-resolved again within %v", reresolveGap)
	}
	tick(20*time.Second, 200, 500)
	if got := endpoint(); got != "203.0.113.21:51820" {
		t.Errorf("after %v: endpoint = %q, want 203.0.113.21:51820", reresolveGap, got)
	}

	// It answers again, then moves again within the gap: a new silence
	// gets its first lookup after unresponsiveAfter, not reresolveGap.
	tick(21*time.Second, 300, 600)
	sys.setName("beta.example.test", "203.0.113.22")
	tick(22*time.Second, 300, 700)
	tick(21*time.Second+unresponsiveAfter, 300, 800)
	if got := endpoint(); got != "203.0.113.22:51820" {
		t.Errorf("new silence %v after the peer answered: endpoint = %q, want 203.0.113.22:51820", unresponsiveAfter, got)
	}
}

// SIGHUP reaches the agent as Options.Reload: it reloads without a file
// watcher.
func TestReloadChannel(t *testing.T) {
	n := newTestNet(t, threeSites...)
	sys := newFakeSystem()
	reload := make(chan struct{})
	_, c := startAgent(t, n, sys, func(o *Options) { o.Reload = reload })
	n.edit(t, func(d []byte) ([]byte, error) { return plan.RemoveSite(n.planPath, d, "gamma") })
	reload <- struct{}{}
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Generation != 2 || len(st.Peers) != 1 {
		t.Errorf("after a reload signal: generation %d, %d peers; want 2, 1", st.Generation, len(st.Peers))
	}
}

// Crossed handshakes: we keep hearing beta's handshake messages but no
// session comes of it. Exactly one side restarts its handshake: the one
// with the smaller public key when both have endpoints.
func TestCrossedHandshakesAreRestartedByOneSide(t *testing.T) {
	low, high := bottomKey(0), topKey(0)
	for _, tt := range []struct {
		name    string
		betaKey wgtypes.Key
		want    bool
	}{
		{"our key is smaller: we restart", high, true},
		{"our key is larger: beta restarts", low, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sites := append([]plan.SiteSpec(nil), threeSites...)
			sites[1].PublicKey = tt.betaKey.String()
			sites[1].Endpoint = "198.51.100.20:51820"
			n := newTestNet(t, sites...)
			sys := newFakeSystem()
			a := startIdle(t, n, sys)
			t0 := time.Now()
			tick := func(at time.Duration, rx int64, hs time.Time) {
				sys.dev.SetStats([]device.PeerStats{{PublicKey: tt.betaKey, LastHandshake: hs, RxBytes: rx, TxBytes: rx + 92}})
				a.checkHealth(context.Background(), t0.Add(at))
			}
			before := len(sys.dev.Configs())
			tick(0, 148, time.Time{})
			tick(crossedAfter/2, 296, time.Time{})
			if got := len(sys.dev.Configs()); got != before {
				t.Fatalf("restarted after %v, sooner than %v (%d configs)", crossedAfter/2, crossedAfter, got-before)
			}
			tick(crossedAfter+time.Millisecond, 444, time.Time{})
			cfgs := sys.dev.Configs()[before:]
			if !tt.want {
				if len(cfgs) != 0 {
					t.Fatalf("the side with the larger key reconfigured the device %d times", len(cfgs))
				}
				return
			}
			if len(cfgs) < 2 {
				t.Fatalf("crossed handshakes: %d device configs, want the peer dropped and put back", len(cfgs))
			}
			has := func(c device.Config) (bool, string) {
				for _, p := range c.Peers {
					if p.PublicKey == tt.betaKey {
						return true, p.Endpoint.String()
					}
				}
				return false, ""
			}
			if in, _ := has(cfgs[0]); in {
				t.Error("first config still has beta: its handshake state was not dropped")
			}
			if in, ep := has(cfgs[1]); !in || ep != "198.51.100.20:51820" {
				t.Errorf("beta not put back with its endpoint: present %v, endpoint %q", in, ep)
			}
			// A session ends the episode; no second restart soon after.
			n2 := len(sys.dev.Configs())
			tick(6*time.Second, 800, t0.Add(5*time.Second))
			tick(20*time.Second, 900, t0.Add(5*time.Second))
			if got := len(sys.dev.Configs()); got != n2 {
				t.Errorf("restarted again with a live session (%d more configs)", got-n2)
			}
		})
	}
}

// A peer we never hear from is down or unreachable, not crossed: nothing
// to restart.
func TestSilentPeerIsNotRestarted(t *testing.T) {
	high := topKey(0)
	sites := append([]plan.SiteSpec(nil), threeSites...)
	sites[1].PublicKey = high.String()
	sites[1].Endpoint = "198.51.100.20:51820"
	n := newTestNet(t, sites...)
	sys := newFakeSystem()
	a := startIdle(t, n, sys)
	t0 := time.Now()
	before := len(sys.dev.Configs())
	for i := 0; i <= 10; i++ {
		sys.dev.SetStats([]device.PeerStats{{PublicKey: high, TxBytes: int64(148 * i)}})
		a.checkHealth(context.Background(), t0.Add(time.Duration(i)*2*time.Second))
	}
	if got := len(sys.dev.Configs()); got != before {
		t.Errorf("a peer that never answered was restarted (%d configs)", got-before)
	}
}

// topKey is a public key above any generated one (n steps below the top),
// bottomKey one below any: a test decides which side breaks ties.
func topKey(n byte) wgtypes.Key {
	var k wgtypes.Key
	for i := range k {
		k[i] = 0xff
	}
	k[31] -= n
	return k
}

func bottomKey(n byte) wgtypes.Key {
	var k wgtypes.Key
	k[31] = 1 + n
	return k
}

// The side of a pair that does not break ties does not announce at once:
// after announceStagger it asks for a handshake only if none happened
// meanwhile, so that two gateways started together do not cross theirs.
func TestAnnounceStaggered(t *testing.T) {
	for _, tt := range []struct {
		name      string
		handshake bool // beta's handshake completed while we waited
	}{
		{"no handshake meanwhile: announce", false},
		{"handshake meanwhile: nothing to do", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sites := append([]plan.SiteSpec(nil), threeSites...)
			sites[1].PublicKey = bottomKey(0).String() // below ours: beta breaks ties
			sites[1].Endpoint = "198.51.100.20:51820"
			n := newTestNet(t, sites...)
			sys := newFakeSystem()
			a := startIdle(t, n, sys)
			if got := len(sys.dev.Configs()); got != 1 {
				t.Fatalf("device configured %d times at start, want 1 (the site; beta's announce deferred)", got)
			}
			var hs time.Time
			if tt.handshake {
				hs = time.Now().Add(time.Millisecond)
			}
			sys.dev.SetStats([]device.PeerStats{{PublicKey: bottomKey(0), LastHandshake: hs}})
			a.announceDue()
			cfgs := sys.dev.Configs()[1:]
			if tt.handshake {
				if len(cfgs) != 0 {
					t.Errorf("announced %d configs after a handshake had completed", len(cfgs))
				}
				return
			}
			if len(cfgs) != 2 {
				t.Fatalf("deferred announce configured the device %d times, want 2 (keepalive on, off)", len(cfgs))
			}
			if on, _ := keepalives(n, cfgs[0]); on["beta"] != 25 || on["gamma"] != 0 {
				t.Errorf("deferred announce: %v, want beta only", on)
			}
			a.announceDue() // once only
			if got := len(sys.dev.Configs()); got != 3 {
				t.Errorf("a second announceDue reconfigured the device (%d configs)", got)
			}
		})
	}
}
