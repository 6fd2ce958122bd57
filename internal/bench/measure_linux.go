package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"lanlink/internal/lab"
)

// session is a plane running between the two gateways.
type session struct {
	// pids are the tunnel processes (with their descendants) whose CPU
	// time is the plane's cost; none for kernel paths.
	pids []int
	// logs are the processes' log files, quoted when the plane fails.
	logs []string
	// stop tears the plane down and leaves the lab as before start.
	stop func() error
}

// plane is one data plane between the two gateways.
type plane interface {
	// prepare makes keys, certificates and configs, once per run.
	prepare(ctx context.Context, e *env) error
	// start brings the tunnel up on both gateways with routes for the
	// remote LAN; profileDir, when set, asks for CPU profiles there.
	start(ctx context.Context, e *env, profileDir string) (*session, error)
}

const iperfPort = 5201

// measure runs one round of one plane: start it, wait for the first echo,
// measure idle RTT, one and four TCP streams with the tunnel processes'
// CPU time, stop it.
func (e *env) measure(ctx context.Context, p plane, round int, profileDir string) (s Sample) {
	s = Sample{Round: round, TCP1Mbps: NaN(), TCP4Mbps: NaN(), RTTms: NaN(), CPUSec: NaN(), CPUPerGB: NaN(), SetupSec: NaN()}
	var sess *session
	fail := func(err error) Sample {
		s.Err = err.Error()
		if sess != nil {
			for _, l := range sess.logs {
				s.Err += "\n--- " + filepath.Base(l) + ":\n" + tail(l, 15)
			}
		}
		return s
	}
	t0 := time.Now()
	sess, err := p.start(ctx, e, profileDir)
	if err != nil {
		return fail(err)
	}
	defer func() {
		if err := sess.stop(); err != nil && s.Err == "" {
			s.Err = "stop: " + err.Error()
		}
	}()
	src, dst := e.hosts[0], e.hosts[1]
	if err := waitEcho(ctx, src, dst.Addr, 30*time.Second); err != nil {
		return fail(fmt.Errorf("no traffic through the tunnel: %w", err))
	}
	s.SetupSec = Num(time.Since(t0).Seconds())
	rtt, err := echoRTT(ctx, src, dst.Addr, 20, 50*time.Millisecond)
	if err != nil {
		return fail(err)
	}
	s.RTTms = Num(float64(rtt) / 1e6)

	srv, err := dst.Start(ctx, []string{"iperf3", "-s", "-p", strconv.Itoa(iperfPort)}, "")
	if err != nil {
		return fail(err)
	}
	defer srv.Stop(lab.StopGrace)
	c0, err := cpuTicks(sess.pids)
	if err != nil {
		return fail(err)
	}
	r1, err := e.iperf(ctx, 1)
	if err != nil {
		return fail(fmt.Errorf("iperf3 1 stream: %w", err))
	}
	r4, err := e.iperf(ctx, 4)
	if err != nil {
		return fail(fmt.Errorf("iperf3 4 streams: %w", err))
	}
	c1, err := cpuTicks(sess.pids)
	if err != nil {
		return fail(err)
	}
	s.TCP1Mbps, s.TCP4Mbps = Num(r1.ReceivedBps/1e6), Num(r4.ReceivedBps/1e6)
	s.Retrans1 = r1.Retransmits
	s.Bytes = r1.SentBytes + r4.SentBytes
	if len(sess.pids) > 0 {
		s.CPUSec = Num(float64(c1-c0) / ClockTicks)
		if s.Bytes > 0 {
			s.CPUPerGB = s.CPUSec / Num(float64(s.Bytes)/1e9)
		}
	}
	return s
}

