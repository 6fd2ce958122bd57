package e2e

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"lanlink/internal/lab"
)

// IPv6 endpoints: the WAN is dual-stack (IPv6 from 2001:db8::/32, NAT66 on
// every office router, like its IPv4 NAT) and the plan names every site by
// its IPv6 endpoint, [WAN6]:51820. LAN hosts reach each other over IPv4
// and IPv6 with a checksummed transfer, and the tunnel provably runs over
// IPv6: the stock wg tool shows the peer at its IPv6 endpoint, status
// says it is up there, and office 1's router forwarded WireGuard's UDP
// over IPv6 only, not one packet of it over IPv4.
func TestIPv6Endpoints(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, netOpts{offices: 2, wan6: true})
	a, b := n.sites[0], n.sites[1]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	doc6 := netip.MustParsePrefix("2001:db8::/32")
	for _, s := range n.sites {
		if ep := s.office.Endpoint6(); !ep.IsValid() || !doc6.Contains(ep.Addr()) || int(ep.Port()) != lab.DefaultPort {
			t.Fatalf("%s: IPv6 endpoint %v, want [2001:db8:…]:%d", s.name, ep, lab.DefaultPort)
		}
	}
	plan, err := os.ReadFile(n.plan)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range n.sites {
		if want := `"` + s.office.Endpoint6().String() + `"`; !strings.Contains(string(plan), want) {
			t.Fatalf("plan does not name %s's IPv6 endpoint %s:\n%s", s.name, want, plan)
		}
		if strings.Contains(string(plan), s.office.WAN.String()) {
			t.Fatalf("plan names %s's IPv4 WAN address %v; want IPv6 endpoints only:\n%s", s.name, s.office.WAN, plan)
		}
	}

	// Count WireGuard's packets (UDP port 51820 either way) that office
	// 1's router forwards, per family, from before the agents start.
	counters := wgCounters(t, a.office)

	n.upAll()
	waitPing(t, a.host(), b.host().Addr, 10*time.Second)
	waitPing(t, b.host(), a.host().Addr, 5*time.Second)
	waitPing(t, a.host(), b.host().Addr6, 5*time.Second)
	waitPing(t, b.host(), a.host().Addr6, 5*time.Second)

	res, err := lab.Transfer(ctx, a.host(), b.host(), 16<<20)
	if err != nil {
		t.Fatalf("transfer %s → %s: %v", a.host().Name, b.host().Name, err)
	}
	t.Logf("16 MiB %s → %s over an IPv6 WAN: %.0f Mbit/s, sha256 %x", a.host().Name, b.host().Name, res.BitsPerSecond()/1e6, res.SHA256[:6])
	res, err = lab.TransferTo(ctx, b.host(), a.host(), a.host().Addr6, 16<<20)
	if err != nil {
		t.Fatalf("transfer over IPv6 %s → %s: %v", b.host().Name, a.host().Name, err)
	}
	t.Logf("16 MiB over IPv6 %s → [%s] over an IPv6 WAN: %.0f Mbit/s, sha256 %x", b.host().Name, a.host().Addr6, res.BitsPerSecond()/1e6, res.SHA256[:6])

	// The stock tool: office 1's gateway sends to office 2's IPv6
	// endpoint, and office 2's gateway to office 1's, as masqueraded
	// by office 1's router (its WAN6; the port is the router's choice).
	out, err := a.office.Gateway.Exec(ctx, "wg", "show", iface, "endpoints")
	if err != nil {
		t.Fatal(err)
	}
	if fields := strings.Fields(string(out)); len(fields) != 2 || fields[0] != b.pub || fields[1] != b.office.Endpoint6().String() {
		t.Errorf("wg show %s endpoints on %s = %q, want peer %s at %s", iface, a.name, out, b.pub, b.office.Endpoint6())
	}
	out, err = b.office.Gateway.Exec(ctx, "wg", "show", iface, "endpoints")
	if err != nil {
		t.Fatal(err)
	}
	var ep netip.AddrPort
	fields := strings.Fields(string(out))
	if len(fields) == 2 {
		ep, _ = netip.ParseAddrPort(fields[1])
	}
	if len(fields) != 2 || fields[0] != a.pub || ep.Addr() != a.office.WAN6 {
		t.Errorf("wg show %s endpoints on %s = %q, want peer %s at [%s]:<port>", iface, b.name, out, a.pub, a.office.WAN6)
	}
	out, err = a.office.Gateway.Exec(ctx, "wg", "show", iface, "latest-handshakes")
	if err != nil {
		t.Fatal(err)
	}
	if fields := strings.Fields(string(out)); len(fields) != 2 || fields[0] != b.pub {
		t.Errorf("wg show latest-handshakes = %q, want peer %s", out, b.pub)
	} else if ts, _ := strconv.ParseInt(fields[1], 10, 64); ts == 0 || time.Since(time.Unix(ts, 0)) > time.Minute {
		t.Errorf("wg show: handshake with %s at %d, want recent", b.name, ts)
	}

	st, err := a.status()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Peers) != 1 {
		t.Fatalf("status of %s: peers %+v, want only %s", a.name, st.Peers, b.name)
	}
	if p := st.Peers[0]; p.Site != b.name || p.State != "up" || p.Endpoint != b.office.Endpoint6().String() ||
		p.Actual != b.office.Endpoint6().String() || p.RxBytes < 16<<20 {
		t.Errorf("status of %s: peer %+v, want %s up at %s (plan and actual) with ≥ 16 MiB received",
			a.name, p, b.name, b.office.Endpoint6())
	}

	v4, v6 := counters()
	t.Logf("office 1's router forwarded %d bytes of WireGuard over IPv6, %d over IPv4", v6, v4)
	if v4 != 0 || v6 < 2*16<<20 {
		t.Errorf("office 1's router forwarded %d bytes of WireGuard over IPv4 and %d over IPv6; want none over IPv4 and both transfers' worth (%d) over IPv6",
			v4, v6, 2*16<<20)
	}
}

