package wgconf

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// File is a parsed wg-quick configuration file. Zero values mean "not set".
//
// Comments are kept per section (the lines starting with '#', with the '#',
// in order); Marshal writes them at the top of their section, so a comment
// between two keys moves up. Comments after a value on the same line are
// dropped, as wg and wg-quick ignore them too.
type File struct {
	Comments  []string // comment lines before the first section
	Interface Interface
	Peers     []Peer
}

// Interface is the [Interface] section: the wg keys and the wg-quick ones.
type Interface struct {
	Comments   []string
	PrivateKey *wgtypes.Key
	ListenPort uint16 // 0: not set, the kernel picks a port
	FwMark     uint32 // 0: not set ("off")
	Addresses  []netip.Prefix
	MTU        int // 0: not set, wg-quick derives one
	DNS        []string
	Table      string // "" = not set (auto)
	SaveConfig bool
	PreUp      []string
	PostUp     []string
	PreDown    []string
	PostDown   []string
}

// Peer is one [Peer] section.
type Peer struct {
	Comments            []string
	PublicKey           wgtypes.Key
	PresharedKey        *wgtypes.Key
	AllowedIPs          []netip.Prefix
	Endpoint            string        // "host:port" as written; "" = none
	PersistentKeepalive time.Duration // whole seconds; 0 = off
}

// Marshal writes f in the canonical form: [Interface] first, keys in a
// fixed order, lists comma-separated. Parse(Marshal(f)) equals f for every
// f that Parse returned. It fails on values that cannot be written so that
// wg-quick reads them back unchanged (a newline, or a '#', which wg-quick
// takes for the start of a comment, even inside PostUp).
func Marshal(f *File) ([]byte, error) {
	w := &writer{}
	w.head(f)
	for i := range f.Peers {
		w.peer(&f.Peers[i])
	}
	if w.err != nil {
		return nil, w.err
	}
	return w.buf, nil
}

// writer appends a wg-quick file to buf and keeps the first error. Render
// streams a site's peers through the same methods Marshal uses (see
// sitePeer), so the two cannot drift apart; and since a 1000-site mesh
// renders a million peers, the methods append in place rather than build
// strings.
type writer struct {
	buf []byte
	err error
	// Render's scratch for routesMatch, kept with the buffer so that a
	// pooled writer reuses them all.
	slots []int32
	seen  []bool
}

func (w *writer) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

// head writes the comments before the first section and [Interface].
func (w *writer) head(f *File) {
	for _, c := range f.Comments {
		w.comment(c)
	}
	if len(f.Comments) > 0 {
		w.buf = append(w.buf, '\n')
	}
	i := &f.Interface
	w.line("[Interface]")
	for _, c := range i.Comments {
		w.comment(c)
	}
	if len(i.Addresses) > 0 {
		w.prefixes("Address = ", i.Addresses)
	}
	if i.ListenPort != 0 {
		w.uint("ListenPort", uint64(i.ListenPort))
	}
	if i.PrivateKey != nil {
		w.key("PrivateKey = ", i.PrivateKey)
	}
	if i.FwMark != 0 {
		w.uint("FwMark", uint64(i.FwMark))
	}
	if i.MTU != 0 {
		if i.MTU < 0 || i.MTU > 65535 {
			w.fail(fmt.Errorf("MTU %d out of range", i.MTU))
		}
		w.kv("MTU", strconv.Itoa(i.MTU))
	}
	if len(i.DNS) > 0 {
		for _, d := range i.DNS {
			if d == "" || strings.ContainsAny(d, ", \t") {
				w.fail(fmt.Errorf("DNS entry %q is empty or holds a separator", d))
			}
		}
		w.kv("DNS", strings.Join(i.DNS, ", "))
	}
	if i.Table != "" {
		w.kv("Table", i.Table)
	}
	if i.SaveConfig {
		w.kv("SaveConfig", "true")
	}
	for _, h := range []struct {
		key  string
		cmds []string
	}{{"PreUp", i.PreUp}, {"PostUp", i.PostUp}, {"PreDown", i.PreDown}, {"PostDown", i.PostDown}} {
		for _, c := range h.cmds {
			w.kv(h.key, c)
		}
	}
}

func (w *writer) peer(p *Peer) {
	w.peerHeader()
	for _, c := range p.Comments {
		w.comment(c)
	}
	w.peerBody(p.PublicKey, p.PresharedKey, p.AllowedIPs, p.Endpoint, p.PersistentKeepalive)
}

func (w *writer) peerHeader() {
	w.buf = append(w.buf, "\n[Peer]\n"...)
}

