package device

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// testKey returns a deterministic private key, distinct per n.
func testKey(n byte) wgtypes.Key {
	var k wgtypes.Key
	for i := range k {
		k[i] = n
	}
	// Clamp like a real Curve25519 private key so PublicKey is meaningful.
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
	return k
}

func pub(n byte) wgtypes.Key { return testKey(n).PublicKey() }

func udp(s string) *net.UDPAddr { return net.UDPAddrFromAddrPort(netip.MustParseAddrPort(s)) }

func nets(ss ...string) []net.IPNet {
	var ps []netip.Prefix
	for _, s := range ss {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ipNets(ps)
}

func pfx(ss ...string) []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range ss {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}

func ptr[T any](v T) *T { return &v }

func TestDiffConfig(t *testing.T) {
	self := testKey(1)
	peerB := wgtypes.Peer{
		PublicKey:                   pub(2),
		Endpoint:                    udp("198.51.100.2:51820"),
		AllowedIPs:                  nets("10.77.0.2/32", "192.168.20.0/24"),
		PersistentKeepaliveInterval: 25 * time.Second,
		LastHandshakeTime:           time.Unix(1700000000, 0),
		ReceiveBytes:                100,
	}
	wantB := PeerConfig{
		PublicKey:           pub(2),
		Endpoint:            netip.MustParseAddrPort("198.51.100.2:51820"),
		AllowedIPs:          pfx("192.168.20.0/24", "10.77.0.2/32"), // order must not matter
		PersistentKeepalive: 25 * time.Second,
	}
	running := &wgtypes.Device{PrivateKey: self, ListenPort: 51820, Peers: []wgtypes.Peer{peerB}}
	base := Config{PrivateKey: self, ListenPort: 51820, Peers: []PeerConfig{wantB}}

	with := func(f func(*Config)) Config {
		c := base
		c.Peers = append([]PeerConfig(nil), base.Peers...)
		f(&c)
		return c
	}

	tests := []struct {
		name        string
		current     *wgtypes.Device
		want        Config
		wantCfg     wgtypes.Config
		wantChanged bool
	}{
		{
			name:    "fresh device gets everything",
			current: &wgtypes.Device{},
			want:    base,
			wantCfg: wgtypes.Config{
				PrivateKey: ptr(self),
				ListenPort: ptr(51820),
				Peers: []wgtypes.PeerConfig{{
					PublicKey:                   pub(2),
					Endpoint:                    udp("198.51.100.2:51820"),
					PersistentKeepaliveInterval: ptr(25 * time.Second),
					ReplaceAllowedIPs:           true,
					AllowedIPs:                  nets("10.77.0.2/32", "192.168.20.0/24"),
				}},
			},
			wantChanged: true,
		},
		{
			name:        "nil current is a fresh device",
			current:     nil,
			want:        Config{PrivateKey: self},
			wantCfg:     wgtypes.Config{PrivateKey: ptr(self)},
			wantChanged: true,
		},
		{
			name:    "identical config changes nothing",
			current: running,
			want:    base,
		},
		{
			name:    "unmasked and duplicate allowed IPs are the same set",
			current: running,
			want: with(func(c *Config) {
				c.Peers[0].AllowedIPs = pfx("192.168.20.7/24", "10.77.0.2/32", "10.77.0.2/32")
			}),
		},
		{
			name:    "listen port 0 keeps the current port",
			current: running,
			want:    with(func(c *Config) { c.ListenPort = 0 }),
		},
		{
			name:    "zero endpoint keeps the learnt one",
			current: running,
			want:    with(func(c *Config) { c.Peers[0].Endpoint = netip.AddrPort{} }),
		},
		{
			name:    "IPv4-mapped endpoint equals plain IPv4",
			current: running,
			want: with(func(c *Config) {
				c.Peers[0].Endpoint = netip.MustParseAddrPort("[::ffff:198.51.100.2]:51820")
			}),
		},
		{
			name:    "sub-second keepalive difference is no change",
			current: running,
			want:    with(func(c *Config) { c.Peers[0].PersistentKeepalive = 25*time.Second + 300*time.Millisecond }),
		},
		{
			name:        "new private key only",
			current:     running,
			want:        with(func(c *Config) { c.PrivateKey = testKey(9) }),
			wantCfg:     wgtypes.Config{PrivateKey: ptr(testKey(9))},
			wantChanged: true,
		},
		{
			name:        "new listen port only",
			current:     running,
			want:        with(func(c *Config) { c.ListenPort = 51821 }),
			wantCfg:     wgtypes.Config{ListenPort: ptr(51821)},
			wantChanged: true,
		},
		{
			name:    "changed endpoint only",
			current: running,
			want: with(func(c *Config) {
				c.Peers[0].Endpoint = netip.MustParseAddrPort("203.0.113.9:51820")
			}),
			wantCfg: wgtypes.Config{Peers: []wgtypes.PeerConfig{{
				PublicKey:  pub(2),
				UpdateOnly: true,
				Endpoint:   udp("203.0.113.9:51820"),
			}}},
			wantChanged: true,
		},
		{
			name:    "changed allowed IPs only",
			current: running,
			want: with(func(c *Config) {
				c.Peers[0].AllowedIPs = pfx("10.77.0.2/32", "192.168.20.0/24", "192.168.21.0/24")
			}),
			wantCfg: wgtypes.Config{Peers: []wgtypes.PeerConfig{{
				PublicKey:         pub(2),
				UpdateOnly:        true,
				ReplaceAllowedIPs: true,
				AllowedIPs:        nets("10.77.0.2/32", "192.168.20.0/24", "192.168.21.0/24"),
			}}},
			wantChanged: true,
		},
		{
			name:    "all allowed IPs dropped",
			current: running,
			want:    with(func(c *Config) { c.Peers[0].AllowedIPs = nil }),
			wantCfg: wgtypes.Config{Peers: []wgtypes.PeerConfig{{
				PublicKey:         pub(2),
				UpdateOnly:        true,
				ReplaceAllowedIPs: true,
				AllowedIPs:        []net.IPNet{},
			}}},
			wantChanged: true,
		},
		{
			name:    "keepalive turned off",
			current: running,
			want:    with(func(c *Config) { c.Peers[0].PersistentKeepalive = 0 }),
			wantCfg: wgtypes.Config{Peers: []wgtypes.PeerConfig{{
				PublicKey:                   pub(2),
				UpdateOnly:                  true,
				PersistentKeepaliveInterval: ptr(time.Duration(0)),
			}}},
			wantChanged: true,
		},
		{
			name:    "peer added, unchanged peer untouched",
			current: running,
			want: with(func(c *Config) {
				c.Peers = append(c.Peers, PeerConfig{PublicKey: pub(3), AllowedIPs: pfx("10.77.0.3/32")})
			}),
			wantCfg: wgtypes.Config{Peers: []wgtypes.PeerConfig{{
				PublicKey:         pub(3),
				ReplaceAllowedIPs: true,
				AllowedIPs:        nets("10.77.0.3/32"),
			}}},
			wantChanged: true,
		},
		{
			name:    "peer removed",
			current: running,
			want:    with(func(c *Config) { c.Peers = nil }),
			wantCfg: wgtypes.Config{Peers: []wgtypes.PeerConfig{{
				PublicKey: pub(2),
				Remove:    true,
			}}},
			wantChanged: true,
		},
		{
			name: "removals come before additions taking over their prefixes",
			current: &wgtypes.Device{PrivateKey: self, ListenPort: 51820, Peers: []wgtypes.Peer{
				{PublicKey: pub(4), AllowedIPs: nets("10.77.0.4/32")},
				peerB,
			}},
			want: with(func(c *Config) {
				c.Peers = append(c.Peers, PeerConfig{PublicKey: pub(5), AllowedIPs: pfx("10.77.0.4/32")})
			}),
			wantCfg: wgtypes.Config{Peers: []wgtypes.PeerConfig{
				{PublicKey: pub(4), Remove: true},
				{PublicKey: pub(5), ReplaceAllowedIPs: true, AllowedIPs: nets("10.77.0.4/32")},
			}},
			wantChanged: true,
		},
		{
			name:    "IPv6 endpoint and prefixes",
			current: &wgtypes.Device{PrivateKey: self, ListenPort: 51820},
			want: Config{PrivateKey: self, ListenPort: 51820, Peers: []PeerConfig{{
				PublicKey:  pub(6),
				Endpoint:   netip.MustParseAddrPort("[2001:db8::1]:51820"),
				AllowedIPs: pfx("fd00:77::2/128", "10.77.0.6/32"),
			}}},
			wantCfg: wgtypes.Config{Peers: []wgtypes.PeerConfig{{
				PublicKey:         pub(6),
				Endpoint:          udp("[2001:db8::1]:51820"),
				ReplaceAllowedIPs: true,
				AllowedIPs:        nets("10.77.0.6/32", "fd00:77::2/128"),
			}}},
			wantChanged: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, changed := diffConfig(tt.current, tt.want)
			if diff := cmp.Diff(tt.wantCfg, got, cmpKeys); diff != "" {
				t.Errorf("diffConfig() config mismatch (-want +got):\n%s", diff)
			}
			if changed != tt.wantChanged {
				t.Errorf("diffConfig() changed = %v, want %v", changed, tt.wantChanged)
			}
			if changed {
				return
			}
			// Not changed must also mean nothing to send.
			if s := uapiSet(got); s != "" {
				t.Errorf("unchanged config still renders UAPI text:\n%s", s)
			}
		})
	}
}

