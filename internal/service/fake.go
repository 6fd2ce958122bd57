package service

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// FakeSystemd is a Systemd for tests. It records every call as text
// ("enable lanlink-wg0.service") and models enough state to catch steps in
// the wrong order: Enable needs the unit file in UnitDir, Start needs the
// unit known from the last DaemonReload. Fail injects errors by operation
// ("daemon-reload", "enable", "disable", "start", "stop"); a failed Start
// leaves the unit active, as a Restart=always unit keeps being retried.
type FakeSystemd struct {
	UnitDir string
	Fail    map[string]error

	mu      sync.Mutex
	calls   []string
	loaded  map[string]bool
	enabled map[string]bool
	active  map[string]bool
}

// Calls returns the calls made so far, in order.
func (f *FakeSystemd) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// State describes what systemd would know, e.g.
// "loaded=[lanlink-wg0.service] enabled=[] active=[]".
func (f *FakeSystemd) State() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	set := func(m map[string]bool) string {
		var names []string
		for n, ok := range m {
			if ok {
				names = append(names, n)
			}
		}
		slices.Sort(names)
		return "[" + strings.Join(names, " ") + "]"
	}
	return fmt.Sprintf("loaded=%s enabled=%s active=%s", set(f.loaded), set(f.enabled), set(f.active))
}

func (f *FakeSystemd) record(op, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.loaded == nil {
		f.loaded, f.enabled, f.active = map[string]bool{}, map[string]bool{}, map[string]bool{}
	}
	f.calls = append(f.calls, strings.TrimSpace(op+" "+name))
	return f.Fail[op]
}

func (f *FakeSystemd) fileExists(name string) bool {
	_, err := os.Stat(filepath.Join(f.UnitDir, name))
	return err == nil
}

func (f *FakeSystemd) DaemonReload(ctx context.Context) error {
	if err := f.record("daemon-reload", ""); err != nil {
		return err
	}
	entries, err := os.ReadDir(f.UnitDir)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.loaded)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".service") {
			f.loaded[e.Name()] = true
		}
	}
	return nil
}

func (f *FakeSystemd) Enable(ctx context.Context, name string) error {
	if err := f.record("enable", name); err != nil {
		return err
	}
	if !f.fileExists(name) {
		return fmt.Errorf("unit file %s does not exist", name)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.enabled[name] = true
	return nil
}

func (f *FakeSystemd) Disable(ctx context.Context, name string) error {
	if err := f.record("disable", name); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.enabled, name)
	return nil
}

func (f *FakeSystemd) Start(ctx context.Context, name string) error {
	err := f.record("start", name)
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.loaded[name] {
		return fmt.Errorf("unit %s not found (daemon-reload missing?)", name)
	}
	f.active[name] = true
	return err
}

func (f *FakeSystemd) Stop(ctx context.Context, name string) error {
	if err := f.record("stop", name); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.active, name)
	return nil
}
