package doctor

import (
	"context"
	"fmt"
	"io/fs"
	"net/netip"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"lanlink/internal/agent"
	"lanlink/internal/plan"
)

// fakeObserver is a healthy gateway of site alpha; tests break one thing.
type fakeObserver struct {
	plan     *plan.Plan
	planErr  error
	key      wgtypes.Key
	keyErr   error
	status   *agent.Status
	sysctls  map[string]string
	ifaces   []Interface
	routes   []Route
	rpDrop   map[string]bool // iif+" "+src → dropped
	chains   []FirewallChain
	udpBound map[int]bool
	resolve  map[string]error
	// pathMTU per destination: echoes up to this size are answered;
	// larger ones are lost (a black hole). 0 = no answer at all.
	pathMTU map[netip.Addr]int
	ifMTU   int
	rtt     time.Duration
	pings   int
	routeOK map[netip.Addr]bool // ProbeRouterRoute by src
}

const testPlan = `[network]
name = "acme"
tunnel = ["10.255.0.0/24"]
port = 51820
mtu = 1420
[[site]]
name = "alpha"
public_key = "pOCSkrZRwni5dyxWn1+puxPZBrRqtoyd+dwrRAn4ogk="
endpoint = "203.0.113.10:51820"
lan = ["192.168.10.0/24"]
address = ["10.255.0.1"]
[[site]]
name = "beta"
public_key = "zo060cy2M+x7cMF4FKXHbs0CloUFDTRHRboFhw5YfVk="
endpoint = "beta.example.com:51821"
lan = ["192.168.20.0/24"]
address = ["10.255.0.2"]
port = 51821
`

var (
	tunBeta  = netip.MustParseAddr("10.255.0.2")
	gwAlpha  = netip.MustParseAddr("192.168.10.2")
	rtrAlpha = netip.MustParseAddr("192.168.10.1")
)

func healthy(t *testing.T) *fakeObserver {
	t.Helper()
	p, err := plan.Parse("network.toml", []byte(testPlan))
	if err != nil {
		t.Fatal(err)
	}
	key, _ := wgtypes.ParseKey("pOCSkrZRwni5dyxWn1+puxPZBrRqtoyd+dwrRAn4ogk=")
	return &fakeObserver{
		plan: p, key: key,
		status: &agent.Status{Site: "alpha", Interface: "lanlink0", Backend: "userspace", ListenPort: 51820, Generation: 1, PID: 42,
			Peers: []agent.PeerStatus{{Site: "beta", Endpoint: "beta.example.com:51821", Actual: "198.51.100.20:51821", LastHandshake: time.Unix(1, 0), HandshakeAge: 5, RxBytes: 1000, TxBytes: 2000, State: agent.PeerUp}}},
		sysctls: map[string]string{
			"net.ipv4.ip_forward":                       "1",
			"net.ipv4.conf.all.rp_filter":               "0",
			"net.ipv4.conf.eth0.rp_filter":              "0",
			"net.ipv4.conf.lanlink0.rp_filter":          "0",
			"net.core.rmem_max":                         "67108864",
			"net.core.wmem_max":                         "67108864",
			"net.ipv4.tcp_rmem":                         "4096 131072 67108864",
			"net.ipv4.tcp_wmem":                         "4096 16384 67108864",
			"net.ipv4.tcp_congestion_control":           "cubic",
			"net.ipv4.tcp_available_congestion_control": "reno cubic bbr",
		},
		ifaces: []Interface{
			{Name: "lo", MTU: 65536, Addrs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
			{Name: "eth0", MTU: 1500, Addrs: []netip.Prefix{netip.MustParsePrefix("192.168.10.2/24")}},
			{Name: "lanlink0", MTU: 1420, Addrs: []netip.Prefix{netip.MustParsePrefix("10.255.0.1/24")}},
		},
		routes: []Route{
			{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: rtrAlpha, Dev: "eth0"},
			{Dst: netip.MustParsePrefix("192.168.20.0/24"), Dev: "lanlink0"},
		},
		udpBound: map[int]bool{51820: true},
		pathMTU:  map[netip.Addr]int{tunBeta: 1420},
		rtt:      time.Millisecond,
		routeOK:  map[netip.Addr]bool{gwAlpha: true, netip.MustParseAddr("192.168.20.1"): true},
	}
}

func (f *fakeObserver) Plan() (*plan.Plan, error)      { return f.plan, f.planErr }
func (f *fakeObserver) LocalKey() (wgtypes.Key, error) { return f.key, f.keyErr }
func (f *fakeObserver) Agent(context.Context) (*agent.Status, error) {
	if f.status == nil {
		return nil, fmt.Errorf("%w on interface lanlink0", agent.ErrNotRunning)
	}
	return f.status, nil
}
func (f *fakeObserver) Sysctl(name string) (string, error) {
	v, ok := f.sysctls[name]
	if !ok {
		return "", fmt.Errorf("read %s: %w", name, fs.ErrNotExist)
	}
	return v, nil
}
func (f *fakeObserver) Interfaces() ([]Interface, error) { return f.ifaces, nil }
func (f *fakeObserver) Routes() ([]Route, error)         { return f.routes, nil }
func (f *fakeObserver) ReversePath(iif string, src, dst netip.Addr) error {
	if f.rpDrop[iif+" "+src.String()] {
		return ErrReversePath
	}
	return nil
}
func (f *fakeObserver) Firewall() ([]FirewallChain, error) { return f.chains, nil }
func (f *fakeObserver) UDPBound(port int) (bool, error)    { return f.udpBound[port], nil }
func (f *fakeObserver) Resolve(_ context.Context, host string) ([]netip.Addr, error) {
	if err := f.resolve[host]; err != nil {
		return nil, err
	}
	return []netip.Addr{netip.MustParseAddr("198.51.100.20")}, nil
}
func (f *fakeObserver) Ping(_ context.Context, dst netip.Addr, size int, _ time.Duration) (time.Duration, error) {
	f.pings++
	if f.ifMTU > 0 && size > f.ifMTU {
		return 0, ErrTooBig
	}
	if m := f.pathMTU[dst]; m == 0 || size > m {
		return 0, ErrNoReply
	}
	return f.rtt, nil
}
func (f *fakeObserver) ProbeRouterRoute(_ context.Context, iface string, router, src netip.Addr, _ time.Duration) (bool, error) {
	return f.routeOK[src], nil
}
