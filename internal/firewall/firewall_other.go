//go:build !linux

package firewall

import (
	"errors"
	"fmt"
	"runtime"
)

// ErrUnsupported is returned on systems without nftables.
var ErrUnsupported = errors.New("firewall: not supported")

// New fails: nftables exists only on Linux.
func New(o Options) (Firewall, error) {
	return nil, fmt.Errorf("%w on %s: masquerade and MSS clamping need Linux nftables", ErrUnsupported, runtime.GOOS)
}

// Recover has nothing to undo where New never succeeds.
func Recover(o Options, iface string) error { return nil }
