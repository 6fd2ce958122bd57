package wgconf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"lanlink/internal/keys"
	"lanlink/internal/plan"
)

// DefaultInterface is the interface name Render suggests when not told one.
const DefaultInterface = "lanlink0"

// Options are the parts of a rendered file that do not come from the plan.
type Options struct {
	// Interface is the name the file is meant for (wg-quick takes the
	// name from the file name); it appears only in the comments.
	Interface string
	// PrivateKey, when set, is embedded in the file. It must be the
	// site's key. Without it the file holds no secret and a PostUp line
	// loads the key from KeyFile on the gateway.
	PrivateKey *wgtypes.Key
	// KeyFile is the gateway's key file; default keys.DefaultPath.
	KeyFile string
}

// Render writes c as a wg-quick file.
//
// Routing: the file leaves Table unset (auto), so wg-quick adds a route for
// every AllowedIPs prefix not already routed on the interface. The tunnel
// addresses of the peers lie in the interface's own prefix and so need no
// route; what remains are the remote LANs, which is exactly c.Routes.
// Render checks this and fails rather than write a file whose routes differ
// from the ones lanlink itself installs.
//
// Forwarding: a gateway forwards between its LAN and the tunnel (and a relay
// between peers), which the kernel does only with IP forwarding on. The
// file switches it on in PostUp with sysctl (IPv6 only when the site routes
// IPv6) and leaves it on at down, since other services on the host may
// rely on it too. Masquerade and MSS clamping become an nftables table
// named lanlink_<interface>, added in PostUp and deleted in PostDown.
func Render(w io.Writer, c *plan.SiteConfig, o Options) error {
	f, err := interfaceOf(c, o)
	if err != nil {
		return err
	}
	rw := writers.Get().(*writer)
	defer putWriter(rw)
	if !routesMatch(c, rw) {
		return routeMismatch(c, siteRoutes(c))
	}
	// What FromSiteConfig and Marshal would write, without building the
	// File: its peers would be copies of c.Peers that live only until
	// written. The whole file is built before the first Write, so a
	// failure leaves w untouched.
	rw.buf = slices.Grow(rw.buf[:0], 1024+200*len(c.Peers))
	rw.head(f)
	for i := range c.Peers {
		rw.sitePeer(&c.Peers[i])
	}
	if rw.err != nil {
		return fmt.Errorf("render site %s: %w", c.Site, rw.err)
	}
	_, err = w.Write(rw.buf)
	return err
}

// writers pools Render's buffers: a site of a 1000-site mesh renders to
// about 200 kB, and rendering every site would otherwise allocate (and
// grow) one per site.
var writers = sync.Pool{New: func() any { return new(writer) }}

func putWriter(w *writer) {
	if cap(w.buf) > 16<<20 {
		return // a freak; do not pin it
	}
	w.buf, w.err = w.buf[:0], nil
	writers.Put(w)
}

// FromSiteConfig is Render without the writing: the File it would write.
func FromSiteConfig(c *plan.SiteConfig, o Options) (*File, error) {
	f, err := interfaceOf(c, o)
	if err != nil {
		return nil, err
	}
	f.Peers = make([]Peer, 0, len(c.Peers))
	for i := range c.Peers {
		p := &c.Peers[i]
		f.Peers = append(f.Peers, Peer{
			Comments:            peerComments(p),
			PublicKey:           p.PublicKey,
			AllowedIPs:          slices.Clone(p.AllowedIPs),
			Endpoint:            p.Endpoint,
			PersistentKeepalive: keepalive(p.PersistentKeepalive),
		})
	}
	if got, want := Routes(f), canonical(c.Routes); !slices.Equal(got, want) {
		return nil, routeMismatch(c, got)
	}
	return f, nil
}

// sitePeer writes p's [Peer] section exactly as Marshal writes the Peer
// that FromSiteConfig makes of it.
func (w *writer) sitePeer(p *plan.Peer) {
	w.peerHeader()
	var bad []byte
	if w.buf, bad = appendPeerComments(w.buf, p); bad != nil {
		// What Marshal's comment check says of it: the lines hold the
		// plan's names, which a hand-built SiteConfig may not have
		// validated.
		w.fail(fmt.Errorf("comment %q must be one line starting with '#'", bad))
	}
	w.peerBody(p.PublicKey, nil, p.AllowedIPs, p.Endpoint, keepalive(p.PersistentKeepalive))
}

