//go:build !linux

package wanem

import (
	"context"
	"fmt"
	"runtime"
	"time"
)

var errUnsupported = fmt.Errorf("wanem needs Linux (TUN, network namespaces, tc), not %s", runtime.GOOS)

// Line is a running delay line; see the Linux implementation.
type Line struct{}

// Run is not supported on this OS.
func Run(ctx context.Context, cfg Config) error { return errUnsupported }

// Start is not supported on this OS.
func Start(ctx context.Context, ns string, cfg Config) (*Line, error) { return nil, errUnsupported }

// Close does nothing.
func (l *Line) Close() error { return nil }

// Name is empty.
func (l *Line) Name() string { return "" }

// Stats is empty.
func (l *Line) Stats() Stats { return Stats{} }

// Install is not supported on this OS.
func Install(ctx context.Context, ns string, ifaces []string, tunName string, table int) (func() error, error) {
	return nil, errUnsupported
}

// SetRate is not supported on this OS.
func SetRate(ctx context.Context, ns, iface, rate string, rtt time.Duration) (func() error, error) {
	return nil, errUnsupported
}
