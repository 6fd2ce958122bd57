//go:build !linux

package doctor

import (
	"fmt"
	"runtime"
)

// NewObserver is only implemented on Linux.
func NewObserver(o ObserverOptions) (Observer, error) {
	return nil, fmt.Errorf("lanlink doctor is not supported on %s", runtime.GOOS)
}
