package lab

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// do runs fn on an OS thread switched into the node's namespace.
//
// This is how the lab opens sockets in a namespace from the test process
// itself, with no helper binary: a socket belongs to the namespace of the
// thread that created it, for its whole life. The thread is locked and
// never unlocked, so Go discards it when fn returns instead of handing a
// thread in the wrong namespace to other goroutines. fn must do its
// namespace-sensitive work (socket creation, /proc/sys/net opens) itself,
// not in goroutines it starts.
func (n *Node) do(fn func() error) error {
	if n.ns < 0 {
		return fmt.Errorf("node %s: %w", n.Name, ErrClosed)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(int(n.ns), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", n.Name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// command wraps argv to run in the node's namespace with the node's own
// /run. `ip netns exec` gives each command a private mount namespace (and
// makes / a slave), so the bind mount is seen by that command and its
// children only, never by the host. Both ip and sh exec in place, so the
// PID of the command is argv's PID.
func (n *Node) command(argv []string) []string {
	return append([]string{"ip", "netns", "exec", n.Name,
		"sh", "-c", `mount --bind "$0" /run && exec "$@"`, n.RunDir}, argv...)
}

// Exec runs argv in the node's namespace (`ip netns exec`), with RunDir as
// /run, and returns its
// combined output. Without a deadline in ctx it is bounded by
// DefaultExecTimeout. A non-zero exit is an error that includes the output.
func (n *Node) Exec(ctx context.Context, argv ...string) ([]byte, error) {
	return n.execInput(ctx, nil, argv...)
}

func (n *Node) execInput(ctx context.Context, stdin []byte, argv ...string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, errors.New("exec: empty command")
	}
	out, err := runCmd(ctx, stdin, n.command(argv)...)
	if err != nil {
		return out, fmt.Errorf("in %s: %s: %w: %s", n.Name, strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// Start runs argv in the background in the node's namespace, with RunDir
// as /run. Its stdout and stderr go to logfile (created or truncated) or,
// with logfile "", to memory (Proc.Output). The process is stopped when ctx is done, by
// Proc.Stop, or by Lab.Close; if the test process dies it gets SIGKILL.
func (n *Node) Start(ctx context.Context, argv []string, logfile string) (*Proc, error) {
	if len(argv) == 0 {
		return nil, errors.New("start: empty command")
	}
	l := n.lab
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("start %s in %s: %w", argv[0], n.Name, ErrClosed)
	}
	p := &Proc{Node: n, Argv: append([]string(nil), argv...), LogFile: logfile, done: make(chan struct{})}
	var out io.Writer
	var file *os.File
	if logfile != "" {
		f, err := os.OpenFile(logfile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return nil, fmt.Errorf("start %s in %s: log file: %w", argv[0], n.Name, err)
		}
		file, out = f, f
	} else {
		p.out = &capBuffer{max: 16 << 20}
		out = p.out
	}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the forking *thread* exits, and Go retires
		// threads whose goroutine exits locked (see do). Keeping the fork
		// on a thread locked to this goroutine until the child is reaped
		// means the signal comes only when the whole process dies.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		full := n.command(argv)
		cmd := exec.Command(full[0], full[1:]...)
		cmd.Stdout, cmd.Stderr = out, out
		// Own process group: a Ctrl-C meant for `lanlink lab` reaches the
		// lab, which then stops its children in order.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		cmd.WaitDelay = StopGrace
		err := cmd.Start()
		if err != nil {
			if file != nil {
				file.Close()
			}
			started <- err
			return
		}
		// ip and sh exec in place (see command), so this PID is argv's.
		p.PID, p.proc = cmd.Process.Pid, cmd.Process
		started <- nil
		p.err = cmd.Wait()
		if file != nil {
			file.Close()
		}
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", argv[0], n.Name, err)
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		_ = p.Stop(StopGrace)
		return nil, fmt.Errorf("start %s in %s: %w", argv[0], n.Name, ErrClosed)
	}
	l.procs[p] = struct{}{}
	l.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
			_ = p.Stop(StopGrace)
		case <-p.done:
		}
		l.mu.Lock()
		delete(l.procs, p)
		l.mu.Unlock()
	}()
	l.log.Debug("lab process started", "node", n.Name, "pid", p.PID, "argv", argv)
	return p, nil
}

// Signal sends sig to the process. After it has exited this returns
// os.ErrProcessDone and signals nothing (Go tracks the process by pidfd,
// so a recycled PID is never hit).
func (p *Proc) Signal(sig os.Signal) error { return p.proc.Signal(sig) }

// Done is closed when the process has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Wait waits up to timeout for the process to exit and returns its exit
// error (nil for status 0), or ErrStillRunning.
func (p *Proc) Wait(timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return p.err
	case <-t.C:
		return fmt.Errorf("%s (pid %d) in %s after %v: %w", p.Argv[0], p.PID, p.Node.Name, timeout, ErrStillRunning)
	}
}

