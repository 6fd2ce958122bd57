package agent

import (
	"context"
	"path/filepath"
	"slices"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Plan and key files are watched two ways. The kernel's inotify events on
// their directories make a change apply within fileSettle (lanlink's own
// edits, editors and configuration management replace a file by rename,
// and a symlink may be swapped — Kubernetes ConfigMaps do — so the file
// itself is the wrong thing to watch). A stat of both every WatchEvery
// covers file systems without inotify (NFS, some FUSE mounts). Either way
// the change is applied only if the files' stamps differ from the applied
// ones.
const (
	// fileSettle lets a burst of writes (an editor truncating, then
	// writing) finish before the plan is read: a half-written plan would
	// be rejected, and only the next event would apply the whole one.
	fileSettle = 100 * time.Millisecond
)

// watchFiles returns a channel that receives (coalesced) after changes in
// the directories holding the plan and key files (and the files their
// symlinks point to), or nil if the kernel cannot watch them; the periodic
// check remains.
func (a *Agent) watchFiles(ctx context.Context) <-chan struct{} {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		a.log.Warn("cannot watch the plan and key files; changes are noticed by the periodic check", "every", a.o.WatchEvery, "err", err)
		return nil
	}
	var dirs []string
	for _, p := range []string{a.o.PlanPath, a.o.KeyPath} {
		for _, q := range []string{p, realPath(p)} {
			if d := filepath.Dir(q); !slices.Contains(dirs, d) {
				dirs = append(dirs, d)
			}
		}
	}
	for _, d := range dirs {
		if err := w.Add(d); err != nil {
			w.Close()
			a.log.Warn("cannot watch the plan and key files; changes are noticed by the periodic check", "dir", d, "every", a.o.WatchEvery, "err", err)
			return nil
		}
	}
	out := make(chan struct{}, 1)
	go func() {
		defer w.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-w.Events:
				if !ok {
					return
				}
				select {
				case out <- struct{}{}:
				default:
				}
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				// An overflowed queue lost events; the stamps compare
				// the files anyway, so ask for a check.
				a.log.Debug("file watch", "err", err)
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out
}

// realPath is p with symlinks resolved, or p if that fails (the file may
// not exist right now; the directory watch still sees it come back).
func realPath(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}
