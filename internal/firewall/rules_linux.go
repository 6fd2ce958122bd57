package firewall

import (
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// chainSpec is one base chain of lanlink's table with its rules, as the
// expressions nft itself generates for the rules Render shows (checked
// against `nft --debug=netlink`).
type chainSpec struct {
	chain nftables.Chain // Table is filled in by the caller
	rules [][]expr.Any
}

// chains is the table's content for cfg, in Render's order.
func chains(cfg Config) []chainSpec {
	var out []chainSpec
	if cfg.Masquerade {
		out = append(out, chainSpec{
			chain: nftables.Chain{
				Name:     "postrouting",
				Type:     nftables.ChainTypeNAT,
				Hooknum:  nftables.ChainHookPostrouting,
				Priority: nftables.ChainPriorityNATSource,
			},
			// postrouting sees the input interface of forwarded packets,
			// which is what tells tunnel traffic from the gateway's own
			// and from LAN-to-tunnel traffic; oifname != keeps a relay's
			// tunnel-to-tunnel traffic un-NATed.
			rules: [][]expr.Any{concat(
				ifname(expr.MetaKeyIIFNAME, expr.CmpOpEq, cfg.Interface),
				ifname(expr.MetaKeyOIFNAME, expr.CmpOpNeq, cfg.Interface),
				[]expr.Any{&expr.Masq{}},
			)},
		})
	}
	if cfg.MSSClamp {
		// Both directions: the SYN leaving into the tunnel and the SYN-ACK
		// leaving into it are clamped by the oifname rule on this side;
		// the iifname rule clamps what comes out of the tunnel towards a
		// LAN whose route MTU is smaller than the tunnel's.
		out = append(out, chainSpec{
			chain: nftables.Chain{
				Name:     "forward",
				Type:     nftables.ChainTypeFilter,
				Hooknum:  nftables.ChainHookForward,
				Priority: nftables.ChainPriorityMangle,
			},
			rules: [][]expr.Any{
				concat(ifname(expr.MetaKeyOIFNAME, expr.CmpOpEq, cfg.Interface), clampMSS()),
				concat(ifname(expr.MetaKeyIIFNAME, expr.CmpOpEq, cfg.Interface), clampMSS()),
			},
		})
	}
	return out
}

// ifname is `iifname "x"` / `oifname != "x"`: the name is compared as the
// kernel stores it, NUL-padded to IFNAMSIZ.
func ifname(key expr.MetaKey, op expr.CmpOp, name string) []expr.Any {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: b},
	}
}

// clampMSS is `tcp flags syn tcp option maxseg size set rt mtu`. The
// kernel only ever lowers the option, so a smaller MSS a host chose is
// kept.
func clampMSS() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x02}, Xor: []byte{0x00}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0x00}},
		&expr.Rt{Register: 1, Key: expr.RtTCPMSS},
		&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 2, Size: 2},
		&expr.Exthdr{SourceRegister: 1, Type: 2 /* TCPOPT_MAXSEG */, Offset: 2, Len: 2, Op: expr.ExthdrOpTcpopt},
	}
}

func concat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
