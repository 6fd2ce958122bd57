// Command lanlink joins office LANs into one network over WireGuard. All
// behaviour lives in internal/cli; main only wires it to the process.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"lanlink/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
