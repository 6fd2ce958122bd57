package wanem

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"lanlink/internal/testutil"
)

func TestMain(m *testing.M) {
	// The child-process test re-runs this binary as `lanlink lab wanem`.
	if os.Getenv("WANEM_TEST_MAIN") == "1" {
		os.Exit(Main(os.Args[1:]))
	}
	spareProcs() // as Main does, for the in-process delay lines
	os.Exit(m.Run())
}

func TestDelayAddsRTT(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	tp := newTopo(t)
	base := tp.pingMedian(t, 10)

	const delay = 20 * time.Millisecond
	l := tp.startLine(t, Config{Delay: delay})
	got := tp.pingMedian(t, 20)
	want := base + 2*delay
	t.Logf("median RTT: base %v, with 2×%v delay %v (want %v), line %v", base, delay, got, want, l.Stats())
	if diff := got - want; diff < -want/10 || diff > want/10 {
		t.Errorf("median RTT %v, want %v ±10%%", got, want)
	}
	if st := l.Stats(); st.Forwarded < 40 {
		t.Errorf("line forwarded %d packets, want ≥ 40 (20 requests + 20 replies)", st.Forwarded)
	}
}

var pingLoss = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

func TestLoss(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	tp := newTopo(t)
	// Only A→B goes through the line, so each lost ping is one loss
	// decision and the counts must agree exactly.
	l := tp.startLine(t, Config{Loss: 0.1, Seed: 7}, ifEA)
	out, err := shErr("ip", "netns", "exec", tp.A, "ping", "-n", "-q", "-c", "200", "-i", "0.01", "-W", "2", addrB)
	m := pingLoss.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no ping summary (%v):\n%s", err, out)
	}
	sent, _ := strconv.Atoi(m[1])
	recv, _ := strconv.Atoi(m[2])
	lost := sent - recv
	rate := float64(lost) / float64(sent)
	st := l.Stats()
	t.Logf("ping: %d sent, %d lost (%.1f %%), line: %v", sent, lost, 100*rate, st)
	if sent != 200 {
		t.Fatalf("ping sent %d, want 200", sent)
	}
	if rate < 0.05 || rate > 0.18 {
		t.Errorf("loss %.1f %%, want 5..18 %% for Loss=0.1", 100*rate)
	}
	if st.LossDrops != uint64(lost) {
		t.Errorf("line counted %d loss drops, ping lost %d", st.LossDrops, lost)
	}
}

func TestRateLimit(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	tp := newTopo(t)
	const delay = 5 * time.Millisecond
	tp.startLine(t, Config{Delay: delay})
	ctx := context.Background()
	for _, ifc := range []string{ifEA, ifEB} {
		undo, err := SetRate(ctx, tp.E, ifc, "100mbit", 2*delay)
		if err != nil {
			t.Fatalf("SetRate: %v", err)
		}
		t.Cleanup(func() {
			if err := undo(); err != nil {
				t.Errorf("undo SetRate: %v", err)
			}
		})
	}
	// The shaper must never let more than the rate through; below it, a
	// busy machine (other test packages run alongside) can starve iperf3
	// itself, so the best of a few runs is what says the shaper reaches
	// its rate.
	best := 0.0
	for i := 0; i < 3 && best < 80e6; i++ {
		bps := tp.iperf(t, 4)
		t.Logf("iperf3 through 100mbit tbf and 2×%v delay: %.1f Mbit/s", delay, bps/1e6)
		if bps > 105e6 {
			t.Fatalf("throughput %.1f Mbit/s exceeds the 100 Mbit/s limit", bps/1e6)
		}
		best = max(best, bps)
	}
	if best < 80e6 {
		t.Errorf("best throughput %.1f Mbit/s, want 80..105 Mbit/s", best/1e6)
	}
}

// TestTransferIntactAndInOrder sends a TCP stream (through the GSO split and
// GRO coalescing paths of the TUN) and a numbered UDP sequence through the
// line: the stream must arrive bit-exact and the datagrams in order.
//
// Not parallel: its CPU-bound in-process sender and receiver would compete
// for the test process's Ps with the other tests' in-process delay lines
// and skew their delay measurements.
func TestTransferIntactAndInOrder(t *testing.T) {
	testutil.RequireRoot(t)
	for _, tc := range []struct {
		name    string
		loss    float64
		wantRaw bool
	}{
		{name: "raw frames", loss: 0, wantRaw: true},
		// A loss that never strikes still selects the split path.
		{name: "split segments", loss: 1e-12, wantRaw: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := newTopo(t)
			l := tp.startLine(t, Config{Delay: 2 * time.Millisecond, Loss: tc.loss})
			if l.raw != tc.wantRaw {
				t.Fatalf("line raw = %v, want %v", l.raw, tc.wantRaw)
			}
			testTransfer(t, tp, l)
		})
	}
}

