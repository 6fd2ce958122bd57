package doctor

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"lanlink/internal/agent"
	"lanlink/internal/plan"
)

// Status is a check's verdict.
type Status string

// Verdicts, from good to bad. Only Fail makes `lanlink doctor` exit
// non-zero: Warn is something that works now but is fragile or slow.
const (
	OK   Status = "ok"
	Skip Status = "skip" // could not be checked (says why in Detail)
	Warn Status = "warn"
	Fail Status = "fail"
)

// Result is one check's outcome. ID is stable ("forwarding",
// "handshake:beta"); scripts and tests key on it.
type Result struct {
	ID     string `json:"id"`
	Title  string `json:"title"`
	Status Status `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Fix is the command or configuration line that fixes the problem,
	// possibly several lines; empty when nothing needs doing.
	Fix string `json:"fix,omitempty"`
}

// Failed reports whether any result is a Fail.
func Failed(rs []Result) bool {
	for _, r := range rs {
		if r.Status == Fail {
			return true
		}
	}
	return false
}

// Interface is a network interface of this host.
type Interface struct {
	Name  string
	Index int
	MTU   int
	Up    bool
	Addrs []netip.Prefix // address with the connected prefix length
}

// Route is a route of the main table.
type Route struct {
	Dst netip.Prefix // 0.0.0.0/0 or ::/0 for a default route
	Gw  netip.Addr   // invalid when directly connected
	Dev string
}

// FirewallChain is a base chain at the forward hook (nftables) or the
// FORWARD chain of iptables-legacy's filter table.
type FirewallChain struct {
	Source string // "nftables" or "iptables-legacy"
	Family string // nftables family: "ip", "ip6", "inet"; "ip" for legacy
	Table  string
	Chain  string
	Policy string // "accept" or "drop"
	Rules  []FirewallRule
	// Opaque is set when the rules could not be read one by one (an
	// iptables-legacy rule with a target doctor does not know); Rules is
	// then empty and RuleCount still says how many there are.
	Opaque    bool
	RuleCount int
}

// FirewallRule is what doctor understands of one rule: the interface
// matches, whether it only matches packets of existing connections, and
// its verdict. Anything else it matches on makes it Conditional.
type FirewallRule struct {
	IIF, OIF string // "" = any
	// EstablishedOnly: a ct state match without "new" — it never decides
	// the first packet of a connection.
	EstablishedOnly bool
	// Conditional: the rule matches on something doctor does not
	// evaluate (addresses, ports, sets, marks …).
	Conditional bool
	Verdict     string // "accept", "drop", "reject", "jump", "goto", "return", "" (none)
}

// Observer is everything doctor reads from the system. The real one is
// NewObserver (Linux); tests use a fake. Methods are called at most a few
// times per run and may be slow (Ping waits for an answer).
type Observer interface {
	// Plan loads the plan; errors are the plan's own (plan.Problems).
	Plan() (*plan.Plan, error)
	// LocalKey is the public key of this gateway's private key file.
	LocalKey() (wgtypes.Key, error)
	// Agent is the running agent's status; agent.ErrNotRunning (wrapped)
	// when none runs.
	Agent(ctx context.Context) (*agent.Status, error)
	// Sysctl reads a sysctl by its dotted name ("net.ipv4.ip_forward");
	// an error wrapping fs.ErrNotExist when the kernel has no such key.
	Sysctl(name string) (string, error)
	Interfaces() ([]Interface, error)
	Routes() ([]Route, error)
	// ReversePath asks the kernel to route a packet from src to dst
	// arriving on iif, as it would for a forwarded packet; it returns
	// ErrReversePath when reverse path filtering would drop it.
	ReversePath(iif string, src, dst netip.Addr) error
	// Firewall lists the chains that filter forwarded packets.
	Firewall() ([]FirewallChain, error)
	// UDPBound reports whether some socket is bound to UDP port (any
	// address, IPv4 or IPv6).
	UDPBound(port int) (bool, error)
	Resolve(ctx context.Context, host string) ([]netip.Addr, error)
	// Ping sends one ICMP echo request of size bytes (the whole IP
	// packet) with Don't Fragment set and waits for the reply until
	// timeout. ErrTooBig when the local stack refuses the size (larger
	// than the outgoing interface's MTU); ErrNoReply on timeout.
	Ping(ctx context.Context, dst netip.Addr, size int, timeout time.Duration) (time.Duration, error)
}

// Probe errors an Observer returns.
var (
	ErrReversePath = errors.New("dropped by reverse path filter")
	ErrTooBig      = errors.New("packet larger than the local MTU")
	ErrNoReply     = errors.New("no reply")
)

// Options configure a doctor run.
type Options struct {
	Observer  Observer
	PlanPath  string // shown in fixes
	Interface string // the tunnel interface, default "lanlink0"
	Site      string // this gateway's site; "" = the agent's, else the key's
	// Rate is the link rate, in bits per second, assumed when sizing TCP
	// buffers for the bandwidth-delay product (default 1 Gbit/s).
	Rate float64
	// NoProbe skips the ICMP probes (RTT, path MTU).
	NoProbe bool
}
