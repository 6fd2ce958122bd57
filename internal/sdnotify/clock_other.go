//go:build !linux

package sdnotify

// monotonicUsec: systemd exists only on Linux; elsewhere the field is
// simply left out.
func monotonicUsec() (uint64, bool) { return 0, false }
