package plan

import (
	"net/netip"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Defaults for fields a plan may leave out.
const (
	DefaultPort      = 51820
	DefaultMTU       = 1420
	DefaultKeepalive = 25 * time.Second
	DefaultPath      = "/etc/lanlink/network.toml"
)

// Plan is a validated network plan: every field has been parsed into its
// typed form and cross-checked (no overlaps, no duplicate names or keys,
// every site has its tunnel addresses). A *Plan is only ever produced by
// Parse/Load, so code that holds one may trust it.
type Plan struct {
	Network Network
	Sites   []Site // in file order

	idx *planIndex // lookups built by Parse; nil in hand-built plans
}

// Network holds the settings shared by every site.
type Network struct {
	Name      string
	Tunnels   []netip.Prefix // at most one IPv4 and one IPv6 prefix
	Port      uint16         // default listen port of every site
	MTU       int            // tunnel interface MTU
	Hub       string         // preferred relay for sites without an endpoint; "" = first site with one
	Keepalive time.Duration  // persistent keepalive used by sites without an endpoint
}

// Site is one office: its gateway's public key, LANs and how to reach it.
type Site struct {
	Name      string
	PublicKey wgtypes.Key
	// Endpoint is "host:port" as written in the plan (host may be a DNS
	// name, an IPv4 address or a bracketed IPv6 address); "" means the
	// site only dials out (NAT without port forwarding).
	Endpoint   string
	LANs       []netip.Prefix
	Addresses  []netip.Addr // one tunnel address per tunnel prefix, same order as Network.Tunnels
	Port       uint16       // listen port; 0 means Network.Port
	Masquerade bool         // NAT traffic leaving the tunnel into the LAN
	MSSClamp   bool         // clamp TCP MSS to the path MTU on the tunnel interface
}

// SiteConfig is the desired state of one site, derived from the plan. It is
// the single source that render, the agent and status use. It never holds
// the private key: the agent reads that from the key file on the gateway.
//
// A SiteConfig is read-only. Its peers' AllowedIPs and LANs share backing
// arrays with the Plan it came from and with every other SiteConfig
// derived from that Plan (a 1000-site mesh would otherwise copy a million
// small slices), so writing an element of one would change them all.
// Appending is safe (the shared slices have no spare capacity, so append
// copies), writing in place is not: Clone first, then change the clone.
type SiteConfig struct {
	Network    string         `json:"network"`
	Site       string         `json:"site"`
	PublicKey  wgtypes.Key    `json:"public_key"`
	Addresses  []netip.Prefix `json:"addresses"` // tunnel address with the tunnel prefix length
	ListenPort int            `json:"listen_port"`
	MTU        int            `json:"mtu"`
	Peers      []Peer         `json:"peers"`  // sorted by site name
	Routes     []netip.Prefix `json:"routes"` // remote LANs routed through the interface, sorted
	// Relay is true when this site forwards traffic between two other
	// sites that cannot reach each other directly (it is the hub).
	Relay      bool `json:"relay,omitempty"`
	Masquerade bool `json:"masquerade,omitempty"`
	MSSClamp   bool `json:"mss_clamp,omitempty"`
}

// Peer is one WireGuard peer of a site.
type Peer struct {
	Site      string      `json:"site"`
	PublicKey wgtypes.Key `json:"public_key"`
	// Endpoint as written in the plan ("host:port"), unresolved; "" when
	// the peer has none and will be learnt from its handshakes.
	Endpoint            string         `json:"endpoint,omitempty"`
	AllowedIPs          []netip.Prefix `json:"allowed_ips"`
	PersistentKeepalive time.Duration  `json:"persistent_keepalive,omitempty"`
	LANs                []netip.Prefix `json:"lans"`          // the peer site's own LANs
	Via                 []string       `json:"via,omitempty"` // other sites reached through this peer (it relays for us)
}
