package doctor

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"lanlink/internal/agent"
	"lanlink/internal/keys"
	"lanlink/internal/plan"
)

// NewObserver returns the observer of the host (the current network
// namespace) that doctor and routes run on.
func NewObserver(o ObserverOptions) (Observer, error) {
	return &realObserver{o: o}, nil
}

type realObserver struct{ o ObserverOptions }

func (r *realObserver) Plan() (*plan.Plan, error) { return plan.Load(r.o.PlanPath) }

func (r *realObserver) LocalKey() (wgtypes.Key, error) {
	k, err := keys.Load(r.o.KeyPath)
	if err != nil {
		return wgtypes.Key{}, err
	}
	return k.PublicKey(), nil
}

func (r *realObserver) Agent(ctx context.Context) (*agent.Status, error) {
	c := &agent.Client{StateDir: r.o.StateDir, Interface: r.o.Interface, Timeout: 5 * time.Second}
	return c.Status(ctx)
}

// sysctlPath maps a dotted name to /proc/sys. Interface names may hold
// dots ("eth0.100"), so for per-interface keys only the last component
// is the key.
func sysctlPath(name string) string {
	for _, pfx := range []string{"net.ipv4.conf.", "net.ipv6.conf."} {
		if rest, ok := strings.CutPrefix(name, pfx); ok {
			if i := strings.LastIndexByte(rest, '.'); i > 0 {
				return "/proc/sys/" + strings.ReplaceAll(pfx, ".", "/") + rest[:i] + "/" + rest[i+1:]
			}
		}
	}
	return "/proc/sys/" + strings.ReplaceAll(name, ".", "/")
}

func (r *realObserver) Sysctl(name string) (string, error) {
	b, err := os.ReadFile(sysctlPath(name))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", name, err)
	}
	return strings.Join(strings.Fields(string(b)), " "), nil
}

func (r *realObserver) Interfaces() ([]Interface, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	var out []Interface
	for _, l := range links {
		a := l.Attrs()
		ifc := Interface{Name: a.Name, Index: a.Index, MTU: a.MTU, Up: a.Flags&net.FlagUp != 0}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return nil, fmt.Errorf("list addresses of %s: %w", a.Name, err)
		}
		for _, ad := range addrs {
			ip, ok := netip.AddrFromSlice(ad.IP)
			if !ok {
				continue
			}
			ones, _ := ad.Mask.Size()
			ifc.Addrs = append(ifc.Addrs, netip.PrefixFrom(ip.Unmap(), ones))
		}
		out = append(out, ifc)
	}
	return out, nil
}

func (r *realObserver) Routes() ([]Route, error) {
	var out []Route
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := netlink.RouteList(nil, fam)
		if err != nil {
			return nil, fmt.Errorf("list routes: %w", err)
		}
		for _, rt := range rs {
			var o Route
			if rt.Dst != nil {
				ip, _ := netip.AddrFromSlice(rt.Dst.IP)
				ones, _ := rt.Dst.Mask.Size()
				o.Dst = netip.PrefixFrom(ip.Unmap(), ones)
			} else if fam == netlink.FAMILY_V4 {
				o.Dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
			} else {
				o.Dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
			}
			if gw, ok := netip.AddrFromSlice(rt.Gw); ok {
				o.Gw = gw.Unmap()
			}
			if l, err := netlink.LinkByIndex(rt.LinkIndex); err == nil {
				o.Dev = l.Attrs().Name
			}
			out = append(out, o)
		}
	}
	return out, nil
}

func (r *realObserver) ReversePath(iif string, src, dst netip.Addr) error {
	_, err := netlink.RouteGetWithOptions(dst.AsSlice(), &netlink.RouteGetOptions{Iif: iif, SrcAddr: src.AsSlice()})
	if errors.Is(err, unix.EXDEV) {
		return ErrReversePath
	}
	return err
}

