//go:build !linux

package hostnet

import (
	"fmt"
	"log/slog"
	"runtime"
)

// New is only implemented on Linux.
func New(opts Options) (Host, error) {
	return nil, fmt.Errorf("host network setup is not supported on %s", runtime.GOOS)
}

// Recover is only implemented on Linux.
func Recover(stateDir, iface string, log *slog.Logger) error {
	return fmt.Errorf("host network recovery is not supported on %s", runtime.GOOS)
}
