package devicetest

import (
	"net"
	"slices"
	"sync"

	"lanlink/internal/device"
)

// Fake is an in-memory device.Device. It is safe for concurrent use.
type Fake struct {
	name string

	mu           sync.Mutex
	backend      string
	configs      []device.Config
	stats        []device.PeerStats
	statsSet     bool
	configureErr error
	statsErr     error
	closed       bool
}

var _ device.Device = (*Fake)(nil)

// New returns an open Fake named name with backend "userspace".
func New(name string) *Fake {
	return &Fake{name: name, backend: device.BackendUserspace}
}

// Name implements device.Device.
func (f *Fake) Name() string { return f.name }

// Backend implements device.Device.
func (f *Fake) Backend() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.backend
}

// SetBackend changes what Backend reports.
func (f *Fake) SetBackend(b string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.backend = b
}

// Configure records cfg (a deep copy), or returns the error set with
// SetConfigureError without recording anything.
func (f *Fake) Configure(cfg device.Config) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return net.ErrClosed
	}
	if f.configureErr != nil {
		return f.configureErr
	}
	f.configs = append(f.configs, cloneConfig(cfg))
	return nil
}

// Configs returns every Config applied so far, oldest first.
func (f *Fake) Configs() []device.Config {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]device.Config, len(f.configs))
	for i, c := range f.configs {
		out[i] = cloneConfig(c)
	}
	return out
}

// Current returns the last applied Config and whether there is one.
func (f *Fake) Current() (device.Config, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.configs) == 0 {
		return device.Config{}, false
	}
	return cloneConfig(f.configs[len(f.configs)-1]), true
}

// SetConfigureError makes the following Configure calls fail with err
// (nil restores success).
func (f *Fake) SetConfigureError(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.configureErr = err
}

// SetStats fixes what Stats returns. Until it is called, Stats reports one
// entry per peer of the last applied Config, with its configured endpoint
// and no handshake, as a real device would before any traffic.
func (f *Fake) SetStats(stats []device.PeerStats) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stats = slices.Clone(stats)
	f.statsSet = true
}

// SetStatsError makes the following Stats calls fail with err (nil
// restores success).
func (f *Fake) SetStatsError(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statsErr = err
}

// Stats implements device.Device.
func (f *Fake) Stats() ([]device.PeerStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, net.ErrClosed
	}
	if f.statsErr != nil {
		return nil, f.statsErr
	}
	if f.statsSet {
		return slices.Clone(f.stats), nil
	}
	if len(f.configs) == 0 {
		return []device.PeerStats{}, nil
	}
	cur := f.configs[len(f.configs)-1]
	out := make([]device.PeerStats, 0, len(cur.Peers))
	for _, p := range cur.Peers {
		out = append(out, device.PeerStats{PublicKey: p.PublicKey, Endpoint: p.Endpoint})
	}
	return out, nil
}

// Close implements device.Device: the first call succeeds, later calls and
// every other method afterwards return net.ErrClosed.
func (f *Fake) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return net.ErrClosed
	}
	f.closed = true
	return nil
}

// Closed reports whether Close was called.
func (f *Fake) Closed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

func cloneConfig(c device.Config) device.Config {
	c.Peers = slices.Clone(c.Peers)
	for i := range c.Peers {
		c.Peers[i].AllowedIPs = slices.Clone(c.Peers[i].AllowedIPs)
	}
	return c
}