// Stop sends SIGTERM, waits up to grace, then SIGKILL, and returns an
// error only if the process is still not gone after that. How it exited
// (Wait's error) is not Stop's business.
func (p *Proc) Stop(grace time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = p.Signal(syscall.SIGTERM)
	if err := p.Wait(grace); !errors.Is(err, ErrStillRunning) {
		return nil
	}
	_ = p.Signal(syscall.SIGKILL)
	if err := p.Wait(StopGrace); errors.Is(err, ErrStillRunning) {
		return fmt.Errorf("stop %s (pid %d) in %s: survived SIGKILL: %w", p.Argv[0], p.PID, p.Node.Name, err)
	}
	return nil
}

// Output returns what the process wrote so far (the log file's content
// when it has one).
func (p *Proc) Output() []byte {
	if p.out != nil {
		return p.out.bytes()
	}
	b, err := os.ReadFile(p.LogFile)
	if err != nil {
		return []byte(fmt.Sprintf("[lab: read %s: %v]", p.LogFile, err))
	}
	return b
}

// track registers a socket for Lab.Close; untrack forgets one closed early.
func (l *Lab) track(c io.Closer) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return ErrClosed
	}
	l.closers[c] = struct{}{}
	return nil
}

func (l *Lab) untrack(c io.Closer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.closers, c)
}

