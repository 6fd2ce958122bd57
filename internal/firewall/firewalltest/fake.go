// Package firewalltest provides a fake firewall.Firewall for tests of
// callers (the agent). It keeps the table it would create as nft text
// (firewall.Render), so tests compare it with cmp.Diff. It must not touch
// the real ruleset.
package firewalltest

import (
	"errors"
	"fmt"
	"net"
	"sync"

	"lanlink/internal/firewall"
	"lanlink/internal/testutil/hub"
)

// ErrInjected is the default error of a Set failed by FailNextSet.
var ErrInjected = errors.New("injected firewall failure")

// Fake is an in-memory firewall.Firewall. Like the real one, Set is
// all-or-nothing. Its zero value is ready to use; it is safe for
// concurrent use.
type Fake struct {
	mu      sync.Mutex
	cur     firewall.Config
	sets    int
	closed  bool
	failErr error
	gone    bool // Drift: the kernel lost the table behind our back
	repairs int

	// Hub makes the fake a firewall.Notifier: Notify is the kernel
	// reporting a change to the table.
	hub.Hub
}

var (
	_ firewall.Firewall = (*Fake)(nil)
	_ firewall.Notifier = (*Fake)(nil)
)

// FailNextSet makes the next Set (or a Repair that has work to do) fail with err (ErrInjected if nil) and
// change nothing.
func (f *Fake) FailNextSet(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		err = ErrInjected
	}
	f.failErr = err
}

// Set records cfg as the applied state.
func (f *Fake) Set(cfg firewall.Config) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return fmt.Errorf("firewall set: %w", net.ErrClosed)
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := f.failErr; err != nil {
		f.failErr = nil
		return err
	}
	f.cur = cfg
	f.gone = false
	f.sets++
	return nil
}

// Drift is someone flushing the ruleset (nft flush ruleset, a firewall
// service reload): the table is gone from the "kernel" until Set or
// Repair.
func (f *Fake) Drift() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gone = true
}

// Repair rebuilds the table after Drift; FailNextSet makes it fail too.
func (f *Fake) Repair() (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false, fmt.Errorf("firewall repair: %w", net.ErrClosed)
	}
	if !f.gone || f.cur.Empty() {
		return false, nil
	}
	if err := f.failErr; err != nil {
		f.failErr = nil
		return false, err
	}
	f.gone = false
	f.repairs++
	return true, nil
}

// Repairs counts the tables Repair rebuilt.
func (f *Fake) Repairs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.repairs
}

// Close removes the table.
func (f *Fake) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	f.cur = firewall.Config{}
	return nil
}

// Ruleset is what the real Firewall would have in the kernel now: "" when
// there is no table.
func (f *Fake) Ruleset() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cur.Interface == "" || f.gone {
		return ""
	}
	return firewall.Render(f.cur)
}

// Closed reports whether Close was called.
func (f *Fake) Closed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}
