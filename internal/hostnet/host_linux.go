//go:build linux

package hostnet

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netlinkTimeout bounds every netlink request, so a wedged kernel call
// surfaces as an error instead of hanging the agent.
const netlinkTimeout = 10 * time.Second

type host struct {
	mu     sync.Mutex
	log    *slog.Logger
	dir    string
	ns     netns.NsHandle // owned; netns.None() when working in the caller's namespace
	nl     *netlink.Handle
	sys    sysctls
	cur    Config   // last applied
	j      *journal // what we changed and must undo; nil before the first Set
	closed bool

	dumpNL     *netlink.Handle // Repair's strict-checking handle; nil until first used
	conflicted bool            // the last Repair reported a conflict

	// failStep, set by tests, makes step i fail before it runs.
	failStep func(i int, s Step) error
}

// New returns a Host working in the caller's network namespace, or in
// opts.NetnsPath. It changes nothing until Set.
func New(opts Options) (Host, error) {
	return newHost(opts)
}

func newHost(opts Options) (*host, error) {
	ns, nl, err := opts.open()
	if err != nil {
		return nil, err
	}
	return &host{
		log: opts.logger(),
		dir: opts.stateDir(),
		ns:  ns,
		nl:  nl,
		sys: sysctls{ns: ns},
	}, nil
}

func (o Options) open() (netns.NsHandle, *netlink.Handle, error) {
	ns := netns.None()
	var nl *netlink.Handle
	var err error
	if o.NetnsPath != "" {
		ns, err = netns.GetFromPath(o.NetnsPath)
		if err != nil {
			return ns, nil, fmt.Errorf("open network namespace %s: %w", o.NetnsPath, err)
		}
		nl, err = netlink.NewHandleAt(ns)
	} else {
		nl, err = netlink.NewHandle()
	}
	if err != nil {
		ns.Close()
		return netns.None(), nil, fmt.Errorf("open netlink: %w", err)
	}
	if err := nl.SetSocketTimeout(netlinkTimeout); err != nil {
		nl.Close()
		ns.Close()
		return netns.None(), nil, fmt.Errorf("open netlink: %w", err)
	}
	return ns, nl, nil
}

// Recover undoes what a Host that did not get to Close (a crashed agent)
// left on iface, as listed in its journal in stateDir, and removes the
// journal. Things already gone (the interface died with the agent) are
// fine. No journal means nothing to do. It works in the caller's network
// namespace. The first Set of a new Host does the same by itself.
func Recover(stateDir, iface string, log *slog.Logger) error {
	return Options{StateDir: stateDir, Logger: log}.recover(iface)
}

func (o Options) recover(iface string) error {
	j, err := readJournal(o.stateDir(), iface)
	if err != nil || j == nil {
		return err
	}
	ns, nl, err := o.open()
	if err != nil {
		return err
	}
	defer ns.Close()
	defer nl.Close()
	return undoAll(nl, sysctls{ns: ns}, o.stateDir(), j, o.logger())
}

func (h *host) Set(cfg Config) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return fmt.Errorf("host network: Set after Close: %w", os.ErrClosed)
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.Clone()
	if h.cur.Interface != "" && cfg.Interface != h.cur.Interface {
		return fmt.Errorf("host network: interface changed from %s to %s: Close this Host and start a new one", h.cur.Interface, cfg.Interface)
	}
	steps := Diff(h.cur, cfg)
	if len(steps) == 0 {
		h.cur = cfg // RouteOwners may differ; they only feed messages
		return nil
	}
	if h.j == nil {
		// A predecessor that crashed may have left routes and addresses
		// behind; clearing them first makes ownership unambiguous.
		if err := (Options{StateDir: h.dir, Logger: h.log}).recoverWith(h.nl, h.sys, cfg.Interface); err != nil {
			return fmt.Errorf("undo changes left by a previous lanlink on %s: %w", cfg.Interface, err)
		}
		h.j = &journal{Interface: cfg.Interface}
	}

	link, err := h.link(cfg.Interface)
	if err != nil {
		return err
	}
	decisions, err := h.preflight(link, steps, cfg)
	if err != nil {
		return fmt.Errorf("host network on %s left unchanged: %w", cfg.Interface, err)
	}

	next := h.j.clone()
	var undos []func() error
	for i, s := range steps {
		undo, err := h.apply(link, s, decisions[i], next, i)
		if err == nil {
			if undo != nil {
				undos = append(undos, undo)
			}
			continue
		}
		var uerrs []error
		for k := len(undos) - 1; k >= 0; k-- {
			if uerr := undos[k](); uerr != nil {
				uerrs = append(uerrs, uerr)
			}
		}
		h.j = next
		if jerr := h.writeJournal(next); jerr != nil {
			uerrs = append(uerrs, jerr)
		}
		err = fmt.Errorf("%s: %w", s, err)
		if len(uerrs) > 0 {
			return errors.Join(err, fmt.Errorf("undoing the %d earlier changes of this update failed, so the host is partly changed (Close or `lanlink down` clears what is listed in %s): %w",
				len(undos), journalPath(h.dir, cfg.Interface), errors.Join(uerrs...)))
		}
		return fmt.Errorf("%w (the %d earlier changes of this update were undone)", err, len(undos))
	}
	h.j = next
	h.cur = cfg
	return nil
}

