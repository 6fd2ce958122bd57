// Package lab builds "virtual offices" in Linux network namespaces on one
// machine, for lanlink's end-to-end tests, benchmarks and `lanlink lab`.
//
// A lab reproduces the seed's setup: per office an internet router (NAT
// with masquerade, one UDP port forwarded to the gateway, for IPv6 too
// with Config.IPv6WAN; static routes to every remote office LAN via the
// gateway), a gateway server where `lanlink up` runs, and LAN hosts, all
// behind one internet namespace that joins the routers' WAN sides. Every
// namespace is named "<ID>-…" with a per-lab ID ("ll" + 4 base36
// characters), so labs in parallel tests never collide.
//
// Safety rules this package enforces (DESIGN.md, "Network safety"):
//
//   - Nothing in the root namespace changes: namespaces are created with
//     `ip netns add`, and veth pairs are created from inside one lab
//     namespace with the peer placed directly in another, so no interface,
//     address, route, firewall rule or sysctl ever exists in the root
//     namespace. Sysctls are written only from threads inside a lab
//     namespace; nft runs only via `ip netns exec` in a router namespace.
//   - Public addresses come only from the documentation ranges
//     198.51.100.0/24 and 203.0.113.0/24 (and, with Config.IPv6WAN, the
//     IPv6 documentation prefix 2001:db8::/32: 2001:db8:0:<i>::/64 per
//     office link); LANs must be private (RFC 1918) IPv4 prefixes, and
//     their IPv6 halves (Config.IPv6) are ULA /64s of fd4c:6c00::/48.
//     Without IPv6WAN the WAN and the internet are IPv4-only: no router
//     has an IPv6 route out of its office. No route leads out of the lab:
//     the internet namespace has no uplink (and, with IPv6WAN, IPv6
//     routes only to the office links), so every packet stays inside the
//     lab's namespaces.
//   - Everything is removed: New deletes what it created when it fails
//     half-way; Close (registered with tb.Cleanup) stops every process the
//     lab started, by PID (SIGTERM, SIGKILL after StopGrace), closes every
//     socket it opened, and deletes every namespace. Processes also get
//     SIGKILL if the process that started them dies.
//   - Deletion is by name and only for names of the lab scheme and the
//     lab's own ID; CleanupLeftovers deletes only labs no live process
//     holds and never signals any process.
//   - Every wait is bounded (DefaultExecTimeout, StopGrace,
//     DefaultTransferTimeout, per-echo ping timeouts).
//
// Sockets in a namespace (Node.ListenTCP, DialTCP, ListenUDP, DialUDP,
// Ping, Transfer) are opened from the calling process on a thread switched
// into the namespace: a socket keeps its namespace for life, so no helper
// binary or TestMain hook is needed, and the data path is plain Go.
//
// Commands run by Node.Exec and Node.Start see a per-node directory
// (Node.RunDir) as /run, so several gateways on one machine keep separate
// lanlink state directories and WireGuard UAPI sockets; nothing they write
// there reaches the host's /run. /etc is shared: pass plan and key paths
// explicitly.
//
// The package is lab infrastructure, not product code: it may drive `ip`
// and `nft` (which product code must never do), and product packages must
// not import it.
package lab
