package wanem

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netns"
)

// inNamespace runs fn on an OS thread that has joined network namespace ns
// (on the caller's own when ns is ""). The thread is never handed back to
// the Go scheduler: the goroutine exits still locked, so the runtime kills
// the thread instead of letting other goroutines run in ns by accident.
func inNamespace(ns string, fn func() error) error {
	if ns == "" {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		h, err := netns.GetFromName(ns)
		if err != nil {
			errc <- fmt.Errorf("open network namespace %q: %w", ns, err)
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- fmt.Errorf("enter network namespace %q: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Install routes everything that enters namespace ns through one of ifaces
// into the TUN tunName, and so through the delay line serving it:
//
//	ip route add default dev TUN table TABLE
//	ip rule add iif IFACE lookup TABLE        (for each iface)
//
// Packets the delay line writes back enter with iif TUN, match no rule and
// are forwarded by the main table as if the line were not there, so they
// never loop. It also brings the TUN up, lengthens its transmit queue, and
// turns off reverse-path filtering on it (the packets it hands back carry
// sources that are routed via the office interfaces) and IPv6 on it. The
// namespace must already forward IPv4 (net.ipv4.ip_forward=1 inside it).
// IPv6 is not routed through the line.
//
// The TUN must exist or appear within 5 s (the delay line may be starting in
// a child process). undo removes the rules and the route; the TUN itself
// goes away when its delay line stops.
func Install(ctx context.Context, ns string, ifaces []string, tunName string, table int) (undo func() error, err error) {
	if len(ifaces) == 0 {
		return nil, fmt.Errorf("%w: no interfaces to route through %s", ErrConfig, tunName)
	}
	if table <= 0 || table == 253 || table == 254 || table == 255 {
		return nil, fmt.Errorf("%w: routing table %d is reserved or invalid: use e.g. 100", ErrConfig, table)
	}
	if err := waitLink(ctx, ns, tunName, 5*time.Second); err != nil {
		return nil, err
	}
	var fwd []byte
	err = inNamespace(ns, func() error {
		var err error
		if fwd, err = os.ReadFile("/proc/sys/net/ipv4/ip_forward"); err != nil {
			return err
		}
		for _, k := range []string{"all/rp_filter", tunName + "/rp_filter"} {
			if err := os.WriteFile("/proc/sys/net/ipv4/conf/"+k, []byte("0"), 0o644); err != nil {
				return err
			}
		}
		// Without IPv6 the TUN sends no router solicitations or MLD
		// reports of its own into the line, which would skew its counters.
		err = os.WriteFile("/proc/sys/net/ipv6/conf/"+tunName+"/disable_ipv6", []byte("1"), 0o644)
		if errors.Is(err, os.ErrNotExist) { // kernel without IPv6
			err = nil
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sysctls for %s in namespace %q: %w", tunName, ns, err)
	}
	if strings.TrimSpace(string(fwd)) != "1" {
		return nil, fmt.Errorf("namespace %q does not forward IPv4: set net.ipv4.ip_forward=1 in it before installing the delay line", ns)
	}

	var steps []([]string) // undo commands, run in reverse
	undoAll := func() error {
		var errs error
		for i := len(steps) - 1; i >= 0; i-- {
			errs = errors.Join(errs, ip(context.Background(), ns, steps[i]...))
		}
		steps = nil
		return errs
	}
	var once sync.Once
	undoOnce := func() error {
		var err error
		once.Do(func() { err = undoAll() })
		return err
	}
	t := strconv.Itoa(table)
	if err := ip(ctx, ns, "link", "set", "dev", tunName, "txqueuelen", "10000", "up"); err != nil {
		return nil, err
	}
	if err := ip(ctx, ns, "route", "replace", "default", "dev", tunName, "table", t); err != nil {
		return nil, err
	}
	steps = append(steps, []string{"route", "del", "default", "dev", tunName, "table", t})
	for _, ifc := range ifaces {
		if err := ip(ctx, ns, "rule", "add", "iif", ifc, "lookup", t); err != nil {
			return nil, errors.Join(err, undoOnce())
		}
		steps = append(steps, []string{"rule", "del", "iif", ifc, "lookup", t})
	}
	return undoOnce, nil
}

func waitLink(ctx context.Context, ns, name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ip(ctx, ns, "link", "show", "dev", name)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("TUN %q did not appear in namespace %q within %v (is the delay line running?): %w", name, ns, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SetRate limits what leaves iface in namespace ns to rate ("500mbit",
// "1gbit", "100kbit"; only bit units, since tc's "mbps" means bytes) with a
// token bucket filter:
//
//	tc qdisc replace dev IFACE root tbf rate RATE burst B limit L
//
// burst is max(1 ms of rate, 128 KiB): tbf must pass a whole 64 KiB GSO
// super-packet in one go (or it segments it in software), and 1 ms of tokens
// keeps the shaper smooth at Gbit rates without letting through a burst
// long enough to matter on a link with tens of ms of RTT.
//
// limit, the bytes tbf may queue, is rate × rtt + burst, at least 1 MiB:
// one bandwidth-delay product is what a single TCP flow needs queued at the
// bottleneck to keep the link busy through a loss recovery; less shows up
// as drops and a throughput below the configured rate. rtt is the round
// trip the flows will see (base RTT plus both directions' Delay).
//
// undo removes the qdisc again.
func SetRate(ctx context.Context, ns, iface, rate string, rtt time.Duration) (undo func() error, err error) {
	bps, err := ParseRate(rate)
	if err != nil {
		return nil, err
	}
	burst, limit := tbfSizes(bps, rtt)
	err = tc(ctx, ns, "qdisc", "replace", "dev", iface, "root", "tbf",
		"rate", strconv.FormatUint(bps, 10)+"bit",
		"burst", strconv.FormatUint(burst, 10),
		"limit", strconv.FormatUint(limit, 10))
	if err != nil {
		return nil, err
	}
	var once sync.Once
	return func() error {
		var err error
		once.Do(func() { err = tc(context.Background(), ns, "qdisc", "del", "dev", iface, "root") })
		return err
	}, nil
}

func ip(ctx context.Context, ns string, args ...string) error {
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	return run(ctx, "ip", args...)
}

func tc(ctx context.Context, ns string, args ...string) error {
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	return run(ctx, "tc", args...)
}

func run(ctx context.Context, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}