func (h *host) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	var err error
	if h.j != nil {
		err = undoAll(h.nl, h.sys, h.dir, h.j, h.log)
	}
	h.closed = true
	h.nl.Close()
	if h.dumpNL != nil {
		h.dumpNL.Close()
	}
	h.ns.Close()
	return err
}

func (o Options) recoverWith(nl *netlink.Handle, sys sysctls, iface string) error {
	j, err := readJournal(o.stateDir(), iface)
	if err != nil || j == nil {
		return err
	}
	o.logger().Warn("undoing host network changes a previous lanlink left behind", "interface", iface, "journal", journalPath(o.stateDir(), iface))
	return undoAll(nl, sys, o.stateDir(), j, o.logger())
}

func (h *host) writeJournal(j *journal) error {
	return writeJournal(h.dir, j)
}

func (h *host) link(name string) (netlink.Link, error) {
	l, err := h.nl.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return nil, fmt.Errorf("interface %s: %w on this host: bring the WireGuard device up first, or fix the interface name", name, ErrNoInterface)
	}
	if err != nil {
		return nil, fmt.Errorf("look up interface %s: %w", name, err)
	}
	return l, nil
}

type decision int

const (
	doIt        decision = iota
	skipPresent          // already there and not ours: leave it, never remove it
	adoptOurs            // our route left from before (carries RouteProtocol): take it over
)

// preflight decides, before anything changes, which steps are no-ops and
// whether a wanted address or route collides with something else on the
// host. It reports all collisions at once so they can be fixed in one go.
func (h *host) preflight(link netlink.Link, steps []Step, cfg Config) ([]decision, error) {
	idx := link.Attrs().Index
	dec := make([]decision, len(steps))
	var conflicts []error
	var addrs []netlink.Addr
	var addrsLoaded bool
	routes := map[int][]netlink.Route{}
	for i, s := range steps {
		switch s.Op {
		case OpAddrAdd:
			if !addrsLoaded {
				var err error
				if addrs, err = retryDump(func() ([]netlink.Addr, error) { return h.nl.AddrList(nil, netlink.FAMILY_ALL) }); err != nil {
					return nil, fmt.Errorf("list addresses: %w", err)
				}
				addrsLoaded = true
			}
			for _, a := range addrs {
				have := fromIPNet(a.IPNet)
				if have.Addr() != s.Prefix.Addr() {
					continue
				}
				if a.LinkIndex != idx {
					conflicts = append(conflicts, &ConflictError{Kind: "address", Want: s.Prefix, Existing: have, Device: h.linkName(a.LinkIndex)})
				} else if have.Bits() == s.Prefix.Bits() {
					dec[i] = skipPresent
				}
			}
		case OpRouteAdd:
			fam := netlink.FAMILY_V4
			if s.Prefix.Addr().Is6() {
				fam = netlink.FAMILY_V6
			}
			if _, ok := routes[fam]; !ok {
				rs, err := retryDump(func() ([]netlink.Route, error) {
					return h.nl.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
				})
				if err != nil {
					return nil, fmt.Errorf("list routes: %w", err)
				}
				routes[fam] = rs
			}
			for _, r := range routes[fam] {
				dst := routeDst(r, fam)
				if dst.Bits() < s.Prefix.Bits() || !s.Prefix.Contains(dst.Addr()) {
					continue // less specific (a default route): ours wins by longest match
				}
				if r.LinkIndex == idx && len(r.MultiPath) == 0 && r.Type == unix.RTN_UNICAST {
					if dst == s.Prefix {
						dec[i] = skipPresent
						if r.Protocol == RouteProtocol {
							dec[i] = adoptOurs
						}
					}
					continue // more specific through our own interface is harmless
				}
				conflicts = append(conflicts, &ConflictError{Kind: "route", Want: s.Prefix, Existing: dst, Device: h.describeRoute(r), Owner: owner(cfg, s.Prefix)})
			}
		}
	}
	return dec, errors.Join(conflicts...)
}

