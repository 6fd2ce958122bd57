package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"lanlink/internal/agent"
	"lanlink/internal/plan"
)

func byID(rs []Result) map[string]Result {
	m := map[string]Result{}
	for _, r := range rs {
		m[r.ID] = r
	}
	return m
}

func statuses(rs []Result) map[string]Status {
	m := map[string]Status{}
	for _, r := range rs {
		m[r.ID] = r.Status
	}
	return m
}

func run(t *testing.T, f *fakeObserver, mod func(*Options)) []Result {
	t.Helper()
	o := Options{Observer: f, PlanPath: "/etc/lanlink/network.toml"}
	if mod != nil {
		mod(&o)
	}
	return Run(context.Background(), o)
}

func TestHealthy(t *testing.T) {
	rs := run(t, healthy(t), nil)
	want := map[string]Status{
		"plan": OK, "site": OK, "agent": OK, "listen-port": OK, "forwarding": OK, "rp-filter": OK,
		"firewall": OK, "overlap": OK, "handshake:beta": OK, "mtu:beta": OK, "tcp-buffers": OK, "congestion-control": OK,
	}
	if diff := cmp.Diff(want, statuses(rs)); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	if Failed(rs) {
		t.Error("Failed = true for a healthy gateway")
	}
	var ids []string
	for _, r := range rs {
		ids = append(ids, r.ID)
	}
	if diff := cmp.Diff([]string{"plan", "site", "agent", "listen-port", "forwarding", "rp-filter", "firewall", "overlap",
		"handshake:beta", "mtu:beta", "tcp-buffers", "congestion-control"}, ids); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}

