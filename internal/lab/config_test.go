package lab

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// The IPv6 LAN scheme is documented (Config.IPv6) and relied on by tests
// elsewhere: pin it.
func TestIPv6Addressing(t *testing.T) {
	for _, tc := range []struct {
		office               int
		prefix               string
		router, gateway, h1  string
		h16                  string
		matchingIPv4Default3 byte // the default IPv4 LAN's third octet
	}{
		{1, "fd4c:6c00:0:10::/64", "fd4c:6c00:0:10::1", "fd4c:6c00:0:10::2", "fd4c:6c00:0:10::a", "fd4c:6c00:0:10::19", 10},
		{2, "fd4c:6c00:0:20::/64", "fd4c:6c00:0:20::1", "fd4c:6c00:0:20::2", "fd4c:6c00:0:20::a", "fd4c:6c00:0:20::19", 20},
		{8, "fd4c:6c00:0:80::/64", "fd4c:6c00:0:80::1", "fd4c:6c00:0:80::2", "fd4c:6c00:0:80::a", "fd4c:6c00:0:80::19", 80},
	} {
		p := lan6Prefix(tc.office)
		got := []string{p.String(), routerLAN(p).String(), gatewayLAN(p).String(), hostLAN(p, 0).String(), hostLAN(p, MaxHostsPerOffice-1).String()}
		want := []string{tc.prefix, tc.router, tc.gateway, tc.h1, tc.h16}
		for k := range want {
			if got[k] != want[k] {
				t.Errorf("office %d: got %v, want %v", tc.office, got, want)
				break
			}
		}
		// The subnet ID reads like the IPv4 LAN's third octet.
		v4 := Config{}.withDefaults().LANPrefix(tc.office)
		if v4.Addr().As4()[2] != tc.matchingIPv4Default3 {
			t.Errorf("office %d: default IPv4 LAN %v, want third octet %d", tc.office, v4, tc.matchingIPv4Default3)
		}
	}
	for i := 1; i <= MaxOffices; i++ {
		p := lan6Prefix(i)
		if !p.Addr().IsPrivate() || !lab6.Contains(p.Addr()) || p != p.Masked() || p.Bits() != 64 {
			t.Errorf("lan6Prefix(%d) = %v: want a masked /64 of the private %v", i, p, lab6)
		}
		for j := 1; j < i; j++ {
			if p.Overlaps(lan6Prefix(j)) {
				t.Errorf("lan6Prefix(%d) = %v overlaps office %d's", i, p, j)
			}
		}
		if c := (Config{IPv6: true}); c.lan6(i) != p {
			t.Errorf("Config{IPv6: true}.lan6(%d) = %v, want %v", i, c.lan6(i), p)
		}
		if c := (Config{}); c.lan6(i).IsValid() {
			t.Errorf("Config{}.lan6(%d) = %v, want none without IPv6", i, c.lan6(i))
		}
	}
	if a := addrIn(netip.Prefix{}, gatewayLAN); a.IsValid() {
		t.Errorf("addrIn(no prefix) = %v, want the zero Addr", a)
	}
	// IPv4 numbering is unchanged by the IPv6 branch of nth.
	v4 := netip.MustParsePrefix("10.1.0.0/16")
	if got := hostLAN(v4, 250); got != netip.MustParseAddr("10.1.1.4") {
		t.Errorf("hostLAN(%v, 250) = %v, want 10.1.1.4", v4, got)
	}
}