func owner(cfg Config, p netip.Prefix) string {
	for k, v := range cfg.RouteOwners {
		if k.Masked() == p {
			return v
		}
	}
	return ""
}

func (h *host) linkName(index int) string {
	if l, err := h.nl.LinkByIndex(index); err == nil {
		return l.Attrs().Name
	}
	return fmt.Sprintf("ifindex %d", index)
}

func (h *host) describeRoute(r netlink.Route) string {
	switch r.Type {
	case unix.RTN_BLACKHOLE:
		return "blackhole"
	case unix.RTN_UNREACHABLE:
		return "unreachable"
	case unix.RTN_PROHIBIT:
		return "prohibit"
	case unix.RTN_THROW:
		return "throw"
	}
	if len(r.MultiPath) > 0 {
		return "several nexthops"
	}
	if r.Gw != nil {
		return fmt.Sprintf("%s dev %s", r.Gw, h.linkName(r.LinkIndex))
	}
	return h.linkName(r.LinkIndex)
}

// apply runs one step and returns how to undo it (nil: nothing changed).
// It keeps next, the journal of this Set, in step with the kernel: an
// addition is journaled before it is made, a removal after.
func (h *host) apply(link netlink.Link, s Step, d decision, next *journal, i int) (undo func() error, err error) {
	if h.failStep != nil {
		if err := h.failStep(i, s); err != nil {
			return nil, err
		}
	}
	h.log.Debug("host network", "step", s.String(), "decision", d)
	switch s.Op {
	case OpAddrAdd:
		if d == skipPresent {
			return nil, nil
		}
		if err := h.journalAdd(next, &next.Addresses, s.Prefix); err != nil {
			return nil, err
		}
		if err := h.nl.AddrAdd(link, &netlink.Addr{IPNet: toIPNet(s.Prefix)}); err != nil {
			return nil, errors.Join(err, h.journalDel(next, &next.Addresses, s.Prefix))
		}
		h.log.Info("added address", "address", s.Prefix, "interface", s.Interface)
		return func() error {
			if err := delAddr(h.nl, link, s.Prefix); err != nil {
				return fmt.Errorf("undo %s: %w", s, err)
			}
			return h.journalDel(next, &next.Addresses, s.Prefix)
		}, nil

	case OpAddrDel:
		if !slices.Contains(next.Addresses, s.Prefix) {
			return nil, nil // not ours: stays on the interface
		}
		if err := delAddr(h.nl, link, s.Prefix); err != nil {
			return nil, err
		}
		if err := h.journalDel(next, &next.Addresses, s.Prefix); err != nil {
			return nil, err
		}
		h.log.Info("removed address", "address", s.Prefix, "interface", s.Interface)
		return func() error {
			if err := h.journalAdd(next, &next.Addresses, s.Prefix); err != nil {
				return err
			}
			if err := h.nl.AddrAdd(link, &netlink.Addr{IPNet: toIPNet(s.Prefix)}); err != nil {
				return fmt.Errorf("undo %s: %w", s, err)
			}
			return nil
		}, nil

	case OpRouteAdd:
		switch d {
		case skipPresent:
			return nil, nil
		case adoptOurs:
			if err := h.journalAdd(next, &next.Routes, s.Prefix); err != nil {
				return nil, err
			}
			return func() error { return h.journalDel(next, &next.Routes, s.Prefix) }, nil
		}
		if err := h.journalAdd(next, &next.Routes, s.Prefix); err != nil {
			return nil, err
		}
		if err := h.nl.RouteAdd(ourRoute(link, s.Prefix)); err != nil {
			return nil, errors.Join(err, h.journalDel(next, &next.Routes, s.Prefix))
		}
		h.log.Info("added route", "route", s.Prefix, "interface", s.Interface)
		return func() error {
			if err := delRoute(h.nl, link, s.Prefix); err != nil {
				return fmt.Errorf("undo %s: %w", s, err)
			}
			return h.journalDel(next, &next.Routes, s.Prefix)
		}, nil

	case OpRouteDel:
		if !slices.Contains(next.Routes, s.Prefix) {
			return nil, nil
		}
		if err := delRoute(h.nl, link, s.Prefix); err != nil {
			return nil, err
		}
		if err := h.journalDel(next, &next.Routes, s.Prefix); err != nil {
			return nil, err
		}
		h.log.Info("removed route", "route", s.Prefix, "interface", s.Interface)
		return func() error {
			if err := h.journalAdd(next, &next.Routes, s.Prefix); err != nil {
				return err
			}
			if err := h.nl.RouteAdd(ourRoute(link, s.Prefix)); err != nil {
				return fmt.Errorf("undo %s: %w", s, err)
			}
			return nil
		}, nil

	case OpSetMTU:
		old := link.Attrs().MTU
		if old == s.MTU {
			return nil, nil
		}
		if err := h.nl.LinkSetMTU(link, s.MTU); err != nil {
			return nil, err
		}
		h.log.Info("set MTU", "interface", s.Interface, "mtu", s.MTU, "was", old)
		return func() error {
			if err := h.nl.LinkSetMTU(link, old); err != nil {
				return fmt.Errorf("undo %s (back to %d): %w", s, old, err)
			}
			return nil
		}, nil

	case OpLinkUp:
		if link.Attrs().Flags&net.FlagUp != 0 {
			return nil, nil
		}
		if err := h.nl.LinkSetUp(link); err != nil {
			return nil, err
		}
		return func() error {
			if err := h.nl.LinkSetDown(link); err != nil {
				return fmt.Errorf("undo %s: %w", s, err)
			}
			return nil
		}, nil

	case OpForwardOn:
		prev, err := h.sys.read(s.Family)
		if err != nil {
			return nil, err
		}
		rec := forwardRecord{Family: s.Family, Sysctl: s.Family.SysctlName(), Previous: prev, Set: "1"}
		next.Forward = append(slices.DeleteFunc(next.Forward, func(r forwardRecord) bool { return r.Family == s.Family }), rec)
		if err := h.writeJournal(next); err != nil {
			return nil, err
		}
		dropRec := func() error {
			next.Forward = remove(next.Forward, rec)
			return h.writeJournal(next)
		}
		if prev != rec.Set {
			if err := h.sys.write(s.Family, rec.Set); err != nil {
				return nil, errors.Join(err, dropRec())
			}
			h.log.Info("turned forwarding on", "sysctl", rec.Sysctl, "was", prev)
		}
		return func() error {
			if _, err := restoreForward(h.sys, rec, h.log); err != nil {
				return fmt.Errorf("undo %s: %w", s, err)
			}
			return dropRec()
		}, nil

	case OpForwardRestore:
		rec, ok := next.forward(s.Family)
		if !ok {
			return nil, nil
		}
		restored, err := restoreForward(h.sys, rec, h.log)
		if err != nil {
			return nil, err
		}
		next.Forward = remove(next.Forward, rec)
		if err := h.writeJournal(next); err != nil {
			return nil, err
		}
		return func() error {
			next.Forward = append(next.Forward, rec)
			if err := h.writeJournal(next); err != nil {
				return err
			}
			if restored {
				if err := h.sys.write(s.Family, rec.Set); err != nil {
					return fmt.Errorf("undo %s: %w", s, err)
				}
			}
			return nil
		}, nil
	}
	return nil, fmt.Errorf("unknown step %v", s)
}

