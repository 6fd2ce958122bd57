package metrics

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/common/expfmt"

	"lanlink/internal/agent"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fakeStatus() agent.Status {
	return agent.Status{
		Network: "acme", Site: "alpha", Backend: "userspace", Interface: "lanlink0",
		Generation: 3, ReloadErrors: 2, PlanError: "site beta: bad lan",
		Peers: []agent.PeerStatus{
			{Site: "beta", LastHandshake: now.Add(-30*time.Second - 500*time.Millisecond), RxBytes: 1 << 40, TxBytes: 12345, State: agent.PeerUp},
			{Site: "delta", LastHandshake: now.Add(-10 * time.Minute), RxBytes: 7, TxBytes: 9, State: agent.PeerStale},
			{Site: "gamma", State: agent.PeerNever},
		},
	}
}

// parse reads an exposition with Prometheus's own parser into
// "name{labels}" → value.
func parse(t *testing.T, r io.Reader) map[string]float64 {
	t.Helper()
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("Prometheus cannot parse the exposition: %v", err)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			key := name + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			default:
				t.Errorf("%s: type %v, want gauge or counter", key, f.GetType())
			}
		}
	}
	return out
}

func TestWrite(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := Write(&b, fakeStatus(), now); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"lanlink_info{backend=userspace,interface=lanlink0,network=acme,site=alpha}": 1,
		"lanlink_plan_generation{}":                       3,
		"lanlink_reload_errors_total{}":                   2,
		"lanlink_plan_rejected{}":                         1,
		"lanlink_peer_up{site=beta}":                      1,
		"lanlink_peer_up{site=delta}":                     0,
		"lanlink_peer_up{site=gamma}":                     0,
		"lanlink_peer_last_handshake_seconds{site=beta}":  float64(now.Unix()) - 30.5,
		"lanlink_peer_last_handshake_seconds{site=delta}": float64(now.Unix()) - 600,
		"lanlink_peer_last_handshake_seconds{site=gamma}": 0,
		"lanlink_peer_handshake_age_seconds{site=beta}":   30.5,
		"lanlink_peer_handshake_age_seconds{site=delta}":  600,
		"lanlink_peer_receive_bytes_total{site=beta}":     1 << 40,
		"lanlink_peer_receive_bytes_total{site=delta}":    7,
		"lanlink_peer_receive_bytes_total{site=gamma}":    0,
		"lanlink_peer_transmit_bytes_total{site=beta}":    12345,
		"lanlink_peer_transmit_bytes_total{site=delta}":   9,
		"lanlink_peer_transmit_bytes_total{site=gamma}":   0,
	}
	if diff := cmp.Diff(want, parse(t, &b)); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
}

// Label values that need escaping come through intact.
func TestWriteEscapes(t *testing.T) {
	t.Parallel()
	st := agent.Status{Network: "a \"quoted\" net\\work\nname", Site: "s", Interface: "lanlink0", Backend: "kernel"}
	var b bytes.Buffer
	if err := Write(&b, st, now); err != nil {
		t.Fatal(err)
	}
	got := parse(t, &b)
	key := "lanlink_info{backend=kernel,interface=lanlink0,network=" + st.Network + ",site=s}"
	if got[key] != 1 {
		t.Errorf("lanlink_info with an escaped network name missing; got %v", got)
	}
}

func TestServer(t *testing.T) {
	t.Parallel()
	var fail atomic.Pointer[error]
	s, err := Start("127.0.0.1:0", func(ctx context.Context) (agent.Status, error) {
		if err := fail.Load(); err != nil {
			return agent.Status{}, *err
		}
		return fakeStatus(), nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	url := "http://" + s.Addr().String()
	c := &http.Client{Timeout: 10 * time.Second}

	resp, err := c.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ContentType {
		t.Errorf("GET /metrics: %s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	got := parse(t, resp.Body)
	resp.Body.Close()
	if got["lanlink_plan_generation{}"] != 3 || got["lanlink_peer_up{site=beta}"] != 1 {
		t.Errorf("scraped metrics = %v", got)
	}

	resp, err = c.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /: %s, want 404", resp.Status)
	}

	stuck := errors.New("agent loop stuck")
	fail.Store(&stuck)
	resp, err = c.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "agent loop stuck") {
		t.Errorf("scrape of a failing agent: %s %q, want 503 naming the error", resp.Status, body)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(url + "/metrics"); err == nil {
		t.Error("server still answers after Close")
	}

	if _, err := Start(s.Addr().String()+"x", nil, nil); err == nil || !strings.Contains(err.Error(), "--metrics") {
		t.Errorf("Start on a bad address: %v, want an error naming --metrics", err)
	}
}
