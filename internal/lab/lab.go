package lab

import (
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netns"
)

// Bounds on every wait the lab does, so that a broken lab fails a test
// instead of hanging it.
const (
	// DefaultExecTimeout bounds Node.Exec when ctx has no deadline.
	DefaultExecTimeout = 30 * time.Second
	// StopGrace is how long Close waits after SIGTERM before SIGKILL.
	StopGrace = 5 * time.Second
	// DefaultTransferTimeout bounds Transfer when ctx has no deadline.
	DefaultTransferTimeout = 5 * time.Minute
)

// Errors callers may branch on.
var (
	// ErrClosed: the lab was closed; nothing new can be started in it.
	ErrClosed = errors.New("lab is closed")
	// ErrStillRunning: Proc.Wait timed out.
	ErrStillRunning = errors.New("process still running")
	// ErrChecksum: Transfer received different bytes than were sent.
	ErrChecksum = errors.New("transfer checksum mismatch")
	// ErrLabInUse: CleanupLeftovers found a lab some process still holds.
	ErrLabInUse = errors.New("lab is in use by a live process")
	// ErrUnsupported: the lab needs Linux network namespaces.
	ErrUnsupported = errors.New("lab needs Linux network namespaces")
)

// Lab is a running set of virtual offices. Build one with New; Close it
// (also via the TB cleanup New registers). Fields are read-only for callers.
type Lab struct {
	// ID prefixes every namespace of the lab ("ll3k9a" → "ll3k9a-o1g").
	ID string
	// Internet is the namespace joining the routers' WAN sides. It routes
	// (never bridges) between every office link and between
	// 198.51.100.0/24 and 203.0.113.0/24 (addresses .1 in each, on every
	// office link); with Config.IPv6WAN also IPv6 between the office
	// links' 2001:db8:0:<i>::/64 (address ::1 on each, so its Addr6 stays
	// zero). Its Iface is empty: see Office.InternetIface.
	Internet *Node
	// Offices are numbered from 1: Offices[0].Index == 1.
	Offices []*Office

	cfg Config
	log *slog.Logger
	dir string // host directory holding every node's RunDir

	mu      sync.Mutex
	closed  bool
	nodes   []*Node // creation order; deleted in reverse
	procs   map[*Proc]struct{}
	closers map[io.Closer]struct{}
}

// Office is one virtual office: an internet router, a gateway server (where
// `lanlink up` runs) and LAN hosts on one LAN bridge in the router's
// namespace.
type Office struct {
	Index int    // 1-based office number
	Name  string // "o1", "o2", …: the namespace infix
	// Router does NAT for the LAN (masquerade out of WANIface), forwards
	// UDP Port to the gateway unless PortForward is false, and routes every
	// remote office's LAN via GatewayLAN (and LAN6 via GatewayLAN6), as the
	// seed's office routers do.
	Router  *Node
	Gateway *Node
	Hosts   []*Node
	LAN     netip.Prefix
	// WAN is the router's public address (198.51.100.(10+Index) at first;
	// see ChangeWANAddress). Not safe to read concurrently with a change.
	WAN netip.Addr
	// WAN6 is the router's IPv6 public address with Config.IPv6WAN
	// (2001:db8:0:<Index>::2 on WANIface), zero without. It does not
	// change: ChangeWANAddress moves only WAN.
	WAN6     netip.Addr
	WANIface string // in Router's namespace
	// InternetIface is the office link's interface in the Internet
	// namespace: what enters the internet from this office arrives on it,
	// and what leaves towards the office (downstream) is queued on it,
	// so a rate limit there shapes the office's download.
	InternetIface string
	GatewayLAN    netip.Addr
	// LAN6 and GatewayLAN6 are the office's IPv6 LAN and its gateway's
	// address there (Config.IPv6); zero without IPv6.
	LAN6        netip.Prefix
	GatewayLAN6 netip.Addr
	Port        int  // UDP port forwarded to the gateway
	PortForward bool // false: gateway is behind NAT without a forward

	lab *Lab
}

// Endpoint is the office's public WireGuard endpoint as a plan would name it.
func (o *Office) Endpoint() netip.AddrPort { return netip.AddrPortFrom(o.WAN, uint16(o.Port)) }

// Endpoint6 is the office's public IPv6 WireGuard endpoint, [WAN6]:Port,
// as a plan would name it; the zero AddrPort without Config.IPv6WAN.
func (o *Office) Endpoint6() netip.AddrPort {
	if !o.WAN6.IsValid() {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(o.WAN6, uint16(o.Port))
}

// Node is one network namespace of the lab: a machine with one interface.
type Node struct {
	// Name is the network namespace (`ip netns exec Name …`).
	Name string
	// Addr is the node's LAN address (for a router, its LAN side; for the
	// internet, 198.51.100.1) and Iface the interface that carries it.
	Addr  netip.Addr
	Iface string
	// Addr6 is the node's IPv6 LAN address on Iface with Config.IPv6 (a
	// router's LAN side ::1, a gateway ::2, hosts ::a, …); zero without
	// IPv6, and always for the internet, which has no LAN (with
	// Config.IPv6WAN its IPv6 addresses are per office link).
	Addr6 netip.Addr
	// RunDir is the host directory that processes run by Exec and Start
	// see as /run (and /var/run): every node has its own, so two gateways
	// on one machine do not share /run/lanlink (locks, control sockets)
	// or /run/wireguard (UAPI sockets). The test process reaches a node's
	// sockets through it.
	RunDir string

	lab *Lab
	ns  netns.NsHandle // held open for the lab's life; also marks it in use
}

// Proc is a background process started in a node by Node.Start. Close
// stops every Proc still running.
type Proc struct {
	PID     int
	Node    *Node
	Argv    []string
	LogFile string // "" when output is kept in memory
	// StartTime is the kernel's start time of the process (see StopPID),
	// set for detached processes: with PID it survives this process.
	StartTime uint64
	// Detached: started by StartDetached, not tied to this process.
	Detached bool

	proc *os.Process
	out  *capBuffer // nil when LogFile is set
	done chan struct{}
	err  error // valid after done is closed
}

// TransferResult is what Transfer measured.
type TransferResult struct {
	Bytes    int64
	Duration time.Duration // from dial to the receiver's last byte
	SHA256   [32]byte      // of the bytes sent, equal to those received
}

// BitsPerSecond is the goodput of the transfer.
func (r TransferResult) BitsPerSecond() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Bytes*8) / r.Duration.Seconds()
}

// PingResult is what PingStats measured.
type PingResult struct {
	Sent int
	RTTs []time.Duration // one per reply, in order
}

// Median is the median round-trip time, 0 without replies.
func (r PingResult) Median() time.Duration {
	if len(r.RTTs) == 0 {
		return 0
	}
	s := slices.Clone(r.RTTs)
	slices.Sort(s)
	return s[len(s)/2]
}

// capBuffer keeps the first max bytes of a process's output; a chatty
// process must not grow a test's memory without bound.
type capBuffer struct {
	mu        sync.Mutex
	buf       []byte
	max       int
	truncated bool
}

func (b *capBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	room := b.max - len(b.buf)
	if room < len(p) {
		b.truncated = true
		if room > 0 {
			b.buf = append(b.buf, p[:room]...)
		}
		return len(p), nil
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *capBuffer) bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := append([]byte(nil), b.buf...)
	if b.truncated {
		out = append(out, "\n[lab: output truncated]\n"...)
	}
	return out
}
