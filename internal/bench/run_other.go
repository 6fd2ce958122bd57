//go:build !linux

package bench

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"runtime"
	"time"
)

// Options shape a bench run; see the Linux implementation.
type Options struct {
	Planes                          []string
	Scenarios                       []Scenario
	Rounds                          int
	Duration, Omit                  time.Duration
	LanlinkBin, WGGoBin, DebianWGGo string
	ProfileDir, WorkDir             string
	Progress                        io.Writer
	Logger                          *slog.Logger
}

var errUnsupported = errors.New("the bench needs Linux network namespaces, not " + runtime.GOOS)

// Run is not supported on this OS.
func Run(context.Context, Options) (*Report, error) { return nil, errUnsupported }

// EnsureTools is not supported on this OS.
func EnsureTools(context.Context, []string, io.Writer) error { return errUnsupported }