// TestBroken breaks one thing at a time: the check that names it gets the
// verdict, and its detail and fix hold the telling words.
func TestBroken(t *testing.T) {
	drop := "drop"
	tests := []struct {
		name       string
		breakIt    func(*fakeObserver)
		opts       func(*Options)
		id         string
		status     Status
		detail     []string
		fix        []string
		othersSame bool // every other check stays as in the healthy run
	}{
		{
			name: "plan invalid",
			breakIt: func(f *fakeObserver) {
				f.plan, f.planErr = nil, plan.Problems{{File: "network.toml", Line: 3, Msg: "bad tunnel"}}
			},
			id: "plan", status: Fail, detail: []string{"bad tunnel"}, fix: []string{"lanlink check -f /etc/lanlink/network.toml"},
		},
		{
			name: "key not in plan",
			breakIt: func(f *fakeObserver) {
				f.status = nil
				f.key[0] ^= 1
			},
			id: "site", status: Fail, detail: []string{"is not in the plan"}, fix: []string{"lanlink site set NAME --public-key"},
		},
		{
			name:    "agent down",
			breakIt: func(f *fakeObserver) { f.status, f.udpBound = nil, nil },
			id:      "agent", status: Fail, detail: []string{"no lanlink agent"}, fix: []string{"lanlink up -f /etc/lanlink/network.toml --interface lanlink0"},
		},
		{
			name:    "port taken while agent down",
			breakIt: func(f *fakeObserver) { f.status = nil },
			id:      "listen-port", status: Fail, detail: []string{"another program holds UDP port 51820"}, fix: []string{"ss -ulpn"},
		},
		{
			name:    "agent runs but port not bound",
			breakIt: func(f *fakeObserver) { f.udpBound = nil },
			id:      "listen-port", status: Fail, detail: []string{"nothing is bound to UDP port 51820"}, othersSame: true,
		},
		{
			name:    "forwarding off",
			breakIt: func(f *fakeObserver) { f.sysctls["net.ipv4.ip_forward"] = "0" },
			id:      "forwarding", status: Fail, detail: []string{"net.ipv4.ip_forward = 0", "something turned it off"},
			fix: []string{"sysctl -w net.ipv4.ip_forward=1", "/etc/sysctl.d/90-lanlink.conf", "  net.ipv4.ip_forward = 1"}, othersSame: true,
		},
		{
			name:    "rp_filter strict, paths symmetric",
			breakIt: func(f *fakeObserver) { f.sysctls["net.ipv4.conf.all.rp_filter"] = "1" },
			id:      "rp-filter", status: Warn, detail: []string{"strict rp_filter (1) on eth0, lanlink0", "asymmetric"},
			fix: []string{"sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.eth0.rp_filter=2 net.ipv4.conf.lanlink0.rp_filter=2", "loose"}, othersSame: true,
		},
		{
			name: "rp_filter strict on the tunnel drops remote LAN",
			breakIt: func(f *fakeObserver) {
				f.sysctls["net.ipv4.conf.lanlink0.rp_filter"] = "1"
				f.rpDrop = map[string]bool{"lanlink0 192.168.20.1": true}
			},
			id: "rp-filter", status: Fail, detail: []string{"on lanlink0 drops packets from 192.168.20.0/24 arriving on lanlink0"},
			fix: []string{"net.ipv4.conf.lanlink0.rp_filter=2"}, othersSame: true,
		},
		{
			name: "nftables forward policy drop",
			breakIt: func(f *fakeObserver) {
				f.chains = []FirewallChain{{Source: "nftables", Family: "inet", Table: "filter", Chain: "forward", Policy: drop,
					Rules: []FirewallRule{{EstablishedOnly: true, Verdict: "accept"}}}}
			},
			id: "firewall", status: Fail, detail: []string{"nftables chain inet filter forward drops new connections eth0 → lanlink0 (policy drop) and lanlink0 → eth0 (policy drop)"},
			fix: []string{`nft insert rule inet filter forward iifname "eth0" oifname "lanlink0" accept`, `nft insert rule inet filter forward iifname "lanlink0" oifname "eth0" accept`}, othersSame: true,
		},
		{
			name: "nftables drop rule one way",
			breakIt: func(f *fakeObserver) {
				f.chains = []FirewallChain{{Source: "nftables", Family: "ip", Table: "fw", Chain: "fwd", Policy: "accept",
					Rules: []FirewallRule{{IIF: "lanlink0", Verdict: "drop"}}}}
			},
			id: "firewall", status: Fail, detail: []string{"lanlink0 → eth0 (a rule that drops it)"}, othersSame: true,
		},
		{
			name: "nftables accepts tunnel traffic before policy drop",
			breakIt: func(f *fakeObserver) {
				f.chains = []FirewallChain{{Source: "nftables", Family: "inet", Table: "filter", Chain: "forward", Policy: drop,
					Rules: []FirewallRule{{IIF: "eth0", OIF: "lanlink0", Verdict: "accept"}, {IIF: "lanlink0", Verdict: "accept"}}}}
			},
			id: "firewall", status: OK, othersSame: true,
		},
		{
			name: "conditional accept makes it a warning",
			breakIt: func(f *fakeObserver) {
				f.chains = []FirewallChain{{Source: "nftables", Family: "inet", Table: "filter", Chain: "forward", Policy: drop,
					Rules: []FirewallRule{{Conditional: true, Verdict: "accept"}}}}
			},
			id: "firewall", status: Warn, detail: []string{"unless one of its rules lanlink cannot evaluate accepts them"}, othersSame: true,
		},
		{
			name: "iptables-nft FORWARD policy drop",
			breakIt: func(f *fakeObserver) {
				f.chains = []FirewallChain{{Source: "nftables", Family: "ip", Table: "filter", Chain: "FORWARD", Policy: drop}}
			},
			id: "firewall", status: Fail, fix: []string{"iptables -I FORWARD -i eth0 -o lanlink0 -j ACCEPT", "iptables -I FORWARD -i lanlink0 -o eth0 -j ACCEPT"}, othersSame: true,
		},
		{
			name: "iptables-legacy policy drop",
			breakIt: func(f *fakeObserver) {
				f.chains = []FirewallChain{{Source: "iptables-legacy", Family: "ip", Table: "filter", Chain: "FORWARD", Policy: drop, Opaque: true}}
			},
			id: "firewall", status: Fail, detail: []string{"iptables-legacy filter FORWARD drops"}, fix: []string{"iptables-legacy -I FORWARD -i eth0 -o lanlink0 -j ACCEPT"}, othersSame: true,
		},
		{
			name: "iptables-legacy established-only rule before policy drop",
			breakIt: func(f *fakeObserver) {
				f.chains = []FirewallChain{{Source: "iptables-legacy", Family: "ip", Table: "filter", Chain: "FORWARD", Policy: drop, RuleCount: 1,
					Rules: []FirewallRule{{EstablishedOnly: true, Verdict: "accept"}}}}
			},
			id: "firewall", status: Fail, detail: []string{"iptables-legacy filter FORWARD drops new connections eth0 → lanlink0 (policy drop) and lanlink0 → eth0 (policy drop)"},
			fix: []string{"iptables-legacy -I FORWARD -i eth0 -o lanlink0 -j ACCEPT", "iptables-legacy -I FORWARD -i lanlink0 -o eth0 -j ACCEPT"}, othersSame: true,
		},
		{
			name: "iptables-legacy with doctor's fix applied",
			breakIt: func(f *fakeObserver) {
				f.chains = []FirewallChain{{Source: "iptables-legacy", Family: "ip", Table: "filter", Chain: "FORWARD", Policy: drop, RuleCount: 3,
					Rules: []FirewallRule{{IIF: "lanlink0", OIF: "eth0", Verdict: "accept"}, {IIF: "eth0", OIF: "lanlink0", Verdict: "accept"}, {EstablishedOnly: true, Verdict: "accept"}}}}
			},
			id: "firewall", status: OK, othersSame: true,
		},
		{
			name: "iptables-legacy rules lanlink cannot read",
			breakIt: func(f *fakeObserver) {
				f.chains = []FirewallChain{{Source: "iptables-legacy", Family: "ip", Table: "filter", Chain: "FORWARD", Policy: "accept", Opaque: true, RuleCount: 3}}
			},
			id: "firewall", status: Warn, detail: []string{"3 rules lanlink cannot read", "iptables-legacy -L FORWARD -v -n"}, othersSame: true,
		},
		{
			name: "connected network overlaps a remote LAN",
			breakIt: func(f *fakeObserver) {
				f.ifaces = append(f.ifaces, Interface{Name: "docker0", Addrs: []netip.Prefix{netip.MustParsePrefix("192.168.20.1/24")}})
			},
			id: "overlap", status: Fail, detail: []string{"docker0 has 192.168.20.1/24 (network 192.168.20.0/24), which overlaps beta's LAN 192.168.20.0/24"},
			fix: []string{"move docker0 off 192.168.20.0/24"}, othersSame: true,
		},
		{
			name: "default gateway inside the tunnel network",
			breakIt: func(f *fakeObserver) {
				f.routes[0] = Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: netip.MustParseAddr("10.255.0.200"), Dev: "wan0"}
			},
			id: "overlap", status: Fail, detail: []string{"default route's gateway 10.255.0.200"}, othersSame: true,
		},
		{
			name: "not on the site's LAN",
			breakIt: func(f *fakeObserver) {
				f.ifaces[1].Addrs = []netip.Prefix{netip.MustParsePrefix("192.168.99.2/24")}
			},
			id: "overlap", status: Warn, detail: []string{"no interface of this host has an address in alpha's LAN 192.168.10.0/24"},
		},
		{
			name: "peer never answers: port forward",
			breakIt: func(f *fakeObserver) {
				f.status.Peers[0] = agent.PeerStatus{Site: "beta", Endpoint: "beta.example.com:51821", TxBytes: 740, State: agent.PeerNever}
				f.pathMTU = nil
			},
			id: "handshake:beta", status: Fail, detail: []string{"never had a handshake", "Most likely the port forward of UDP 51821 to beta's gateway", "key"},
			fix: []string{"at beta's office: forward UDP 51821", "lanlink doctor` on beta's gateway"},
		},
		{
			name: "peer answers but no session: key mismatch",
			breakIt: func(f *fakeObserver) {
				f.status.Peers[0] = agent.PeerStatus{Site: "beta", Endpoint: "beta.example.com:51821", TxBytes: 740, RxBytes: 92, State: agent.PeerNever}
				f.pathMTU = nil
			},
			id: "handshake:beta", status: Fail, detail: []string{"the keys do not match"}, fix: []string{"lanlink pubkey"},
		},
		{
			name: "peer endpoint does not resolve",
			breakIt: func(f *fakeObserver) {
				f.status.Peers[0] = agent.PeerStatus{Site: "beta", Endpoint: "beta.example.com:51821", State: agent.PeerNever}
				f.resolve = map[string]error{"beta.example.com": errors.New("no such host")}
				f.pathMTU = nil
			},
			id: "handshake:beta", status: Fail, detail: []string{"endpoint host beta.example.com does not resolve"}, fix: []string{"lanlink site set beta --endpoint HOST:PORT"},
		},
		{
			name:    "path MTU black hole",
			breakIt: func(f *fakeObserver) { f.pathMTU[tunBeta] = 1340 },
			id:      "mtu:beta", status: Fail, detail: []string{"path MTU to beta is 1340 bytes but lanlink0's MTU is 1420"},
			fix: []string{"set `mtu = 1340` in the [network] section of /etc/lanlink/network.toml"}, othersSame: true,
		},
		{
			name: "small TCP buffers for the BDP",
			breakIt: func(f *fakeObserver) {
				f.rtt = 80 * time.Millisecond
				f.sysctls["net.ipv4.tcp_rmem"] = "4096 131072 6291456"
				f.sysctls["net.core.rmem_max"] = "212992"
			},
			id: "tcp-buffers", status: Warn,
			// 1 Gbit/s × 80 ms = 10 MB; twice that rounded up to MiB.
			detail: []string{"BDP 1 Gbit/s × 80ms = 9.5 MiB", "net.core.rmem_max = 212992", "net.ipv4.tcp_rmem max = 6291456"},
			fix:    []string{"sysctl -w net.core.rmem_max=20971520", `sysctl -w net.ipv4.tcp_rmem="4096 131072 20971520"`, "net.ipv4.tcp_rmem = 4096 131072 20971520"},
		},
		{
			name:    "cubic on a long fat link",
			breakIt: func(f *fakeObserver) { f.rtt = 80 * time.Millisecond },
			id:      "congestion-control", status: Warn, detail: []string{"cubic with a 9.5 MiB BDP"},
			fix: []string{"net.ipv4.tcp_congestion_control = bbr", "net.core.default_qdisc = fq"},
		},
		{
			name: "rate flag scales the BDP",
			breakIt: func(f *fakeObserver) {
				f.rtt = 8 * time.Millisecond
				f.sysctls["net.ipv4.tcp_wmem"] = "4096 16384 4194304"
			},
			opts: func(o *Options) { o.Rate = 10e9 },
			id:   "tcp-buffers", status: Warn, detail: []string{"BDP 10 Gbit/s × 8ms", "net.ipv4.tcp_wmem max = 4194304"},
		},
	}
	base := statuses(run(t, healthy(t), nil))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := healthy(t)
			tt.breakIt(f)
			rs := run(t, f, tt.opts)
			r, ok := byID(rs)[tt.id]
			if !ok {
				t.Fatalf("no check %s in %+v", tt.id, rs)
			}
			if r.Status != tt.status {
				t.Errorf("%s status = %s, want %s (detail %q)", tt.id, r.Status, tt.status, r.Detail)
			}
			for _, s := range tt.detail {
				if !strings.Contains(r.Detail, s) {
					t.Errorf("%s detail lacks %q:\n%s", tt.id, s, r.Detail)
				}
			}
			for _, s := range tt.fix {
				if !strings.Contains(r.Fix, s) {
					t.Errorf("%s fix lacks %q:\n%s", tt.id, s, r.Fix)
				}
			}
			if got, want := Failed(rs), tt.status == Fail; got != want {
				t.Errorf("Failed = %v, want %v", got, want)
			}
			if tt.othersSame {
				got := statuses(rs)
				delete(got, tt.id)
				want := map[string]Status{}
				for k, v := range base {
					if k != tt.id {
						want[k] = v
					}
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("other checks changed (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestPathMTUSearch(t *testing.T) {
	for _, tt := range []struct {
		name        string
		path, ifMTU int
		want        int
		wantOK      bool
		maxPings    int
	}{
		{"full size passes", 1420, 0, 1420, true, 1},
		{"black hole", 1340, 0, 1340, true, 30},
		{"one below", 1419, 0, 1419, true, 30},
		{"local mtu refuses", 9000, 1400, 1400, true, 30},
		{"nothing passes", 0, 0, 0, false, 4},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := healthy(t)
			f.pathMTU[tunBeta], f.ifMTU = tt.path, tt.ifMTU
			got, ok := pathMTU(context.Background(), f, tunBeta, 576, 1420, time.Second)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("pathMTU = %d, %v; want %d, %v", got, ok, tt.want, tt.wantOK)
			}
			if f.pings > tt.maxPings {
				t.Errorf("%d pings, want at most %d", f.pings, tt.maxPings)
			}
		})
	}
}