// wgCounters adds a table to o's router that counts the UDP bytes to or
// from port 51820 it forwards, per family (each packet once: the first
// matching rule accepts, which ends this chain only), and returns a
// function reading the counts (IPv4, IPv6). Bytes, not packets:
// wireguard-go sends and receives with UDP GSO/GRO, so one forwarded
// packet may carry many datagrams. The table goes with the lab.
func wgCounters(t *testing.T, o *lab.Office) func() (v4, v6 int64) {
	t.Helper()
	const port = "51820"
	rules := `table inet lanlink_e2e_wg {
	counter v4 { }
	counter v6 { }
	chain forward {
		type filter hook forward priority 0; policy accept;
		meta nfproto ipv4 udp sport ` + port + ` counter name "v4" accept
		meta nfproto ipv4 udp dport ` + port + ` counter name "v4" accept
		meta nfproto ipv6 udp sport ` + port + ` counter name "v6" accept
		meta nfproto ipv6 udp dport ` + port + ` counter name "v6" accept
	}
}
`
	file := filepath.Join(t.TempDir(), "wgcount.nft")
	if err := os.WriteFile(file, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if out, err := o.Router.Exec(ctx, "nft", "-f", file); err != nil {
		t.Fatalf("counters on %s: %v: %s", o.Router.Name, err, out)
	}
	bytes := regexp.MustCompile(`packets \d+ bytes (\d+)`)
	read := func(name string) int64 {
		out, err := o.Router.Exec(ctx, "nft", "list", "counter", "inet", "lanlink_e2e_wg", name)
		if err != nil {
			t.Fatal(err)
		}
		m := bytes.FindStringSubmatch(string(out))
		if m == nil {
			t.Fatalf("no byte count in %q", out)
		}
		v, _ := strconv.ParseInt(m[1], 10, 64)
		return v
	}
	return func() (int64, int64) { return read("v4"), read("v6") }
}
