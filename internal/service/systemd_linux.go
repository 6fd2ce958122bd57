package service

import (
	"context"
	"errors"
	"fmt"
	"os"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// DBus is the real Systemd: the system manager over D-Bus (its private
// socket when root, so it works before dbus-daemon runs).
type DBus struct {
	conn *sddbus.Conn
}

var _ Systemd = (*DBus)(nil)

// Connect connects to systemd, or returns a NoSystemdError when this
// machine does not run it: no /run/systemd/system (containers, other init
// systems), or nothing answering on D-Bus.
func Connect(ctx context.Context) (*DBus, error) {
	return connect(ctx, BootedDir)
}

func connect(ctx context.Context, booted string) (*DBus, error) {
	if fi, err := os.Stat(booted); err != nil || !fi.IsDir() {
		return nil, &NoSystemdError{Reason: "no " + booted}
	}
	conn, err := sddbus.NewWithContext(ctx)
	if err != nil {
		return nil, &NoSystemdError{Reason: "cannot connect to it over D-Bus: " + err.Error(), Err: err}
	}
	return &DBus{conn: conn}, nil
}

// Close releases the D-Bus connection.
func (d *DBus) Close() error {
	d.conn.Close()
	return nil
}

func (d *DBus) DaemonReload(ctx context.Context) error {
	if err := d.conn.ReloadContext(ctx); err != nil {
		return fmt.Errorf("daemon-reload: %w", err)
	}
	return nil
}

func (d *DBus) Enable(ctx context.Context, name string) error {
	// runtime=false: enabled for good, in /etc; force=false: never
	// replace someone else's symlink.
	if _, _, err := d.conn.EnableUnitFilesContext(ctx, []string{name}, false, false); err != nil {
		return fmt.Errorf("enable %s: %w", name, err)
	}
	return nil
}

func (d *DBus) Disable(ctx context.Context, name string) error {
	_, err := d.conn.DisableUnitFilesContext(ctx, []string{name}, false)
	if err != nil && !noSuchUnit(err) {
		return fmt.Errorf("disable %s: %w", name, err)
	}
	return nil
}

func (d *DBus) Start(ctx context.Context, name string) error {
	ch := make(chan string, 1)
	if _, err := d.conn.StartUnitContext(ctx, name, "replace", ch); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	return waitJob(ctx, "start", name, ch)
}

func (d *DBus) Stop(ctx context.Context, name string) error {
	ch := make(chan string, 1)
	if _, err := d.conn.StopUnitContext(ctx, name, "replace", ch); err != nil {
		if noSuchUnit(err) {
			return nil
		}
		return fmt.Errorf("stop %s: %w", name, err)
	}
	return waitJob(ctx, "stop", name, ch)
}

// waitJob waits for a job's result. If ctx ends first the job goes on in
// systemd; the caller only stops waiting.
func waitJob(ctx context.Context, op, name string, ch <-chan string) error {
	select {
	case res := <-ch:
		if res != "done" {
			return &JobError{Op: op, Unit: name, Result: res}
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s %s: waiting for systemd: %w", op, name, ctx.Err())
	}
}

func noSuchUnit(err error) bool {
	var de dbus.Error
	if errors.As(err, &de) {
		return de.Name == "org.freedesktop.systemd1.NoSuchUnit"
	}
	var dp *dbus.Error
	return errors.As(err, &dp) && dp.Name == "org.freedesktop.systemd1.NoSuchUnit"
}
