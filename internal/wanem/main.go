package wanem

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
)

// Args returns the flags for Main that describe cfg, with ns as --netns
// when not "". The lab runs the delay line as a child process with
//
//	exec.Command(lanlinkBinary, append([]string{"lab", "wanem"}, wanem.Args(ns, cfg)...)...)
func Args(ns string, cfg Config) []string {
	a := []string{"--tun", cfg.TUN, "--delay", cfg.Delay.String(), "--loss", strconv.FormatFloat(cfg.Loss, 'g', -1, 64)}
	if ns != "" {
		a = append(a, "--netns", ns)
	}
	if cfg.QueueLimit != 0 {
		a = append(a, "--queue-limit", strconv.Itoa(cfg.QueueLimit))
	}
	if cfg.MTU != 0 {
		a = append(a, "--mtu", strconv.Itoa(cfg.MTU))
	}
	if cfg.Seed != 0 {
		a = append(a, "--seed", strconv.FormatUint(cfg.Seed, 10))
	}
	return a
}

// spareProcs makes sure the delay line's two locked threads never wait for
// a Go P (a scheduler slot) behind each other or the garbage collector: on
// a 2-core machine a thread coming back from its sleep could otherwise wait
// milliseconds for a P, which shows up as extra delay. They spend most of
// their time blocked in syscalls, so the extra Ps cost nothing.
func spareProcs() {
	if runtime.GOMAXPROCS(0) < 4 {
		runtime.GOMAXPROCS(4)
	}
}

// Main is the hidden `lanlink lab wanem` entry point: it runs one delay line
// until SIGINT or SIGTERM and returns the process exit code. It prints
// "ready" on stdout once the TUN exists, so a parent can Install right after
// reading that line, and logs its final Stats to stderr.
func Main(args []string) int {
	return mainWith(args, os.Stdout, os.Stderr)
}

func mainWith(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wanem", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	var ns string
	fs.StringVar(&ns, "netns", "", "network namespace to create the TUN in (default: the current one)")
	fs.StringVar(&cfg.TUN, "tun", "", "name of the TUN device to create (required)")
	fs.DurationVar(&cfg.Delay, "delay", 0, "one-way delay added to every packet, e.g. 40ms")
	fs.Float64Var(&cfg.Loss, "loss", 0, "packet loss probability 0..1, e.g. 0.001")
	fs.IntVar(&cfg.QueueLimit, "queue-limit", 0, "bytes queued before tail drop (default 256 MiB)")
	fs.IntVar(&cfg.MTU, "mtu", 0, "MTU of the TUN (default 9000)")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "seed for loss decisions (default random)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "wanem: unexpected arguments %q\n", fs.Args())
		return 2
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	spareProcs()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	l, err := Start(ctx, ns, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "wanem: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "ready")
	<-ctx.Done()
	err = l.Close()
	cfg.Logger.Info("wanem stopped", "tun", cfg.TUN, "stats", l.Stats().String())
	if err != nil {
		fmt.Fprintf(stderr, "wanem: %v\n", err)
		return 1
	}
	return 0
}
