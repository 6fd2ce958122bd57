package service

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// setup returns options whose binary exists, a manager on a temp unit dir
// (holding an unrelated unit, which must survive everything), and the fake.
func setup(t *testing.T) (UnitOptions, *Manager, *FakeSystemd) {
	t.Helper()
	root := t.TempDir()
	bin := filepath.Join(root, "lanlink")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	unitDir := filepath.Join(root, "units")
	if err := os.Mkdir(unitDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(unitDir, "other.service"), []byte("[Service]\nExecStart=/bin/true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := UnitOptions{Binary: bin, PlanPath: "/etc/lanlink/network.toml", KeyPath: "/etc/lanlink/private.key", Interface: "wg0"}
	sys := &FakeSystemd{UnitDir: unitDir}
	return opts, &Manager{Systemd: sys, UnitDir: unitDir}, sys
}

// snapshot is a unit directory's contents: name, mode and data per file.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = info.Mode().String() + " " + string(data)
	}
	return m
}

const (
	unit    = "lanlink-wg0.service"
	noState = "loaded=[other.service] enabled=[] active=[]"
)

func TestInstallThenUninstall(t *testing.T) {
	opts, m, sys := setup(t)
	before := snapshot(t, m.UnitDir)
	ctx := context.Background()

	if err := m.Install(ctx, opts); err != nil {
		t.Fatalf("Install: %v", err)
	}
	want, _ := Unit(opts)
	got, err := os.ReadFile(filepath.Join(m.UnitDir, unit))
	if err != nil {
		t.Fatalf("unit not written: %v", err)
	}
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("unit file (-want +got):\n%s", diff)
	}
	if fi, _ := os.Stat(filepath.Join(m.UnitDir, unit)); fi.Mode().Perm() != 0o644 {
		t.Errorf("unit file mode %v, want 0644 (systemd warns about writable or unreadable units)", fi.Mode().Perm())
	}
	if diff := cmp.Diff("loaded=[lanlink-wg0.service other.service] enabled=[lanlink-wg0.service] active=[lanlink-wg0.service]", sys.State()); diff != "" {
		t.Errorf("systemd state after Install (-want +got):\n%s", diff)
	}

	if err := m.Uninstall(ctx, "wg0"); err != nil {
		t.Fatalf("Uninstall: %v", err)
	}
	wantCalls := []string{
		"daemon-reload", "enable " + unit, "start " + unit,
		"stop " + unit, "disable " + unit, "daemon-reload",
	}
	if diff := cmp.Diff(wantCalls, sys.Calls()); diff != "" {
		t.Errorf("systemd calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(noState, sys.State()); diff != "" {
		t.Errorf("systemd state after Uninstall (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(before, snapshot(t, m.UnitDir)); diff != "" {
		t.Errorf("unit dir after Install+Uninstall differs from before (-want +got):\n%s", diff)
	}
}

func TestInstallRollsBackOnFailure(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		failOn    string
		wantCalls []string
	}{
		{"daemon-reload", []string{"daemon-reload"}},
		{"enable", []string{"daemon-reload", "enable " + unit, "disable " + unit, "daemon-reload"}},
		// The failed start must be followed by a stop: Restart=always
		// would otherwise keep retrying a unit that no longer exists.
		{"start", []string{"daemon-reload", "enable " + unit, "start " + unit, "stop " + unit, "disable " + unit, "daemon-reload"}},
	} {
		t.Run(tc.failOn, func(t *testing.T) {
			opts, m, sys := setup(t)
			// Load the unrelated unit, as a running systemd would have.
			if err := sys.DaemonReload(context.Background()); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, m.UnitDir)
			sys.Fail = map[string]error{tc.failOn: boom}

			err := m.Install(context.Background(), opts)
			if !errors.Is(err, boom) {
				t.Fatalf("Install: %v, want the %s error", err, tc.failOn)
			}
			if !strings.Contains(err.Error(), tc.failOn) {
				t.Errorf("error %q does not name the failed step %q", err, tc.failOn)
			}
			calls := sys.Calls()[1:] // drop the setup daemon-reload
			if diff := cmp.Diff(tc.wantCalls, calls); diff != "" {
				t.Errorf("systemd calls (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(before, snapshot(t, m.UnitDir)); diff != "" {
				t.Errorf("unit dir after failed Install (-want +got):\n%s", diff)
			}
			if tc.failOn != "daemon-reload" {
				if diff := cmp.Diff(noState, sys.State()); diff != "" {
					t.Errorf("systemd state after failed Install (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestInstallReportsFailedRollback(t *testing.T) {
	opts, m, sys := setup(t)
	sys.Fail = map[string]error{"start": errors.New("start failed"), "stop": errors.New("stop failed")}
	err := m.Install(context.Background(), opts)
	if err == nil || !strings.Contains(err.Error(), "start failed") || !strings.Contains(err.Error(), "stop failed") {
		t.Fatalf("Install: %v, want both the start and the stop error", err)
	}
	// The rest of the undo still ran.
	if _, err := os.Stat(filepath.Join(m.UnitDir, unit)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("unit file left behind after failed install: %v", err)
	}
}

func TestInstallCanceledStillRollsBack(t *testing.T) {
	opts, m, sys := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	sys.Fail = map[string]error{"start": context.Canceled}
	cancel()
	if err := m.Install(ctx, opts); !errors.Is(err, context.Canceled) {
		t.Fatalf("Install: %v, want context.Canceled", err)
	}
	if _, err := os.Stat(filepath.Join(m.UnitDir, unit)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("unit file left behind: %v", err)
	}
	if diff := cmp.Diff("loaded=[other.service] enabled=[] active=[]", sys.State()); diff != "" {
		t.Errorf("systemd state (-want +got):\n%s", diff)
	}
}

func TestInstallAgainIsIdempotent(t *testing.T) {
	opts, m, sys := setup(t)
	ctx := context.Background()
	if err := m.Install(ctx, opts); err != nil {
		t.Fatal(err)
	}
	after := snapshot(t, m.UnitDir)
	if err := m.Install(ctx, opts); err != nil {
		t.Fatalf("second Install: %v", err)
	}
	if diff := cmp.Diff(after, snapshot(t, m.UnitDir)); diff != "" {
		t.Errorf("second Install changed the unit dir (-want +got):\n%s", diff)
	}
	want := []string{"daemon-reload", "enable " + unit, "start " + unit, "daemon-reload", "enable " + unit, "start " + unit}
	if diff := cmp.Diff(want, sys.Calls()); diff != "" {
		t.Errorf("systemd calls (-want +got):\n%s", diff)
	}
}

func TestInstallRefusesToReplace(t *testing.T) {
	for _, tc := range []struct {
		name        string
		existing    func(opts UnitOptions) string
		wantForeign bool
	}{
		{"different settings", func(o UnitOptions) string {
			o.PlanPath = "/etc/lanlink/old.toml"
			u, _ := Unit(o)
			return u
		}, false},
		{"not ours", func(UnitOptions) string { return "[Service]\nExecStart=/usr/bin/wg-quick up wg0\n" }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts, m, sys := setup(t)
			if err := os.WriteFile(filepath.Join(m.UnitDir, unit), []byte(tc.existing(opts)), 0o644); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, m.UnitDir)
			err := m.Install(context.Background(), opts)
			var ce *ConflictError
			if !errors.As(err, &ce) || ce.Foreign != tc.wantForeign {
				t.Fatalf("Install: %v, want *ConflictError with Foreign=%v", err, tc.wantForeign)
			}
			if diff := cmp.Diff(before, snapshot(t, m.UnitDir)); diff != "" {
				t.Errorf("unit dir changed (-want +got):\n%s", diff)
			}
			if calls := sys.Calls(); len(calls) != 0 {
				t.Errorf("systemd was called: %q", calls)
			}
		})
	}
}

func TestInstallChecksBinary(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, path string)
	}{
		{"missing", func(t *testing.T, path string) {}},
		{"not executable", func(t *testing.T, path string) {
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts, m, sys := setup(t)
			opts.Binary = filepath.Join(t.TempDir(), "lanlink")
			tc.setup(t, opts.Binary)
			before := snapshot(t, m.UnitDir)
			if err := m.Install(context.Background(), opts); err == nil || !strings.Contains(err.Error(), opts.Binary) {
				t.Fatalf("Install: %v, want an error naming %s", err, opts.Binary)
			}
			if diff := cmp.Diff(before, snapshot(t, m.UnitDir)); diff != "" {
				t.Errorf("unit dir changed (-want +got):\n%s", diff)
			}
			if calls := sys.Calls(); len(calls) != 0 {
				t.Errorf("systemd was called: %q", calls)
			}
		})
	}
}

func TestUninstallRefuses(t *testing.T) {
	t.Run("not installed", func(t *testing.T) {
		_, m, sys := setup(t)
		err := m.Uninstall(context.Background(), "wg0")
		var ne *NotInstalledError
		if !errors.As(err, &ne) || !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Uninstall: %v, want *NotInstalledError matching fs.ErrNotExist", err)
		}
		if calls := sys.Calls(); len(calls) != 0 {
			t.Errorf("systemd was called: %q", calls)
		}
	})
	t.Run("not ours", func(t *testing.T) {
		_, m, sys := setup(t)
		path := filepath.Join(m.UnitDir, unit)
		if err := os.WriteFile(path, []byte("[Service]\nExecStart=/bin/true\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := m.Uninstall(context.Background(), "wg0"); err == nil {
			t.Fatal("Uninstall removed a unit lanlink did not write")
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("foreign unit file gone: %v", err)
		}
		if calls := sys.Calls(); len(calls) != 0 {
			t.Errorf("systemd was called: %q", calls)
		}
	})
	t.Run("stop fails", func(t *testing.T) {
		opts, m, sys := setup(t)
		if err := m.Install(context.Background(), opts); err != nil {
			t.Fatal(err)
		}
		sys.Fail = map[string]error{"stop": errors.New("stop timed out")}
		if err := m.Uninstall(context.Background(), "wg0"); err == nil || !strings.Contains(err.Error(), "stop timed out") {
			t.Fatalf("Uninstall: %v, want the stop error", err)
		}
		// Nothing after the failed step: running Uninstall again finishes it.
		if _, err := os.Stat(filepath.Join(m.UnitDir, unit)); err != nil {
			t.Errorf("unit file removed although stop failed: %v", err)
		}
		sys.Fail = nil
		if err := m.Uninstall(context.Background(), "wg0"); err != nil {
			t.Fatalf("second Uninstall: %v", err)
		}
		if diff := cmp.Diff(noState, sys.State()); diff != "" {
			t.Errorf("systemd state (-want +got):\n%s", diff)
		}
	})
	t.Run("bad interface", func(t *testing.T) {
		_, m, _ := setup(t)
		var oe *OptionsError
		if err := m.Uninstall(context.Background(), "../x"); !errors.As(err, &oe) {
			t.Fatalf("Uninstall(../x): %v, want *OptionsError", err)
		}
	})
}
