// Package bench measures lanlink's data plane against the alternatives a
// sysadmin would use instead (issue 5): the raw routed link, lanlink's
// embedded userspace WireGuard, the upstream wireguard-go program built from
// the same module version, Debian's wireguard-go, OpenVPN, an `ssh -w`
// tunnel and Nebula. Every data plane is set up between the two gateways of
// one two-office lab (internal/lab) and measured LAN host to LAN host with
// iperf3 (one and four TCP streams), ICMP echo RTT and the CPU time of the
// tunnel processes, with and without an emulated long fat WAN link
// (internal/wanem).
//
// The pure parts — iperf3 JSON and /proc/PID/stat parsing, medians, the
// Markdown table, JSON and the hand-rolled SVG bar chart — work on any OS;
// Run needs Linux, root and the tools EnsureTools installs.
//
// The package is lab infrastructure like internal/lab: it shells out to
// ip, wg, iperf3, openvpn, ssh, sshd and nebula, which product code must
// never do, and product packages must not import it. Every packet it makes
// stays inside the lab's namespaces; the only sysctls it writes are
// per-namespace ones inside the lab (TCP buffer limits of the LAN hosts and
// gateways, forwarding on the gateways), never a global one.
package bench
