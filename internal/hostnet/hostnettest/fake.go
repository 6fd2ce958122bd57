// Package hostnettest provides a fake hostnet.Host for tests of callers
// (the agent). It keeps the host state as ip(8)/sysctl(8) command lines, so
// tests compare tables of lines with cmp.Diff. It must not touch the real
// network stack.
package hostnettest

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"

	"lanlink/internal/hostnet"
	"lanlink/internal/testutil/hub"
)

// ErrInjected is the default error of a step failed by FailStep.
var ErrInjected = errors.New("injected failure")

// Fake is an in-memory hostnet.Host. It applies the same steps in the same
// order as the real Host (hostnet.Diff) and is all-or-nothing like it.
// Forwarding starts at 0, so restoring it removes the sysctl line. Its zero
// value is ready to use; it is safe for concurrent use.
type Fake struct {
	mu       sync.Mutex
	cur      hostnet.Config
	state    map[string]string // key (what) -> line (its current value)
	log      []string
	closed   bool
	failAt   int
	failErr  error
	closeErr error

	elsewhere map[netip.Prefix]string // routes someone pointed at another device

	// Hub makes the fake a hostnet.Notifier: Notify is the kernel
	// reporting a change.
	hub.Hub
}

var (
	_ hostnet.Host     = (*Fake)(nil)
	_ hostnet.Notifier = (*Fake)(nil)
)

// FailStep makes step n (1-based) of the next Set or Repair that has at
// least n steps fail with err (ErrInjected if nil); the steps before it are rolled
// back, as the real Host does.
func (f *Fake) FailStep(n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		err = ErrInjected
	}
	f.failAt, f.failErr = n, err
}

// FailClose makes the next Close return err (after undoing everything).
func (f *Fake) FailClose(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closeErr = err
}

// Set applies the difference between the last applied Config and cfg.
func (f *Fake) Set(cfg hostnet.Config) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return fmt.Errorf("fake host network: Set after Close: %w", os.ErrClosed)
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if f.state == nil {
		f.state = map[string]string{}
	}
	steps := hostnet.Diff(f.cur, cfg)
	var undo []func()
	for i, s := range steps {
		if f.failAt == i+1 {
			err := f.failErr
			f.failAt, f.failErr = 0, nil
			for k := len(undo) - 1; k >= 0; k-- {
				undo[k]()
			}
			return fmt.Errorf("%s: %w (the %d earlier changes of this update were undone)", s, err, len(undo))
		}
		undo = append(undo, f.apply(s))
	}
	f.cur = cfg.Clone()
	return nil
}

// keyLine is what s is about in the state map, and the line it leaves.
func keyLine(s hostnet.Step) (key, line string) {
	line = s.String()
	switch s.Op {
	case hostnet.OpAddrAdd, hostnet.OpAddrDel:
		key = "addr " + s.Prefix.String() + " " + s.Interface
	case hostnet.OpRouteAdd, hostnet.OpRouteDel:
		key = "route " + s.Prefix.String() + " " + s.Interface
	case hostnet.OpSetMTU:
		key = "mtu " + s.Interface
	case hostnet.OpLinkUp:
		key = "up " + s.Interface
	case hostnet.OpForwardOn, hostnet.OpForwardRestore:
		key = s.Family.SysctlName()
		if s.Op == hostnet.OpForwardRestore {
			line = "sysctl " + s.Family.SysctlName() + "=0"
		}
	}
	return key, line
}

// apply changes the state for s, logs it, and returns its undo.
func (f *Fake) apply(s hostnet.Step) func() {
	key, line := keyLine(s)
	prev, had := f.state[key]
	switch s.Op {
	case hostnet.OpAddrDel, hostnet.OpRouteDel, hostnet.OpForwardRestore:
		delete(f.state, key)
	default:
		f.state[key] = line
	}
	f.log = append(f.log, line)
	return func() {
		f.log = append(f.log, "undo: "+line)
		if had {
			f.state[key] = prev
		} else {
			delete(f.state, key)
		}
	}
}