func (r *realObserver) UDPBound(port int) (bool, error) {
	found := false
	for _, f := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return false, err
		}
		ok, err := udpTableHasPort(string(b), port)
		if err != nil {
			return false, fmt.Errorf("%s: %w", f, err)
		}
		found = found || ok
	}
	return found, nil
}

// udpTableHasPort parses /proc/net/udp{,6}: the second column is
// "ADDR:PORT" in hex.
func udpTableHasPort(table string, port int) (bool, error) {
	lines := strings.Split(table, "\n")
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		i := strings.LastIndexByte(f[1], ':')
		if i < 0 {
			return false, fmt.Errorf("unexpected local address %q", f[1])
		}
		p, err := strconv.ParseUint(f[1][i+1:], 16, 16)
		if err != nil {
			return false, fmt.Errorf("unexpected local address %q", f[1])
		}
		if int(p) == port {
			return true, nil
		}
	}
	return false, nil
}

func (r *realObserver) Resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// Ping sends one DF-marked echo request from a raw ICMP socket.
func (r *realObserver) Ping(ctx context.Context, dst netip.Addr, size int, timeout time.Duration) (time.Duration, error) {
	if !dst.Is4() {
		return 0, errors.New("only IPv4 probes are implemented")
	}
	c, err := net.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return 0, fmt.Errorf("open ICMP socket: %w", err)
	}
	defer c.Close()
	sc, err := c.(*net.IPConn).SyscallConn()
	if err != nil {
		return 0, err
	}
	var serr error
	if err := sc.Control(func(fd uintptr) {
		// DO: set DF and refuse locally what exceeds the known path MTU,
		// instead of fragmenting.
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO)
	}); err != nil || serr != nil {
		return 0, fmt.Errorf("set IP_MTU_DISCOVER: %w", errors.Join(err, serr))
	}
	id, seq := rand.IntN(0xffff), rand.IntN(0xffff)
	payload := make([]byte, max(size-28, 0))
	msg, _ := (&icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: payload}}).Marshal(nil)
	deadline := time.Now().Add(timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	c.SetDeadline(deadline)
	start := time.Now()
	if _, err := c.WriteTo(msg, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		if errors.Is(err, unix.EMSGSIZE) {
			return 0, ErrTooBig
		}
		return 0, fmt.Errorf("send echo to %s: %w", dst, err)
	}
	buf := make([]byte, 65536)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return 0, ErrNoReply
			}
			return 0, err
		}
		if a, ok := from.(*net.IPAddr); !ok || !a.IP.Equal(dst.AsSlice()) {
			continue
		}
		m, err := icmp.ParseMessage(1, buf[:n])
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id && e.Seq == seq {
			return time.Since(start), nil
		}
	}
}

// Firewall lists nftables base chains at the forward hook and, when the
// legacy iptables filter table is loaded, its FORWARD chain.
func (r *realObserver) Firewall() ([]FirewallChain, error) {
	var out []FirewallChain
	names := map[uint32]string{}
	if links, err := netlink.LinkList(); err == nil {
		for _, l := range links {
			names[uint32(l.Attrs().Index)] = l.Attrs().Name
		}
	}
	conn, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("open nftables: %w", err)
	}
	chains, err := conn.ListChains()
	if err != nil {
		return nil, fmt.Errorf("list nftables chains: %w", err)
	}
	for _, c := range chains {
		if c.Hooknum == nil || *c.Hooknum != *nftables.ChainHookForward || c.Type != nftables.ChainTypeFilter {
			continue
		}
		fam := familyName(c.Table.Family)
		if fam == "" {
			continue
		}
		fc := FirewallChain{Source: "nftables", Family: fam, Table: c.Table.Name, Chain: c.Name, Policy: "accept"}
		if c.Policy != nil && *c.Policy == nftables.ChainPolicyDrop {
			fc.Policy = "drop"
		}
		rules, err := conn.GetRules(c.Table, c)
		if err != nil {
			return nil, fmt.Errorf("list rules of %s %s %s: %w", fam, c.Table.Name, c.Name, err)
		}
		for _, rl := range rules {
			fc.Rules = append(fc.Rules, summarizeRule(rl.Exprs, names))
		}
		fc.RuleCount = len(fc.Rules)
		out = append(out, fc)
	}
	legacy, err := legacyForward()
	if err != nil {
		return nil, err
	}
	if legacy != nil {
		out = append(out, *legacy)
	}
	return out, nil
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyINet:
		return "inet"
	}
	return ""
}

