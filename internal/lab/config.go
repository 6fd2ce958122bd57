package lab

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
)

// Limits of a lab. Eight offices keep the WAN and LAN numbering inside the
// documentation and 192.168.x ranges with room to spare; the host limit
// keeps namespace counts (and build time) sane on small CI machines.
const (
	MinOffices        = 2
	MaxOffices        = 8
	MaxHostsPerOffice = 16
	DefaultPort       = 51820
)

// The internet: every office router's WAN side sits on one bridge in the
// internet namespace, which also routes between the two documentation
// ranges so that an office can move from one to the other
// (Office.ChangeWANAddress) and still be reached.
var (
	wanNet   = netip.MustParsePrefix("198.51.100.0/24")
	wanAlt   = netip.MustParsePrefix("203.0.113.0/24")
	coreAddr = map[netip.Prefix]netip.Addr{
		wanNet: netip.MustParseAddr("198.51.100.1"),
		wanAlt: netip.MustParseAddr("203.0.113.1"),
	}
)

// TB is the part of testing.TB the lab uses; a *testing.T satisfies it. The
// lab does not import package testing so that the lanlink binary can use it
// for `lanlink lab`.
type TB interface {
	Helper()
	Cleanup(func())
	Errorf(format string, args ...any)
}

// Config describes a lab. The zero value except for Offices is a valid
// two-to-eight-office lab with one host per office.
type Config struct {
	// Offices is the number of offices, MinOffices…MaxOffices.
	Offices int
	// HostsPerOffice is the number of LAN hosts besides the gateway in each
	// office, 0…MaxHostsPerOffice; 0 means 1.
	HostsPerOffice int
	// Port is the UDP port each office router forwards to its gateway
	// (the WireGuard listen port); 0 means DefaultPort.
	Port int
	// NoPortForward lists offices (1-based) whose router forwards nothing:
	// the gateway is behind NAT and can only be reached by replies.
	NoPortForward []int
	// LANPrefix gives office i's (1-based) LAN; nil means 192.168.(10*i).0/24.
	// Prefixes must be private IPv4, masked, /16…/27, and must not overlap.
	LANPrefix func(i int) netip.Prefix
	// IPv6 makes every office LAN dual-stack: office i also gets the IPv6
	// ULA prefix fd4c:6c00:0:<10·i>::/64 (lan6Prefix; office 1
	// fd4c:6c00:0:10::/64 next to 192.168.10.0/24, office 8
	// fd4c:6c00:0:80::/64), whatever LANPrefix says, with router ::1,
	// gateway ::2 and hosts ::a, ::b, … (as .1, .2, .10, .11, …). Routers
	// forward IPv6 and route every other office's LAN6 via their own
	// gateway, as they do for IPv4. The WAN and the internet stay
	// IPv4-only (unless IPv6WAN): IPv6 crosses offices only through a
	// tunnel.
	IPv6 bool
	// IPv6WAN gives the internet an IPv6 side too, so that WireGuard can
	// run over IPv6 (Office.Endpoint6); it needs IPv6. Office i's WAN link
	// also carries 2001:db8:0:<i>::/64 (wan6Prefix, from the IPv6
	// documentation prefix 2001:db8::/32): the internet's side is ::1, the
	// router's WAN6 ::2. The internet forwards IPv6 between the office
	// links (connected routes only: no IPv6 route leads anywhere else, and
	// none to the ULA LANs); each router's IPv6 default route is the
	// internet's ::1, and its NAT mirrors IPv4 exactly (NAT66): IPv6
	// leaving the WAN is masqueraded behind WAN6, and UDP Port arriving on
	// the WAN is forwarded to GatewayLAN6 unless the office is in
	// NoPortForward. LAN6s still reach each other only through a tunnel.
	IPv6WAN bool
	// ID names the lab: every namespace is "<ID>-…". Empty means a fresh
	// random one (NewID). A given ID must match the scheme ("ll" + 4 of
	// [0-9a-z]) and must not be in use.
	ID string
	// Logger receives one line per lab event (build, close); nil discards.
	Logger *slog.Logger

	// failAt makes the build fail right after the named step, so tests can
	// prove that a half-built lab is removed. Never set outside tests.
	failAt string
}

