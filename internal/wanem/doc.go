// Package wanem emulates a long fat WAN link (delay, loss, rate) between
// the office namespaces of lanlink's lab and benchmarks, on a kernel without
// sch_netem.
//
// Delay and loss come from a user-space delay line: a TUN device in the
// emulator ("internet") namespace, into which policy routing sends every
// packet that arrives from an office-facing interface
// (`ip rule add iif IFACE lookup TABLE`, TABLE = `default dev TUN`). The
// line stamps each packet on arrival, holds it for Config.Delay in a FIFO
// (every packet gets the same delay, so order is kept and only the head is
// ever due), and writes it back into the same TUN; it re-enters with
// iif=TUN, matches no rule and is forwarded by the main table to its real
// destination. Without loss, whole virtio-net frames (64 KiB TCP GSO
// super-packets) pass through untouched: one read and one write per frame,
// no user-space copy. With loss, wireguard-go's TUN splits them into wire
// segments so that each one is dropped independently, and coalesces the
// survivors again on write. Rate comes from tc tbf on the emulator's egress
// interfaces (SetRate).
//
// The lab runs the line in the emulator namespace E, as a child process or
// in-process:
//
//	cmd := exec.Command(lanlink, append([]string{"lab", "wanem"},
//		wanem.Args(E, wanem.Config{TUN: "wan0", Delay: 40 * time.Millisecond, Loss: 0.001})...)...)
//	// start it, wait for the line "ready" on its stdout (Install also
//	// waits up to 5 s for the TUN), stop it with SIGTERM
//	// or: line, err := wanem.Start(ctx, E, cfg); defer line.Close()
//	undo, err := wanem.Install(ctx, E, []string{"to-office1", "to-office2"}, "wan0", 100)
//	undoRate, err := wanem.SetRate(ctx, E, "to-office2", "500mbit", 80*time.Millisecond)
//
// where `lanlink lab wanem ARGS` calls wanem.Main(ARGS). Delay is one-way
// and applies once per crossing, so two offices see 2×Delay of extra RTT.
// E must have net.ipv4.ip_forward=1. IPv4 only.
//
// This is test and benchmark infrastructure: it shells out to ip and tc
// (the product never does) and must only ever touch namespaces that the
// lab or a test created; it must not be used on a host's own namespace or
// interfaces, and is not part of lanlink's data plane.
package wanem