// peerBody writes a [Peer] section's keys, after its comments.
func (w *writer) peerBody(pub wgtypes.Key, psk *wgtypes.Key, allowed []netip.Prefix, endpoint string, ka time.Duration) {
	w.key("PublicKey = ", &pub)
	if psk != nil {
		w.key("PresharedKey = ", psk)
	}
	if len(allowed) > 0 {
		w.prefixes("AllowedIPs = ", allowed)
	}
	if endpoint != "" {
		if plainEndpoint(endpoint) {
			w.buf = append(append(append(w.buf, "Endpoint = "...), endpoint...), '\n')
		} else {
			if err := checkEndpoint(endpoint); err != nil {
				w.fail(err)
			}
			w.kv("Endpoint", endpoint)
		}
	}
	if ka != 0 {
		if ka < 0 || ka%time.Second != 0 || ka > 65535*time.Second {
			w.fail(fmt.Errorf("PersistentKeepalive %v is not a whole number of seconds in 1..65535", ka))
		}
		w.uint("PersistentKeepalive", uint64(ka/time.Second))
	}
}

// plainEndpoint reports, faster than checkEndpoint and kv together (every
// peer of a mesh has one, so a 1000-site plan checks a million), that v is
// the common name:port or IPv4:port that both accept: one ':', a non-empty
// host without brackets, blanks or '#', and a port of 1 to 5 digits in
// 1..65535. Anything else takes the full checks, so this only ever says yes
// to what they would pass.
func plainEndpoint(v string) bool {
	i := strings.IndexByte(v, ':')
	if i <= 0 || len(v)-i-1 < 1 || len(v)-i-1 > 5 {
		return false
	}
	for j := 0; j < i; j++ {
		switch v[j] {
		case ':', '[', ']', ' ', '\t', '#', '\n', '\r', '\v', '\f':
			return false
		}
		if v[j] >= 0x80 { // TrimSpace knows Unicode spaces; leave those to kv
			return false
		}
	}
	port := 0
	for j := i + 1; j < len(v); j++ {
		if v[j] < '0' || v[j] > '9' {
			return false
		}
		port = port*10 + int(v[j]-'0')
	}
	return port >= 1 && port <= 65535
}

func (w *writer) line(s string) {
	w.buf = append(w.buf, s...)
	w.buf = append(w.buf, '\n')
}

func (w *writer) comment(c string) {
	if !strings.HasPrefix(c, "#") || strings.IndexByte(c, '\n') >= 0 || strings.TrimSpace(c) != c {
		w.fail(fmt.Errorf("comment %q must be one line starting with '#'", c))
	}
	w.line(c)
}

func (w *writer) kv(k, v string) {
	if v == "" || strings.IndexByte(v, '#') >= 0 || strings.IndexByte(v, '\n') >= 0 || strings.TrimSpace(v) != v {
		w.fail(fmt.Errorf("%s value %q cannot be written: empty, surrounding space, '#' or newline", k, v))
	}
	w.buf = append(w.buf, k...)
	w.buf = append(w.buf, " = "...)
	w.line(v)
}

// The values below are formatted by the writer itself, so they need none
// of kv's checks: digits, base64 and prefixes hold no '#', newline or
// space.

func (w *writer) uint(k string, v uint64) {
	w.buf = append(w.buf, k...)
	w.buf = append(w.buf, " = "...)
	w.buf = strconv.AppendUint(w.buf, v, 10)
	w.buf = append(w.buf, '\n')
}

// key writes k in standard base64, as wgtypes.Key.String does; name
// includes the " = ".
func (w *writer) key(name string, k *wgtypes.Key) {
	var line [64]byte
	n := copy(line[:], name)
	base64.StdEncoding.Encode(line[n:n+44], k[:])
	line[n+44] = '\n'
	w.buf = append(w.buf, line[:n+45]...)
}

// prefixes writes a list; k includes the " = ".
func (w *writer) prefixes(k string, ps []netip.Prefix) {
	b := append(w.buf, k...)
	for i, p := range ps {
		if !p.IsValid() {
			w.fail(fmt.Errorf("invalid prefix in %v", ps))
		}
		if i > 0 {
			b = append(b, ", "...)
		}
		b = appendPrefix(b, p)
	}
	w.buf = append(b, '\n')
}

// appendPrefix is netip.Prefix.AppendTo, with IPv4 (most of a mesh's
// AllowedIPs) formatted from a table in one copy.
func appendPrefix(b []byte, p netip.Prefix) []byte {
	a := p.Addr()
	if !a.Is4() || !p.IsValid() {
		return p.AppendTo(b)
	}
	var out [len("255.255.255.255/32") + 2]byte // +2: each put writes 3 bytes
	n := 0
	put := func(x byte) {
		d := &decimal[x]
		out[n], out[n+1], out[n+2] = d[0], d[1], d[2]
		n += int(d[3])
	}
	v := a.As4()
	put(v[0])
	out[n] = '.'
	n++
	put(v[1])
	out[n] = '.'
	n++
	put(v[2])
	out[n] = '.'
	n++
	put(v[3])
	out[n] = '/'
	n++
	put(byte(p.Bits()))
	return append(b, out[:n]...)
}

// decimal holds 0..255 in decimal, left-aligned, with the digit count last.
var decimal = func() (t [256][4]byte) {
	for i := range t {
		s := strconv.Itoa(i)
		copy(t[i][:3], s)
		t[i][3] = byte(len(s))
	}
	return t
}()
