package wgconf

import (
	"net/netip"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"lanlink/internal/plan"
)

// testKey returns a fixed private key per seed, so golden files are stable.
func testKey(seed byte) wgtypes.Key {
	var b [wgtypes.KeyLen]byte
	for i := range b {
		b[i] = seed + byte(i)
	}
	k, err := wgtypes.NewKey(b[:])
	if err != nil {
		panic(err)
	}
	// Clamp like GeneratePrivateKey does so it is a valid Curve25519 key.
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
	return k
}

func pub(seed byte) wgtypes.Key { return testKey(seed).PublicKey() }

func pfx(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// Private key seeds of the sites in the cases below.
const (
	seedAlpha = 1
	seedBeta  = 2
	seedGamma = 3
	seedHub   = 4
	seedNat1  = 5
	seedNat2  = 6
)

// renderCases are SiteConfigs as plan derives them (written out by hand so
// these tests do not depend on the plan package's derivation), keyed by
// golden file name.
func renderCases() map[string]*plan.SiteConfig {
	ka := 25 * time.Second
	return map[string]*plan.SiteConfig{
		// A three-office full mesh, every site reachable: one file per site.
		"mesh-alpha": {
			Network: "corp", Site: "alpha", PublicKey: pub(seedAlpha),
			Addresses: pfx("10.255.0.1/24"), ListenPort: 51820, MTU: 1420,
			Peers: []plan.Peer{
				{Site: "beta", PublicKey: pub(seedBeta), Endpoint: "198.51.100.20:51820",
					AllowedIPs: pfx("10.255.0.2/32", "192.168.20.0/24"), LANs: pfx("192.168.20.0/24")},
				{Site: "gamma", PublicKey: pub(seedGamma), Endpoint: "office-c.example.com:51821",
					AllowedIPs: pfx("10.255.0.3/32", "192.168.30.0/24", "192.168.31.0/24"), LANs: pfx("192.168.30.0/24", "192.168.31.0/24")},
			},
			Routes: pfx("192.168.20.0/24", "192.168.30.0/24", "192.168.31.0/24"),
		},
		"mesh-beta": {
			Network: "corp", Site: "beta", PublicKey: pub(seedBeta),
			Addresses: pfx("10.255.0.2/24"), ListenPort: 51820, MTU: 1420,
			Peers: []plan.Peer{
				{Site: "alpha", PublicKey: pub(seedAlpha), Endpoint: "192.0.2.10:51820",
					AllowedIPs: pfx("10.255.0.1/32", "192.168.10.0/24"), LANs: pfx("192.168.10.0/24")},
				{Site: "gamma", PublicKey: pub(seedGamma), Endpoint: "office-c.example.com:51821",
					AllowedIPs: pfx("10.255.0.3/32", "192.168.30.0/24", "192.168.31.0/24"), LANs: pfx("192.168.30.0/24", "192.168.31.0/24")},
			},
			Routes: pfx("192.168.10.0/24", "192.168.30.0/24", "192.168.31.0/24"),
		},
		"mesh-gamma": {
			Network: "corp", Site: "gamma", PublicKey: pub(seedGamma),
			Addresses: pfx("10.255.0.3/24"), ListenPort: 51821, MTU: 1420,
			Peers: []plan.Peer{
				{Site: "alpha", PublicKey: pub(seedAlpha), Endpoint: "192.0.2.10:51820",
					AllowedIPs: pfx("10.255.0.1/32", "192.168.10.0/24"), LANs: pfx("192.168.10.0/24")},
				{Site: "beta", PublicKey: pub(seedBeta), Endpoint: "198.51.100.20:51820",
					AllowedIPs: pfx("10.255.0.2/32", "192.168.20.0/24"), LANs: pfx("192.168.20.0/24")},
			},
			Routes:     pfx("192.168.10.0/24", "192.168.20.0/24"),
			Masquerade: true, MSSClamp: true,
		},
		// A site behind NAT without port forwarding: no endpoint of its
		// own, keeps its mappings open with keepalives, reaches the other
		// NAT site through the hub.
		"nat-site": {
			Network: "corp", Site: "nat1", PublicKey: pub(seedNat1),
			Addresses: pfx("10.255.0.5/24"), ListenPort: 51820, MTU: 1420,
			Peers: []plan.Peer{
				{Site: "hub", PublicKey: pub(seedHub), Endpoint: "203.0.113.4:51820",
					AllowedIPs:          pfx("10.255.0.4/32", "10.255.0.6/32", "192.168.40.0/24", "192.168.60.0/24"),
					PersistentKeepalive: ka, LANs: pfx("192.168.40.0/24"), Via: []string{"nat2"}},
			},
			Routes: pfx("192.168.40.0/24", "192.168.60.0/24"),
		},
		// The hub relays between two NAT sites that cannot reach each other.
		"relay-hub": {
			Network: "corp", Site: "hub", PublicKey: pub(seedHub),
			Addresses: pfx("10.255.0.4/24"), ListenPort: 51820, MTU: 1420,
			Peers: []plan.Peer{
				{Site: "nat1", PublicKey: pub(seedNat1),
					AllowedIPs: pfx("10.255.0.5/32", "192.168.50.0/24"), LANs: pfx("192.168.50.0/24")},
				{Site: "nat2", PublicKey: pub(seedNat2),
					AllowedIPs: pfx("10.255.0.6/32", "192.168.60.0/24"), LANs: pfx("192.168.60.0/24")},
			},
			Routes: pfx("192.168.50.0/24", "192.168.60.0/24"),
			Relay:  true,
		},
		// Dual-stack tunnel, an IPv6-only LAN on one side.
		"ipv6": {
			Network: "corp6", Site: "alpha", PublicKey: pub(seedAlpha),
			Addresses: pfx("10.255.0.1/24", "fd00:255::1/64"), ListenPort: 51820, MTU: 1400,
			Peers: []plan.Peer{
				{Site: "beta", PublicKey: pub(seedBeta), Endpoint: "[2001:db8::20]:51820",
					AllowedIPs: pfx("10.255.0.2/32", "fd00:255::2/128", "192.168.20.0/24", "fd00:20::/64"),
					LANs:       pfx("192.168.20.0/24", "fd00:20::/64")},
			},
			Routes: pfx("192.168.20.0/24", "fd00:20::/64"),
		},
	}
}

func netipPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
