package hostnet

import (
	"fmt"
	"net/netip"
)

// Op is the kind of one change a Host makes.
type Op int

// The order of the constants is the order Diff emits steps in: removals
// first (so a prefix moving between addresses/routes never collides with
// itself), then addresses before the link goes up, and routes last because
// the kernel refuses an IPv4 route through a link that is down.
const (
	OpRouteDel       Op = iota + 1 // remove a route through the interface
	OpAddrDel                      // remove an address from the interface
	OpAddrAdd                      // add an address to the interface
	OpSetMTU                       // set the interface MTU
	OpLinkUp                       // bring the interface up
	OpRouteAdd                     // add a route through the interface
	OpForwardOn                    // write 1 to a forwarding sysctl
	OpForwardRestore               // give a forwarding sysctl back its previous value
)

// Family selects the IPv4 or IPv6 forwarding sysctl.
type Family int

const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// SysctlName is the dotted name (as sysctl(8) prints it) of the family's
// forwarding switch.
func (f Family) SysctlName() string {
	if f == IPv6 {
		return "net.ipv6.conf.all.forwarding"
	}
	return "net.ipv4.ip_forward"
}

// Step is one change to the host. Its String is the equivalent ip(8) or
// sysctl(8) command, which is what logs, errors and the fake print.
type Step struct {
	Op        Op
	Interface string
	Prefix    netip.Prefix // OpAddr*: address with prefix length; OpRoute*: destination
	MTU       int          // OpSetMTU
	Family    Family       // OpForward*
}

func (s Step) String() string {
	switch s.Op {
	case OpRouteDel:
		return fmt.Sprintf("ip route del %s dev %s", s.Prefix, s.Interface)
	case OpAddrDel:
		return fmt.Sprintf("ip addr del %s dev %s", s.Prefix, s.Interface)
	case OpAddrAdd:
		return fmt.Sprintf("ip addr add %s dev %s", s.Prefix, s.Interface)
	case OpSetMTU:
		return fmt.Sprintf("ip link set dev %s mtu %d", s.Interface, s.MTU)
	case OpLinkUp:
		return fmt.Sprintf("ip link set dev %s up", s.Interface)
	case OpRouteAdd:
		return fmt.Sprintf("ip route add %s dev %s", s.Prefix, s.Interface)
	case OpForwardOn:
		return fmt.Sprintf("sysctl %s=1", s.Family.SysctlName())
	case OpForwardRestore:
		return fmt.Sprintf("sysctl %s=<previous>", s.Family.SysctlName())
	}
	return fmt.Sprintf("unknown op %d", int(s.Op))
}

// Diff returns the steps that turn a host set up for old into one set up
// for new, in the order they must run. It is pure: whether a step is a
// no-op on the actual machine (the address is already there, forwarding was
// already on) is decided when the step runs. Diff of two equal configs is
// empty, which is what makes repeated Set calls free.
//
// old.Interface == "" means nothing was applied yet: the link is brought up
// and MTU and forwarding are set as asked. Routes are compared by their
// masked prefix (the kernel only stores that); addresses keep their host
// bits. Duplicates are ignored.
func Diff(old, new Config) []Step {
	// A changed interface name carries nothing over: everything on the old
	// interface goes, everything on the new one is added.
	fresh := old.Interface != new.Interface
	oldAddrs, newAddrs := set(old.Addresses, false), set(new.Addresses, false)
	oldRoutes, newRoutes := set(old.Routes, true), set(new.Routes, true)

	var steps []Step
	for _, p := range order(old.Routes, true) {
		if fresh || !newRoutes[p] {
			steps = append(steps, Step{Op: OpRouteDel, Interface: old.Interface, Prefix: p})
		}
	}
	for _, p := range order(old.Addresses, false) {
		if fresh || !newAddrs[p] {
			steps = append(steps, Step{Op: OpAddrDel, Interface: old.Interface, Prefix: p})
		}
	}
	for _, p := range order(new.Addresses, false) {
		if fresh || !oldAddrs[p] {
			steps = append(steps, Step{Op: OpAddrAdd, Interface: new.Interface, Prefix: p})
		}
	}
	if new.MTU != 0 && (fresh || new.MTU != old.MTU) {
		steps = append(steps, Step{Op: OpSetMTU, Interface: new.Interface, MTU: new.MTU})
	}
	if fresh && new.Interface != "" {
		steps = append(steps, Step{Op: OpLinkUp, Interface: new.Interface})
	}
	for _, p := range order(new.Routes, true) {
		if fresh || !oldRoutes[p] {
			steps = append(steps, Step{Op: OpRouteAdd, Interface: new.Interface, Prefix: p})
		}
	}
	// Forwarding is host-wide, not per interface, so a changed interface
	// name does not toggle it.
	for _, f := range []struct {
		fam      Family
		was, now bool
	}{{IPv4, old.Forward4, new.Forward4}, {IPv6, old.Forward6, new.Forward6}} {
		switch {
		case f.now && !f.was:
			steps = append(steps, Step{Op: OpForwardOn, Family: f.fam})
		case f.was && !f.now:
			steps = append(steps, Step{Op: OpForwardRestore, Family: f.fam})
		}
	}
	return steps
}

func norm(p netip.Prefix, masked bool) netip.Prefix {
	if masked {
		return p.Masked()
	}
	return p
}

func set(ps []netip.Prefix, masked bool) map[netip.Prefix]bool {
	m := make(map[netip.Prefix]bool, len(ps))
	for _, p := range ps {
		m[norm(p, masked)] = true
	}
	return m
}

// order returns ps normalised and without duplicates, in the caller's order,
// so steps come out in the order the plan lists things.
func order(ps []netip.Prefix, masked bool) []netip.Prefix {
	seen := make(map[netip.Prefix]bool, len(ps))
	var out []netip.Prefix
	for _, p := range ps {
		p = norm(p, masked)
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}