func (h *host) journalAdd(j *journal, list *[]netip.Prefix, p netip.Prefix) error {
	*list = addOnce(*list, p)
	return h.writeJournal(j)
}

func (h *host) journalDel(j *journal, list *[]netip.Prefix, p netip.Prefix) error {
	*list = remove(*list, p)
	return h.writeJournal(j)
}

// restoreForward gives a forwarding sysctl its previous value back, unless
// it no longer holds the value we set: then someone else decided since,
// and their choice stands.
func restoreForward(sys sysctls, rec forwardRecord, log *slog.Logger) (restored bool, err error) {
	cur, err := sys.read(rec.Family)
	if err != nil {
		return false, err
	}
	if cur != rec.Set {
		log.Info("leaving forwarding as someone else set it", "sysctl", rec.Sysctl, "value", cur, "we_set", rec.Set)
		return false, nil
	}
	if rec.Previous == rec.Set {
		return false, nil
	}
	if err := sys.write(rec.Family, rec.Previous); err != nil {
		return false, err
	}
	log.Info("restored forwarding", "sysctl", rec.Sysctl, "value", rec.Previous)
	return true, nil
}

// undoAll removes everything j lists and then the journal. What cannot be
// undone stays in the journal for the next attempt.
func undoAll(nl *netlink.Handle, sys sysctls, dir string, j *journal, log *slog.Logger) error {
	j = j.clone()
	var errs []error
	link, err := nl.LinkByName(j.Interface)
	var nf netlink.LinkNotFoundError
	switch {
	case errors.As(err, &nf):
		if len(j.Routes)+len(j.Addresses) > 0 {
			log.Info("interface is gone, and its addresses and routes with it", "interface", j.Interface)
		}
		j.Routes, j.Addresses = nil, nil
	case err != nil:
		errs = append(errs, fmt.Errorf("look up interface %s: %w", j.Interface, err))
	default:
		for _, p := range slices.Clone(j.Routes) {
			if err := delRoute(nl, link, p); err != nil {
				errs = append(errs, fmt.Errorf("ip route del %s dev %s: %w", p, j.Interface, err))
				continue
			}
			j.Routes = remove(j.Routes, p)
			log.Info("removed route", "route", p, "interface", j.Interface)
		}
		for _, p := range slices.Clone(j.Addresses) {
			if err := delAddr(nl, link, p); err != nil {
				errs = append(errs, fmt.Errorf("ip addr del %s dev %s: %w", p, j.Interface, err))
				continue
			}
			j.Addresses = remove(j.Addresses, p)
			log.Info("removed address", "address", p, "interface", j.Interface)
		}
	}
	for _, rec := range slices.Clone(j.Forward) {
		if _, err := restoreForward(sys, rec, log); err != nil {
			errs = append(errs, err)
			continue
		}
		j.Forward = remove(j.Forward, rec)
	}
	if len(errs) > 0 {
		return errors.Join(append(errs, writeJournal(dir, j))...)
	}
	return removeJournal(dir, j.Interface)
}

