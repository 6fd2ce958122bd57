package wanem

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

const (
	// readBatch bounds the segments one TUN read may split into: a 64 KiB
	// super-packet with an MSS down to 256 bytes still fits.
	readBatch = 256
	// writeBatch is what wireguard-go's GRO tables are sized for.
	writeBatch = 128
	// writeOffset is headroom wireguard-go's Write needs in front of each
	// packet for the virtio-net header (10 bytes), rounded up.
	writeOffset = 16
	// maxCoalesced is the largest packet wireguard-go's Write builds by
	// coalescing segments, so the capacity every write buffer needs.
	maxCoalesced = 65535
)

// Line is a running delay line. Create it with Start; stop it with Close.
type Line struct {
	cfg   Config
	dev   tun.Device
	start time.Time
	// raw passes whole virtio-net frames (GSO super-packets included)
	// through untouched; see startOn.
	raw bool

	mu   sync.Mutex
	q    *delayQueue
	wake chan struct{}

	cancel context.CancelFunc
	wg     sync.WaitGroup
	errMu  sync.Mutex
	err    error

	forwarded, writes, bytes, lossDrops atomic.Uint64
	queueDrops                          atomic.Uint64
	readErrors, writeErrors, maxQueue   atomic.Uint64
	lateMax                             atomic.Int64
}

// Run creates the TUN cfg.TUN in the calling process's network namespace,
// runs the delay line until ctx is done, removes the TUN and returns the
// first fatal error, if any. It is what Main (and so `lanlink lab wanem`)
// runs inside the emulator namespace.
func Run(ctx context.Context, cfg Config) error {
	l, err := Start(ctx, "", cfg)
	if err != nil {
		return err
	}
	<-ctx.Done()
	err = l.Close()
	l.cfg.Logger.Info("wanem stopped", "tun", l.cfg.TUN, "stats", l.Stats().String())
	return err
}

// Start creates the TUN cfg.TUN inside network namespace ns (the caller's
// own namespace when ns is "") and starts the delay line in this process.
// The TUN stays in ns for its whole life although the goroutines serving it
// run on threads in any namespace: a TUN belongs to the namespace it was
// created in, and its file descriptor works from everywhere.
//
// The TUN is created down; Install brings it up and routes into it.
func Start(ctx context.Context, ns string, cfg Config) (*Line, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	var dev tun.Device
	err = inNamespace(ns, func() error {
		var err error
		dev, err = tun.CreateTUN(cfg.TUN, cfg.MTU)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create TUN %q in namespace %q: %w", cfg.TUN, ns, err)
	}
	return startOn(ctx, dev, cfg), nil
}

func startOn(ctx context.Context, dev tun.Device, cfg Config) *Line {
	ctx, cancel := context.WithCancel(ctx)
	l := &Line{
		cfg:    cfg,
		dev:    dev,
		start:  time.Now(),
		wake:   make(chan struct{}, 1),
		cancel: cancel,
	}
	// Without loss the line moves whole frames as the kernel hands them
	// over: one read and one write per 64 KiB TCP super-packet and no copy
	// in user space. Loss must hit single wire packets, not 45 at a time,
	// so then wireguard-go splits super-packets into segments on read and
	// coalesces them again on write, which costs checksums and copies.
	l.raw = cfg.Loss == 0 && isVnetHdr(dev)
	if l.raw {
		l.q = newDelayQueue(cfg.QueueLimit, rawFrameMax)
	} else {
		l.q = newDelayQueue(cfg.QueueLimit, cfg.MTU)
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	l.wg.Add(3)
	go func() {
		defer l.wg.Done()
		// wireguard-go's netlink listener blocks on this channel when
		// nobody drains it, and then never exits on Close.
		for range dev.Events() {
		}
	}()
	go func() {
		defer l.wg.Done()
		if l.raw {
			l.fail(l.readRawLoop())
		} else {
			l.fail(l.readLoop(rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))))
		}
		cancel()
	}()
	go func() {
		defer l.wg.Done()
		l.fail(l.writeLoop(ctx))
		cancel()
	}()
	go func() {
		<-ctx.Done()
		// Closing the device is what unblocks the reader.
		_ = dev.Close()
	}()
	cfg.Logger.Info("wanem started", "tun", cfg.TUN, "delay", cfg.Delay, "loss", cfg.Loss, "queue_limit", cfg.QueueLimit)
	return l
}

