package doctor

import (
	"encoding/binary"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables/expr"
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

// legacyTable builds an ipt_getinfo and entry table with n FORWARD rules
// and the given policy verdict, laid out as the kernel does.
func legacyTable(n int, policy int32) (info, table []byte) {
	const entry = 112 + 40 // ipt_entry + standard target (32 header + verdict, padded)
	info = make([]byte, iptInfoSize)
	binary.NativeEndian.PutUint32(info[32:], 1<<1|1<<2|1<<3) // INPUT FORWARD OUTPUT
	// INPUT: policy only at 0; FORWARD: n rules then policy; OUTPUT after.
	fwd := uint32(entry)
	binary.NativeEndian.PutUint32(info[36+4*1:], 0)
	binary.NativeEndian.PutUint32(info[56+4*1:], 0)
	binary.NativeEndian.PutUint32(info[36+4*2:], fwd)
	binary.NativeEndian.PutUint32(info[56+4*2:], fwd+uint32(n*entry))
	table = make([]byte, (n+3)*entry)
	accept := int32(-2)
	for i := 0; i < n+3; i++ {
		e := table[i*entry:]
		binary.NativeEndian.PutUint16(e[88:], 112)
		binary.NativeEndian.PutUint16(e[90:], entry)
		binary.NativeEndian.PutUint32(e[112+32:], uint32(accept)) // ACCEPT
	}
	binary.NativeEndian.PutUint32(table[int(fwd)+n*entry+112+32:], uint32(policy))
	return info, table
}

func TestParseLegacyForward(t *testing.T) {
	for _, tt := range []struct {
		rules  int
		policy int32
		want   FirewallChain
	}{
		{0, -1, FirewallChain{Source: "iptables-legacy", Family: "ip", Table: "filter", Chain: "FORWARD", Policy: "drop", Opaque: true}},
		{3, -2, FirewallChain{Source: "iptables-legacy", Family: "ip", Table: "filter", Chain: "FORWARD", Policy: "accept", Opaque: true, RuleCount: 3}},
	} {
		info, table := legacyTable(tt.rules, tt.policy)
		got, err := parseLegacyForward(info, table)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(&tt.want, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	}
	info, table := legacyTable(2, -1)
	if _, err := parseLegacyForward(info, table[:200]); err == nil {
		t.Error("truncated table accepted")
	}
}
