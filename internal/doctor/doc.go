// Package doctor diagnoses a lanlink gateway: it runs a list of
// independent checks (plan, key, agent, listen port, forwarding,
// rp_filter, firewall, overlapping networks, each peer's handshake, path
// MTU, TCP buffers) and gives each a verdict and the concrete command or
// line that fixes it. It also works out the static routes every office's
// LAN router needs and whether they are in place.
//
// The verdict logic sees the system only through Observer, so every
// verdict and fix text is unit-tested with a fake; the real observer
// (observe_linux.go) reads /proc/sys, netlink, nftables, the iptables
// kernel interface and the agent's control socket, and sends ICMP probes.
//
// What it must not do: change anything on the host (doctor only reads and
// probes; fixes are printed for the admin to apply), shell out to ip, nft,
// iptables or sysctl, or send probes anywhere but the plan's tunnel
// addresses and this office's LAN router.
package doctor
