//go:build !linux

package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"time"
)

func unsupported() error { return fmt.Errorf("%w: not supported on %s", ErrUnsupported, runtime.GOOS) }

// New is not supported outside Linux.
func New(ctx context.Context, tb TB, cfg Config) (*Lab, error) { return nil, unsupported() }

// CleanupLeftovers is not supported outside Linux.
func CleanupLeftovers(ctx context.Context, id string) ([]string, error) { return nil, unsupported() }

// Transfer is not supported outside Linux.
func Transfer(ctx context.Context, from, to *Node, size int64) (TransferResult, error) {
	return TransferResult{}, unsupported()
}

// TransferTo is not supported outside Linux.
func TransferTo(ctx context.Context, from, to *Node, addr netip.Addr, size int64) (TransferResult, error) {
	return TransferResult{}, unsupported()
}

func (l *Lab) Close() error   { return nil }
func (l *Lab) Nodes() []*Node { return nil }

func (o *Office) ChangeWANAddress(ctx context.Context, addr netip.Addr) error { return unsupported() }

func (n *Node) Exec(ctx context.Context, argv ...string) ([]byte, error) { return nil, unsupported() }
func (n *Node) Start(ctx context.Context, argv []string, logfile string) (*Proc, error) {
	return nil, unsupported()
}
func (n *Node) ListenTCP(addr netip.AddrPort) (*net.TCPListener, error) { return nil, unsupported() }
func (n *Node) ListenUDP(addr netip.AddrPort) (*net.UDPConn, error)     { return nil, unsupported() }
func (n *Node) DialTCP(ctx context.Context, dst netip.AddrPort) (*net.TCPConn, error) {
	return nil, unsupported()
}
func (n *Node) DialUDP(dst netip.AddrPort) (*net.UDPConn, error)          { return nil, unsupported() }
func (n *Node) Ping(ctx context.Context, dst netip.Addr, count int) error { return unsupported() }

func (p *Proc) Signal(sig os.Signal) error       { return unsupported() }
func (p *Proc) Done() <-chan struct{}            { return nil }
func (p *Proc) Wait(timeout time.Duration) error { return unsupported() }
func (p *Proc) Stop(grace time.Duration) error   { return nil }
func (p *Proc) Output() []byte                   { return nil }

// Dir is empty outside Linux.
func (l *Lab) Dir() string { return "" }

// AddOffice is not supported outside Linux.
func (l *Lab) AddOffice(ctx context.Context) (*Office, error) { return nil, unsupported() }

// Detach does nothing outside Linux.
func (l *Lab) Detach() {}

func (n *Node) Command(argv ...string) []string { return nil }
func (n *Node) StartDetached(argv []string, logfile string) (*Proc, error) {
	return nil, unsupported()
}
func (n *Node) PingStats(ctx context.Context, dst netip.Addr, count int, interval time.Duration) (PingResult, error) {
	return PingResult{}, unsupported()
}

// PIDAlive is false outside Linux.
func PIDAlive(pid int, startTime uint64) bool { return false }

// StopPID is not supported outside Linux.
func StopPID(pid int, startTime uint64, grace time.Duration) error { return unsupported() }

// ProcessesIn is not supported outside Linux.
func ProcessesIn(id string) ([]int, error) { return nil, unsupported() }

func (n *Node) PingUntil(ctx context.Context, dst netip.Addr, every time.Duration) (time.Duration, error) {
	return 0, unsupported()
}
