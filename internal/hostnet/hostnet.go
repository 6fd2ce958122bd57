package hostnet

import (
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
	Set(cfg Config) error
	// Close undoes everything Set did: addresses, routes, and forwarding
	// back to its value before the first Set unless someone else changed
	// it meanwhile.
	Close() error
}