// ct state bits (NF_CT_STATE_BIT).
const ctStateNew = 1 << 3

// summarizeRule reduces a rule's expressions to what evalChain evaluates:
// interface-name matches, ct state, verdict. Registers are tracked so a
// cmp is attributed to the load that filled its register.
func summarizeRule(exprs []expr.Any, ifNames map[uint32]string) FirewallRule {
	var fr FirewallRule
	regs := map[uint32]string{}
	var ctMask uint32
	for _, e := range exprs {
		switch e := e.(type) {
		case *expr.Meta:
			switch e.Key {
			case expr.MetaKeyIIFNAME:
				regs[e.Register] = "iifname"
			case expr.MetaKeyOIFNAME:
				regs[e.Register] = "oifname"
			case expr.MetaKeyIIF:
				regs[e.Register] = "iif"
			case expr.MetaKeyOIF:
				regs[e.Register] = "oif"
			default:
				regs[e.Register] = "other"
			}
		case *expr.Ct:
			if e.Key == expr.CtKeySTATE {
				regs[e.Register] = "ctstate"
			} else {
				regs[e.Register] = "other"
			}
		case *expr.Bitwise:
			if regs[e.SourceRegister] == "ctstate" && len(e.Mask) == 4 {
				ctMask = binary.NativeEndian.Uint32(e.Mask)
				regs[e.DestRegister] = "ctmasked"
			} else {
				regs[e.DestRegister] = "other"
			}
		case *expr.Cmp:
			kind := regs[e.Register]
			switch {
			case (kind == "iifname" || kind == "oifname") && e.Op == expr.CmpOpEq && len(e.Data) > 0 && e.Data[len(e.Data)-1] == 0:
				name := strings.TrimRight(string(e.Data), "\x00")
				if kind == "iifname" {
					fr.IIF = name
				} else {
					fr.OIF = name
				}
			case (kind == "iif" || kind == "oif") && e.Op == expr.CmpOpEq && len(e.Data) == 4:
				name, ok := ifNames[binary.NativeEndian.Uint32(e.Data)]
				if !ok {
					name = "(gone)"
				}
				if kind == "iif" {
					fr.IIF = name
				} else {
					fr.OIF = name
				}
			case kind == "ctmasked" && e.Op == expr.CmpOpNeq && isZero(e.Data):
				if ctMask&ctStateNew == 0 {
					fr.EstablishedOnly = true
				}
			default:
				fr.Conditional = true
			}
		case *expr.Counter, *expr.Log:
		case *expr.Verdict:
			switch e.Kind {
			case expr.VerdictAccept:
				fr.Verdict = "accept"
			case expr.VerdictDrop:
				fr.Verdict = "drop"
			case expr.VerdictJump:
				fr.Verdict = "jump"
			case expr.VerdictGoto:
				fr.Verdict = "goto"
			case expr.VerdictReturn:
				fr.Verdict = "return"
			default:
				fr.Conditional = true
			}
		case *expr.Reject:
			fr.Verdict = "reject"
		default:
			fr.Conditional = true
		}
	}
	return fr
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// iptables-legacy kernel interface (linux/netfilter_ipv4/ip_tables.h,
// linux/netfilter/x_tables.h), as laid out on 64-bit Linux.
const (
	iptSoGetInfo    = 64 // IPT_SO_GET_INFO
	iptSoGetEntries = 65 // IPT_SO_GET_ENTRIES
	nfInetForward   = 2
	iptInfoSize     = 84 // struct ipt_getinfo
	iptEntriesHdr   = 40 // struct ipt_get_entries up to entrytable (8-aligned)

	// struct ipt_entry: struct ipt_ip (src, dst, smsk, dmsk, iniface[16],
	// outiface[16], iniface_mask[16], outiface_mask[16], proto u16, flags
	// u8, invflags u8), nfcache u32, target_offset u16, next_offset u16,
	// comefrom u32, counters; then the matches, then the target.
	iptEntrySize      = 112
	iptIniface        = 16
	iptOutiface       = 32
	iptInifaceMask    = 48
	iptOutifaceMask   = 64
	iptProto          = 80
	iptFlags          = 82
	iptInvflags       = 83
	iptTargetOffset   = 88
	iptNextOffset     = 90
	iptFGoto          = 0x02 // IPT_F_GOTO: the jump is a goto
	iptInvViaIn       = 0x01 // IPT_INV_VIA_IN
	iptInvViaOut      = 0x02 // IPT_INV_VIA_OUT
	xtHeaderSize      = 32   // xt_entry_match / xt_entry_target: size u16, name[29], revision u8
	xtExtensionMaxLen = 29

	// Standard verdicts are stored as -verdict-1; XT_RETURN is
	// -NF_REPEAT-1. A non-negative value is the offset of a jump's target.
	xtVerdictDrop   = -1
	xtVerdictAccept = -2
	xtVerdictReturn = -5

	// struct xt_conntrack_mtinfo3 (linux/netfilter/xt_conntrack.h): eight
	// union nf_inet_addr (16 bytes each), expires_min/max u32, l4proto
	// and four ports u16, then match_flags, invert_flags, state_mask.
	ctInfo3MatchFlags  = 146
	ctInfo3InvertFlags = 148
	ctInfo3StateMask   = 150
	xtConntrackState   = 1 << 0  // XT_CONNTRACK_STATE
	xtConntrackAlias   = 1 << 13 // XT_CONNTRACK_STATE_ALIAS: `-m state` spelled as conntrack; only iptables reads it
	// State bits of both the state and the conntrack match: INVALID,
	// ESTABLISHED and RELATED never match the first packet of a
	// connection. Every other bit can (NEW; conntrack's SNAT, DNAT and
	// UNTRACKED; state's UNTRACKED).
	xtStateNotFirst = 1<<0 | 1<<1 | 1<<2
	xtStateNew      = 1 << 3
)

// legacyForward reads the FORWARD chain of the legacy iptables filter
// table without iptables: its policy and its rules, decoded as far as
// parseLegacyForward understands them.
func legacyForward() (*FirewallChain, error) {
	// thread-self: the calling thread's network namespace, which may not
	// be the process's (a thread moved with setns).
	names := "/proc/thread-self/net/ip_tables_names"
	if _, err := os.Stat("/proc/thread-self"); err != nil {
		names = "/proc/net/ip_tables_names"
	}
	b, err := os.ReadFile(names)
	if err != nil || !strings.Contains("\n"+string(b), "\nfilter\n") {
		return nil, nil // module not loaded or no filter table: nothing to read
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return nil, fmt.Errorf("open socket for iptables-legacy: %w", err)
	}
	defer unix.Close(fd)
	info := make([]byte, iptInfoSize)
	copy(info, "filter")
	if err := getsockopt(fd, iptSoGetInfo, info); err != nil {
		return nil, fmt.Errorf("read iptables-legacy filter table info: %w", err)
	}
	size := binary.NativeEndian.Uint32(info[80:84])
	entries := make([]byte, iptEntriesHdr+int(size))
	copy(entries, "filter")
	binary.NativeEndian.PutUint32(entries[32:36], size)
	if err := getsockopt(fd, iptSoGetEntries, entries); err != nil {
		return nil, fmt.Errorf("read iptables-legacy filter table: %w", err)
	}
	return parseLegacyForward(info, entries[iptEntriesHdr:])
}

func getsockopt(fd int, opt int, buf []byte) error {
	n := uint32(len(buf))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(unix.IPPROTO_IP), uintptr(opt),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
	if e != 0 {
		return e
	}
	return nil
}

// parseLegacyForward reads the FORWARD chain from an ipt_getinfo and the
// entry table of ipt_get_entries: the rules from the chain's hook entry up
// to its underflow (the policy entry), so user-defined chains elsewhere
// in the table are never walked. When some rule has a target it cannot
// decode, the chain is Opaque: its rules are left out and only counted.
func parseLegacyForward(info, table []byte) (*FirewallChain, error) {
	if len(info) < iptInfoSize {
		return nil, errors.New("short ipt_getinfo")
	}
	hooks := binary.NativeEndian.Uint32(info[32:36])
	if hooks&(1<<nfInetForward) == 0 {
		return nil, nil
	}
	hookEntry := binary.NativeEndian.Uint32(info[36+4*nfInetForward:])
	underflow := binary.NativeEndian.Uint32(info[56+4*nfInetForward:])
	if hookEntry > underflow {
		return nil, errors.New("iptables-legacy FORWARD entry after its underflow")
	}
	var rules []FirewallRule
	opaque := false
	off := hookEntry
	for off < underflow {
		e, err := legacyEntry(table, off)
		if err != nil {
			return nil, err
		}
		r, ok := decodeLegacyRule(e, off)
		opaque = opaque || !ok
		rules = append(rules, r)
		off += uint32(len(e))
	}
	if off != underflow {
		return nil, errors.New("iptables-legacy FORWARD rules overrun its policy entry")
	}
	policy, err := legacyEntry(table, underflow)
	if err != nil {
		return nil, fmt.Errorf("iptables-legacy policy entry: %w", err)
	}
	tOff := binary.NativeEndian.Uint16(policy[iptTargetOffset:])
	if int(tOff)+xtHeaderSize+4 > len(policy) {
		return nil, errors.New("iptables-legacy policy target out of range")
	}
	fc := &FirewallChain{Source: "iptables-legacy", Family: "ip", Table: "filter", Chain: "FORWARD", RuleCount: len(rules), Policy: "accept"}
	if int32(binary.NativeEndian.Uint32(policy[int(tOff)+xtHeaderSize:])) == xtVerdictDrop {
		fc.Policy = "drop"
	}
	if opaque {
		fc.Opaque = true
	} else {
		fc.Rules = rules
	}
	return fc, nil
}

// legacyEntry returns the ipt_entry at off, bounds-checked: its matches
// and target lie within it.
func legacyEntry(table []byte, off uint32) ([]byte, error) {
	if uint64(off)+iptEntrySize > uint64(len(table)) {
		return nil, errors.New("iptables-legacy entry table truncated")
	}
	next := binary.NativeEndian.Uint16(table[off+iptNextOffset:])
	tOff := binary.NativeEndian.Uint16(table[off+iptTargetOffset:])
	switch {
	case next == 0:
		return nil, errors.New("iptables-legacy entry with zero size")
	case uint64(off)+uint64(next) > uint64(len(table)):
		return nil, errors.New("iptables-legacy entry table truncated")
	case tOff < iptEntrySize || int(tOff)+xtHeaderSize > int(next):
		return nil, fmt.Errorf("iptables-legacy entry at %d: target offset %d outside its %d bytes", off, tOff, next)
	}
	return table[off : off+uint32(next)], nil
}

// decodeLegacyRule reduces one ipt_entry (at offset off of the table) to
// what evalChain evaluates. ok is false when its target is one whose
// effect doctor does not know; the rule is then not to be trusted.
func decodeLegacyRule(e []byte, off uint32) (r FirewallRule, ok bool) {
	if !isZero(e[:16]) || binary.NativeEndian.Uint16(e[iptProto:]) != 0 { // src, dst, smsk, dmsk; proto
		r.Conditional = true
	}
	flags, inv := e[iptFlags], e[iptInvflags]
	if flags&^iptFGoto != 0 || inv&^(iptInvViaIn|iptInvViaOut) != 0 {
		r.Conditional = true // fragments, inverted address or protocol
	}
	// An inverted or wildcard interface test is left to Conditional.
	if name, exact := legacyIface(e[iptIniface:iptIniface+16], e[iptInifaceMask:iptInifaceMask+16]); exact && inv&iptInvViaIn == 0 {
		r.IIF = name
	} else {
		r.Conditional = true
	}
	if name, exact := legacyIface(e[iptOutiface:iptOutiface+16], e[iptOutifaceMask:iptOutifaceMask+16]); exact && inv&iptInvViaOut == 0 {
		r.OIF = name
	} else {
		r.Conditional = true
	}

	tOff := int(binary.NativeEndian.Uint16(e[iptTargetOffset:]))
	for m := iptEntrySize; m < tOff; {
		if m+xtHeaderSize > tOff {
			return r, false
		}
		size := int(binary.NativeEndian.Uint16(e[m:]))
		if size < xtHeaderSize || m+size > tOff {
			return r, false
		}
		est, cond := legacyMatch(xtName(e[m+2:m+2+xtExtensionMaxLen]), e[m+31], e[m+xtHeaderSize:m+size])
		r.EstablishedOnly = r.EstablishedOnly || est
		r.Conditional = r.Conditional || cond
		m += size
	}

	t := e[tOff:]
	tSize := int(binary.NativeEndian.Uint16(t))
	if tSize < xtHeaderSize || tSize > len(t) {
		return r, false
	}
	switch xtName(t[2 : 2+xtExtensionMaxLen]) {
	case "": // the standard target: a verdict or a jump
		if tSize < xtHeaderSize+4 {
			return r, false
		}
		switch v := int32(binary.NativeEndian.Uint32(t[xtHeaderSize:])); {
		case v == xtVerdictAccept:
			r.Verdict = "accept"
		case v == xtVerdictDrop:
			r.Verdict = "drop"
		case v == xtVerdictReturn:
			r.Verdict = "return"
		case v >= 0 && uint32(v) == off+uint32(len(e)):
			r.Verdict = "" // no -j: iptables falls through to the next rule
		case v >= 0 && flags&iptFGoto != 0:
			r.Verdict = "goto"
		case v >= 0:
			r.Verdict = "jump"
		default:
			return r, false // QUEUE, or a verdict iptables does not write
		}
	case "REJECT":
		r.Verdict = "reject"
	case "LOG", "NFLOG", "TCPMSS":
		// Non-terminating: they log or rewrite, then the next rule runs.
		r.Verdict = ""
	default:
		return r, false // ERROR (never inside a chain), DNAT, NFQUEUE, …
	}
	return r, true
}

// legacyIface decodes an ipt_ip interface name and mask. exact is true
// for no interface test (an all-zero mask) and for a whole name (the mask
// covers the name and its NUL); a "+" wildcard (the mask covers only the
// prefix) or any other mask is not exact.
func legacyIface(name, mask []byte) (string, bool) {
	n := 0
	for n < len(mask) && mask[n] == 0xff {
		n++
	}
	for _, c := range mask[n:] {
		if c != 0 {
			return "", false
		}
	}
	if n == 0 {
		return "", true
	}
	s := xtName(name)
	if len(s) == 0 || n != len(s)+1 {
		return "", false
	}
	return s, true
}

// legacyMatch classifies one match by its name, revision and data:
// established (a state test that never matches a connection's first
// packet) or conditional (anything else).
func legacyMatch(name string, rev byte, data []byte) (established, conditional bool) {
	var mask uint32
	switch {
	case name == "state" && rev == 0 && len(data) >= 4:
		// struct xt_state_info { unsigned int statemask; }
		mask = binary.NativeEndian.Uint32(data)
	case name == "conntrack" && rev == 3 && len(data) >= ctInfo3StateMask+2:
		flags := binary.NativeEndian.Uint16(data[ctInfo3MatchFlags:])
		invert := binary.NativeEndian.Uint16(data[ctInfo3InvertFlags:])
		if flags&xtConntrackState == 0 || flags&^(xtConntrackState|xtConntrackAlias) != 0 || invert != 0 {
			return false, true
		}
		mask = uint32(binary.NativeEndian.Uint16(data[ctInfo3StateMask:]))
	default:
		return false, true
	}
	switch {
	case mask&^xtStateNotFirst == 0:
		return true, false
	case mask&xtStateNew != 0:
		return false, false // matches every first packet, as nftables' "ct state new"
	}
	return false, true // SNAT, DNAT or UNTRACKED without NEW: some first packets
}

// xtName is a NUL-terminated name of an xt header or interface field.
func xtName(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// ProbeRouterRoute sends an echo request to router with source src from
// a raw socket (IP_HDRINCL, so src may be an address this host does not
// own) and watches iface with a packet socket for the router's reply: a
// reply to a remote LAN address is forwarded by this gateway, not
// delivered to it, so only a packet socket sees it pass.
func (r *realObserver) ProbeRouterRoute(ctx context.Context, iface string, router, src netip.Addr, timeout time.Duration) (bool, error) {
	if !router.Is4() || !src.Is4() {
		return false, errors.New("only IPv4 is probed")
	}
	link, err := netlink.LinkByName(iface)
	if err != nil {
		return false, fmt.Errorf("find %s: %w", iface, err)
	}
	pfd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IP)))
	if err != nil {
		return false, fmt.Errorf("open packet socket: %w", err)
	}
	defer unix.Close(pfd)
	if err := unix.Bind(pfd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: link.Attrs().Index}); err != nil {
		return false, fmt.Errorf("bind packet socket to %s: %w", iface, err)
	}
	tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(pfd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return false, err
	}
	rfd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return false, fmt.Errorf("open raw socket: %w", err)
	}
	defer unix.Close(rfd)
	if err := unix.BindToDevice(rfd, iface); err != nil {
		return false, fmt.Errorf("bind raw socket to %s: %w", iface, err)
	}
	id, seq := rand.IntN(0xffff), rand.IntN(0xffff)
	echo, _ := (&icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("lanlink routes probe")}}).Marshal(nil)
	pkt := make([]byte, 20+len(echo))
	pkt[0], pkt[8], pkt[9] = 0x45, 64, 1 // IPv4, TTL 64, ICMP
	binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
	s4, d4 := src.As4(), router.As4()
	copy(pkt[12:16], s4[:])
	copy(pkt[16:20], d4[:])
	copy(pkt[20:], echo) // the kernel fills in the IP checksum and ID
	if err := unix.Sendto(rfd, pkt, 0, &unix.SockaddrInet4{Addr: d4}); err != nil {
		return false, fmt.Errorf("send probe to %s: %w", router, err)
	}
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 2048)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		n, from, err := unix.Recvfrom(pfd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return false, fmt.Errorf("read %s: %w", iface, err)
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if isEchoReply(buf[:n], router, src, id, seq) {
			return true, nil
		}
	}
	return false, ctx.Err()
}

func isEchoReply(p []byte, from, to netip.Addr, id, seq int) bool {
	if len(p) < 20 || p[0]>>4 != 4 || p[9] != 1 {
		return false
	}
	hl := int(p[0]&0x0f) * 4
	if len(p) < hl+8 {
		return false
	}
	s, _ := netip.AddrFromSlice(p[12:16])
	d, _ := netip.AddrFromSlice(p[16:20])
	ic := p[hl:]
	return s == from && d == to && ic[0] == 0 &&
		int(binary.BigEndian.Uint16(ic[4:])) == id && int(binary.BigEndian.Uint16(ic[6:])) == seq
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
