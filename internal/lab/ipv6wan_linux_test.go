package lab

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"lanlink/internal/testutil"
)

func TestIPv6WAN(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	l := newLab(t, Config{Offices: 2, IPv6: true, IPv6WAN: true})
	ctx := testCtx(t, 2*time.Minute)
	o1, o2 := l.Offices[0], l.Offices[1]
	doc6 := netip.MustParsePrefix("2001:db8::/32")

	// First, as in TestIPv6Lab: without IFA_F_NODAD the WAN6 addresses
	// would still be tentative now.
	t.Run("routers reach each other's WAN6 at once", func(t *testing.T) {
		if err := o1.Router.Ping(ctx, o2.WAN6, 2); err != nil {
			t.Error(err)
		}
		if err := o2.Router.Ping(ctx, o1.WAN6, 2); err != nil {
			t.Error(err)
		}
	})

	t.Run("addressing", func(t *testing.T) {
		for _, tc := range []struct {
			o        *Office
			wan6     string
			endpoint string
			wan      string
		}{
			{o1, "2001:db8:0:1::2", "[2001:db8:0:1::2]:51820", "198.51.100.11"},
			{o2, "2001:db8:0:2::2", "[2001:db8:0:2::2]:51820", "198.51.100.12"},
		} {
			if tc.o.WAN6.String() != tc.wan6 || tc.o.Endpoint6().String() != tc.endpoint || tc.o.WAN.String() != tc.wan {
				t.Errorf("office %d: WAN6 %v, Endpoint6 %v, WAN %v; want %s, %s, %s",
					tc.o.Index, tc.o.WAN6, tc.o.Endpoint6(), tc.o.WAN, tc.wan6, tc.endpoint, tc.wan)
			}
		}
		// Every global IPv6 address outside the ULA LANs is from the
		// documentation prefix, added without DAD, on the WAN link.
		want := map[*Node]map[netip.Addr]string{
			l.Internet: {netip.MustParseAddr("2001:db8:0:1::1"): o1.InternetIface, netip.MustParseAddr("2001:db8:0:2::1"): o2.InternetIface},
			o1.Router:  {o1.WAN6: o1.WANIface, o1.Router.Addr6: o1.Router.Iface},
			o2.Router:  {o2.WAN6: o2.WANIface, o2.Router.Addr6: o2.Router.Iface},
		}
		for n, addrs := range want {
			got := globalAddrs6(t, n)
			if len(got) != len(addrs) {
				t.Errorf("%s has global IPv6 addresses %v, want %v", n.Name, got, addrs)
			}
			for a, iface := range addrs {
				na, ok := got[a]
				if !ok {
					t.Errorf("%s lacks %v", n.Name, a)
					continue
				}
				if ones, _ := na.Mask.Size(); ones != 64 {
					t.Errorf("%s: %v is /%d, want /64", n.Name, a, ones)
				}
				if na.Flags&unix.IFA_F_NODAD == 0 || na.Flags&unix.IFA_F_TENTATIVE != 0 {
					t.Errorf("%s: %v has flags %#x, want nodad and not tentative", n.Name, a, na.Flags)
				}
				if link, err := linkName(n, na.LinkIndex); err != nil || link != iface {
					t.Errorf("%s: %v is on %q (%v), want %s", n.Name, a, link, err, iface)
				}
				if !doc6.Contains(a) && !lab6.Contains(a) {
					t.Errorf("%s: %v is neither in %v nor in the lab's ULA %v", n.Name, a, doc6, lab6)
				}
			}
		}
		if l.Internet.Addr6.IsValid() {
			t.Errorf("internet Addr6 = %v, want zero (its addresses are per office link)", l.Internet.Addr6)
		}
	})

	t.Run("IPv6 forwarding on the internet and routers only", func(t *testing.T) {
		wantForwarding6(t, map[*Node]string{l.Internet: "1", o1.Router: "1", o2.Router: "1", o1.Gateway: "0", o1.Hosts[0]: "0"})
	})

	t.Run("routes", func(t *testing.T) {
		for _, o := range l.Offices {
			if gw, ok := routeGw(t, o.Router, netip.MustParsePrefix("::/0")); !ok || gw != internetWAN6(o.Index) {
				t.Errorf("router %s: IPv6 default route via %v (%v), want via %v", o.Router.Name, gw, ok, internetWAN6(o.Index))
			}
			// Remote LAN6s still go to the local gateway, not the WAN.
			for _, other := range l.Offices {
				if other != o {
					if gw, ok := routeGw(t, o.Router, other.LAN6); !ok || gw != o.GatewayLAN6 {
						t.Errorf("router %s: route to %v via %v (%v), want via %v", o.Router.Name, other.LAN6, gw, ok, o.GatewayLAN6)
					}
				}
			}
		}
		// The internet has no IPv6 route out of the lab and none to the
		// offices' ULA LANs: only the office links.
		if gw, ok := routeGw(t, l.Internet, netip.MustParsePrefix("::/0")); ok {
			t.Errorf("internet has an IPv6 default route via %v", gw)
		}
		for _, dst := range []string{o2.Hosts[0].Addr6.String(), "2001:db8:ff::1", "2001:db8:0:9::2"} {
			if out, err := l.Internet.Exec(ctx, "ip", "-6", "route", "get", dst); err == nil {
				t.Errorf("internet has a route to %s: %s", dst, out)
			}
		}
		out, err := l.Internet.Exec(ctx, "ip", "-6", "route", "get", o2.WAN6.String())
		if err != nil || !strings.Contains(string(out), "dev "+o2.InternetIface) {
			t.Errorf("internet route to office 2's WAN6: %q, %v; want dev %s", out, err, o2.InternetIface)
		}
	})

	t.Run("IPv6 port forward reaches the gateway behind NAT66", func(t *testing.T) {
		for _, tc := range []struct{ from, to *Office }{{o1, o2}, {o2, o1}} {
			ok, src := udpArrives(t, tc.from.Gateway, tc.to.Endpoint6(), tc.to.Gateway, netip.AddrPortFrom(tc.to.GatewayLAN6, uint16(tc.to.Port)))
			if !ok {
				t.Errorf("UDP to %v from office %d's gateway did not reach office %d's gateway", tc.to.Endpoint6(), tc.from.Index, tc.to.Index)
				continue
			}
			if src != tc.from.WAN6 {
				t.Errorf("packet arrived from %v, want office %d's masqueraded WAN6 %v", src, tc.from.Index, tc.from.WAN6)
			}
		}
	})

	t.Run("a LAN host reaches the other office's WAN6, masqueraded", func(t *testing.T) {
		if err := o1.Hosts[0].Ping(ctx, o2.WAN6, 2); err != nil {
			t.Error(err)
		}
	})

	t.Run("remote LAN6 is not reachable without a tunnel", func(t *testing.T) {
		if err := o1.Hosts[0].Ping(ctx, o2.Hosts[0].Addr6, 1); err == nil {
			t.Errorf("office 2's host answered office 1's host over IPv6 with no VPN in between")
		}
		if err := o1.Router.Ping(ctx, o2.Hosts[0].Addr6, 1); err == nil {
			t.Errorf("office 2's host answered office 1's router over IPv6")
		}
	})

	t.Run("IPv4 is unchanged", func(t *testing.T) {
		ok, src := udpArrives(t, o1.Gateway, o2.Endpoint(), o2.Gateway, netip.AddrPortFrom(o2.GatewayLAN, uint16(o2.Port)))
		if !ok || src != o1.WAN {
			t.Errorf("IPv4 port forward office 1 → office 2: arrived %v from %v, want from %v", ok, src, o1.WAN)
		}
		if err := o1.Gateway.Ping(ctx, o2.WAN, 1); err != nil {
			t.Error(err)
		}
	})

	t.Run("a new office gets an IPv6 WAN too", func(t *testing.T) {
		o3, err := l.AddOffice(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if o3.WAN6 != netip.MustParseAddr("2001:db8:0:3::2") {
			t.Errorf("office 3's WAN6 = %v, want 2001:db8:0:3::2", o3.WAN6)
		}
		ok, src := udpArrives(t, o1.Gateway, o3.Endpoint6(), o3.Gateway, netip.AddrPortFrom(o3.GatewayLAN6, uint16(o3.Port)))
		if !ok || src != o1.WAN6 {
			t.Errorf("IPv6 port forward office 1 → office 3: arrived %v from %v, want from %v", ok, src, o1.WAN6)
		}
		if err := o3.Router.Ping(ctx, o2.WAN6, 1); err != nil {
			t.Error(err)
		}
	})

	t.Run("Close leaves nothing", func(t *testing.T) { closeLeavesNothing(t, l) })
}

func TestIPv6WANNoPortForward(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	l := newLab(t, Config{Offices: 2, IPv6: true, IPv6WAN: true, NoPortForward: []int{2}})
	o1, o2 := l.Offices[0], l.Offices[1]
	if ok, _ := udpArrives(t, o1.Gateway, o2.Endpoint6(), o2.Gateway, netip.AddrPortFrom(o2.GatewayLAN6, uint16(o2.Port))); ok {
		t.Errorf("UDP to office 2's WAN6 reached its gateway although office 2 has no port forward")
	}
	// The control: the same probe the other way works, from behind NAT66.
	ok, src := udpArrives(t, o2.Gateway, o1.Endpoint6(), o1.Gateway, netip.AddrPortFrom(o1.GatewayLAN6, uint16(o1.Port)))
	if !ok || src != o2.WAN6 {
		t.Errorf("UDP to office 1's forwarded %v: arrived %v from %v, want from %v", o1.Endpoint6(), ok, src, o2.WAN6)
	}
}