// iperf runs an iperf3 client from office 1's host to office 2's.
func (e *env) iperf(ctx context.Context, streams int) (Iperf3Result, error) {
	d := e.opts.Duration + e.opts.Omit
	args := []string{"iperf3", "-c", e.hosts[1].Addr.String(), "-p", strconv.Itoa(iperfPort),
		"-t", strconv.FormatFloat(e.opts.Duration.Seconds(), 'f', -1, 64), "-J", "-P", strconv.Itoa(streams)}
	if e.opts.Omit > 0 {
		args = append(args, "-O", strconv.FormatFloat(e.opts.Omit.Seconds(), 'f', -1, 64))
	}
	var lastErr error
	for attempt := 0; attempt < 20; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
		out, err := e.hosts[0].Exec(cctx, args...)
		cancel()
		r, perr := ParseIperf3(out)
		if perr == nil {
			return r, nil
		}
		if err == nil {
			err = perr
		} else if errors.Is(perr, ErrIperf3) {
			err = perr
		}
		lastErr = err
		// The server may still be starting or finishing the last test, or
		// a lossy tunnel reset the control connection: try again.
		msg := err.Error()
		if !strings.Contains(msg, "unable to connect") && !strings.Contains(msg, "busy") && !strings.Contains(msg, "refused") && !strings.Contains(msg, "control message") {
			return Iperf3Result{}, err
		}
		select {
		case <-ctx.Done():
			return Iperf3Result{}, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return Iperf3Result{}, lastErr
}

// cpuTicks sums utime+stime of pids and their descendants.
func cpuTicks(pids []int) (uint64, error) {
	if len(pids) == 0 {
		return 0, nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	var all []ProcStat
	for _, de := range ents {
		if _, err := strconv.Atoi(de.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + de.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		if ps, err := ParseProcStat(b); err == nil {
			all = append(all, ps)
		}
	}
	return TreeTicks(all, pids), nil
}

// waitEcho pings until the first reply or timeout.
func waitEcho(ctx context.Context, from *lab.Node, to netip.Addr, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var err error
	for ctx.Err() == nil {
		if err = from.Ping(ctx, to, 1); err == nil {
			return nil
		}
	}
	return fmt.Errorf("ping %v from %s for %v: %w", to, from.Name, timeout, err)
}

// inNetns runs fn on a thread in network namespace name. The thread stays
// locked and is discarded when fn returns; sockets fn opens keep the
// namespace for life.
func inNetns(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		h, err := netns.GetFromName(name)
		if err != nil {
			errc <- fmt.Errorf("open namespace %s: %w", name, err)
			return
		}
		defer h.Close()
		if err := unix.Setns(int(h), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// echoRTT sends count ICMP echo requests from node from to dst, gap apart,
// and returns the median round trip of those answered (at least half must
// be). The socket is opened once, before timing starts, so the figure is
// the network's and not socket setup's.
func echoRTT(ctx context.Context, from *lab.Node, dst netip.Addr, count int, gap time.Duration) (time.Duration, error) {
	var c *icmp.PacketConn
	err := inNetns(from.Name, func() (err error) {
		c, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("RTT from %s: ICMP socket: %w", from.Name, err)
	}
	defer c.Close()
	id := int(rand.Uint32() & 0xffff)
	buf := make([]byte, 1500)
	var rtts []Num
	for seq := 1; seq <= count; seq++ {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: make([]byte, 56)}}
		wb, err := msg.Marshal(nil)
		if err != nil {
			return 0, err
		}
		t0 := time.Now()
		if _, err := c.WriteTo(wb, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			continue
		}
		_ = c.SetReadDeadline(t0.Add(2 * time.Second))
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				break
			}
			rm, err := icmp.ParseMessage(1, buf[:n])
			if err != nil || rm.Type != ipv4.ICMPTypeEchoReply {
				continue
			}
			if echo, ok := rm.Body.(*icmp.Echo); ok && echo.ID == id && echo.Seq == seq {
				rtts = append(rtts, Num(time.Since(t0)))
				break
			}
		}
		time.Sleep(gap)
	}
	if len(rtts) < count/2 || len(rtts) == 0 {
		return 0, fmt.Errorf("RTT from %s to %v: only %d of %d echoes answered", from.Name, dst, len(rtts), count)
	}
	return time.Duration(Median(rtts)), nil
}

// tail returns the last n lines of a file, for error reports.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitFile waits up to timeout for path to exist.
func waitFile(ctx context.Context, path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s did not appear within %v", path, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitLink waits up to timeout for interface name to exist in node n.
func waitLink(ctx context.Context, n *lab.Node, name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, err := n.Exec(ctx, "ip", "link", "show", "dev", name)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("interface %s did not appear in %s within %v: %w", name, n.Name, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stopAll stops processes in order and joins their errors.
func stopAll(procs ...*lab.Proc) error {
	var errs []error
	for _, p := range procs {
		if p != nil {
			errs = append(errs, p.Stop(lab.StopGrace))
		}
	}
	return errors.Join(errs...)
}