// Close stops the delay line, removes its TUN (and with it every route into
// it) and returns the first fatal error the line hit, if any.
func (l *Line) Close() error {
	l.cancel()
	// Closed here too, not only by the watcher goroutine, so that the TUN
	// is gone when Close returns.
	_ = l.dev.Close()
	l.wg.Wait()
	l.errMu.Lock()
	defer l.errMu.Unlock()
	return l.err
}

// Name is the TUN's name.
func (l *Line) Name() string { return l.cfg.TUN }

// Stats returns the counters so far.
func (l *Line) Stats() Stats {
	return Stats{
		Forwarded:     l.forwarded.Load(),
		Writes:        l.writes.Load(),
		Bytes:         l.bytes.Load(),
		LossDrops:     l.lossDrops.Load(),
		QueueDrops:    l.queueDrops.Load(),
		ReadErrors:    l.readErrors.Load(),
		WriteErrors:   l.writeErrors.Load(),
		MaxQueueBytes: l.maxQueue.Load(),
		LateMax:       time.Duration(l.lateMax.Load()),
	}
}

func (l *Line) fail(err error) {
	if err == nil {
		return
	}
	l.errMu.Lock()
	defer l.errMu.Unlock()
	if l.err == nil {
		l.err = err
		l.cfg.Logger.Error("wanem delay line failed", "tun", l.cfg.TUN, "err", err)
	}
}

func (l *Line) now() int64 { return int64(time.Since(l.start)) }

