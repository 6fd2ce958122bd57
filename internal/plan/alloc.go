package plan

import "net/netip"

// lowestFree returns the lowest address of pfx that is neither reserved
// (network, IPv4 broadcast) nor taken. Taking the lowest keeps plans
// compact and predictable; existing sites are never renumbered because
// only free addresses are considered. The loop visits at most one address
// per taken one plus the reserved ones, so it is bounded by the plan size
// even for a /64.
func lowestFree(pfx netip.Prefix, taken func(netip.Addr) bool) (netip.Addr, bool) {
	for a := pfx.Addr().Next(); a.IsValid() && pfx.Contains(a); a = a.Next() {
		if !tunnelReserved(pfx, a) && !taken(a) {
			return a, true
		}
	}
	return netip.Addr{}, false
}
