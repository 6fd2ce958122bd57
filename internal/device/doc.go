// Package device runs lanlink's WireGuard interface: kernel WireGuard
// (rtnetlink + wgctrl) where the kernel has it, and the embedded userspace
// wireguard-go (TUN with offloads, StdNetBind, UAPI socket at the standard
// path so stock `wg` works) otherwise, behind the one Device interface.
//
// Open chooses and creates the interface; Configure applies a desired
// Config by changing only what differs, so peers that did not change keep
// their sessions across reloads.
//
// What it must not do: touch addresses, routes, sysctls or firewall rules
// (that is package hostnet), resolve DNS names (Config holds addresses),
// log private keys, or shell out to ip or wg. It works in the network
// namespace of the calling process; to run a device in another namespace,
// run the process there (`ip netns exec`).
package device
