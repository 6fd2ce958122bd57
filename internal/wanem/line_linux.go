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

	mu   sync.Mutex
	q    *delayQueue
	wake chan struct{}

	cancel context.CancelFunc
	wg     sync.WaitGroup
	errMu  sync.Mutex
	err    error

	forwarded, bytes, lossDrops, queueDrops atomic.Uint64
	readErrors, writeErrors, maxQueue       atomic.Uint64
	lateMax                                 atomic.Int64
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
		q:      newDelayQueue(cfg.QueueLimit, cfg.MTU),
		wake:   make(chan struct{}, 1),
		cancel: cancel,
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
		l.fail(l.readLoop(rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))))
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

func (l *Line) writeLoop(ctx context.Context) error {
	// A dedicated thread with a 1 µs timer slack sleeps with microsecond
	// precision; Go timers can round sub-millisecond waits up to 1 ms when
	// the process is otherwise idle, a 5 % error on a 20 ms delay.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1000, 0, 0, 0)

	stage := make([][]byte, writeBatch)
	for i := range stage {
		stage[i] = make([]byte, writeOffset+maxCoalesced)
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
		k, nbytes := l.q.Due(now, len(stage)), 0
		if _, due := l.q.Peek(0); now-due > l.lateMax.Load() {
			l.lateMax.Store(now - due)
		}
		for i := 0; i < k; i++ {
			pkt, _ := l.q.Peek(i)
			stage[i] = stage[i][:writeOffset+len(pkt)]
			copy(stage[i][writeOffset:], pkt)
			nbytes += len(pkt)
		}
		l.q.Pop(k)
		l.mu.Unlock()

		if _, err := l.dev.Write(stage[:k], writeOffset); err != nil {
			if errors.Is(err, os.ErrClosed) {
				return nil
			}
			l.writeErrors.Add(1)
			if time.Since(lastLog) > time.Second {
				lastLog = time.Now()
				l.cfg.Logger.Warn("wanem TUN write failed", "tun", l.cfg.TUN, "err", err)
			}
		}
		l.forwarded.Add(uint64(k))
		l.bytes.Add(uint64(nbytes))
	}
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