func TestNoProbeSendsNothing(t *testing.T) {
	f := healthy(t)
	rs := run(t, f, func(o *Options) { o.NoProbe = true })
	if f.pings != 0 {
		t.Errorf("%d pings with NoProbe", f.pings)
	}
	if got := byID(rs)["mtu:beta"].Status; got != Skip {
		t.Errorf("mtu:beta = %s, want skip", got)
	}
}

func TestWriteText(t *testing.T) {
	var b bytes.Buffer
	WriteText(&b, []Result{
		{ID: "plan", Title: "plan is valid", Status: OK, Detail: "fine", Fix: "never shown"},
		{ID: "forwarding", Title: "IP forwarding is on", Status: Fail, Detail: "off", Fix: "line one\nline two"},
		{ID: "mtu:b", Title: "full-size packets reach b", Status: Skip, Detail: "probes disabled"},
	})
	want := `✓ plan is valid [plan]: fine
✗ IP forwarding is on [forwarding]: off
    line one
    line two
- full-size packets reach b [mtu:b]: probes disabled

1 ok, 0 warnings, 1 failed, 1 skipped
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("WriteText (-want +got):\n%s", diff)
	}
}

func TestWriteJSON(t *testing.T) {
	var b bytes.Buffer
	rs := []Result{{ID: "agent", Title: "agent is running", Status: Fail, Detail: "d", Fix: "f"}}
	if err := WriteJSON(&b, rs); err != nil {
		t.Fatal(err)
	}
	var got Report
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Report{OK: false, Checks: rs}, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestRoutes(t *testing.T) {
	f := healthy(t)
	f.routeOK[netip.MustParseAddr("192.168.20.1")] = false
	srs, err := Routes(context.Background(), f.plan, RoutesOptions{Observer: f})
	if err != nil {
		t.Fatal(err)
	}
	want := []SiteRoutes{
		{Site: "alpha", Gateway: gwAlpha, Router: rtrAlpha, Routes: []RouterRoute{
			{Dst: netip.MustParsePrefix("192.168.20.0/24"), Via: gwAlpha, For: "beta", State: RouteMissing, Why: "the router's reply to 192.168.20.1 did not come back through this gateway"},
			{Dst: netip.MustParsePrefix("10.255.0.0/24"), Via: gwAlpha, For: "tunnel", Optional: true, State: RouteMissing, Why: "the router's reply to 10.255.0.1 did not come back through this gateway"},
		}},
		{Site: "beta", Routes: []RouterRoute{
			{Dst: netip.MustParsePrefix("192.168.10.0/24"), For: "alpha"},
			{Dst: netip.MustParsePrefix("10.255.0.0/24"), For: "tunnel", Optional: true},
		}},
	}
	if diff := cmp.Diff(want, srs, cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); diff != "" {
		t.Errorf("Routes (-want +got):\n%s", diff)
	}
	if !RoutesMissing(srs) {
		t.Error("RoutesMissing = false")
	}
	var b bytes.Buffer
	WriteRoutes(&b, srs)
	for _, s := range []string{
		"ip route add 192.168.20.0/24 via 192.168.10.2",
		"# beta's LAN, missing",
		"destination 192.168.20.0, netmask 255.255.255.0, gateway 192.168.10.2",
		"ip route add 192.168.10.0/24 via <gateway LAN address>",
		"run `lanlink routes` on beta's gateway",
	} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("output lacks %q:\n%s", s, b.String())
		}
	}

	// A router that ignores pings: unknown, not missing.
	f.routeOK[gwAlpha] = false
	srs, _ = Routes(context.Background(), f.plan, RoutesOptions{Observer: f, Site: "alpha"})
	if len(srs) != 1 || srs[0].Routes[0].State != RouteUnknown || RoutesMissing(srs) {
		t.Errorf("router not answering: %+v", srs)
	}
	if _, err := Routes(context.Background(), f.plan, RoutesOptions{Observer: f, Site: "nope"}); err == nil {
		t.Error("unknown site accepted")
	}
}