// The IPv6 WAN scheme is documented (Config.IPv6WAN) and must stay inside
// the IPv6 documentation prefix: pin it.
func TestIPv6WANAddressing(t *testing.T) {
	doc := netip.MustParsePrefix("2001:db8::/32")
	for i := 1; i <= MaxOffices; i++ {
		p := wan6Prefix(i)
		want := netip.MustParsePrefix("2001:db8:0:" + string(rune('0'+i)) + "::/64")
		if p != want || !doc.Contains(p.Addr()) || p != p.Masked() {
			t.Errorf("wan6Prefix(%d) = %v, want %v inside %v", i, p, want, doc)
		}
		if !p.Contains(internetWAN6(i)) || !p.Contains(wan6Addr(i)) {
			t.Errorf("office %d: internet %v or router %v outside %v", i, internetWAN6(i), wan6Addr(i), p)
		}
		if internetWAN6(i) != nth(p, 1) || wan6Addr(i) != nth(p, 2) {
			t.Errorf("office %d: internet %v, router %v; want ::1 and ::2 of %v", i, internetWAN6(i), wan6Addr(i), p)
		}
		for j := 1; j < i; j++ {
			if p.Overlaps(wan6Prefix(j)) {
				t.Errorf("wan6Prefix(%d) = %v overlaps office %d's", i, p, j)
			}
		}
		if p.Overlaps(lab6) {
			t.Errorf("wan6Prefix(%d) = %v overlaps the LANs' %v", i, p, lab6)
		}
		if a := (Config{IPv6: true, IPv6WAN: true}).wan6(i); a != wan6Addr(i) {
			t.Errorf("Config{IPv6WAN}.wan6(%d) = %v, want %v", i, a, wan6Addr(i))
		}
		if a := (Config{IPv6: true}).wan6(i); a.IsValid() {
			t.Errorf("Config{IPv6}.wan6(%d) = %v, want none without IPv6WAN", i, a)
		}
	}
	if got := wan6Addr(2).String(); got != "2001:db8:0:2::2" {
		t.Errorf("office 2's WAN6 = %s, want 2001:db8:0:2::2", got)
	}
	o := &Office{WAN6: wan6Addr(3), Port: 51820}
	if got := o.Endpoint6().String(); got != "[2001:db8:0:3::2]:51820" {
		t.Errorf("Endpoint6 = %s, want [2001:db8:0:3::2]:51820", got)
	}
	if e := (&Office{Port: 51820}).Endpoint6(); e.IsValid() {
		t.Errorf("Endpoint6 without WAN6 = %v, want the zero AddrPort", e)
	}
}

func TestIPv6WANNeedsIPv6(t *testing.T) {
	_, err := Config{Offices: 2, IPv6WAN: true}.withDefaults().validate()
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "IPv6WAN") {
		t.Errorf("validate(IPv6WAN without IPv6) = %v, want ErrConfig naming IPv6WAN", err)
	}
	if _, err := (Config{Offices: 2, IPv6: true, IPv6WAN: true}).withDefaults().validate(); err != nil {
		t.Errorf("validate(IPv6 and IPv6WAN) = %v", err)
	}
}

// The ip table is what it always was; IPv6WAN adds an ip6 twin with the
// same rules for the IPv6 addresses, in the same ruleset (one nft -f).
func TestNATRulesetIPv6WAN(t *testing.T) {
	o := &Office{WANIface: "ll0000-wan", Port: 51820, PortForward: true,
		GatewayLAN: netip.MustParseAddr("192.168.10.2"), GatewayLAN6: netip.MustParseAddr("fd4c:6c00:0:10::2")}
	v4 := natRuleset(o)
	if strings.Contains(v4, "ip6") || strings.Contains(v4, "fd4c") {
		t.Errorf("ruleset without WAN6 has IPv6 rules:\n%s", v4)
	}
	o.WAN6 = wan6Addr(1)
	both := natRuleset(o)
	if !strings.HasPrefix(both, v4) {
		t.Errorf("ruleset with WAN6 does not start with the IPv4 table unchanged:\n%s", both)
	}
	v6 := strings.TrimPrefix(both, v4)
	for _, want := range []string{"table ip6 lanlink_lab {", `iifname "ll0000-wan" udp dport 51820 dnat to fd4c:6c00:0:10::2`, `oifname "ll0000-wan" masquerade`} {
		if !strings.Contains(v6, want) {
			t.Errorf("IPv6 table lacks %q:\n%s", want, v6)
		}
	}
	o.PortForward = false
	if r := natRuleset(o); strings.Contains(r, "dnat") || strings.Count(r, "masquerade") != 2 {
		t.Errorf("ruleset without port forward:\n%s", r)
	}
}