// appendPeerComments appends the comment lines of p's [Peer] section, each
// ending in a newline: the one place their wording lives. bad is the first
// line Marshal would reject as a comment (one that TrimSpace would change),
// or nil.
func appendPeerComments(b []byte, p *plan.Peer) (_, bad []byte) {
	check := func(start int) {
		if l := b[start : len(b)-1]; bad == nil && !trimmed(l) {
			bad = l
		}
	}
	start := len(b)
	b = append(b, "# site "...)
	b = appendOneLine(b, p.Site)
	b = append(b, '\n')
	check(start)
	if len(p.Via) > 0 {
		start = len(b)
		b = append(b, "# relays for "...)
		b = appendOneLine(b, strings.Join(p.Via, ", "))
		b = append(b, '\n')
		check(start)
	}
	if p.Endpoint == "" {
		b = append(b, "# no endpoint: "...)
		b = appendOneLine(b, p.Site)
		b = append(b, " dials in\n"...) // starts with '#', ends in "in": always a good comment
	}
	return b, bad
}

// trimmed reports whether TrimSpace leaves l (which starts with '#')
// unchanged, looking only at its last byte unless that is not ASCII.
func trimmed(l []byte) bool {
	switch c := l[len(l)-1]; {
	case c >= utf8.RuneSelf:
		return len(bytes.TrimSpace(l)) == len(l)
	case c == ' ', c == '\t', c == '\n', c == '\v', c == '\f', c == '\r':
		return false
	}
	return true
}

