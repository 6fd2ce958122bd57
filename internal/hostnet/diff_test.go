package hostnet

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func pfx(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, x := range s {
		out = append(out, netip.MustParsePrefix(x))
	}
	return out
}

func stepStrings(steps []Step) []string {
	var out []string
	for _, s := range steps {
		out = append(out, s.String())
	}
	return out
}

func TestDiff(t *testing.T) {
	base := Config{
		Interface: "lanlink0",
		Addresses: pfx("10.255.0.1/24"),
		MTU:       1420,
		Routes:    pfx("192.168.20.0/24", "192.168.30.0/24"),
		Forward4:  true,
	}
	with := func(f func(*Config)) Config {
		c := base.Clone()
		f(&c)
		return c
	}
	tests := []struct {
		name     string
		old, new Config
		want     []string
	}{
		{
			name: "identical configs change nothing",
			old:  base, new: base.Clone(),
			want: nil,
		},
		{
			name: "first set applies everything in order",
			old:  Config{}, new: base,
			want: []string{
				"ip addr add 10.255.0.1/24 dev lanlink0",
				"ip link set dev lanlink0 mtu 1420",
				"ip link set dev lanlink0 up",
				"ip route add 192.168.20.0/24 dev lanlink0",
				"ip route add 192.168.30.0/24 dev lanlink0",
				"sysctl net.ipv4.ip_forward=1",
			},
		},
		{
			name: "added route is one step",
			old:  base,
			new:  with(func(c *Config) { c.Routes = append(c.Routes, pfx("192.168.40.0/24")...) }),
			want: []string{"ip route add 192.168.40.0/24 dev lanlink0"},
		},
		{
			name: "removed route is one step",
			old:  base,
			new:  with(func(c *Config) { c.Routes = pfx("192.168.30.0/24") }),
			want: []string{"ip route del 192.168.20.0/24 dev lanlink0"},
		},
		{
			name: "route order and duplicates do not matter",
			old:  base,
			new:  with(func(c *Config) { c.Routes = pfx("192.168.30.0/24", "192.168.20.0/24", "192.168.30.0/24") }),
			want: nil,
		},
		{
			name: "route host bits are masked like the kernel does",
			old:  base,
			new:  with(func(c *Config) { c.Routes = pfx("192.168.20.7/24", "192.168.30.0/24") }),
			want: nil,
		},
		{
			name: "changed address prefix length replaces it, removal first",
			old:  base,
			new:  with(func(c *Config) { c.Addresses = pfx("10.255.0.1/16") }),
			want: []string{
				"ip addr del 10.255.0.1/24 dev lanlink0",
				"ip addr add 10.255.0.1/16 dev lanlink0",
			},
		},
		{
			name: "removed routes go before removed addresses, added addresses before added routes",
			old:  base,
			new: with(func(c *Config) {
				c.Addresses = pfx("10.255.1.1/24", "fd00:ff::1/64")
				c.Routes = pfx("192.168.30.0/24", "fd00:20::/64")
			}),
			want: []string{
				"ip route del 192.168.20.0/24 dev lanlink0",
				"ip addr del 10.255.0.1/24 dev lanlink0",
				"ip addr add 10.255.1.1/24 dev lanlink0",
				"ip addr add fd00:ff::1/64 dev lanlink0",
				"ip route add fd00:20::/64 dev lanlink0",
			},
		},
		{
			name: "MTU change is one step",
			old:  base,
			new:  with(func(c *Config) { c.MTU = 1380 }),
			want: []string{"ip link set dev lanlink0 mtu 1380"},
		},
		{
			name: "MTU 0 leaves the MTU alone",
			old:  base,
			new:  with(func(c *Config) { c.MTU = 0 }),
			want: nil,
		},
		{
			name: "forwarding turned off is restored, not forced to 0",
			old:  base,
			new:  with(func(c *Config) { c.Forward4 = false; c.Forward6 = true }),
			want: []string{
				"sysctl net.ipv4.ip_forward=<previous>",
				"sysctl net.ipv6.conf.all.forwarding=1",
			},
		},
		{
			name: "route owners only feed messages",
			old:  base,
			new: with(func(c *Config) {
				c.RouteOwners = map[netip.Prefix]string{netip.MustParsePrefix("192.168.20.0/24"): "beta"}
			}),
			want: nil,
		},
		{
			name: "another interface carries nothing over except forwarding",
			old:  base,
			new:  with(func(c *Config) { c.Interface = "lanlink1" }),
			want: []string{
				"ip route del 192.168.20.0/24 dev lanlink0",
				"ip route del 192.168.30.0/24 dev lanlink0",
				"ip addr del 10.255.0.1/24 dev lanlink0",
				"ip addr add 10.255.0.1/24 dev lanlink1",
				"ip link set dev lanlink1 mtu 1420",
				"ip link set dev lanlink1 up",
				"ip route add 192.168.20.0/24 dev lanlink1",
				"ip route add 192.168.30.0/24 dev lanlink1",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := stepStrings(Diff(tt.old, tt.new))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Diff() steps mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{"ok", Config{Interface: "lanlink0", Addresses: pfx("10.255.0.1/24"), MTU: 1420}, false},
		{"MTU 0 means keep", Config{Interface: "lanlink0"}, false},
		{"no interface", Config{MTU: 1420}, true},
		{"name too long", Config{Interface: "lanlink-much-too-long"}, true},
		{"MTU too small", Config{Interface: "lanlink0", MTU: 100}, true},
		{"invalid route", Config{Interface: "lanlink0", Routes: []netip.Prefix{{}}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err != nil) != tt.wantErr {
				t.Errorf("Validate() = %v, want error: %v", err, tt.wantErr)
			}
		})
	}
}

func TestConflictErrorMessages(t *testing.T) {
	p := netip.MustParsePrefix
	tests := []struct {
		name string
		err  *ConflictError
		want string
	}{
		{
			name: "equal route with owner",
			err:  &ConflictError{Kind: "route", Want: p("192.168.20.0/24"), Existing: p("192.168.20.0/24"), Device: "eth1", Owner: "beta"},
			want: "route 192.168.20.0/24 already exists via eth1 on this host (site beta's LAN): remove it (ip route del 192.168.20.0/24) or fix the plan",
		},
		{
			name: "more specific blackhole",
			err:  &ConflictError{Kind: "route", Want: p("192.168.20.0/24"), Existing: p("192.168.20.128/25"), Device: "blackhole"},
			want: "route 192.168.20.128/25 as a blackhole route on this host overlaps 192.168.20.0/24, so traffic for it would not enter the tunnel: remove it (ip route del 192.168.20.128/25) or fix the plan",
		},
		{
			name: "address",
			err:  &ConflictError{Kind: "address", Want: p("10.255.0.1/24"), Existing: p("10.255.0.1/32"), Device: "eth1"},
			want: "address 10.255.0.1 is already configured on eth1 on this host (as 10.255.0.1/32): remove it (ip addr del 10.255.0.1/32 dev eth1) or choose another tunnel address in the plan",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.err.Error()); diff != "" {
				t.Errorf("Error() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
