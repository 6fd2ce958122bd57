//go:build !linux

package device

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
)

var errUnsupportedOS = fmt.Errorf("WireGuard devices are not supported on %s: lanlink gateways run on Linux", runtime.GOOS)

func osBackends() backends {
	fail := func(context.Context, OpenOptions) (Device, error) { return nil, errUnsupportedOS }
	return backends{
		checkName: func(string, *slog.Logger) error { return nil },
		kernel:    fail,
		userspace: fail,
	}
}

// RemoveStale deletes a leftover kernel WireGuard link; Linux only.
func RemoveStale(name string) error { return errUnsupportedOS }