// Close undoes everything: addresses, routes, forwarding. Like the real
// Host it leaves MTU and link state to the device that owns the interface.
func (f *Fake) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	for _, s := range hostnet.Diff(f.cur, hostnet.Config{Interface: f.cur.Interface}) {
		f.apply(s)
	}
	f.cur = hostnet.Config{}
	return f.closeErr
}

// State returns the current host state as sorted command lines, such as
// "ip addr add 10.255.0.1/24 dev lanlink0",
// "ip route add 192.168.20.0/24 dev lanlink0" and
// "sysctl net.ipv4.ip_forward=1".
func (f *Fake) State() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, line := range f.state {
		out = append(out, line)
	}
	slices.Sort(out)
	return out
}

// Log returns every change made so far, in order, including rollbacks
// (prefixed "undo: ").
func (f *Fake) Log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.log)
}

// Config returns the last successfully applied Config.
func (f *Fake) Config() hostnet.Config {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur.Clone()
}

// Closed reports whether Close was called.
func (f *Fake) Closed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

// Drift removes line (as State prints it) from the host state, as an
// administrator or another program would behind lanlink's back:
// "ip route add 192.168.20.0/24 dev lanlink0" is a deleted route,
// "sysctl net.ipv4.ip_forward=1" forwarding set back to 0, "ip link set
// dev lanlink0 up" the link set down. It reports whether the line was
// there. Repair puts it back.
func (f *Fake) Drift(line string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, l := range f.state {
		if l == line {
			delete(f.state, k)
			return true
		}
	}
	return false
}

// RouteElsewhere is someone routing p through device on purpose: the
// fake's own route to p goes (as with ip route replace), and Repair
// reports a conflict instead of restoring it until ClearElsewhere.
func (f *Fake) RouteElsewhere(p netip.Prefix, device string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.elsewhere == nil {
		f.elsewhere = map[netip.Prefix]string{}
	}
	p = p.Masked()
	f.elsewhere[p] = device
	for k := range f.state {
		if k == "route "+p.String()+" "+f.cur.Interface {
			delete(f.state, k)
		}
	}
}

// ClearElsewhere removes the foreign route RouteElsewhere added.
func (f *Fake) ClearElsewhere(p netip.Prefix) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.elsewhere, p.Masked())
}

// Repair restores every piece of the last applied Config missing from the
// state (see Drift), in hostnet.Diff's order, except routes taken by
// RouteElsewhere, which it reports as conflicts. Like Set it is
// all-or-nothing under FailStep.
func (f *Fake) Repair() (hostnet.RepairReport, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var rep hostnet.RepairReport
	if f.closed {
		return rep, fmt.Errorf("fake host network: Repair after Close: %w", os.ErrClosed)
	}
	if f.cur.Interface == "" {
		return rep, nil
	}
	var steps []hostnet.Step
	for _, s := range hostnet.Diff(hostnet.Config{}, f.cur) {
		key, line := keyLine(s)
		if f.state[key] == line {
			continue
		}
		if dev, ok := f.elsewhere[s.Prefix]; ok && s.Op == hostnet.OpRouteAdd {
			rep.Conflicts = append(rep.Conflicts, &hostnet.ConflictError{Kind: "route", Want: s.Prefix, Existing: s.Prefix, Device: dev, Owner: owner(f.cur, s.Prefix)})
			continue
		}
		steps = append(steps, s)
	}
	var undo []func()
	for i, s := range steps {
		if f.failAt == i+1 {
			err := f.failErr
			f.failAt, f.failErr = 0, nil
			for k := len(undo) - 1; k >= 0; k-- {
				undo[k]()
			}
			return hostnet.RepairReport{Conflicts: rep.Conflicts}, fmt.Errorf("repair %s: %s: %w (the %d earlier repairs of this call were undone)", f.cur.Interface, s, err, len(undo))
		}
		undo = append(undo, f.apply(s))
		rep.Restored = append(rep.Restored, s)
	}
	return rep, nil
}

func owner(cfg hostnet.Config, p netip.Prefix) string {
	for k, v := range cfg.RouteOwners {
		if k.Masked() == p {
			return v
		}
	}
	return ""
}