// peerComments is appendPeerComments as strings, one per line; Marshal
// checks them.
func peerComments(p *plan.Peer) []string {
	b, _ := appendPeerComments(nil, p)
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// keepalive rounds up to whole seconds, which is what wg counts in, so the
// tunnel is never kept alive less often than the plan asks.
func keepalive(ka time.Duration) time.Duration {
	if ka <= 0 {
		return 0
	}
	return (ka + time.Second - 1).Truncate(time.Second)
}

// interfaceOf checks c and o and builds the File's comments and
// [Interface] section, which Render and FromSiteConfig share.
func interfaceOf(c *plan.SiteConfig, o Options) (*File, error) {
	if o.Interface == "" {
		o.Interface = DefaultInterface
	}
	if !validIfaceName(o.Interface) {
		return nil, fmt.Errorf("interface name %q: want 1 to 15 of letters, digits and _=+.- (wg-quick names the interface after the file)", o.Interface)
	}
	if o.KeyFile == "" {
		o.KeyFile = keys.DefaultPath
	}
	if o.PrivateKey != nil && o.PrivateKey.PublicKey() != c.PublicKey {
		return nil, fmt.Errorf("the private key given has public key %s, but site %s has %s in the plan: "+
			"use the key file of %s's gateway, or update the plan with `lanlink site set %s --public-key`",
			o.PrivateKey.PublicKey(), c.Site, c.PublicKey, c.Site, c.Site)
	}

	f := &File{Comments: []string{
		fmt.Sprintf("# lanlink network %q, site %q.", oneLine(c.Network), oneLine(c.Site)),
		"# Generated by `lanlink render`: change the plan and render again rather than editing this file.",
		fmt.Sprintf("# For the stock tools: save as /etc/wireguard/%s.conf (mode 0600), then `wg-quick up %s`.", o.Interface, o.Interface),
	}}
	i := &f.Interface
	i.Addresses = slices.Clone(c.Addresses)
	if c.ListenPort < 0 || c.ListenPort > 65535 {
		return nil, fmt.Errorf("site %s: listen port %d out of range", c.Site, c.ListenPort)
	}
	i.ListenPort = uint16(c.ListenPort)
	i.MTU = c.MTU
	if o.PrivateKey != nil {
		k := *o.PrivateKey
		i.PrivateKey = &k
	} else {
		if strings.ContainsAny(o.KeyFile, "#\n%") {
			return nil, fmt.Errorf("key file path %q: wg-quick cannot carry '#', '%%' or a newline in PostUp; move the key file", o.KeyFile)
		}
		i.Comments = append(i.Comments, "# No secret in this file: PostUp loads the private key from "+oneLine(o.KeyFile)+".")
		i.PostUp = append(i.PostUp, "wg set %i private-key "+shellQuote(o.KeyFile))
	}

	v4, v6 := false, false
	for _, r := range c.Routes {
		v4 = v4 || r.Addr().Is4()
		v6 = v6 || r.Addr().Is6()
	}
	if c.Relay {
		for _, a := range c.Addresses {
			v4 = v4 || a.Addr().Is4()
			v6 = v6 || a.Addr().Is6()
		}
	}
	if v4 || v6 {
		what := "between its LAN and the tunnel"
		if c.Relay {
			what = "between its LAN and the tunnel, and relays between sites that cannot reach each other"
		}
		i.Comments = append(i.Comments, "# This gateway forwards "+what+": PostUp turns IP forwarding on (and leaves it on at down).")
	}
	if v4 {
		i.PostUp = append(i.PostUp, "sysctl -q -w net.ipv4.ip_forward=1")
	}
	if v6 {
		i.Comments = append(i.Comments, "# IPv6 forwarding stops the host from taking router advertisements unless accept_ra=2.")
		i.PostUp = append(i.PostUp, "sysctl -q -w net.ipv6.conf.all.forwarding=1")
	}
	if c.Masquerade || c.MSSClamp {
		t := "inet lanlink_%i"
		i.PostUp = append(i.PostUp, "nft add table "+t)
		if c.Masquerade {
			i.Comments = append(i.Comments, "# Masquerade: traffic from the tunnel into the LAN leaves with this gateway's LAN address.")
			i.PostUp = append(i.PostUp,
				"nft add chain "+t+" postrouting '{ type nat hook postrouting priority 100; }'",
				"nft add rule "+t+" postrouting iifname %i oifname != %i masquerade")
		}
		if c.MSSClamp {
			i.Comments = append(i.Comments, "# MSS clamping: TCP connections through the tunnel fit its MTU.")
			i.PostUp = append(i.PostUp,
				"nft add chain "+t+" forward '{ type filter hook forward priority -150; }'",
				"nft add rule "+t+" forward oifname %i tcp flags syn tcp option maxseg size set rt mtu",
				"nft add rule "+t+" forward iifname %i tcp flags syn tcp option maxseg size set rt mtu")
		}
		i.PostDown = append(i.PostDown, "nft delete table "+t)
	}
	return f, nil
}

func routeMismatch(c *plan.SiteConfig, got []netip.Prefix) error {
	return fmt.Errorf("site %s: wg-quick would route %v but lanlink routes %v; "+
		"this is a bug in lanlink's plan derivation, please report it", c.Site, got, canonical(c.Routes))
}

// routesMatch reports whether the routes wg-quick adds for c's file (what
// Routes returns for it) are canonical(c.Routes), without building the file
// or sorting its AllowedIPs (a 1000-site mesh has a million of them): the
// two sets are equal when every uncovered AllowedIPs prefix is one of the
// routes and every route is met at least once. The routes go in an
// open-addressing table held in w, which a pooled writer reuses.
func routesMatch(c *plan.SiteConfig, w *writer) bool {
	want := c.Routes
	if !isCanonical(want) {
		want = canonical(want)
	}
	bits := 1
	for 1<<bits < 2*len(want) {
		bits++
	}
	size, shift, mask := 1<<bits, 64-bits, uint64(1<<bits-1)
	w.slots = slices.Grow(w.slots[:0], size)[:size]
	clear(w.slots)
	for i, p := range want {
		h := hashPrefix(p) >> shift
		for w.slots[h] != 0 {
			h = (h + 1) & mask
		}
		w.slots[h] = int32(i + 1)
	}
	w.seen = slices.Grow(w.seen[:0], len(want))[:len(want)]
	clear(w.seen)

	var buf [4]netip.Prefix
	covered := buf[:0]
	for _, a := range c.Addresses {
		covered = append(covered, a.Masked())
	}
	hits := 0
	for i := range c.Peers {
	next:
		for _, a := range c.Peers[i].AllowedIPs {
			if !isMasked(a) {
				a = a.Masked()
			}
			for _, cv := range covered {
				if cv.Bits() <= a.Bits() && cv.Contains(a.Addr()) {
					continue next
				}
			}
			for h := hashPrefix(a) >> shift; ; h = (h + 1) & mask {
				j := w.slots[h] - 1
				if j < 0 {
					return false // not a route
				}
				if want[j] == a {
					if !w.seen[j] {
						w.seen[j] = true
						hits++
					}
					break
				}
			}
		}
	}
	return hits == len(want)
}

// hashPrefix is a Fibonacci hash of the address and length: its top bits
// (routesMatch keeps those) spread even the consecutive LANs of a large
// plan evenly over the table.
func hashPrefix(p netip.Prefix) uint64 {
	const k = 0x9e3779b97f4a7c15
	a := p.Addr()
	if a.Is4() {
		v := a.As4()
		return (uint64(binary.BigEndian.Uint32(v[:]))<<8 | uint64(p.Bits()+1)) * k
	}
	b := a.As16()
	return (binary.BigEndian.Uint64(b[:8])*k ^ binary.BigEndian.Uint64(b[8:]) ^ uint64(p.Bits()+1)) * k
}

// siteRoutes is Routes of the File that FromSiteConfig makes of c.
func siteRoutes(c *plan.SiteConfig) []netip.Prefix {
	f := &File{Interface: Interface{Addresses: c.Addresses}, Peers: make([]Peer, len(c.Peers))}
	for i, p := range c.Peers {
		f.Peers[i].AllowedIPs = p.AllowedIPs
	}
	return Routes(f)
}

// isCanonical reports whether ps is what canonical would make of it:
// masked, sorted and without duplicates (as plan derives Routes).
func isCanonical(ps []netip.Prefix) bool {
	for i, p := range ps {
		if !isMasked(p) || i > 0 && comparePrefix(ps[i-1], p) >= 0 {
			return false
		}
	}
	return true
}

// isMasked reports p.Masked() == p, quickly for IPv4.
func isMasked(p netip.Prefix) bool {
	if a := p.Addr(); a.Is4() && p.IsValid() {
		v := a.As4()
		return binary.BigEndian.Uint32(v[:])<<p.Bits() == 0
	}
	return p.Masked() == p
}

// validIfaceName is wg-quick's own rule for interface (and so file)
// names: ^[a-zA-Z0-9_=+.-]{1,15}$.
func validIfaceName(s string) bool {
	if len(s) < 1 || len(s) > 15 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_=+.-", c) >= 0) {
			return false
		}
	}
	return true
}