func ourRoute(link netlink.Link, p netip.Prefix) *netlink.Route {
	return &netlink.Route{
		LinkIndex: link.Attrs().Index,
		Dst:       toIPNet(p),
		Scope:     netlink.SCOPE_LINK,
		Protocol:  RouteProtocol,
		Table:     unix.RT_TABLE_MAIN,
		Type:      unix.RTN_UNICAST,
	}
}

// delRoute deletes only our route (matching proto, dev and table); one
// that is already gone is fine.
func delRoute(nl *netlink.Handle, link netlink.Link, p netip.Prefix) error {
	err := nl.RouteDel(ourRoute(link, p))
	if errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENODEV) {
		return nil
	}
	return err
}

func delAddr(nl *netlink.Handle, link netlink.Link, p netip.Prefix) error {
	err := nl.AddrDel(link, &netlink.Addr{IPNet: toIPNet(p)})
	if errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ENODEV) {
		return nil
	}
	return err
}

func retryDump[T any](list func() ([]T, error)) ([]T, error) {
	var err error
	for range 5 {
		var out []T
		out, err = list()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return out, err
		}
	}
	return nil, err
}

func toIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func fromIPNet(n *net.IPNet) netip.Prefix {
	if n == nil {
		return netip.Prefix{}
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones)
}

// routeDst is r's destination; a nil Dst is the family's default route.
func routeDst(r netlink.Route, fam int) netip.Prefix {
	if r.Dst == nil {
		if fam == netlink.FAMILY_V6 {
			return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	return fromIPNet(r.Dst)
}
