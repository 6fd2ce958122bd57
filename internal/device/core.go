package device

import (
	"log/slog"
	"net"
	"sync"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// core is what both backends share: the interface name, the lock that
// serialises Configure, Stats and Close, and how to read and write the
// device's WireGuard state (wgctrl for the kernel, IpcGet/IpcSet for
// wireguard-go).
type core struct {
	name  string
	log   *slog.Logger
	read  func() (*wgtypes.Device, error)
	write func(wgtypes.Config) error

	mu     sync.Mutex
	closed bool
}

func (c *core) Name() string { return c.name }

// Configure validates want, reads the device and writes only the
// difference (applyDiff).
func (c *core) Configure(want Config) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return net.ErrClosed
	}
	return applyDiff(c.name, c.log, want, c.read, c.write)
}

func (c *core) Stats() ([]PeerStats, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, net.ErrClosed
	}
	cur, err := c.read()
	if err != nil {
		return nil, err
	}
	return peerStats(cur), nil
}

// markClosed makes every later call fail with net.ErrClosed, after any
// running one finishes; it reports false if the device was closed already.
func (c *core) markClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.closed = true
	return true
}

// isClosed reports whether Close has begun.
func (c *core) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}
