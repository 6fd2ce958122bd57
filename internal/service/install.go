package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"lanlink/internal/fsutil"
)

// DefaultUnitDir is where administrators' own units live; units there
// survive package upgrades and take precedence over vendor units.
const DefaultUnitDir = "/etc/systemd/system"

// Systemd is the part of the service manager Install and Uninstall use.
// Names are unit names (lanlink-wg0.service) found in the unit directory.
type Systemd interface {
	// DaemonReload makes systemd re-read all unit files, so that a unit
	// written or removed since becomes known or forgotten.
	DaemonReload(ctx context.Context) error
	// Enable makes the unit start at boot (the links its [Install]
	// section asks for). Enabling an enabled unit succeeds.
	Enable(ctx context.Context, name string) error
	// Disable removes those links. Disabling a disabled or unknown unit
	// succeeds.
	Disable(ctx context.Context, name string) error
	// Start starts the unit and returns once the start job has finished:
	// for a Type=notify unit, after the agent sent READY=1, or failed
	// (the error then says how to read its log). Starting an active unit
	// succeeds.
	Start(ctx context.Context, name string) error
	// Stop stops the unit and returns once it has stopped. Stopping an
	// inactive or unknown unit succeeds.
	Stop(ctx context.Context, name string) error
}

// Manager installs and removes lanlink units.
type Manager struct {
	Systemd Systemd
	UnitDir string       // "" means DefaultUnitDir
	Logger  *slog.Logger // nil discards
}

// Install installs the agent for opts.Interface as a service with the
// default unit directory; see Manager.Install.
func Install(ctx context.Context, opts UnitOptions, sys Systemd) error {
	return (&Manager{Systemd: sys}).Install(ctx, opts)
}

// Uninstall removes the service for iface from the default unit
// directory; see Manager.Uninstall.
func Uninstall(ctx context.Context, iface string, sys Systemd) error {
	return (&Manager{Systemd: sys}).Uninstall(ctx, iface)
}

// ConflictError means a unit file by our name exists and Install will not
// replace it: it differs from what Install would write, or lanlink did not
// write it at all.
type ConflictError struct {
	Path      string
	Interface string
	Foreign   bool // not written by lanlink
}

func (e *ConflictError) Error() string {
	if e.Foreign {
		return fmt.Sprintf("%s exists and was not written by lanlink; move it away (and `systemctl daemon-reload`), then install again", e.Path)
	}
	return fmt.Sprintf("%s is already installed with different settings; remove it with `lanlink service uninstall --interface %s`, then install again", e.Path, e.Interface)
}

// NotInstalledError means there is no lanlink unit for the interface.
// It matches fs.ErrNotExist.
type NotInstalledError struct {
	Path      string
	Interface string
}

func (e *NotInstalledError) Error() string {
	return fmt.Sprintf("lanlink is not installed as a service for interface %s (no %s)", e.Interface, e.Path)
}

func (e *NotInstalledError) Is(target error) bool { return target == fs.ErrNotExist }

func (m *Manager) dir() string {
	if m.UnitDir == "" {
		return DefaultUnitDir
	}
	return m.UnitDir
}

func (m *Manager) log() *slog.Logger {
	if m.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.Logger
}

