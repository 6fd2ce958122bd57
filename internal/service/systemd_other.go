//go:build !linux

package service

import (
	"context"
	"errors"
	"runtime"
)

// DBus is the real Systemd; systemd exists only on Linux.
type DBus struct{}

var _ Systemd = (*DBus)(nil)

// Connect fails: systemd services are Linux-only.
func Connect(ctx context.Context) (*DBus, error) {
	return nil, errors.New("lanlink as a systemd service is not supported on " + runtime.GOOS)
}

func (*DBus) Close() error                                   { return nil }
func (*DBus) DaemonReload(ctx context.Context) error         { return errNotLinux }
func (*DBus) Enable(ctx context.Context, name string) error  { return errNotLinux }
func (*DBus) Disable(ctx context.Context, name string) error { return errNotLinux }
func (*DBus) Start(ctx context.Context, name string) error   { return errNotLinux }
func (*DBus) Stop(ctx context.Context, name string) error    { return errNotLinux }

var errNotLinux = errors.New("systemd is not supported on " + runtime.GOOS)
