package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// listen opens a real notify socket, the way systemd does, and points
// $NOTIFY_SOCKET at it. name "" means a file in a temp dir; a name starting
// with '@' is an abstract socket.
func listen(t *testing.T, name string) (recv func(wait time.Duration) (string, bool)) {
	t.Helper()
	if name == "" {
		name = filepath.Join(t.TempDir(), "notify")
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen on %s: %v", name, err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", name)
	buf := make([]byte, 4096)
	return func(wait time.Duration) (string, bool) {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(wait))
		n, err := conn.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return "", false
			}
			t.Fatalf("read notify socket: %v", err)
		}
		return string(buf[:n]), true
	}
}

func uniqueAbstract() string {
	return fmt.Sprintf("@lanlink-sdnotify-test-%d-%d", os.Getpid(), time.Now().UnixNano())
}

func TestNotifySendsExactDatagrams(t *testing.T) {
	for _, sock := range []struct{ name, addr string }{
		{"path", ""},
		{"abstract", uniqueAbstract()},
	} {
		t.Run(sock.name, func(t *testing.T) {
			recv := listen(t, sock.addr)
			for _, state := range []string{Ready, Stopping, "STATUS=3 of 3 peers up", Ready + "\nSTATUS=ok", WatchdogPing} {
				if err := Notify(state); err != nil {
					t.Fatalf("Notify(%q): %v", state, err)
				}
				got, ok := recv(2 * time.Second)
				if !ok {
					t.Fatalf("Notify(%q): no datagram arrived", state)
				}
				if diff := cmp.Diff(state, got); diff != "" {
					t.Errorf("Notify(%q) datagram (-want +got):\n%s", state, diff)
				}
			}
		})
	}
}

func TestNotifyReloadingCarriesMonotonicTimestamp(t *testing.T) {
	recv := listen(t, "")
	before, _ := monotonicUsec()
	if err := Notify(Reloading); err != nil {
		t.Fatal(err)
	}
	after, _ := monotonicUsec()
	got, ok := recv(2 * time.Second)
	if !ok {
		t.Fatal("no datagram arrived")
	}
	m := regexp.MustCompile(`^RELOADING=1\nMONOTONIC_USEC=([0-9]+)$`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("datagram %q, want RELOADING=1 then MONOTONIC_USEC=<µs>", got)
	}
	us, _ := strconv.ParseUint(m[1], 10, 64)
	if us < before || us > after {
		t.Errorf("MONOTONIC_USEC=%d, want within [%d, %d] (CLOCK_MONOTONIC around the call)", us, before, after)
	}

	// A caller-supplied timestamp is kept, not duplicated.
	const own = "RELOADING=1\nMONOTONIC_USEC=42"
	if err := Notify(own); err != nil {
		t.Fatal(err)
	}
	if got, _ := recv(2 * time.Second); got != own {
		t.Errorf("datagram %q, want %q unchanged", got, own)
	}
}

func TestNotifyWithoutSocketIsNoop(t *testing.T) {
	// A listener exists, but $NOTIFY_SOCKET does not point at it.
	recv := listen(t, "")
	t.Setenv("NOTIFY_SOCKET", "")
	if err := Notify(Ready); err != nil {
		t.Fatalf("Notify without NOTIFY_SOCKET: %v, want nil", err)
	}
	if err := Watchdog(ctxTimeout(t, 50*time.Millisecond), 20*time.Millisecond, nil); err != nil {
		t.Fatalf("Watchdog without NOTIFY_SOCKET: %v", err)
	}
	if got, ok := recv(100 * time.Millisecond); ok {
		t.Errorf("received %q, want nothing sent", got)
	}
}

func TestNotifyMissingSocketFails(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "absent"))
	if err := Notify(Ready); err == nil {
		t.Fatal("Notify to a missing socket: nil error, want one")
	}
}

func TestWatchdogInterval(t *testing.T) {
	self := os.Getpid()
	for _, tc := range []struct {
		name, usec, pid string
		want            time.Duration
		wantOK          bool
	}{
		{"unset", "", "", 0, false},
		{"ours", "30000000", strconv.Itoa(self), 30 * time.Second, true},
		{"no pid given", "500000", "", 500 * time.Millisecond, true},
		{"another process", "30000000", strconv.Itoa(self + 1), 0, false},
		{"garbage pid", "30000000", "x", 0, false},
		{"zero", "0", "", 0, false},
		{"garbage", "30s", "", 0, false},
		{"overflow", "18446744073709551615", "", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := watchdogInterval(tc.usec, tc.pid, self)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("watchdogInterval(%q, %q) = %v, %v; want %v, %v", tc.usec, tc.pid, got, ok, tc.want, tc.wantOK)
			}
		})
	}
	t.Run("environment", func(t *testing.T) {
		t.Setenv("WATCHDOG_USEC", "2000000")
		t.Setenv("WATCHDOG_PID", strconv.Itoa(self))
		if got, ok := WatchdogInterval(); got != 2*time.Second || !ok {
			t.Errorf("WatchdogInterval() = %v, %v; want 2s, true", got, ok)
		}
	})
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestWatchdogCadenceFollowsHealth(t *testing.T) {
	recv := listen(t, "")
	const interval = 300 * time.Millisecond
	var healthy = make(chan bool, 1)
	healthy <- true
	state := true
	isHealthy := func() bool {
		select {
		case state = <-healthy:
		default:
		}
		return state
	}
	ctx, cancel := context.WithCancel(context.Background())
	var werr error
	done := make(chan struct{})
	go func() { werr = Watchdog(ctx, interval, isHealthy); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			t.Error("Watchdog did not return after cancel")
		}
	})

	// Healthy: a ping at once, then every interval/2, each well inside
	// the interval systemd would enforce.
	var times []time.Time
	for len(times) < 5 {
		got, ok := recv(2 * interval)
		if !ok {
			t.Fatalf("healthy agent: only %d pings, then none within %v", len(times), 2*interval)
		}
		if got != WatchdogPing {
			t.Fatalf("datagram %q, want %q", got, WatchdogPing)
		}
		times = append(times, time.Now())
	}
	for i := 1; i < len(times); i++ {
		gap := times[i].Sub(times[i-1])
		if gap >= interval || gap < interval/4 {
			t.Errorf("gap between ping %d and %d = %v, want about %v (at least %v, below %v)", i-1, i, gap, interval/2, interval/4, interval)
		}
	}

	// Unhealthy: pings stop, so systemd would restart the agent.
	healthy <- false
	for i := 0; ; i++ {
		// Drain any ping sent before the change was seen.
		if _, ok := recv(interval); !ok {
			break
		}
		if i == 3 {
			t.Fatal("unhealthy agent still pinged after several intervals")
		}
	}
	if got, ok := recv(2 * interval); ok {
		t.Fatalf("unhealthy agent still pinged: %q", got)
	}

	// Healthy again: pings resume within one tick.
	healthy <- true
	if got, ok := recv(2 * interval); !ok || got != WatchdogPing {
		t.Fatalf("after recovery got %q, %v; want %q", got, ok, WatchdogPing)
	}

	cancel()
	select {
	case <-done:
		if werr != nil {
			t.Errorf("Watchdog returned %v after cancel, want nil", werr)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Watchdog did not return after cancel")
	}
}

func TestWatchdogRejectsBadInterval(t *testing.T) {
	if err := Watchdog(context.Background(), 0, nil); err == nil {
		t.Fatal("Watchdog with interval 0: nil error, want one")
	}
}
