package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"

	"lanlink/internal/lab"
	"lanlink/internal/metrics"
)

// Metrics (issue 6): `lanlink up --metrics` on office 1's gateway serves
// Prometheus metrics on the gateway's loopback (its own namespace); a
// scrape from inside that namespace parses with Prometheus's parser and
// reports the live tunnel: office 2 up, a fresh handshake, the bytes of a
// transfer, plan generation 1 and no rejected reloads.
func TestMetrics(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, netOpts{offices: 2})
	a, b := n.sites[0], n.sites[1]
	const addr = "127.0.0.1:9587"
	n.up(a, "--metrics", addr)
	n.up(b)
	n.waitUp(a)
	n.waitUp(b)
	waitPing(t, a.host(), b.host().Addr, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := lab.Transfer(ctx, a.host(), b.host(), 1<<20); err != nil {
		t.Fatal(err)
	}

	got := scrape(t, a.office.Gateway, netip.MustParseAddrPort(addr))
	peer := fmt.Sprintf("{site=%s}", b.name)
	for _, c := range []struct {
		name string
		ok   func(float64) bool
		want string
	}{
		{fmt.Sprintf("lanlink_info{backend=userspace,interface=%s,network=e2e,site=%s}", iface, a.name), eq(1), "1"},
		{"lanlink_plan_generation{}", eq(1), "1"},
		{"lanlink_reload_errors_total{}", eq(0), "0"},
		{"lanlink_plan_rejected{}", eq(0), "0"},
		{"lanlink_peer_up" + peer, eq(1), "1"},
		{"lanlink_peer_handshake_age_seconds" + peer, func(v float64) bool { return v >= 0 && v < 60 }, "within a minute"},
		{"lanlink_peer_last_handshake_seconds" + peer, func(v float64) bool { return time.Since(time.Unix(int64(v), 0)) < time.Minute }, "a recent unix time"},
		{"lanlink_peer_transmit_bytes_total" + peer, func(v float64) bool { return v > 1<<20 }, "> 1 MiB (the transfer)"},
		{"lanlink_peer_receive_bytes_total" + peer, func(v float64) bool { return v > 0 }, "> 0"},
	} {
		v, ok := got[c.name]
		if !ok || !c.ok(v) {
			t.Errorf("%s = %v (present %t), want %s", c.name, v, ok, c.want)
		}
	}
	if t.Failed() {
		t.Logf("scraped: %v", got)
	}
}

func eq(want float64) func(float64) bool { return func(v float64) bool { return v == want } }

// scrape GETs /metrics from inside node's namespace and parses it with
// Prometheus's parser into "name{labels}" → value.
func scrape(t *testing.T, node *lab.Node, addr netip.AddrPort) map[string]float64 {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return node.DialTCP(ctx, addr) },
	}}
	resp, err := c.Get("http://" + addr.String() + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s in %s: %v", addr, node.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != metrics.ContentType {
		t.Fatalf("scrape: %s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("Prometheus cannot parse the scrape: %v", err)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			out[name+"{"+strings.Join(labels, ",")+"}"] = v
		}
	}
	return out
}
