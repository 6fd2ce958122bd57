package lab

import (
	"net/netip"
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
