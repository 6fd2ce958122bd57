package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// States the agent sends. Several may be joined with "\n" into one message.
const (
	Ready     = "READY=1"
	Reloading = "RELOADING=1"
	Stopping  = "STOPPING=1"
	// WatchdogPing resets systemd's watchdog timer (WatchdogSec=).
	WatchdogPing = "WATCHDOG=1"
)

// Notify sends state (one or more "KEY=value" lines) to the service manager
// on $NOTIFY_SOCKET. It returns nil without sending anything when the
// variable is unset: not running under systemd is not an error.
//
// A message announcing RELOADING=1 gets MONOTONIC_USEC=<CLOCK_MONOTONIC in
// µs> added unless it carries one already: systemd ≥ 253 uses the timestamp
// to tell this reload from an older one and, for Type=notify-reload units,
// rejects RELOADING=1 without it. Older versions ignore the extra field.
func Notify(state string) error {
	return send(os.Getenv("NOTIFY_SOCKET"), state)
}

func send(socket, state string) error {
	if socket == "" {
		return nil
	}
	if hasLine(state, Reloading) && !hasField(state, "MONOTONIC_USEC") {
		if us, ok := monotonicUsec(); ok {
			state += "\nMONOTONIC_USEC=" + strconv.FormatUint(us, 10)
		}
	}
	// A leading '@' names a socket in the abstract namespace; Go's
	// sockaddr conversion turns it into the leading NUL the kernel wants,
	// exactly as sd_notify does, so the name is passed through unchanged.
	addr := &net.UnixAddr{Name: socket, Net: "unixgram"}
	conn, err := net.DialUnix("unixgram", nil, addr)
	if err != nil {
		return fmt.Errorf("connect to notify socket %s: %w", socket, err)
	}
	defer conn.Close()
	// systemd learns the sender's PID from SCM_CREDENTIALS, which the
	// kernel attaches because systemd's socket has SO_PASSCRED set; that is
	// how NotifyAccess=main recognises the agent without us sending them.
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("send %q to notify socket %s: %w", firstLine(state), socket, err)
	}
	return nil
}

// WatchdogInterval reports the watchdog timeout systemd expects this
// process to honour (WatchdogSec= of its unit), from $WATCHDOG_USEC. It
// reports false when there is no watchdog, or when $WATCHDOG_PID names
// another process: the variables are inherited by children, and a child
// pinging on the agent's behalf would hide a wedged agent.
func WatchdogInterval() (time.Duration, bool) {
	return watchdogInterval(os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID"), os.Getpid())
}

func watchdogInterval(usec, pid string, self int) (time.Duration, bool) {
	if usec == "" {
		return 0, false
	}
	if pid != "" {
		p, err := strconv.Atoi(pid)
		if err != nil || p != self {
			return 0, false
		}
	}
	us, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || us == 0 || us > uint64(1<<63-1)/uint64(time.Microsecond) {
		return 0, false
	}
	return time.Duration(us) * time.Microsecond, true
}

// Watchdog pings systemd's watchdog every interval/2 for as long as
// healthy() returns true, until ctx is done (then it returns nil). A ping is
// skipped whenever healthy() returns false, and none is sent while
// healthy() blocks: that is the point — an agent whose loop is wedged stops
// being pinged, and systemd kills and restarts it after interval.
//
// Half the interval leaves a whole period of slack for scheduling delay, as
// sd_watchdog_enabled(3) recommends. A failed send is not fatal: the next
// tick tries again, and if systemd really stopped hearing us, the restart
// it then performs is the right outcome anyway.
func Watchdog(ctx context.Context, interval time.Duration, healthy func() bool) error {
	if interval <= 0 {
		return errors.New("watchdog interval must be positive")
	}
	if healthy == nil {
		healthy = func() bool { return true }
	}
	tick := time.NewTicker(interval / 2)
	defer tick.Stop()
	for {
		if healthy() && ctx.Err() == nil {
			_ = Notify(WatchdogPing)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func hasLine(msg, line string) bool {
	for l := range strings.SplitSeq(msg, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

func hasField(msg, key string) bool {
	for l := range strings.SplitSeq(msg, "\n") {
		if strings.HasPrefix(l, key+"=") {
			return true
		}
	}
	return false
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