// ListenTCP listens in the node's namespace. Lab.Close closes the listener
// if the caller has not.
func (n *Node) ListenTCP(addr netip.AddrPort) (*net.TCPListener, error) {
	var ln *net.TCPListener
	err := n.do(func() (err error) {
		ln, err = net.ListenTCP("tcp", net.TCPAddrFromAddrPort(addr))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen tcp %v in %s: %w", addr, n.Name, err)
	}
	return ln, n.lab.track(ln)
}

// ListenUDP opens a UDP socket bound to addr in the node's namespace.
func (n *Node) ListenUDP(addr netip.AddrPort) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := n.do(func() (err error) {
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen udp %v in %s: %w", addr, n.Name, err)
	}
	return c, n.lab.track(c)
}

// DialTCP connects from the node's namespace to dst. ctx bounds the
// connect only.
func (n *Node) DialTCP(ctx context.Context, dst netip.AddrPort) (*net.TCPConn, error) {
	var c net.Conn
	err := n.do(func() (err error) {
		// A single IP literal: the dialer creates the socket on this
		// goroutine (no parallel Happy Eyeballs goroutines).
		var d net.Dialer
		c, err = d.DialContext(ctx, "tcp", dst.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dial tcp %v from %s: %w", dst, n.Name, err)
	}
	tc := c.(*net.TCPConn)
	return tc, n.lab.track(tc)
}

// DialUDP opens a UDP socket in the node's namespace connected to dst.
func (n *Node) DialUDP(dst netip.AddrPort) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := n.do(func() (err error) {
		c, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dial udp %v from %s: %w", dst, n.Name, err)
	}
	return c, n.lab.track(c)
}

// Ping sends count ICMP echo requests to dst (IPv4 or IPv6) from the
// node's namespace, 200 ms apart, each waiting up to one second for its
// reply. Like ping(8) it succeeds if at least one reply arrived. It uses a
// raw ICMP socket in the namespace, so no ping binary is needed.
func (n *Node) Ping(ctx context.Context, dst netip.Addr, count int) error {
	_, err := n.PingStats(ctx, dst, count, 200*time.Millisecond)
	return err
}

// PingStats is Ping with the round-trip time of every reply and the echo
// interval chosen by the caller. The error is nil if at least one reply
// arrived.
func (n *Node) PingStats(ctx context.Context, dst netip.Addr, count int, interval time.Duration) (PingResult, error) {
	var res PingResult
	e, err := n.openEcho(dst)
	if err != nil {
		return res, err
	}
	defer e.c.Close()
	stop := context.AfterFunc(ctx, func() { e.c.SetDeadline(time.Now()) })
	defer stop()

	buf := make([]byte, 1500)
	for seq := 1; seq <= count; seq++ {
		if seq > 1 {
			select {
			case <-ctx.Done():
				return res, fmt.Errorf("ping %v from %s: %w", dst, n.Name, ctx.Err())
			case <-time.After(interval):
			}
		}
		res.Sent++
		sent := time.Now()
		if err := e.send(seq); err != nil {
			// Unreachable destinations can fail at send (no route); that
			// is a lost echo, not a broken ping.
			continue
		}
		if ctx.Err() != nil {
			break
		}
		e.c.SetReadDeadline(time.Now().Add(time.Second))
		for {
			got, err := e.recv(buf)
			if err != nil {
				break // timeout: this echo is lost
			}
			if got == seq&0xffff {
				res.RTTs = append(res.RTTs, time.Since(sent))
				break
			}
		}
	}
	if len(res.RTTs) == 0 {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("ping %v from %s: %w", dst, n.Name, err)
		}
		return res, fmt.Errorf("ping %v from %s: no reply to %d echo requests", dst, n.Name, count)
	}
	return res, nil
}

// icmpFamily is what differs between ICMP echo over IPv4 and over IPv6.
type icmpFamily struct {
	network, laddr string    // for icmp.ListenPacket
	proto          int       // for icmp.ParseMessage
	request, reply icmp.Type // echo request and reply
}

var (
	icmp4 = icmpFamily{"ip4:icmp", "0.0.0.0", 1, ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply}
	// ICMPv6 checksums cover a pseudo-header; the kernel fills them in on
	// raw ICMPv6 sockets, so messages are marshalled without one.
	icmp6 = icmpFamily{"ip6:ipv6-icmp", "::", 58, ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply}
)

// echoConn is a raw ICMP or ICMPv6 socket in a node's namespace that
// sends echo requests to one destination with one random ID.
type echoConn struct {
	c   *icmp.PacketConn
	f   icmpFamily
	dst netip.Addr
	to  *net.IPAddr
	id  int
}

// openEcho opens a raw socket of dst's family in the node's namespace.
// The caller closes e.c.
func (n *Node) openEcho(dst netip.Addr) (*echoConn, error) {
	dst = dst.Unmap()
	if !dst.IsValid() {
		return nil, fmt.Errorf("ping from %s: no destination address", n.Name)
	}
	e := &echoConn{f: icmp4, dst: dst, to: &net.IPAddr{IP: dst.AsSlice(), Zone: dst.Zone()}, id: int(rand.Uint32() & 0xffff)}
	if dst.Is6() {
		e.f = icmp6
	}
	err := n.do(func() (err error) {
		e.c, err = icmp.ListenPacket(e.f.network, e.f.laddr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ping from %s: open %s socket: %w", n.Name, e.f.network, err)
	}
	return e, nil
}

// send sends echo request seq (taken mod 2^16).
func (e *echoConn) send(seq int) error {
	msg := icmp.Message{Type: e.f.request, Body: &icmp.Echo{ID: e.id, Seq: seq & 0xffff, Data: []byte("lanlink-lab")}}
	wb, err := msg.Marshal(nil)
	if err != nil {
		return err
	}
	_, err = e.c.WriteTo(wb, e.to)
	return err
}

// recv returns the sequence number of the next echo reply from dst to
// this socket's ID, skipping everything else the raw socket sees: other
// pings' replies in the namespace, and for IPv6 neighbor discovery and
// the like. Its error is the read's (the deadline).
func (e *echoConn) recv(buf []byte) (int, error) {
	for {
		nr, from, err := e.c.ReadFrom(buf)
		if err != nil {
			return 0, err
		}
		rm, err := icmp.ParseMessage(e.f.proto, buf[:nr])
		if err != nil || rm.Type != e.f.reply {
			continue
		}
		echo, ok := rm.Body.(*icmp.Echo)
		if !ok || echo.ID != e.id {
			continue
		}
		if ip, ok := from.(*net.IPAddr); ok {
			if a, ok := netip.AddrFromSlice(ip.IP); ok && a.Unmap() == e.dst.WithZone("") {
				return echo.Seq, nil
			}
		}
	}
}

// Transfer sends size bytes of pseudo-random data over TCP from a socket in
// from's namespace to a listener on to.Addr in to's namespace and checks
// that the SHA-256 of what arrived equals that of what was sent (else
// ErrChecksum). Without a deadline in ctx it is bounded by
// DefaultTransferTimeout.
func Transfer(ctx context.Context, from, to *Node, size int64) (TransferResult, error) {
	return TransferTo(ctx, from, to, to.Addr, size)
}

// TransferTo is Transfer to a listener on addr, which must be one of to's
// addresses: to.Addr6 for a transfer over IPv6, say.
func TransferTo(ctx context.Context, from, to *Node, addr netip.Addr, size int64) (TransferResult, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTransferTimeout)
		defer cancel()
	}
	fail := func(err error) (TransferResult, error) {
		return TransferResult{}, fmt.Errorf("transfer %d bytes %s → %s (%v): %w", size, from.Name, to.Name, addr, err)
	}
	if !addr.IsValid() {
		return fail(errors.New("no destination address"))
	}
	ln, err := to.ListenTCP(netip.AddrPortFrom(addr, 0))
	if err != nil {
		return fail(err)
	}
	defer func() { ln.Close(); to.lab.untrack(ln) }()

	type sinkResult struct {
		n   int64
		sum [32]byte
		end time.Time
		err error
	}
	sinkc := make(chan sinkResult, 1)
	go func() {
		c, err := ln.AcceptTCP()
		if err != nil {
			sinkc <- sinkResult{err: fmt.Errorf("accept: %w", err)}
			return
		}
		defer c.Close()
		stop := context.AfterFunc(ctx, func() { c.Close() })
		defer stop()
		h := sha256.New()
		n, err := io.Copy(h, c)
		r := sinkResult{n: n, end: time.Now(), err: err}
		h.Sum(r.sum[:0])
		sinkc <- r
	}()

	start := time.Now()
	c, err := from.DialTCP(ctx, netip.AddrPortFrom(addr, uint16(ln.Addr().(*net.TCPAddr).Port)))
	if err != nil {
		return fail(err)
	}
	defer func() { c.Close(); from.lab.untrack(c) }()
	stop := context.AfterFunc(ctx, func() { c.Close(); ln.Close() })
	defer stop()

	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], rand.Uint64())
	src := rand.NewChaCha8(seed)
	h := sha256.New()
	sent, err := io.CopyN(io.MultiWriter(c, h), src, size)
	if err != nil {
		return fail(fmt.Errorf("send after %d bytes: %w", sent, err))
	}
	if err := c.CloseWrite(); err != nil {
		return fail(fmt.Errorf("close write: %w", err))
	}
	var r sinkResult
	select {
	case r = <-sinkc:
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	if r.err != nil {
		return fail(fmt.Errorf("receive after %d bytes: %w", r.n, r.err))
	}
	res := TransferResult{Bytes: sent, Duration: r.end.Sub(start)}
	h.Sum(res.SHA256[:0])
	if r.n != sent || r.sum != res.SHA256 {
		return fail(fmt.Errorf("%w: sent %d bytes sha256 %x, received %d bytes sha256 %x", ErrChecksum, sent, res.SHA256, r.n, r.sum))
	}
	return res, nil
}

// PingUntil sends an ICMP echo request to dst (IPv4 or IPv6) from the
// node's namespace every `every` until the first reply arrives and returns
// how long that took from the first request. Unlike Ping it never waits
// for one echo before sending the next, so it measures when a path starts
// to work (a tunnel's first packet) to within `every`. It is bounded by
// ctx.
func (n *Node) PingUntil(ctx context.Context, dst netip.Addr, every time.Duration) (time.Duration, error) {
	e, err := n.openEcho(dst)
	if err != nil {
		return 0, err
	}
	defer e.c.Close()
	stop := context.AfterFunc(ctx, func() { e.c.SetDeadline(time.Now()) })
	defer stop()

	start := time.Now()
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for seq := 1; ; seq++ {
			_ = e.send(seq) // a failed send is a lost echo
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	if _, err := e.recv(make([]byte, 1500)); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			err = cerr
		}
		return 0, fmt.Errorf("ping %v from %s: no reply in %v: %w", dst, n.Name, time.Since(start).Round(time.Millisecond), err)
	}
	return time.Since(start), nil
}