// idRe is the lab naming scheme. Everything that deletes namespaces by name
// (Close, CleanupLeftovers) matches against it so that it can never touch a
// namespace it did not create.
var (
	idRe     = regexp.MustCompile(`^ll[0-9a-z]{4}$`)
	nsNameRe = regexp.MustCompile(`^(ll[0-9a-z]{4})-(inet|o[1-8](r|g|h[0-9]{1,2}))$`)
)

// NewID returns a fresh random lab ID ("ll" + 4 base36 characters).
func NewID() string {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux.
	id := []byte("ll")
	for _, c := range b {
		id = append(id, alphabet[int(c)%len(alphabet)])
	}
	return string(id)
}

// ErrConfig is wrapped by every error about an invalid Config.
var ErrConfig = errors.New("invalid lab config")

func (c Config) withDefaults() Config {
	if c.HostsPerOffice == 0 {
		c.HostsPerOffice = 1
	}
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.LANPrefix == nil {
		c.LANPrefix = func(i int) netip.Prefix {
			return netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(10 * i), 0}), 24)
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// validate checks a defaulted config and returns the offices' LANs.
func (c Config) validate() ([]netip.Prefix, error) {
	bad := func(format string, args ...any) ([]netip.Prefix, error) {
		return nil, fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	if c.Offices < MinOffices || c.Offices > MaxOffices {
		return bad("Offices = %d: want %d…%d", c.Offices, MinOffices, MaxOffices)
	}
	if c.HostsPerOffice < 0 || c.HostsPerOffice > MaxHostsPerOffice {
		return bad("HostsPerOffice = %d: want 0…%d", c.HostsPerOffice, MaxHostsPerOffice)
	}
	if c.Port < 1 || c.Port > 65535 {
		return bad("Port = %d: want 1…65535", c.Port)
	}
	for _, i := range c.NoPortForward {
		if i < 1 || i > c.Offices {
			return bad("NoPortForward has office %d: offices are numbered 1…%d", i, c.Offices)
		}
	}
	if c.IPv6WAN && !c.IPv6 {
		return bad("IPv6WAN without IPv6: an IPv6 WAN needs the offices' IPv6 LANs (set IPv6 too)")
	}
	if c.ID != "" && !idRe.MatchString(c.ID) {
		return bad("ID = %q: want \"ll\" and 4 characters of [0-9a-z], or empty for a random one", c.ID)
	}
	var lans []netip.Prefix
	for i := 1; i <= c.Offices; i++ {
		p := c.LANPrefix(i)
		switch {
		case !p.IsValid() || !p.Addr().Is4():
			return bad("LANPrefix(%d) = %v: want an IPv4 prefix", i, p)
		case p != p.Masked():
			return bad("LANPrefix(%d) = %v: host bits set, want %v", i, p, p.Masked())
		case !p.Addr().IsPrivate():
			// Lab LANs exist only inside namespaces, but a public prefix
			// would still shadow real destinations there; keep to RFC 1918.
			return bad("LANPrefix(%d) = %v: want a private (RFC 1918) prefix", i, p)
		case p.Bits() < 16 || p.Bits() > 27:
			return bad("LANPrefix(%d) = %v: want /16…/27", i, p)
		}
		for j, q := range lans {
			if p.Overlaps(q) {
				return bad("LANPrefix(%d) = %v overlaps office %d's %v", i, p, j+1, q)
			}
		}
		lans = append(lans, p)
	}
	return lans, nil
}

func (c Config) portForward(office int) bool {
	return !slices.Contains(c.NoPortForward, office)
}

// Addressing inside an office LAN, fixed so that tests and docs can rely on
// it: router .1, gateway .2, hosts .10, .11, …; on an IPv6 LAN the same
// numbers as interface identifiers: ::1, ::2, ::a, ::b, ….
func routerLAN(p netip.Prefix) netip.Addr { return nth(p, 1) }
func gatewayLAN(p netip.Prefix) netip.Addr {
	return nth(p, 2)
}
func hostLAN(p netip.Prefix, j int) netip.Addr { return nth(p, 10+j) }

// lab6 is the /48 every IPv6 office LAN comes from: a ULA (fc00::/7,
// private like RFC 1918) whose global ID spells "Ll" (0x4c 0x6c). A fixed
// one rather than RFC 4193's random ID, so that tests and docs can name
// addresses; it exists only inside lab namespaces.
var lab6 = netip.MustParsePrefix("fd4c:6c00::/48")

// lan6Prefix is office i's (1-based) IPv6 LAN with Config.IPv6:
// fd4c:6c00:0:<10·i>::/64, the subnet ID being 10·i written in hex digits
// (0x10·i) so that it reads like the default IPv4 LAN's third octet:
// office 1 has 192.168.10.0/24 and fd4c:6c00:0:10::/64.
func lan6Prefix(i int) netip.Prefix {
	a := lab6.Addr().As16()
	binary.BigEndian.PutUint16(a[6:8], uint16(0x10*i))
	return netip.PrefixFrom(netip.AddrFrom16(a), 64)
}

// lan6 is office i's IPv6 LAN, or the zero Prefix without IPv6.
func (c Config) lan6(i int) netip.Prefix {
	if !c.IPv6 {
		return netip.Prefix{}
	}
	return lan6Prefix(i)
}

// addrIn is at(p), or the zero Addr for the zero Prefix (no IPv6 LAN).
func addrIn(p netip.Prefix, at func(netip.Prefix) netip.Addr) netip.Addr {
	if !p.IsValid() {
		return netip.Addr{}
	}
	return at(p)
}

// nth is the n-th address of p: n added to the host part (for IPv6, to
// the interface identifier).
func nth(p netip.Prefix, n int) netip.Addr {
	if p.Addr().Is6() {
		a := p.Addr().As16()
		binary.BigEndian.PutUint64(a[8:], binary.BigEndian.Uint64(a[8:])+uint64(n))
		return netip.AddrFrom16(a)
	}
	a := p.Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += uint32(n)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// wanAddr is office i's (1-based) initial public address.
func wanAddr(i int) netip.Addr { return nth(wanNet, 10+i) }

// wan6Net is the IPv6 documentation prefix (RFC 3849): every IPv6 WAN
// address of a lab comes from it.
var wan6Net = netip.MustParsePrefix("2001:db8::/32")

// wan6Prefix is office i's (1-based) IPv6 WAN link with Config.IPv6WAN:
// 2001:db8:0:<i>::/64, the subnet ID being i (offices 1…8 read the same in
// hex and decimal).
func wan6Prefix(i int) netip.Prefix {
	a := wan6Net.Addr().As16()
	binary.BigEndian.PutUint16(a[6:8], uint16(i))
	return netip.PrefixFrom(netip.AddrFrom16(a), 64)
}

// On an office's IPv6 WAN link the internet is ::1 and the router ::2.
func internetWAN6(i int) netip.Addr { return nth(wan6Prefix(i), 1) }
func wan6Addr(i int) netip.Addr     { return nth(wan6Prefix(i), 2) }

// wan6 is office i's IPv6 WAN address, or the zero Addr without IPv6WAN.
func (c Config) wan6(i int) netip.Addr {
	if !c.IPv6WAN {
		return netip.Addr{}
	}
	return wan6Addr(i)
}

// Namespace names. Short on purpose: they also appear in interface names.
func nsInternet(id string) string      { return id + "-inet" }
func nsRouter(id string, i int) string { return id + "-o" + strconv.Itoa(i) + "r" }
func nsGateway(id string, i int) string {
	return id + "-o" + strconv.Itoa(i) + "g"
}
func nsHost(id string, i, j int) string {
	return id + "-o" + strconv.Itoa(i) + "h" + strconv.Itoa(j+1)
}
