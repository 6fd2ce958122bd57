package hostnet

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
)

// Config is the host-side state lanlink wants around its tunnel interface.
type Config struct {
	Interface string
	Addresses []netip.Prefix // on Interface, with the tunnel prefix length
	MTU       int
	Routes    []netip.Prefix // routed through Interface (remote LANs)
	Forward4  bool           // net.ipv4.ip_forward must be 1
	Forward6  bool           // net.ipv6.conf.all.forwarding must be 1

	// RouteOwners optionally names, for each route, the site whose LAN it
	// is. It only makes error messages actionable ("site beta's LAN"); it
	// never changes what is applied.
	RouteOwners map[netip.Prefix]string
}

// Validate reports a Config that no host could apply.
func (c Config) Validate() error {
	if c.Interface == "" {
		return errors.New("host network config: no interface name")
	}
	if len(c.Interface) > 15 {
		return fmt.Errorf("host network config: interface name %q is longer than 15 characters", c.Interface)
	}
	if c.MTU < 0 || (c.MTU > 0 && c.MTU < 576) || c.MTU > 65535 {
		return fmt.Errorf("host network config: MTU %d out of range (0 keeps the interface's MTU, else 576..65535)", c.MTU)
	}
	for _, p := range c.Addresses {
		if !p.IsValid() {
			return fmt.Errorf("host network config: invalid address %v on %s", p, c.Interface)
		}
	}
	for _, p := range c.Routes {
		if !p.IsValid() {
			return fmt.Errorf("host network config: invalid route %v via %s", p, c.Interface)
		}
	}
	return nil
}

// Clone returns a deep copy, so a Host can keep the last applied Config
// without the caller mutating it underneath.
func (c Config) Clone() Config {
	c.Addresses = slices.Clone(c.Addresses)
	c.Routes = slices.Clone(c.Routes)
	c.RouteOwners = maps.Clone(c.RouteOwners)
	return c
}

// Host applies Config to the machine's network stack.
type Host interface {
	// Set makes the host match cfg. It may be called many times with
	// identical configs (nothing changes) or with a new one (only the
	// difference is applied). It is all-or-nothing: if a step fails, the
	// steps of this call already done are undone and the host is as it was
	// before the call; the error names what conflicted and how to fix it.
	// Set compares with the previously applied Config, not with the live
	// system: an identical Config costs nothing. Repair is what looks.
	Set(cfg Config) error
	// Repair re-asserts the last applied Config against the live system:
	// what someone removed or changed since (an address, the link state,
	// the MTU, a route of ours, a forwarding sysctl set back to 0) is put
	// back, and the report lists it. It never removes or replaces anything
	// that is not lanlink's: a wanted address now on another interface, or
	// a route to one of our prefixes that now goes elsewhere (someone
	// routed it on purpose), is left alone and reported as a Conflict. A
	// forwarding sysctl turned back on keeps its journaled pre-lanlink
	// value, so Close still restores that. Like Set it is all-or-nothing
	// (a failed step undoes this call's restorations). With nothing
	// drifted it only reads: one link lookup, one address dump, the
	// interface's routes (filtered by the kernel) and the sysctls; the
	// main routing table is read only while a route of ours is missing
	// or a conflict was reported. Before the first Set it does nothing.
	Repair() (RepairReport, error)
	// Close undoes everything Set did: addresses, routes, and forwarding
	// back to its value before the first Set unless someone else changed
	// it meanwhile.
	Close() error
}

// RepairReport is what one Repair found on the live system.
type RepairReport struct {
	// Restored lists what was missing and was put back, in the order it
	// ran; Step.String is the equivalent command.
	Restored []Step
	// Conflicts are what is in the way and was deliberately left alone,
	// each with the command that clears it. A conflicting route that
	// shadows only part of a wanted prefix does not stop Repair from
	// putting the prefix's own route back.
	Conflicts []*ConflictError
}

// Clean reports whether Repair found nothing to restore and no conflict.
func (r RepairReport) Clean() bool { return len(r.Restored) == 0 && len(r.Conflicts) == 0 }

// Notifier is implemented by Hosts that can tell the moment the kernel
// reports a change that may be drift, so a caller can Repair at once
// instead of on its next periodic check. Forwarding changes count (the
// kernel announces them as netconf events); other drift that raises no
// event is left to the periodic check.
type Notifier interface {
	// Changes subscribes to link, address and route events of the
	// interface of the last applied Config (and routes to its prefixes on
	// other interfaces), and to forwarding (netconf) changes. The channel receives (coalesced, never blocking
	// the kernel side) after each burst of events, and is closed when ctx
	// is done or the subscription fails; a caller then falls back to
	// periodic Repair.
	Changes(ctx context.Context) (<-chan struct{}, error)
}
