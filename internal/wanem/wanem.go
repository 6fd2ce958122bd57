package wanem

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Defaults applied by Config.withDefaults.
const (
	// DefaultQueueLimit holds a one-way delay of 200 ms at 10 Gbit/s, far
	// beyond anything this machine can push, so the delay line's own queue
	// never becomes the bottleneck; pages are only touched when used.
	DefaultQueueLimit = 256 << 20
	// DefaultMTU is the TUN's MTU. It only has to be at least the MTU of
	// every office-facing interface (GSO super-packets are not bound by it);
	// 9000 leaves room for jumbo-frame labs at a small cost in read buffers.
	DefaultMTU = 9000
)

// Config describes one delay line.
type Config struct {
	// TUN is the name of the TUN device the delay line creates (≤ 15 bytes).
	TUN string
	// Delay is added to every packet that passes the line, once. Traffic
	// that crosses the line in both directions sees 2×Delay more RTT.
	Delay time.Duration
	// Loss is the probability, 0..1, that a packet is dropped. It applies per
	// wire-sized segment, also to TCP super-packets, as on a real link.
	Loss float64
	// QueueLimit is how many bytes the line holds before it tail-drops;
	// DefaultQueueLimit when zero. It must cover rate × Delay.
	QueueLimit int
	// MTU of the TUN device; DefaultMTU when zero.
	MTU int
	// Seed seeds the loss decisions, for reproducible runs; random when 0.
	Seed uint64
	// Logger receives start/stop and error reports; discarded when nil.
	Logger *slog.Logger
}

// ErrConfig is wrapped by every error about an invalid Config.
var ErrConfig = errors.New("invalid wanem config")

func (c Config) withDefaults() (Config, error) {
	if c.TUN == "" || len(c.TUN) > 15 {
		return c, fmt.Errorf("%w: TUN name %q must be 1..15 bytes", ErrConfig, c.TUN)
	}
	if c.Delay < 0 || c.Delay > 10*time.Second {
		return c, fmt.Errorf("%w: delay %v must be within 0..10s", ErrConfig, c.Delay)
	}
	if !(c.Loss >= 0 && c.Loss <= 1) { // also rejects NaN
		return c, fmt.Errorf("%w: loss %v must be within 0..1", ErrConfig, c.Loss)
	}
	if c.QueueLimit == 0 {
		c.QueueLimit = DefaultQueueLimit
	}
	if c.QueueLimit < 64<<10 {
		return c, fmt.Errorf("%w: queue limit %d bytes is below 64 KiB (one TCP super-packet)", ErrConfig, c.QueueLimit)
	}
	if c.MTU == 0 {
		c.MTU = DefaultMTU
	}
	if c.MTU < 576 || c.MTU > 65535 {
		return c, fmt.Errorf("%w: MTU %d must be within 576..65535", ErrConfig, c.MTU)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Stats counts what a delay line did. Packets are wire-sized segments.
type Stats struct {
	Forwarded     uint64 // packets written back after their delay
	Writes        uint64 // TUN writes; Forwarded/Writes is the GSO batching
	Bytes         uint64 // IP bytes of the forwarded packets
	LossDrops     uint64 // packets dropped by the Loss probability
	QueueDrops    uint64 // packets tail-dropped beyond QueueLimit
	ReadErrors    uint64 // failed TUN reads (malformed or oversized input)
	WriteErrors   uint64 // failed TUN writes
	MaxQueueBytes uint64 // high-water mark of queued bytes
	// LateMax is the largest amount by which a packet left after its due
	// time (timer and scheduling slack), a sanity figure for the delay.
	LateMax time.Duration
}

func (s Stats) String() string {
	return fmt.Sprintf("forwarded=%d writes=%d bytes=%d loss_drops=%d queue_drops=%d read_errors=%d write_errors=%d max_queue_bytes=%d late_max=%v",
		s.Forwarded, s.Writes, s.Bytes, s.LossDrops, s.QueueDrops, s.ReadErrors, s.WriteErrors, s.MaxQueueBytes, s.LateMax)
}