// Install writes the unit for opts atomically, then has systemd reload,
// enable and start it; it returns once the agent reported ready, or with
// the error. On failure it undoes every step it took, in reverse order, so
// the unit directory and systemd are as before (the returned error also
// carries any step the undo could not complete).
//
// Installing the same options again is a no-op apart from re-running the
// idempotent systemd steps; this repairs an install that was interrupted.
// A different existing unit is never replaced: see ConflictError.
func (m *Manager) Install(ctx context.Context, opts UnitOptions) error {
	text, err := Unit(opts)
	if err != nil {
		return err
	}
	if err := checkExecutable(opts.Binary); err != nil {
		return err
	}
	name := UnitName(opts.Interface)
	path := filepath.Join(m.dir(), name)
	log := m.log().With("unit", name)

	old, err := os.ReadFile(path)
	switch {
	case err == nil && bytes.Equal(old, []byte(text)):
		log.Info("unit already installed; making sure it is enabled and running", "path", path)
		return m.activate(ctx, name)
	case err == nil:
		return &ConflictError{Path: path, Interface: opts.Interface, Foreign: !ours(old)}
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("read existing unit: %w", err)
	}

	var undo []func(context.Context) error
	if err := fsutil.WriteFileAtomic(path, []byte(text), 0o644); err != nil {
		return fmt.Errorf("write unit: %w", err)
	}
	log.Info("wrote unit", "path", path)
	removeUnit := func(context.Context) error {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	undo = append(undo, removeUnit)

	steps := []struct {
		name      string
		do, undo  func(context.Context) error
		undoFirst bool
	}{
		// Undoing daemon-reload means another one once the file is
		// gone, so that systemd forgets the unit: remove it first.
		{"daemon-reload", m.Systemd.DaemonReload, func(ctx context.Context) error {
			if err := removeUnit(ctx); err != nil {
				return err
			}
			return m.Systemd.DaemonReload(ctx)
		}, false},
		// Enable and Start are undone even when they fail: a failed
		// enable may have made some links, and a failed start of a
		// Restart=always unit keeps being retried until stopped.
		{"enable", func(ctx context.Context) error { return m.Systemd.Enable(ctx, name) },
			func(ctx context.Context) error { return m.Systemd.Disable(ctx, name) }, true},
		{"start", func(ctx context.Context) error { return m.Systemd.Start(ctx, name) },
			func(ctx context.Context) error { return m.Systemd.Stop(ctx, name) }, true},
	}
	for i, s := range steps {
		if s.undoFirst {
			undo = append(undo, steps[i].undo)
		}
		if err := s.do(ctx); err != nil {
			err = fmt.Errorf("install %s: %s: %w", name, s.name, err)
			if rerr := rollback(ctx, undo); rerr != nil {
				return errors.Join(err, fmt.Errorf("undoing the install also failed, fix by hand: %w", rerr))
			}
			log.Info("install failed; undone", "step", s.name)
			return err
		}
		if !s.undoFirst {
			undo = append(undo, steps[i].undo)
		}
		log.Info("done", "step", s.name)
	}
	return nil
}

func (m *Manager) activate(ctx context.Context, name string) error {
	if err := m.Systemd.DaemonReload(ctx); err != nil {
		return fmt.Errorf("install %s: daemon-reload: %w", name, err)
	}
	if err := m.Systemd.Enable(ctx, name); err != nil {
		return fmt.Errorf("install %s: enable: %w", name, err)
	}
	if err := m.Systemd.Start(ctx, name); err != nil {
		return fmt.Errorf("install %s: start: %w", name, err)
	}
	return nil
}

// rollback runs undo in reverse and keeps going past failures, so that as
// much as possible is undone. It does not inherit ctx's cancellation: an
// install interrupted with Ctrl-C must still be cleaned up.
func rollback(ctx context.Context, undo []func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	var errs []error
	for i := len(undo) - 1; i >= 0; i-- {
		if err := undo[i](ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Uninstall exactly reverses Install: stop, disable, remove the unit file,
// daemon-reload. It stops at the first failure, leaving a state that
// running Uninstall again finishes. It refuses to remove a unit file that
// lanlink did not write.
func (m *Manager) Uninstall(ctx context.Context, iface string) error {
	if err := checkInterface(iface); err != nil {
		return err
	}
	name := UnitName(iface)
	path := filepath.Join(m.dir(), name)
	log := m.log().With("unit", name)
	text, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &NotInstalledError{Path: path, Interface: iface}
	}
	if err != nil {
		return fmt.Errorf("read unit: %w", err)
	}
	if !ours(text) {
		return fmt.Errorf("%s was not written by lanlink; remove it with systemctl yourself", path)
	}
	if err := m.Systemd.Stop(ctx, name); err != nil {
		return fmt.Errorf("uninstall %s: stop: %w", name, err)
	}
	log.Info("stopped")
	if err := m.Systemd.Disable(ctx, name); err != nil {
		return fmt.Errorf("uninstall %s: disable: %w", name, err)
	}
	log.Info("disabled")
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("uninstall %s: %w", name, err)
	}
	log.Info("removed unit", "path", path)
	if err := m.Systemd.DaemonReload(ctx); err != nil {
		return fmt.Errorf("uninstall %s: unit file removed, but daemon-reload failed (run `systemctl daemon-reload`): %w", name, err)
	}
	return nil
}

func ours(unit []byte) bool { return strings.HasPrefix(string(unit), marker) }

// checkExecutable catches the common mistake before systemd does, where
// it would only show up as status 203/EXEC in the journal.
func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("lanlink binary for the service: %w", err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("lanlink binary for the service %s is not an executable file", path)
	}
	return nil
}
