package service

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestConnectWithoutSystemd(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "systemd", "system")
	_, err := connect(context.Background(), missing)
	if !errors.Is(err, ErrNoSystemd) {
		t.Fatalf("connect: %v, want ErrNoSystemd", err)
	}
	want := "systemd is not running on this machine (no " + missing + "); run `lanlink up` under your init system instead"
	if err.Error() != want {
		t.Errorf("error %q,\nwant  %q", err, want)
	}
}

func TestConnectWithoutDBus(t *testing.T) {
	for _, sock := range []string{"/run/systemd/private", "/run/dbus/system_bus_socket", "/var/run/dbus/system_bus_socket"} {
		if _, err := os.Stat(sock); err == nil {
			t.Skipf("%s exists: systemd may really be reachable here, so the D-Bus failure path cannot be exercised", sock)
		}
	}
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path="+filepath.Join(t.TempDir(), "no-bus"))
	booted := t.TempDir() // pretend systemd booted the machine
	d, err := connect(context.Background(), booted)
	if err == nil {
		d.Close()
		t.Fatal("connect succeeded with no bus")
	}
	var ne *NoSystemdError
	if !errors.As(err, &ne) || !errors.Is(err, ErrNoSystemd) || ne.Err == nil {
		t.Fatalf("connect: %#v, want *NoSystemdError carrying the D-Bus error", err)
	}
}
