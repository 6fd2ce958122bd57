// Package sdnotify speaks systemd's sd_notify protocol without libsystemd:
// readiness, reload and stop notifications, status text, and watchdog pings,
// each one datagram to the socket named by $NOTIFY_SOCKET.
//
// Everything here is a no-op when $NOTIFY_SOCKET is unset, so `lanlink up`
// behaves the same under another init system or in a terminal. The package
// must not decide anything about the agent's health itself: the caller says
// what is healthy, this package only tells systemd. It must not unset the
// environment either: a restart of the agent inside the same process (tests)
// must still find the socket.
package sdnotify