// cmpKeys prints keys as base64 in diffs (they are [32]byte otherwise) and
// compares net.IPNet/UDPAddr by their string form, because net.IP of an
// IPv4 address may be 4 or 16 bytes for the same address.
var cmpKeys = cmp.Options{
	cmp.Transformer("key", func(k wgtypes.Key) string { return k.String() }),
	cmp.Transformer("ipnet", func(n net.IPNet) string { return n.String() }),
	cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	cmp.Transformer("udp", func(a *net.UDPAddr) string {
		if a == nil {
			return "<nil>"
		}
		return a.String()
	}),
}

func TestValidateConfig(t *testing.T) {
	self := testKey(1)
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // "" means valid
	}{
		{name: "valid", cfg: Config{PrivateKey: self, ListenPort: 51820, Peers: []PeerConfig{{PublicKey: pub(2), AllowedIPs: pfx("10.0.0.2/32")}}}},
		{name: "no private key", cfg: Config{ListenPort: 1}, wantErr: "no private key"},
		{name: "port out of range", cfg: Config{PrivateKey: self, ListenPort: 70000}, wantErr: "out of range"},
		{name: "peer without key", cfg: Config{PrivateKey: self, Peers: []PeerConfig{{}}}, wantErr: "no public key"},
		{name: "peer is self", cfg: Config{PrivateKey: self, Peers: []PeerConfig{{PublicKey: self.PublicKey()}}}, wantErr: "own public key"},
		{name: "duplicate peer", cfg: Config{PrivateKey: self, Peers: []PeerConfig{{PublicKey: pub(2)}, {PublicKey: pub(2)}}}, wantErr: "appears twice"},
		{name: "bad keepalive", cfg: Config{PrivateKey: self, Peers: []PeerConfig{{PublicKey: pub(2), PersistentKeepalive: -time.Second}}}, wantErr: "keepalive"},
		{name: "invalid prefix", cfg: Config{PrivateKey: self, Peers: []PeerConfig{{PublicKey: pub(2), AllowedIPs: []netip.Prefix{{}}}}}, wantErr: "invalid allowed IP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validateConfig(tt.cfg)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("validateConfig() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("validateConfig() = %v, want error containing %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), self.String()) {
				t.Fatalf("error leaks the private key: %v", err)
			}
		})
	}
}