// Routes returns the routes wg-quick (Table = auto) adds for f: every
// AllowedIPs prefix, masked, that no interface address's prefix already
// covers, deduplicated and sorted. A default route (/0), which wg-quick
// handles with policy routing instead, is returned as is.
func Routes(f *File) []netip.Prefix {
	var covered []netip.Prefix
	for _, a := range f.Interface.Addresses {
		covered = append(covered, a.Masked())
	}
	var out []netip.Prefix
	for _, p := range f.Peers {
	next:
		for _, a := range p.AllowedIPs {
			a = a.Masked()
			for _, c := range covered {
				if c.Bits() <= a.Bits() && c.Contains(a.Addr()) {
					continue next
				}
			}
			out = append(out, a)
		}
	}
	return canonical(out)
}

func canonical(ps []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.Masked())
	}
	slices.SortFunc(out, comparePrefix)
	return slices.Compact(out)
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// appendOneLine appends oneLine(s) without building the string in the
// common case of nothing to replace.
func appendOneLine(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\n' || c == '\r' || c >= utf8.RuneSelf {
			return append(b, oneLine(s)...) // strings.Map also replaces invalid UTF-8
		}
	}
	return append(b, s...)
}

func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}

// shellQuote quotes s for the shell wg-quick evaluates hooks with.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+=:@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