func testTransfer(t *testing.T, tp *topo, l *Line) {
	t.Run("tcp", func(t *testing.T) {
		var ln net.Listener
		if err := inNamespace(tp.B, func() (err error) {
			ln, err = net.Listen("tcp4", addrB+":0")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		const size = 32 << 20
		type result struct {
			sum [32]byte
			n   int64
			err error
		}
		got := make(chan result, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				got <- result{err: err}
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(60 * time.Second))
			h := sha256.New()
			n, err := io.Copy(h, c)
			var r result
			copy(r.sum[:], h.Sum(nil))
			r.n, r.err = n, err
			got <- r
		}()
		var c net.Conn
		if err := inNamespace(tp.A, func() (err error) {
			c, err = net.DialTimeout("tcp4", ln.Addr().String(), 5*time.Second)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(60 * time.Second))
		h := sha256.New()
		src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{1}), size), h)
		if _, err := io.Copy(c, src); err != nil {
			t.Fatalf("send: %v", err)
		}
		c.Close()
		r := <-got
		if r.err != nil {
			t.Fatalf("receive: %v", r.err)
		}
		if r.n != size || r.sum != [32]byte(h.Sum(nil)) {
			t.Fatalf("received %d bytes with sha256 %x, sent %d with %x", r.n, r.sum, size, h.Sum(nil))
		}
	})

	t.Run("udp order", func(t *testing.T) {
		var rc, sc net.PacketConn
		if err := inNamespace(tp.B, func() (err error) {
			rc, err = net.ListenPacket("udp4", addrB+":0")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if err := inNamespace(tp.A, func() (err error) {
			sc, err = net.ListenPacket("udp4", addrA+":0")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		const count = 3000
		go func() {
			buf := make([]byte, 200)
			for i := uint32(0); i < count; i++ {
				binary.BigEndian.PutUint32(buf, i)
				_, _ = sc.WriteTo(buf, rc.LocalAddr())
				if i%50 == 49 {
					time.Sleep(time.Millisecond) // stay under socket buffers
				}
			}
		}()
		buf := make([]byte, 2048)
		var last int64 = -1
		received := 0
		for received < count {
			_ = rc.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, _, err := rc.ReadFrom(buf)
			if err != nil {
				break
			}
			seq := int64(binary.BigEndian.Uint32(buf[:n]))
			if seq <= last {
				t.Fatalf("datagram %d arrived after %d", seq, last)
			}
			last = seq
			received++
		}
		// Order is the point; some datagrams may overflow the receiver's
		// socket buffer on a busy machine, but enough must arrive to make
		// the order check mean something.
		if received < count/3 {
			t.Fatalf("received %d of %d datagrams", received, count)
		}
		t.Logf("%d of %d datagrams received, all in order", received, count)
	})
	if st := l.Stats(); st.QueueDrops != 0 || st.WriteErrors != 0 || st.ReadErrors != 0 {
		t.Errorf("line reported trouble: %v", st)
	}
}

// TestMainChildProcess runs the delay line the way the lab does, as a child
// process (`lanlink lab wanem --netns E ...`), here this test binary.
func TestMainChildProcess(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	tp := newTopo(t)
	base := tp.pingMedian(t, 5)

	const delay = 10 * time.Millisecond
	cmd := exec.Command(os.Args[0], Args(tp.E, Config{TUN: tunDev, Delay: delay})...)
	cmd.Env = append(os.Environ(), "WANEM_TEST_MAIN=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // by PID; harmless when it already exited
		<-exited
	})
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- line
		_, _ = io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	select {
	case line := <-ready:
		if strings.TrimSpace(line) != "ready" {
			t.Fatalf("child said %q, want ready; stderr:\n%s", line, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("child not ready after 10s; stderr:\n%s", stderr.String())
	}
	undo, err := Install(context.Background(), tp.E, []string{ifEA, ifEB}, tunDev, 100)
	if err != nil {
		t.Fatalf("Install: %v", err)
	}
	got := tp.pingMedian(t, 10)
	want := base + 2*delay
	if diff := got - want; diff < -want/10 || diff > want/10 {
		t.Errorf("median RTT %v, want %v ±10%%", got, want)
	}
	if err := undo(); err != nil {
		t.Errorf("undo: %v", err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			t.Errorf("child exited with %v; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("child did not stop on SIGTERM")
	}
	if !strings.Contains(stderr.String(), "wanem stopped") || !strings.Contains(stderr.String(), "forwarded=") {
		t.Errorf("child did not log its final stats; stderr:\n%s", stderr.String())
	}
	// The TUN went with the process.
	if out, err := shErr("ip", "-n", tp.E, "link", "show", "dev", tunDev); err == nil {
		t.Errorf("TUN still present after the child exited:\n%s", out)
	}
}
