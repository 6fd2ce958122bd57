// Package hostnet sets up the host side of a lanlink site around its
// tunnel interface: the tunnel addresses, MTU, link state, routes to the
// remote LANs, and the IPv4/IPv6 forwarding sysctls.
//
// Host.Set applies a desired Config idempotently: Diff computes the steps
// from the previously applied Config, so an identical Config changes
// nothing and a new one changes only the difference. Before changing
// anything Set checks for conflicts (a wanted route that already goes
// elsewhere, a tunnel address on another interface) and reports them as
// *ConflictError with the command that fixes them; if a step fails midway,
// the steps of that call are undone in reverse.
//
// Set compares desired states, not the live system, so what someone else
// removes afterwards (a DHCP client flushing routes, `ip link set down`, a
// hardening script turning forwarding off) stays removed until Repair
// compares the last applied Config with the kernel and puts the missing
// pieces back. Repair never fights a deliberate change: a route to one of
// our prefixes through another interface, or our address moved to another
// interface, is reported, not undone. Notifier tells the caller the
// moment the kernel reports a change worth a Repair.
//
// Ownership is explicit. hostnet only ever removes what it added: its
// routes carry RouteProtocol (ip route show proto 76), and a JSON journal
// per interface in the state directory lists the addresses and routes it
// added and the forwarding sysctls it wrote with their previous values.
// The journal is what makes a crash recoverable (Recover, or the first Set
// of the next Host); forwarding goes back to its previous value only if
// nobody changed it since lanlink set it. Close does not restore the MTU
// or take the link down: the interface belongs to the device backend,
// which deletes it.
//
// Turning IPv6 forwarding on makes the kernel ignore router advertisements
// on interfaces with accept_ra=1, so a gateway that gets its own IPv6
// default route by SLAAC needs accept_ra=2 on its uplink; hostnet does not
// change accept_ra, because that is the uplink's business, not lanlink's.
//
// It works in the caller's network namespace (the agent is started inside
// the right one) unless Options.NetnsPath names another; tests always do,
// and must never change the root namespace.
//
// It must not shell out (ip, sysctl): netlink and /proc/sys only. It does
// not create or configure the WireGuard device (package device) nor touch
// firewall rules. Package hostnettest holds a fake Host for callers' tests.
package hostnet