func (l *Line) readLoop(rng *rand.Rand) error {
	urgentThread() // see readRawLoop
	bufs := make([][]byte, readBatch)
	for i := range bufs {
		bufs[i] = make([]byte, l.cfg.MTU)
	}
	sizes := make([]int, readBatch)
	delay := int64(l.cfg.Delay)
	loss := l.cfg.Loss
	var lastLog time.Time
	for {
		n, err := l.dev.Read(bufs, sizes, 0)
		if err != nil {
			if errors.Is(err, os.ErrClosed) || errors.Is(err, unix.EBADF) {
				return nil
			}
			if !errors.Is(err, tun.ErrTooManySegments) {
				l.readErrors.Add(1)
				if time.Since(lastLog) > time.Second {
					lastLog = time.Now()
					l.cfg.Logger.Warn("wanem TUN read failed", "tun", l.cfg.TUN, "err", err)
				}
				// A bad packet is not fatal, a dead descriptor is:
				// without this pause that would spin.
				if n == 0 {
					time.Sleep(time.Millisecond)
					continue
				}
			}
		}
		due := l.now() + delay
		l.mu.Lock()
		for i := 0; i < n; i++ {
			if loss > 0 && rng.Float64() < loss {
				l.lossDrops.Add(1)
				continue
			}
			if !l.q.Push(bufs[i][:sizes[i]], due) {
				l.queueDrops.Add(1)
			}
		}
		if b := uint64(l.q.Bytes()); b > l.maxQueue.Load() {
			l.maxQueue.Store(b)
		}
		l.mu.Unlock()
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

func (l *Line) readRawLoop() error {
	// A packet's delay starts when it is read, so time it waits in the
	// TUN's queue for a descheduled reader is error: read urgently too.
	urgentThread()
	f := l.dev.File()
	scratch := make([]byte, rawFrameMax)
	delay := int64(l.cfg.Delay)
	var lastLog time.Time
	for {
		l.mu.Lock()
		buf := l.q.Reserve(rawFrameMax)
		l.mu.Unlock()
		reserved := buf != nil
		if !reserved {
			buf = scratch // full: read to drop, or the TUN's queue backs up
		}
		n, err := f.Read(buf)
		due := l.now() + delay
		l.mu.Lock()
		ok := reserved && err == nil && l.q.Commit(n, due)
		if reserved && err != nil {
			l.q.Commit(0, 0) // releases the reservation
		}
		if b := uint64(l.q.Bytes()); b > l.maxQueue.Load() {
			l.maxQueue.Store(b)
		}
		l.mu.Unlock()
		if err != nil {
			if errors.Is(err, os.ErrClosed) || errors.Is(err, unix.EBADF) {
				return nil
			}
			l.readErrors.Add(1)
			if time.Since(lastLog) > time.Second {
				lastLog = time.Now()
				l.cfg.Logger.Warn("wanem TUN read failed", "tun", l.cfg.TUN, "err", err)
			}
			time.Sleep(time.Millisecond)
			continue
		}
		if !ok {
			segs, _ := frameSegments(buf[:n])
			l.queueDrops.Add(uint64(segs))
			continue
		}
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

func (l *Line) writeLoop(ctx context.Context) error {
	// A dedicated thread with a 1 µs timer slack sleeps with microsecond
	// precision; Go timers can round sub-millisecond waits up to 1 ms when
	// the process is otherwise idle, a 5 % error on a 20 ms delay. Nice -20
	// (we run as root) gets it the CPU soon after waking on a busy machine,
	// where otherwise every packet left a few ms late.
	urgentThread()

	var emit func(now int64) error
	if l.raw {
		frames := make([][]byte, writeBatch)
		emit = func(now int64) error { return l.emitRaw(now, frames) }
	} else {
		stage := make([][]byte, writeBatch)
		for i := range stage {
			stage[i] = make([]byte, writeOffset+maxCoalesced)
		}
		emit = func(now int64) error { return l.emitSplit(now, stage) }
	}
	var lastLog time.Time
	for {
		l.mu.Lock()
		if l.q.Len() == 0 {
			l.mu.Unlock()
			select {
			case <-l.wake:
				continue
			case <-ctx.Done():
				return nil
			}
		}
		now := l.now()
		if _, due := l.q.Peek(0); due > now {
			l.mu.Unlock()
			// Every packet gets the same delay, so nothing that arrives
			// meanwhile can be due earlier: sleep without listening.
			// The sleep is at most Delay long, which bounds how late
			// Close takes effect.
			sleepNanos(due - now)
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		if _, due := l.q.Peek(0); now-due > l.lateMax.Load() {
			l.lateMax.Store(now - due)
		}
		if err := emit(now); err != nil {
			if errors.Is(err, os.ErrClosed) || errors.Is(err, unix.EBADF) {
				return nil
			}
			l.writeErrors.Add(1)
			if time.Since(lastLog) > time.Second {
				lastLog = time.Now()
				l.cfg.Logger.Warn("wanem TUN write failed", "tun", l.cfg.TUN, "err", err)
			}
		}
	}
}

// emitSplit is called with l.mu held and releases it. It copies the due
// segments into buffers with room to coalesce and hands them to
// wireguard-go's Write, which rebuilds GSO super-packets from them.
func (l *Line) emitSplit(now int64, stage [][]byte) error {
	k, nbytes := l.q.Due(now, len(stage)), 0
	for i := 0; i < k; i++ {
		pkt, _ := l.q.Peek(i)
		stage[i] = stage[i][:writeOffset+len(pkt)]
		copy(stage[i][writeOffset:], pkt)
		nbytes += len(pkt)
	}
	l.q.Pop(k)
	l.mu.Unlock()
	l.forwarded.Add(uint64(k))
	l.bytes.Add(uint64(nbytes))
	_, err := l.dev.Write(stage[:k], writeOffset)
	l.writes.Add(1) // calls, not syscalls: wireguard-go hides those
	return err
}

// emitRaw is called with l.mu held and releases it. The due frames,
// virtio-net header and all, go back to the TUN straight from the arena:
// the producer never writes over packets not yet popped, so they are
// popped only after the writes.
func (l *Line) emitRaw(now int64, frames [][]byte) error {
	k := l.q.Due(now, len(frames))
	for i := 0; i < k; i++ {
		frames[i], _ = l.q.Peek(i)
	}
	l.mu.Unlock()
	f := l.dev.File()
	var errs error
	var segs, nbytes int
	for _, fr := range frames[:k] {
		if _, err := f.Write(fr); err != nil {
			if errors.Is(err, os.ErrClosed) {
				return err
			}
			errs = errors.Join(errs, err)
			continue
		}
		sg, b := frameSegments(fr)
		segs += sg
		nbytes += b
	}
	clear(frames[:k])
	l.mu.Lock()
	l.q.Pop(k)
	l.mu.Unlock()
	l.forwarded.Add(uint64(segs))
	l.writes.Add(uint64(k))
	l.bytes.Add(uint64(nbytes))
	return errs
}

// urgentThread locks the calling goroutine to its OS thread and gives that
// thread a 1 µs timer slack and nice -20. The goroutine must never unlock:
// the thread then dies with it instead of carrying its priority into the
// Go scheduler's pool.
func urgentThread() {
	runtime.LockOSThread()
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1000, 0, 0, 0)
	_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), -20)
}

// sleepNanos blocks the calling thread (not just the goroutine) for d ns.
func sleepNanos(d int64) {
	ts := unix.NsecToTimespec(d)
	for {
		var rem unix.Timespec
		if err := unix.Nanosleep(&ts, &rem); err != unix.EINTR {
			return
		}
		ts = rem
	}
}
