package doctor

import (
	"encoding/binary"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"

	"lanlink/internal/testutil"
)

func TestSysctlPath(t *testing.T) {
	for name, want := range map[string]string{
		"net.ipv4.ip_forward":                       "/proc/sys/net/ipv4/ip_forward",
		"net.ipv4.conf.eth0.100.rp_filter":          "/proc/sys/net/ipv4/conf/eth0.100/rp_filter",
		"net.ipv6.conf.all.forwarding":              "/proc/sys/net/ipv6/conf/all/forwarding",
		"net.ipv4.tcp_available_congestion_control": "/proc/sys/net/ipv4/tcp_available_congestion_control",
	} {
		if got := sysctlPath(name); got != want {
			t.Errorf("sysctlPath(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestUDPTableHasPort(t *testing.T) {
	table := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  123: 00000000:CA6C 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 0
`
	for port, want := range map[int]bool{51820: true, 51821: false} {
		got, err := udpTableHasPort(table, port)
		if err != nil || got != want {
			t.Errorf("port %d: %v, %v; want %v", port, got, err, want)
		}
	}
	if _, err := udpTableHasPort("header\n 1: garbage x\n", 1); err == nil {
		t.Error("garbage accepted")
	}
}

func ifname(s string) []byte {
	b := make([]byte, 16)
	copy(b, s)
	return b
}

func TestSummarizeRule(t *testing.T) {
	le := func(v uint32) []byte { b := make([]byte, 4); binary.NativeEndian.PutUint32(b, v); return b }
	for _, tt := range []struct {
		name  string
		exprs []expr.Any
		want  FirewallRule
	}{
		{"iifname oifname accept", []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname("eth0")},
			&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname("lanlink0")},
			&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictAccept},
		}, FirewallRule{IIF: "eth0", OIF: "lanlink0", Verdict: "accept"}},
		{"ct state established,related accept", []expr.Any{
			&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: le(2 | 4), Xor: le(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: le(0)},
			&expr.Verdict{Kind: expr.VerdictAccept},
		}, FirewallRule{EstablishedOnly: true, Verdict: "accept"}},
		{"ct state new accept decides new packets", []expr.Any{
			&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: le(8), Xor: le(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: le(0)},
			&expr.Verdict{Kind: expr.VerdictAccept},
		}, FirewallRule{Verdict: "accept"}},
		{"iif by index", []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIF, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: le(7)},
			&expr.Verdict{Kind: expr.VerdictDrop},
		}, FirewallRule{IIF: "lanlink0", Verdict: "drop"}},
		{"wildcard name is not evaluated", []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte("eth")},
			&expr.Verdict{Kind: expr.VerdictAccept},
		}, FirewallRule{Conditional: true, Verdict: "accept"}},
		{"address match", []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{10, 0, 0, 1}},
			&expr.Reject{},
		}, FirewallRule{Conditional: true, Verdict: "reject"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := summarizeRule(tt.exprs, map[uint32]string{7: "lanlink0"})
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// legacyRule is a synthetic ipt_entry: what iptables-legacy would hand
// the kernel for one rule.
type legacyRule struct {
	iif, oif       string // "eth+" is a wildcard, as iptables stores it
	invIn, invOut  bool
	src            [4]byte // with a /32 mask when set
	proto          uint16
	goTo           bool     // IPT_F_GOTO
	matches        [][]byte // xtMatch output
	target         string   // "" = standard target
	verdict        int32    // the standard target's
	noTarget       bool     // standard target to the next entry (no -j)
	jumpToUserHead bool     // standard target jumping to the user chain
}

// xtMatch is an xt_entry_match with its data, padded to 8 bytes.
func xtMatch(name string, rev byte, data []byte) []byte {
	size := 32 + (len(data)+7)&^7
	b := make([]byte, size)
	binary.NativeEndian.PutUint16(b, uint16(size))
	copy(b[2:31], name)
	b[31] = rev
	copy(b[32:], data)
	return b
}

// conntrackMatch is `-m conntrack` revision 3 with the given flags,
// inversions and state mask (struct xt_conntrack_mtinfo3).
func conntrackMatch(flags, invert, states uint16) []byte {
	d := make([]byte, 164)
	binary.NativeEndian.PutUint16(d[146:], flags)
	binary.NativeEndian.PutUint16(d[148:], invert)
	binary.NativeEndian.PutUint16(d[150:], states)
	return xtMatch("conntrack", 3, d)
}

// stateMatch is `-m state` (struct xt_state_info).
func stateMatch(states uint32) []byte {
	d := make([]byte, 4)
	binary.NativeEndian.PutUint32(d, states)
	return xtMatch("state", 0, d)
}

func putIface(name, mask []byte, s string) {
	copy(name, s)
	if pfx, ok := strings.CutSuffix(s, "+"); ok {
		for i := range pfx {
			mask[i] = 0xff
		}
		return
	}
	for i := 0; i <= len(s) && s != ""; i++ {
		mask[i] = 0xff
	}
}

func (r legacyRule) entry(off uint32, userHead uint32) []byte {
	e := make([]byte, 112)
	copy(e[0:4], r.src[:])
	if r.src != [4]byte{} {
		copy(e[8:12], []byte{255, 255, 255, 255})
	}
	putIface(e[16:32], e[48:64], r.iif)
	putIface(e[32:48], e[64:80], r.oif)
	binary.NativeEndian.PutUint16(e[80:], r.proto)
	if r.goTo {
		e[82] |= 0x02
	}
	if r.invIn {
		e[83] |= 0x01
	}
	if r.invOut {
		e[83] |= 0x02
	}
	for _, m := range r.matches {
		e = append(e, m...)
	}
	binary.NativeEndian.PutUint16(e[88:], uint16(len(e)))
	var t []byte
	if r.target == "" {
		t = make([]byte, 40) // header, verdict, padding
	} else {
		t = make([]byte, 32+8) // header, some target data
		copy(t[2:31], r.target)
	}
	binary.NativeEndian.PutUint16(t, uint16(len(t)))
	next := uint32(len(e) + len(t))
	if r.target == "" {
		v := r.verdict
		switch {
		case r.noTarget:
			v = int32(off + next)
		case r.jumpToUserHead:
			v = int32(userHead)
		}
		binary.NativeEndian.PutUint32(t[32:], uint32(v))
	}
	e = append(e, t...)
	binary.NativeEndian.PutUint16(e[90:], uint16(next))
	return e
}

// errorEntry is a chain head or the end of the table (the ERROR target).
func errorEntry(name string) []byte {
	e := make([]byte, 112+64)
	binary.NativeEndian.PutUint16(e[88:], 112)
	binary.NativeEndian.PutUint16(e[90:], uint16(len(e)))
	binary.NativeEndian.PutUint16(e[112:], 64)
	copy(e[114:], "ERROR")
	copy(e[144:], name)
	return e
}

// legacyTable builds an ipt_getinfo and entry table laid out as the
// kernel does: INPUT's policy, FORWARD's rules and policy, OUTPUT's
// policy, then a user chain (head, one RETURN rule, its return) and the
// table's end.
func legacyTable(rules []legacyRule, policy int32) (info, table []byte) {
	std := func(v int32) []byte { return legacyRule{verdict: v}.entry(0, 0) }
	info = make([]byte, iptInfoSize)
	binary.NativeEndian.PutUint32(info[32:], 1<<1|1<<2|1<<3) // INPUT FORWARD OUTPUT
	entry := uint32(len(std(0)))
	// The user chain starts after INPUT, FORWARD's rules and policy, OUTPUT.
	size := 3 * entry
	for _, r := range rules {
		size += uint32(len(r.entry(0, 0)))
	}
	userHead := size
	table = append(table, std(-2)...) // INPUT policy
	binary.NativeEndian.PutUint32(info[36+4*2:], uint32(len(table)))
	for _, r := range rules {
		table = append(table, r.entry(uint32(len(table)), userHead)...)
	}
	binary.NativeEndian.PutUint32(info[56+4*2:], uint32(len(table)))
	table = append(table, std(policy)...) // FORWARD policy
	binary.NativeEndian.PutUint32(info[36+4*3:], uint32(len(table)))
	binary.NativeEndian.PutUint32(info[56+4*3:], uint32(len(table)))
	table = append(table, std(-2)...) // OUTPUT policy
	if uint32(len(table)) != userHead {
		panic("user chain misplaced")
	}
	table = append(table, errorEntry("lanlink-user")...)
	table = append(table, std(-5)...) // -A lanlink-user -j RETURN
	table = append(table, std(-5)...) // the chain's own return
	table = append(table, errorEntry("ERROR")...)
	binary.NativeEndian.PutUint32(info[80:], uint32(len(table)))
	return info, table
}

func TestParseLegacyForward(t *testing.T) {
	const (
		invalid, established, related, new, snat, dnat = 1 << 0, 1 << 1, 1 << 2, 1 << 3, 1 << 6, 1 << 7
		ctState, ctStatus, ctAlias                     = 1 << 0, 1 << 6, 1 << 13
		drop, accept, ret                              = -1, -2, -5
	)
	chain := func(policy string, rules ...FirewallRule) FirewallChain {
		return FirewallChain{Source: "iptables-legacy", Family: "ip", Table: "filter", Chain: "FORWARD", Policy: policy, Rules: rules, RuleCount: len(rules)}
	}
	for _, tt := range []struct {
		name   string
		rules  []legacyRule
		policy int32
		want   FirewallChain
	}{
		{"empty, policy drop", nil, drop, chain("drop")},
		{"empty, policy accept", nil, accept, chain("accept")},
		{"doctor's fix under policy drop", []legacyRule{
			{matches: [][]byte{conntrackMatch(ctState, 0, established|related)}, verdict: accept},
			{iif: "eth0", oif: "lanlink0", verdict: accept},
			{iif: "lanlink0", oif: "eth0", verdict: accept},
		}, drop, chain("drop",
			FirewallRule{EstablishedOnly: true, Verdict: "accept"},
			FirewallRule{IIF: "eth0", OIF: "lanlink0", Verdict: "accept"},
			FirewallRule{IIF: "lanlink0", OIF: "eth0", Verdict: "accept"},
		)},
		{"verdicts and targets", []legacyRule{
			{oif: "lanlink0", verdict: drop},
			{iif: "eth1", target: "REJECT"},
			{jumpToUserHead: true},
			{goTo: true, jumpToUserHead: true},
			{target: "LOG"},
			{noTarget: true},
			{verdict: ret},
		}, accept, chain("accept",
			FirewallRule{OIF: "lanlink0", Verdict: "drop"},
			FirewallRule{IIF: "eth1", Verdict: "reject"},
			FirewallRule{Verdict: "jump"},
			FirewallRule{Verdict: "goto"},
			FirewallRule{},
			FirewallRule{},
			FirewallRule{Verdict: "return"},
		)},
		{"what doctor does not evaluate", []legacyRule{
			{src: [4]byte{10, 1, 2, 3}, verdict: drop},
			{proto: 6, iif: "eth0", target: "REJECT"},
			{iif: "eth+", verdict: accept},
			{oif: "eth1", invOut: true, verdict: accept},
			{iif: "eth0", invIn: true, verdict: accept},
			{matches: [][]byte{xtMatch("comment", 0, make([]byte, 256))}, verdict: accept},
			{matches: [][]byte{conntrackMatch(ctState, ctState, invalid)}, verdict: accept},
			{matches: [][]byte{conntrackMatch(ctState|ctStatus, 0, established)}, verdict: accept},
			{matches: [][]byte{conntrackMatch(ctState, 0, dnat)}, verdict: accept},
			{matches: [][]byte{xtMatch("conntrack", 2, make([]byte, 152))}, verdict: accept},
		}, drop, chain("drop",
			FirewallRule{Conditional: true, Verdict: "drop"},
			FirewallRule{IIF: "eth0", Conditional: true, Verdict: "reject"},
			FirewallRule{Conditional: true, Verdict: "accept"},
			FirewallRule{Conditional: true, Verdict: "accept"},
			FirewallRule{Conditional: true, Verdict: "accept"},
			FirewallRule{Conditional: true, Verdict: "accept"},
			FirewallRule{Conditional: true, Verdict: "accept"},
			FirewallRule{Conditional: true, Verdict: "accept"},
			FirewallRule{Conditional: true, Verdict: "accept"},
			FirewallRule{Conditional: true, Verdict: "accept"},
		)},
		{"state tests", []legacyRule{
			{matches: [][]byte{stateMatch(established)}, verdict: accept},
			{matches: [][]byte{conntrackMatch(ctState|ctAlias, 0, established|related|invalid)}, verdict: accept},
			{matches: [][]byte{conntrackMatch(ctState, 0, new|established)}, verdict: accept},
			{matches: [][]byte{conntrackMatch(ctState, 0, snat|established)}, verdict: accept},
			{src: [4]byte{10, 0, 0, 1}, matches: [][]byte{stateMatch(related)}, verdict: accept},
		}, drop, chain("drop",
			FirewallRule{EstablishedOnly: true, Verdict: "accept"},
			FirewallRule{EstablishedOnly: true, Verdict: "accept"},
			FirewallRule{Verdict: "accept"},
			FirewallRule{Conditional: true, Verdict: "accept"},
			FirewallRule{EstablishedOnly: true, Conditional: true, Verdict: "accept"},
		)},
		{"an unknown target keeps the chain opaque", []legacyRule{
			{iif: "eth0", verdict: accept},
			{target: "NFQUEUE"},
		}, drop, FirewallChain{Source: "iptables-legacy", Family: "ip", Table: "filter", Chain: "FORWARD", Policy: "drop", Opaque: true, RuleCount: 2}},
		{"QUEUE keeps the chain opaque", []legacyRule{{verdict: -4}}, accept,
			FirewallChain{Source: "iptables-legacy", Family: "ip", Table: "filter", Chain: "FORWARD", Policy: "accept", Opaque: true, RuleCount: 1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			info, table := legacyTable(tt.rules, tt.policy)
			got, err := parseLegacyForward(info, table)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	info, table := legacyTable([]legacyRule{{verdict: -2}, {verdict: -1}}, -1)
	if _, err := parseLegacyForward(info, table[:200]); err == nil {
		t.Error("truncated table accepted")
	}
	bad := append([]byte(nil), table...)
	binary.NativeEndian.PutUint16(bad[binary.NativeEndian.Uint32(info[36+4*2:])+88:], 600)
	if _, err := parseLegacyForward(info, bad); err == nil {
		t.Error("target offset beyond its entry accepted")
	}
}

// legacyNS is a fresh network namespace for iptables-legacy rules; every
// rule the test makes is in it, and it is deleted with them.
type legacyNS struct{ name string }

func newLegacyNS(t *testing.T) legacyNS {
	t.Helper()
	testutil.RequireRoot(t)
	if _, err := exec.LookPath("iptables-legacy"); err != nil {
		t.Fatalf("iptables-legacy (Debian package iptables) is needed: %v", err)
	}
	return legacyNS{name: testutil.Netns(t, "llipt")}
}

// iptables runs each line as iptables-legacy arguments in the namespace.
func (n legacyNS) iptables(t *testing.T, lines ...string) {
	t.Helper()
	for _, l := range lines {
		argv := append([]string{"netns", "exec", n.name, "iptables-legacy", "-w", "5"}, strings.Fields(l)...)
		if out, err := exec.Command("ip", argv...).CombinedOutput(); err != nil {
			t.Fatalf("iptables-legacy %s: %v: %s", l, err, out)
		}
	}
}

// legacyForward calls legacyForward on a thread inside the namespace. The
// thread goes back to its own namespace before it is unlocked, and is
// dropped (left locked, so Go retires it) when it cannot.
func (n legacyNS) legacyForward(t *testing.T) (*FirewallChain, error) {
	t.Helper()
	type result struct {
		fc  *FirewallChain
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer orig.Close()
		ns, err := netns.GetFromName(n.name)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			done <- result{err: fmt.Errorf("enter %s: %w", n.name, err)}
			return
		}
		fc, err := legacyForward()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		done <- result{fc, err}
	}()
	r := <-done
	return r.fc, r.err
}

// TestLegacyForwardKernel reads rules iptables-legacy wrote into a real
// kernel: the layouts parseLegacyForward assumes are the kernel's.
func TestLegacyForwardKernel(t *testing.T) {
	n := newLegacyNS(t)
	// Current kernels create the filter table in a namespace on first
	// use; older ones with the module loaded create it at once, empty.
	fc, err := n.legacyForward(t)
	if err != nil || fc != nil && (fc.Policy != "accept" || fc.RuleCount != 0) {
		t.Fatalf("fresh namespace: %+v, %v; want no chain or an empty one", fc, err)
	}
	n.iptables(t,
		"-P FORWARD DROP",
		"-N lanlink-test",
		"-A lanlink-test -j RETURN",
		"-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
		"-A FORWARD -m state --state ESTABLISHED -j ACCEPT",
		"-A FORWARD -i eth0 -o lanlink0 -j ACCEPT",
		"-A FORWARD -i lanlink0 -o eth0 -j ACCEPT",
		"-A FORWARD -m conntrack --ctstate NEW -j ACCEPT",
		"-A FORWARD -s 10.1.2.0/24 -j DROP",
		"-A FORWARD -i eth+ -j ACCEPT",
		"-A FORWARD ! -o eth1 -j DROP",
		"-A FORWARD -p tcp --dport 22 -j REJECT",
		"-A FORWARD -m conntrack ! --ctstate INVALID -j ACCEPT",
		"-A FORWARD -m conntrack --ctstate DNAT -j ACCEPT",
		"-A FORWARD -j lanlink-test",
		"-A FORWARD -g lanlink-test",
		"-A FORWARD -d 10.9.9.9",
		"-A FORWARD -j LOG",
		"-A FORWARD -o lanlink0 -j REJECT",
		"-A FORWARD -j RETURN",
		"-P OUTPUT DROP", // another chain's policy must not leak into FORWARD
	)
	want := &FirewallChain{Source: "iptables-legacy", Family: "ip", Table: "filter", Chain: "FORWARD", Policy: "drop", RuleCount: 17, Rules: []FirewallRule{
		{EstablishedOnly: true, Verdict: "accept"},
		{EstablishedOnly: true, Verdict: "accept"},
		{IIF: "eth0", OIF: "lanlink0", Verdict: "accept"},
		{IIF: "lanlink0", OIF: "eth0", Verdict: "accept"},
		{Verdict: "accept"},
		{Conditional: true, Verdict: "drop"},
		{Conditional: true, Verdict: "accept"},
		{Conditional: true, Verdict: "drop"},
		{Conditional: true, Verdict: "reject"},
		{Conditional: true, Verdict: "accept"},
		{Conditional: true, Verdict: "accept"},
		{Verdict: "jump"},
		{Verdict: "goto"},
		{Conditional: true},
		{},
		{OIF: "lanlink0", Verdict: "reject"},
		{Verdict: "return"},
	}}
	fc, err = n.legacyForward(t)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, fc); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}

	// A target doctor does not know: the chain is opaque again, counted.
	n.iptables(t, "-I FORWARD 2 -j NFQUEUE --queue-num 7", "-P FORWARD ACCEPT")
	fc, err = n.legacyForward(t)
	if err != nil {
		t.Fatal(err)
	}
	wantOpaque := &FirewallChain{Source: "iptables-legacy", Family: "ip", Table: "filter", Chain: "FORWARD", Policy: "accept", Opaque: true, RuleCount: 18}
	if diff := cmp.Diff(wantOpaque, fc); diff != "" {
		t.Errorf("with NFQUEUE (-want +got):\n%s", diff)
	}
}
