package hostnet

import "net/netip"

// Config is the host-side state lanlink wants around its tunnel interface.
type Config struct {
	Interface string
	Addresses []netip.Prefix // on Interface, with the tunnel prefix length
	MTU       int
	Routes    []netip.Prefix // routed through Interface (remote LANs)
	Forward4  bool           // net.ipv4.ip_forward must be 1
	Forward6  bool           // net.ipv6.conf.all.forwarding must be 1
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
