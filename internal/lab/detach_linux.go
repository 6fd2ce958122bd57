package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Dir is the lab's host directory: it holds every node's RunDir and is
// visible at the same path inside every node (it is not under /run), so a
// file every gateway must read, such as a shared plan, can live here. It is
// removed with the lab (Close, CleanupLeftovers).
func (l *Lab) Dir() string { return l.dir }

// Command returns the argv that runs argv in the node's namespace with the
// node's RunDir as /run, as Exec and Start do. It uses only Name and
// RunDir, so a Node rebuilt from a record (`lanlink lab exec` in a later
// process) works too.
func (n *Node) Command(argv ...string) []string { return n.command(argv) }

// StartDetached runs argv in the background in the node's namespace, with
// RunDir as /run, in a new session and with no tie to this process: it
// keeps running when this process exits (`lanlink lab up`). Output goes to
// logfile (required), stdin is /dev/null. Until Detach, Close stops it like
// any other process of the lab; after Detach only its PID and StartTime,
// through StopPID, can.
func (n *Node) StartDetached(argv []string, logfile string) (*Proc, error) {
	if len(argv) == 0 || logfile == "" {
		return nil, errors.New("start detached: empty command or no log file")
	}
	l := n.lab
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("start %s in %s: %w", argv[0], n.Name, ErrClosed)
	}
	f, err := os.OpenFile(logfile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s in %s: log file: %w", argv[0], n.Name, err)
	}
	full := n.command(argv)
	cmd := exec.Command(full[0], full[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	// New session: no controlling terminal, so neither a Ctrl-C nor the
	// terminal closing reaches it; no Pdeathsig, so it outlives us.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	f.Close() // the child has its own copy
	if err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", argv[0], n.Name, err)
	}
	p := &Proc{Node: n, Argv: append([]string(nil), argv...), LogFile: logfile, done: make(chan struct{}),
		PID: cmd.Process.Pid, proc: cmd.Process, Detached: true}
	p.StartTime, _ = procStartTime(p.PID)
	go func() {
		p.err = cmd.Wait()
		close(p.done)
		l.mu.Lock()
		delete(l.procs, p)
		l.mu.Unlock()
	}()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		_ = p.Stop(StopGrace)
		return nil, fmt.Errorf("start %s in %s: %w", argv[0], n.Name, ErrClosed)
	}
	l.procs[p] = struct{}{}
	l.mu.Unlock()
	l.log.Debug("lab process started detached", "node", n.Name, "pid", p.PID, "argv", argv)
	return p, nil
}

// Detach lets the lab outlive this process: it stops tracking every
// process (detached ones keep running; processes from Start still die with
// this process, by design) and socket, releases its namespace handles and
// marks the lab closed here, without deleting anything. Remove the lab
// later with StopPID for each recorded process and CleanupLeftovers(ctx,
// ID).
func (l *Lab) Detach() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	for c := range l.closers {
		_ = c.Close()
	}
	l.procs, l.closers = nil, nil
	for _, n := range l.nodes {
		if n.ns >= 0 {
			n.ns.Close()
			n.ns = -1
		}
	}
	l.log.Info("lab detached", "id", l.ID)
}

// procStartTime reads a process's start time (clock ticks since boot,
// field 22 of /proc/PID/stat): with the PID it identifies one process for
// ever, as a PID alone does not once it is reused.
func procStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// comm (field 2) may contain spaces and parentheses: split after the
	// last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); field 22 is f[19].
	if len(f) < 20 {
		return 0, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(f))
	}
	if (f[0] == "Z" || f[0] == "X") && !tasksAlive(pid) {
		return 0, os.ErrProcessDone
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// tasksAlive reports whether any thread of pid still runs: the leader of
// a multi-threaded process shows as a zombie while its other threads are
// still exiting and holding its files (and so its network namespaces).
func tasksAlive(pid int) bool {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		b, err := os.ReadFile(dir + "/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 {
			if f := strings.Fields(s[i+1:]); len(f) > 0 && f[0] != "Z" && f[0] != "X" {
				return true
			}
		}
	}
	return false
}

// PIDAlive reports whether the process recorded as (pid, startTime) still
// runs. A zombie, or another process that got the PID since, is not it.
func PIDAlive(pid int, startTime uint64) bool {
	if pid <= 0 {
		return false
	}
	st, err := procStartTime(pid)
	return err == nil && (startTime == 0 || st == startTime)
}

// StopPID stops a process recorded by PID and StartTime (a Proc of an
// earlier, detached lab): SIGTERM, up to grace for it to exit, then
// SIGKILL and up to StopGrace more. It signals nothing if the process is
// gone or the PID now belongs to another process. It returns an error only
// if the process survives SIGKILL.
func StopPID(pid int, startTime uint64, grace time.Duration) error {
	if !PIDAlive(pid, startTime) {
		return nil
	}
	gone := func(d time.Duration) bool {
		deadline := time.Now().Add(d)
		for {
			if !PIDAlive(pid, startTime) {
				return true
			}
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	if gone(grace) {
		return nil
	}
	if PIDAlive(pid, startTime) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if gone(StopGrace) {
		return nil
	}
	return fmt.Errorf("stop pid %d: survived SIGKILL", pid)
}
