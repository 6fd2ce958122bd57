package wanem

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// topo is A —veth— E —veth— B: two "offices" A (198.51.100.2) and B
// (203.0.113.2) with E as the "internet" router between them. Interface
// names only need to be unique inside their namespace, so they are fixed;
// namespace names carry a random suffix so parallel tests never meet.
type topo struct {
	A, E, B string
}

const (
	addrA  = "198.51.100.2"
	addrB  = "203.0.113.2"
	ifEA   = "ea" // E's interface towards A
	ifEB   = "eb" // E's interface towards B
	tunDev = "wtun"
)

func newTopo(t *testing.T) *topo {
	t.Helper()
	sfx := fmt.Sprintf("%06x", rand.Uint32()&0xffffff)
	tp := &topo{A: "wanA-" + sfx, E: "wanE-" + sfx, B: "wanB-" + sfx}
	for _, ns := range []string{tp.A, tp.E, tp.B} {
		sh(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("delete namespace %s: %v: %s", ns, err, out)
			}
		})
	}
	// Both ends are created inside the namespaces, never in the root one.
	sh(t, "ip", "-n", tp.A, "link", "add", "wa", "type", "veth", "peer", "name", ifEA, "netns", tp.E)
	sh(t, "ip", "-n", tp.B, "link", "add", "wb", "type", "veth", "peer", "name", ifEB, "netns", tp.E)
	sh(t, "ip", "-n", tp.A, "addr", "add", addrA+"/24", "dev", "wa")
	sh(t, "ip", "-n", tp.E, "addr", "add", "198.51.100.1/24", "dev", ifEA)
	sh(t, "ip", "-n", tp.E, "addr", "add", "203.0.113.1/24", "dev", ifEB)
	sh(t, "ip", "-n", tp.B, "addr", "add", addrB+"/24", "dev", "wb")
	for _, l := range [][2]string{{tp.A, "wa"}, {tp.A, "lo"}, {tp.E, ifEA}, {tp.E, ifEB}, {tp.E, "lo"}, {tp.B, "wb"}, {tp.B, "lo"}} {
		sh(t, "ip", "-n", l[0], "link", "set", "dev", l[1], "up")
	}
	sh(t, "ip", "-n", tp.A, "route", "add", "default", "via", "198.51.100.1")
	sh(t, "ip", "-n", tp.B, "route", "add", "default", "via", "203.0.113.1")
	// Forwarding inside E only.
	sh(t, "ip", "netns", "exec", tp.E, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	return tp
}

// startLine runs a delay line in E and routes both directions through it.
func (tp *topo) startLine(t *testing.T, cfg Config, ifaces ...string) *Line {
	t.Helper()
	cfg.TUN = tunDev
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	l, err := Start(ctx, tp.E, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if len(ifaces) == 0 {
		ifaces = []string{ifEA, ifEB}
	}
	undo, err := Install(ctx, tp.E, ifaces, tunDev, 100)
	if err != nil {
		t.Fatalf("Install: %v", err)
	}
	t.Cleanup(func() {
		if err := undo(); err != nil {
			t.Errorf("undo Install: %v", err)
		}
	})
	return l
}

// runningLine is a delay line in E that a test stops itself, to measure
// several configurations one after another in one topology.
type runningLine struct {
	*Line
	undo func() error
}

func (tp *topo) startLineOnce(t *testing.T, cfg Config) runningLine {
	t.Helper()
	cfg.TUN = tunDev
	l, err := Start(context.Background(), tp.E, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	undo, err := Install(context.Background(), tp.E, []string{ifEA, ifEB}, tunDev, 100)
	if err != nil {
		_ = l.Close()
		t.Fatalf("Install: %v", err)
	}
	return runningLine{Line: l, undo: undo}
}

func (r runningLine) stop(t *testing.T) Stats {
	t.Helper()
	if err := r.undo(); err != nil {
		t.Errorf("undo Install: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	return r.Stats()
}

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := shErr(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func shErr(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

var pingTime = regexp.MustCompile(`time=([0-9.]+) ms`)

// pingMedian pings B from A count times and returns the median RTT.
func (tp *topo) pingMedian(t *testing.T, count int) time.Duration {
	t.Helper()
	out := sh(t, "ip", "netns", "exec", tp.A, "ping", "-n", "-c", strconv.Itoa(count), "-i", "0.05", "-w", "20", addrB)
	var rtts []time.Duration
	for _, m := range pingTime.FindAllStringSubmatch(out, -1) {
		ms, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			t.Fatalf("parse ping time %q: %v", m[1], err)
		}
		rtts = append(rtts, time.Duration(ms*float64(time.Millisecond)))
	}
	if len(rtts) < count*9/10 {
		t.Fatalf("only %d of %d pings answered:\n%s", len(rtts), count, out)
	}
	slices.Sort(rtts)
	return rtts[len(rtts)/2]
}

// iperf runs a single TCP stream from A to B for secs seconds (the first
// one omitted, to skip slow start) and returns the received bit/s.
func (tp *topo) iperf(t *testing.T, secs int) float64 {
	t.Helper()
	port := strconv.Itoa(20000 + rand.IntN(20000))
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs+30)*time.Second)
	defer cancel()
	srv := exec.CommandContext(ctx, "ip", "netns", "exec", tp.B, "iperf3", "-s", "-1", "-B", addrB, "-p", port)
	if err := srv.Start(); err != nil {
		t.Fatalf("start iperf3 server: %v", err)
	}
	t.Cleanup(func() {
		_ = srv.Process.Kill()
		_ = srv.Wait()
	})
	type result struct {
		Error string `json:"error"`
		End   struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	var res result
	for i := 0; ; i++ {
		out, err := shErr("ip", "netns", "exec", tp.A, "iperf3", "-c", addrB, "-p", port, "-t", strconv.Itoa(secs), "-O", "1", "-J")
		res = result{}
		jerr := json.Unmarshal([]byte(out), &res)
		if i < 50 && strings.Contains(res.Error, "Connection refused") {
			time.Sleep(100 * time.Millisecond) // the server is not listening yet
			continue
		}
		if jerr != nil || err != nil || res.Error != "" {
			t.Fatalf("iperf3 client: %v, %v, %s\n%s", err, jerr, res.Error, out)
		}
		break
	}
	return res.End.SumReceived.BitsPerSecond
}
