package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"lanlink/internal/fsutil"
	"lanlink/internal/plan"
)

// editPlan changes the plan file: edit gets its real path (a symlink is
// followed, not replaced) and text and returns the new text, which
// replaces the file atomically with its mode. The whole read-edit-write
// holds an exclusive lock on the plan's directory (the file itself is
// replaced, so its inode cannot carry the lock), so two edits at once —
// two admins, a script adding offices in parallel — both land, each on the
// other's result. Nothing is written when edit fails.
func (e *env) editPlan(edit func(path string, data []byte) ([]byte, error)) error {
	path := e.planPath
	if p, err := filepath.EvalSymlinks(path); err == nil {
		path = p
	}
	unlock, err := lockDir(filepath.Dir(path))
	if err != nil {
		return e.planMissing(fmt.Errorf("lock plan directory: %w", err))
	}
	defer unlock()
	data, err := os.ReadFile(path)
	if err != nil {
		return e.planMissing(fmt.Errorf("read plan: %w", err))
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("plan %s: %w", path, err)
	}
	out, err := edit(path, data)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(path, out, fi.Mode().Perm()); err != nil {
		return fmt.Errorf("write plan: %w", err)
	}
	return nil
}

// lockDir takes an exclusive flock on dir, waiting for other holders.
func lockDir(dir string) (unlock func(), err error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("flock %s: %w", dir, err)
	}
	return func() { f.Close() }, nil // closing the last descriptor releases the lock
}

// loadPlan reads and validates the plan.
func (e *env) loadPlan() (*plan.Plan, error) {
	p, err := plan.Load(e.planPath)
	if err != nil {
		var ps plan.Problems
		if errors.As(err, &ps) {
			return nil, err
		}
		return nil, e.planMissing(err)
	}
	return p, nil
}

func (e *env) planMissing(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no plan at %s: create one with `lanlink init --tunnel 10.255.0.0/24 -f %s`, "+
			"or point -f/--plan (or $LANLINK_PLAN) at yours", e.planPath, e.planPath)
	}
	return err
}
