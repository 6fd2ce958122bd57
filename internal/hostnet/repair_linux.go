//go:build linux

package hostnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Repair: see Host. The live state is compared with h.cur piece by piece,
// the missing pieces become Steps (in Diff's order, so addresses come
// before the link goes up and routes after), and those run through the
// same apply/undo machinery as Set.
func (h *host) Repair() (RepairReport, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var rep RepairReport
	if h.closed {
		return rep, fmt.Errorf("host network: Repair after Close: %w", os.ErrClosed)
	}
	cfg := h.cur
	if cfg.Interface == "" || h.j == nil {
		return rep, nil
	}
	link, err := h.link(cfg.Interface)
	if err != nil {
		return rep, err
	}
	idx := link.Attrs().Index

	addrs, err := retryDump(func() ([]netlink.Addr, error) { return h.nl.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return rep, fmt.Errorf("list addresses: %w", err)
	}
	var steps []Step
	for _, p := range order(cfg.Addresses, false) {
		present := false
		for _, a := range addrs {
			have := fromIPNet(a.IPNet)
			if have.Addr() != p.Addr() {
				continue
			}
			if a.LinkIndex != idx {
				rep.Conflicts = append(rep.Conflicts, &ConflictError{Kind: "address", Want: p, Existing: have, Device: h.linkName(a.LinkIndex)})
				present = true // not ours to add a second time
			} else if have.Bits() == p.Bits() {
				present = true
			}
		}
		if !present {
			steps = append(steps, Step{Op: OpAddrAdd, Interface: cfg.Interface, Prefix: p})
		}
	}
	if cfg.MTU != 0 && link.Attrs().MTU != cfg.MTU {
		steps = append(steps, Step{Op: OpSetMTU, Interface: cfg.Interface, MTU: cfg.MTU})
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		steps = append(steps, Step{Op: OpLinkUp, Interface: cfg.Interface})
	}

	routeSteps, conflicts, err := h.missingRoutes(link, cfg)
	if err != nil {
		return rep, err
	}
	steps = append(steps, routeSteps...)
	rep.Conflicts = append(rep.Conflicts, conflicts...)
	h.conflicted = len(rep.Conflicts) > 0

	for _, f := range []struct {
		fam  Family
		want bool
	}{{IPv4, cfg.Forward4}, {IPv6, cfg.Forward6}} {
		if !f.want {
			continue
		}
		v, err := h.sys.read(f.fam)
		if err != nil {
			return rep, err
		}
		if v != "1" {
			steps = append(steps, Step{Op: OpForwardOn, Family: f.fam})
		}
	}
	if len(steps) == 0 {
		return rep, nil
	}

	next := h.j.clone()
	var undos []func() error
	for i, s := range steps {
		var undo func() error
		if s.Op == OpForwardOn {
			undo, err = h.reassertForward(s, next)
		} else {
			undo, err = h.apply(link, s, doIt, next, i)
		}
		if err == nil {
			if undo != nil {
				undos = append(undos, undo)
			}
			rep.Restored = append(rep.Restored, s)
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
		err = fmt.Errorf("repair %s: %s: %w", cfg.Interface, s, err)
		rep.Restored = nil
		if len(uerrs) > 0 {
			return rep, errors.Join(err, fmt.Errorf("undoing the %d earlier repairs of this call failed: %w", len(undos), errors.Join(uerrs...)))
		}
		return rep, fmt.Errorf("%w (the %d earlier repairs of this call were undone)", err, len(undos))
	}
	h.j = next
	return rep, nil
}

// reassertForward turns a forwarding sysctl back on without touching its
// journal record: the record's Previous is the value from before lanlink,
// which Close must restore, not the 0 someone wrote meanwhile.
func (h *host) reassertForward(s Step, next *journal) (func() error, error) {
	rec, ok := next.forward(s.Family)
	if !ok {
		// Not journaled (cannot happen after a Set that wanted it, but a
		// record is what makes Close correct): record it like Set does.
		return h.apply(nil, s, doIt, next, -1)
	}
	found, err := h.sys.read(s.Family)
	if err != nil {
		return nil, err
	}
	if err := h.sys.write(s.Family, rec.Set); err != nil {
		return nil, err
	}
	return func() error {
		if err := h.sys.write(s.Family, found); err != nil {
			return fmt.Errorf("undo %s (back to %s): %w", s, found, err)
		}
		return nil
	}, nil
}

// missingRoutes lists the route steps Repair needs and the conflicts it
// must leave alone. The interface's own routes come from a dump the
// kernel filters (strict checking), so a healthy host costs one small
// dump per family; the main table is read only for a family with a route
// missing, or while a conflict is being reported (to see it clear).
func (h *host) missingRoutes(link netlink.Link, cfg Config) ([]Step, []*ConflictError, error) {
	idx := link.Attrs().Index
	wanted := order(cfg.Routes, true)
	byFam := map[int][]netip.Prefix{}
	for _, p := range wanted {
		byFam[family(p)] = append(byFam[family(p)], p)
	}
	var steps []Step
	var conflicts []*ConflictError
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		want := byFam[fam]
		if len(want) == 0 {
			continue
		}
		nl, err := h.dumpHandle()
		if err != nil {
			return nil, nil, err
		}
		mine, err := retryDump(func() ([]netlink.Route, error) {
			return nl.RouteListFiltered(fam, &netlink.Route{LinkIndex: idx, Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
		})
		if err != nil {
			return nil, nil, fmt.Errorf("list routes on %s: %w", cfg.Interface, err)
		}
		var missing []netip.Prefix
		for _, p := range want {
			if !slices.ContainsFunc(mine, func(r netlink.Route) bool {
				return routeDst(r, fam) == p && len(r.MultiPath) == 0 && r.Type == unix.RTN_UNICAST
			}) {
				missing = append(missing, p)
			}
		}
		if len(missing) == 0 && !h.conflicted {
			continue
		}
		all, err := retryDump(func() ([]netlink.Route, error) {
			return nl.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		})
		if err != nil {
			return nil, nil, fmt.Errorf("list routes: %w", err)
		}
		for _, p := range want {
			taken := false
			for _, r := range all {
				dst := routeDst(r, fam)
				if dst.Bits() < p.Bits() || !p.Contains(dst.Addr()) {
					continue
				}
				if r.LinkIndex == idx && len(r.MultiPath) == 0 && r.Type == unix.RTN_UNICAST {
					continue
				}
				conflicts = append(conflicts, &ConflictError{Kind: "route", Want: p, Existing: dst, Device: h.describeRoute(r), Owner: owner(cfg, p)})
				taken = taken || dst == p
			}
			if slices.Contains(missing, p) && !taken {
				steps = append(steps, Step{Op: OpRouteAdd, Interface: cfg.Interface, Prefix: p})
			}
		}
	}
	return steps, conflicts, nil
}

func family(p netip.Prefix) int {
	if p.Addr().Is6() {
		return netlink.FAMILY_V6
	}
	return netlink.FAMILY_V4
}

// dumpHandle is a second netlink handle with strict checking on, so route
// dumps are filtered by the kernel rather than copied whole to us. It is
// separate because strict checking changes how the kernel reads every
// dump request on the socket, and Set's requests were written without it.
// A kernel that refuses strict checking still gets correct answers: the
// library filters again in user space.
func (h *host) dumpHandle() (*netlink.Handle, error) {
	if h.dumpNL != nil {
		return h.dumpNL, nil
	}
	nl, err := netlink.NewHandleAt(h.ns)
	if err != nil {
		return nil, fmt.Errorf("open netlink: %w", err)
	}
	if err := nl.SetSocketTimeout(netlinkTimeout); err != nil {
		nl.Close()
		return nil, fmt.Errorf("open netlink: %w", err)
	}
	if err := nl.SetStrictCheck(true); err != nil {
		h.log.Debug("netlink strict checking unavailable; route dumps are filtered in user space", "err", err)
	}
	h.dumpNL = nl
	return nl, nil
}

// Changes: see Notifier. Events of the kernel's own making that follow
// from ours (prefix routes, link-local addresses) trigger a check too;
// that check finds nothing to do and changes nothing, so it raises no
// further events.
func (h *host) Changes(ctx context.Context) (<-chan struct{}, error) {
	h.mu.Lock()
	iface, routes, closed := h.cur.Interface, set(h.cur.Routes, true), h.closed
	h.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("host network: Changes after Close: %w", os.ErrClosed)
	}
	if iface == "" {
		return nil, errors.New("host network: Changes before Set")
	}
	h.mu.Lock()
	link, err := h.link(iface)
	h.mu.Unlock()
	if err != nil {
		return nil, err
	}
	idx := link.Attrs().Index
	var nsp = &h.ns
	if !h.ns.IsOpen() {
		nsp = nil
	}
	done := make(chan struct{})
	linkCh := make(chan netlink.LinkUpdate, 16)
	addrCh := make(chan netlink.AddrUpdate, 16)
	routeCh := make(chan netlink.RouteUpdate, 64)
	var once sync.Once
	stop := func() { once.Do(func() { close(done) }) }
	onErr := func(err error) { h.log.Debug("netlink event subscription", "err", err) }
	if err := netlink.LinkSubscribeWithOptions(linkCh, done, netlink.LinkSubscribeOptions{Namespace: nsp, ErrorCallback: onErr}); err != nil {
		stop()
		return nil, fmt.Errorf("subscribe to link events: %w", err)
	}
	if err := netlink.AddrSubscribeWithOptions(addrCh, done, netlink.AddrSubscribeOptions{Namespace: nsp, ErrorCallback: onErr}); err != nil {
		stop()
		return nil, fmt.Errorf("subscribe to address events: %w", err)
	}
	if err := netlink.RouteSubscribeWithOptions(routeCh, done, netlink.RouteSubscribeOptions{Namespace: nsp, ErrorCallback: onErr}); err != nil {
		stop()
		return nil, fmt.Errorf("subscribe to route events: %w", err)
	}
	out := make(chan struct{}, 1)
	kick := func() {
		select {
		case out <- struct{}{}:
		default:
		}
	}
	confCh := make(chan struct{}, 1) // never closed: out is closed by one goroutine only
	// Forwarding changes arrive as netconf notifications, which the
	// library has no subscription helper for. Without them only a
	// periodic Repair notices forwarding drift, so failing here is not
	// fatal.
	if s, err := nl.SubscribeAt(h.ns, netns.None(), unix.NETLINK_ROUTE, unix.RTNLGRP_IPV4_NETCONF, unix.RTNLGRP_IPV6_NETCONF); err != nil {
		h.log.Debug("netlink netconf subscription", "err", err)
	} else {
		go func() {
			<-done
			s.Close()
		}()
		go func() {
			for {
				msgs, _, err := s.Receive()
				if err != nil {
					return
				}
				for _, m := range msgs {
					if m.Header.Type == unix.RTM_NEWNETCONF {
						select {
						case confCh <- struct{}{}:
						default:
						}
					}
				}
			}
		}()
	}
	go func() {
		defer close(out)
		defer stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-confCh:
				kick()
			case u, ok := <-linkCh:
				if !ok {
					return
				}
				if int(u.Index) == idx {
					kick()
				}
			case u, ok := <-addrCh:
				if !ok {
					return
				}
				if u.LinkIndex == idx {
					kick()
				}
			case u, ok := <-routeCh:
				if !ok {
					return
				}
				if u.LinkIndex == idx || routes[fromIPNet(u.Dst)] {
					kick()
				}
			}
		}
	}()
	return out, nil
}
