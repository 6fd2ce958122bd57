package device

import (
	"net/netip"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Config is the WireGuard side of a site: its key, port and peers, with
// endpoints already resolved to addresses.
type Config struct {
	PrivateKey wgtypes.Key
	ListenPort int
	Peers      []PeerConfig
}

// PeerConfig is one peer as the device needs it.
type PeerConfig struct {
	PublicKey           wgtypes.Key
	Endpoint            netip.AddrPort // zero: none; learnt from the peer's handshakes
	AllowedIPs          []netip.Prefix
	PersistentKeepalive time.Duration
}

// PeerStats is what a device reports about one peer.
type PeerStats struct {
	PublicKey     wgtypes.Key
	Endpoint      netip.AddrPort
	LastHandshake time.Time // zero: never
	RxBytes       int64
	TxBytes       int64
}

// Device is one WireGuard interface, kernel or userspace.
type Device interface {
	// Name is the interface name.
	Name() string
	// Backend is "kernel" or "userspace".
	Backend() string
	// Configure makes the device's configuration equal to cfg. It changes
	// only what differs from the current state: a peer whose public key,
	// endpoint and allowed IPs are unchanged keeps its session (no new
	// handshake); a peer missing from cfg is removed. Calling it twice with
	// the same cfg changes nothing.
	Configure(cfg Config) error
	// Stats reports every peer's handshake and transfer counters.
	Stats() ([]PeerStats, error)
	// Close removes the interface and releases its sockets. After Close
	// every method returns net.ErrClosed.
	Close() error
}
