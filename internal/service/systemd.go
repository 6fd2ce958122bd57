package service

import (
	"errors"
	"fmt"
)

// BootedDir exists exactly when systemd is PID 1 (sd_booted(3)).
const BootedDir = "/run/systemd/system"

// ErrNoSystemd matches every NoSystemdError.
var ErrNoSystemd = errors.New("systemd is not running on this machine")

// NoSystemdError means there is no systemd to install the service into.
type NoSystemdError struct {
	Reason string // what showed it, e.g. "no /run/systemd/system"
	Err    error  // the D-Bus error, if that was what failed
}

func (e *NoSystemdError) Error() string {
	return fmt.Sprintf("%s (%s); run `lanlink up` under your init system instead", ErrNoSystemd, e.Reason)
}

func (e *NoSystemdError) Unwrap() error { return e.Err }

func (e *NoSystemdError) Is(target error) bool { return target == ErrNoSystemd }

// JobError means systemd ran a start or stop job and it did not succeed.
type JobError struct {
	Op, Unit, Result string // Result is systemd's: failed, timeout, canceled, dependency, …
}

func (e *JobError) Error() string {
	return fmt.Sprintf("%s %s: job %s; see `systemctl status %s` and `journalctl -u %s`", e.Op, e.Unit, e.Result, e.Unit, e.Unit)
}
