package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"lanlink/internal/fsutil"
	"lanlink/internal/plan"
)

// readPlan reads the plan file for an edit: its text, and the real path
// and mode to write the result back with.
func (e *env) readPlan() (data []byte, path string, mode fs.FileMode, err error) {
	path = e.planPath
	// Edit the file a symlink points at rather than replacing the link.
	if p, err := filepath.EvalSymlinks(path); err == nil {
		path = p
	}
	data, err = os.ReadFile(path)
	if err != nil {
		return nil, "", 0, e.planMissing(fmt.Errorf("read plan: %w", err))
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, "", 0, fmt.Errorf("plan %s: %w", path, err)
	}
	return data, path, fi.Mode().Perm(), nil
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

// writePlan replaces the plan file atomically, keeping its mode.
func writePlan(path string, data []byte, mode fs.FileMode) error {
	if err := fsutil.WriteFileAtomic(path, data, mode); err != nil {
		return fmt.Errorf("write plan: %w", err)
	}
	return nil
}
