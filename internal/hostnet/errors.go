package hostnet

import (
	"errors"
	"fmt"
	"net/netip"
)

// ErrNoInterface is wrapped by Set's error when the tunnel interface does
// not exist (the device was not created, or has another name).
var ErrNoInterface = errors.New("interface does not exist")

// ConflictError is a wanted route or address that something else on the
// host already uses. Set checks for these before changing anything, so
// when it returns one the host is untouched. Callers (lanlink doctor) can
// use errors.As to list every conflict: Set joins all it finds.
type ConflictError struct {
	Kind     string       // "route" or "address"
	Want     netip.Prefix // what lanlink wanted
	Existing netip.Prefix // what is in the way (equal to Want, or more specific for routes)
	Device   string       // where Existing is: an interface name, or a route type like "blackhole"
	Owner    string       // the site whose LAN Want is, if the caller said so
}

func (e *ConflictError) Error() string {
	owner := ""
	if e.Owner != "" {
		owner = fmt.Sprintf(" (site %s's LAN)", e.Owner)
	}
	if e.Kind == "address" {
		return fmt.Sprintf("address %s is already configured on %s on this host (as %s): remove it (ip addr del %s dev %s) or choose another tunnel address in the plan",
			e.Want.Addr(), e.Device, e.Existing, e.Existing, e.Device)
	}
	fix := fmt.Sprintf("ip route del %s", e.Existing)
	if e.Existing == e.Want {
		return fmt.Sprintf("route %s already exists %s on this host%s: remove it (%s) or fix the plan",
			e.Want, e.via(), owner, fix)
	}
	return fmt.Sprintf("route %s %s on this host overlaps %s%s, so traffic for it would not enter the tunnel: remove it (%s) or fix the plan",
		e.Existing, e.via(), e.Want, owner, fix)
}

func (e *ConflictError) via() string {
	switch e.Device {
	case "blackhole", "unreachable", "prohibit", "throw":
		return "as a " + e.Device + " route"
	}
	return "via " + e.Device
}
