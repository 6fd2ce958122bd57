package wgconf

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"lanlink/internal/plan"
)

// The render path appends in place and skips work (see writer, sitePeer,
// routesMatch, plainEndpoint, appendPrefix) for speed. These tests hold it
// to what it replaced: referenceMarshal is the Marshal before that work,
// kept verbatim as an oracle, and referencePeer is how FromSiteConfig built
// a peer then.

func referencePeer(p plan.Peer) Peer {
	wp := Peer{
		Comments:   []string{"# site " + oneLine(p.Site)},
		PublicKey:  p.PublicKey,
		AllowedIPs: slices.Clone(p.AllowedIPs),
		Endpoint:   p.Endpoint,
	}
	if len(p.Via) > 0 {
		wp.Comments = append(wp.Comments, "# relays for "+oneLine(strings.Join(p.Via, ", ")))
	}
	if p.Endpoint == "" {
		wp.Comments = append(wp.Comments, "# no endpoint: "+oneLine(p.Site)+" dials in")
	}
	if ka := p.PersistentKeepalive; ka > 0 {
		wp.PersistentKeepalive = (ka + time.Second - 1).Truncate(time.Second)
	}
	return wp
}

// referenceRender is Render as it was: FromSiteConfig (with referencePeer
// and the sorting route check), then referenceMarshal.
func referenceRender(c *plan.SiteConfig, o Options) ([]byte, error) {
	f, err := interfaceOf(c, o)
	if err != nil {
		return nil, err
	}
	for _, p := range c.Peers {
		f.Peers = append(f.Peers, referencePeer(p))
	}
	if got, want := Routes(f), canonical(c.Routes); !slices.Equal(got, want) {
		return nil, routeMismatch(c, got)
	}
	b, err := referenceMarshal(f)
	if err != nil {
		return nil, fmt.Errorf("render site %s: %w", c.Site, err)
	}
	return b, nil
}

// renderVariants are renderCases bent in every way the fast paths treat
// specially: names that make bad comments, odd endpoints, keepalives,
// prefixes, and routes that are equal as sets but not canonical, or not
// equal.
func renderVariants() map[string]*plan.SiteConfig {
	out := map[string]*plan.SiteConfig{}
	for name, c := range renderCases() {
		out[name] = c
	}
	base := func() *plan.SiteConfig { return renderCases()["mesh-alpha"] }
	nat := func() *plan.SiteConfig { return renderCases()["nat-site"] }
	six := func() *plan.SiteConfig { return renderCases()["ipv6"] }
	add := func(name string, c *plan.SiteConfig, mod func(c *plan.SiteConfig)) {
		mod(c)
		out[name] = c
	}
	for i, site := range []string{"", " ", "x ", "x\t", "a\nb", "a\rb", "x\u00a0", "x\u0085", "\xff", "x\xe2\x82", "é", "x\u2003", "#"} {
		add(fmt.Sprintf("peer name %d %q", i, site), base(), func(c *plan.SiteConfig) { c.Peers[0].Site = site })
		add(fmt.Sprintf("peer name no endpoint %d %q", i, site), base(), func(c *plan.SiteConfig) { c.Peers[1].Site, c.Peers[1].Endpoint = site, "" })
		add(fmt.Sprintf("via %d %q", i, site), nat(), func(c *plan.SiteConfig) { c.Peers[0].Via = []string{"ok", site} })
		add(fmt.Sprintf("site %d %q", i, site), base(), func(c *plan.SiteConfig) { c.Site, c.Network = site, site })
	}
	add("via empty", nat(), func(c *plan.SiteConfig) { c.Peers[0].Via = []string{""} })
	for i, ep := range []string{"a:1", "a:65535", "a:65536", "a:0", "a:00001", "a:000001", "a:", ":1", "a", "a:b", "a:1:2",
		"[::1]:1", "[::1]:0", "::1:51820", "[a]:1", "a]:1", "a[:1", "a b:1", "a\t:1", " a:1", "a:1 ", "a#b:1", "a:1#",
		"a\n:1", "é:1", "a\u00a0:1", "\u00a0a:1", "a:+1", "a:-1", "a:1_0", "1.2.3.4:51820", "host.example.com:51820"} {
		add(fmt.Sprintf("endpoint %d %q", i, ep), base(), func(c *plan.SiteConfig) { c.Peers[0].Endpoint = ep })
	}
	for i, ka := range []time.Duration{1, time.Second, 1500 * time.Millisecond, -time.Second, 65535 * time.Second, 65536 * time.Second, 65535*time.Second + 1} {
		add(fmt.Sprintf("keepalive %d %v", i, ka), nat(), func(c *plan.SiteConfig) { c.Peers[0].PersistentKeepalive = ka })
	}
	add("no peers", base(), func(c *plan.SiteConfig) { c.Peers, c.Routes = nil, nil })
	add("no addresses", base(), func(c *plan.SiteConfig) { c.Addresses = nil })
	add("no allowed ips", base(), func(c *plan.SiteConfig) { c.Peers[0].AllowedIPs = nil })
	add("invalid allowed ip", base(), func(c *plan.SiteConfig) { c.Peers[0].AllowedIPs = append(c.Peers[0].AllowedIPs, netip.Prefix{}) })
	add("unmasked allowed ip", base(), func(c *plan.SiteConfig) { c.Peers[0].AllowedIPs[1] = netipPrefix("192.168.20.7/24") })
	add("4in6 allowed ip", base(), func(c *plan.SiteConfig) {
		c.Peers[0].AllowedIPs = append(c.Peers[0].AllowedIPs, netipPrefix("::ffff:192.168.77.0/120"))
		c.Routes = append(c.Routes, netipPrefix("::ffff:192.168.77.0/120"))
	})
	add("4in6 route for a v4 allowed ip", base(), func(c *plan.SiteConfig) { c.Routes[0] = netipPrefix("::ffff:192.168.20.0/120") })
	add("default route", base(), func(c *plan.SiteConfig) {
		c.Peers[0].AllowedIPs = append(c.Peers[0].AllowedIPs, netipPrefix("0.0.0.0/0"))
		c.Routes = append(c.Routes, netipPrefix("0.0.0.0/0"))
	})
	add("same network, other length", base(), func(c *plan.SiteConfig) { c.Routes[0] = netipPrefix("192.168.20.0/23") })
	add("routes unsorted", base(), func(c *plan.SiteConfig) { slices.Reverse(c.Routes) })
	add("routes duplicated", base(), func(c *plan.SiteConfig) { c.Routes = append(c.Routes, c.Routes...) })
	add("routes unmasked", base(), func(c *plan.SiteConfig) { c.Routes[0] = netipPrefix("192.168.20.9/24") })
	add("route missing", base(), func(c *plan.SiteConfig) { c.Routes = c.Routes[1:] })
	add("route extra", base(), func(c *plan.SiteConfig) { c.Routes = append(c.Routes, netipPrefix("192.168.99.0/24")) })
	add("route extra duplicate allowed", base(), func(c *plan.SiteConfig) {
		c.Peers[1].AllowedIPs = append(c.Peers[1].AllowedIPs, c.Peers[0].AllowedIPs...)
	})
	add("tunnel address routed", base(), func(c *plan.SiteConfig) { c.Routes = append(c.Routes, netipPrefix("10.255.0.2/32")) })
	add("v6 routes unsorted", six(), func(c *plan.SiteConfig) { slices.Reverse(c.Routes) })
	add("v6 route missing", six(), func(c *plan.SiteConfig) { c.Routes = c.Routes[:1] })
	add("port out of range", base(), func(c *plan.SiteConfig) { c.ListenPort = 70000 })
	add("mtu out of range", base(), func(c *plan.SiteConfig) { c.MTU = 70000 })
	return out
}

func TestRenderMatchesReference(t *testing.T) {
	opts := map[string]Options{
		"default":         {},
		"iface":           {Interface: "wg-x.1"},
		"bad key file":    {KeyFile: "/a#b"},
		"quoted key file": {KeyFile: "/etc/my key"},
	}
	for name, c := range renderVariants() {
		for oname, o := range opts {
			t.Run(name+"/"+oname, func(t *testing.T) {
				want, wantErr := referenceRender(c, o)
				var buf bytes.Buffer
				buf.WriteString("untouched")
				err := Render(&buf, c, o)
				if fmt.Sprint(err) != fmt.Sprint(wantErr) {
					t.Fatalf("error %v, want %v", err, wantErr)
				}
				if wantErr != nil {
					if buf.String() != "untouched" {
						t.Errorf("Render wrote %q despite failing", buf.String())
					}
					return
				}
				if diff := cmp.Diff(string(want), strings.TrimPrefix(buf.String(), "untouched")); diff != "" {
					t.Errorf("Render differs from the reference (-want +got):\n%s", diff)
				}
				// FromSiteConfig still builds the same File.
				f, err := FromSiteConfig(c, o)
				if err != nil {
					t.Fatal(err)
				}
				for i, p := range c.Peers {
					if diff := cmp.Diff(referencePeer(p), f.Peers[i], cmpOpts); diff != "" {
						t.Errorf("FromSiteConfig peer %d (-want +got):\n%s", i, diff)
					}
				}
			})
		}
	}
}

func TestMarshalMatchesReference(t *testing.T) {
	key := testKey(9)
	files := map[string]*File{
		"everything": {
			Comments: []string{"# top"},
			Interface: Interface{Comments: []string{"# i"}, PrivateKey: &key, ListenPort: 1, FwMark: 0xffffffff,
				Addresses: pfx("10.0.0.1/24", "fd00::1/64", "::ffff:10.0.0.1/120"), MTU: 1280, DNS: []string{"1.1.1.1", "example.com"},
				Table: "off", SaveConfig: true, PreUp: []string{"a"}, PostUp: []string{"b", "c"}, PreDown: []string{"d"}, PostDown: []string{"e"}},
			Peers: []Peer{{Comments: []string{"# p"}, PublicKey: pub(1), PresharedKey: &key, AllowedIPs: pfx("0.0.0.0/0", "::/0", "255.255.255.255/32", "1.2.3.4/5"),
				Endpoint: "[2001:db8::1]:65535", PersistentKeepalive: 65535 * time.Second}},
		},
		"empty":         {},
		"bad mtu":       {Interface: Interface{MTU: -1}},
		"bad dns":       {Interface: Interface{DNS: []string{"a b"}}},
		"bad prefix":    {Interface: Interface{Addresses: []netip.Prefix{{}}}},
		"bad endpoint":  {Peers: []Peer{{Endpoint: "a#b:1"}}},
		"bad comment":   {Peers: []Peer{{Comments: []string{"# x "}}}},
		"bad hook":      {Interface: Interface{PostUp: []string{" x"}}},
		"bad keepalive": {Peers: []Peer{{PersistentKeepalive: time.Millisecond}}},
	}
	for name, f := range files {
		t.Run(name, func(t *testing.T) {
			want, wantErr := referenceMarshal(f)
			got, err := Marshal(f)
			if fmt.Sprint(err) != fmt.Sprint(wantErr) {
				t.Fatalf("error %v, want %v", err, wantErr)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestAppendPrefix(t *testing.T) {
	for x := range 256 {
		for _, bits := range []int{0, 1, 7, 8, 9, 24, 31, 32} {
			b := byte(x)
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte{b, 255 - b, b / 3, b ^ 0x5a}), bits)
			if got, want := string(appendPrefix([]byte("x"), p)), "x"+p.String(); got != want {
				t.Fatalf("appendPrefix(%v) = %q, want %q", p, got, want)
			}
		}
	}
	for _, p := range []netip.Prefix{{}, netipPrefix("fd00::/8"), netipPrefix("::ffff:1.2.3.4/128"), netip.PrefixFrom(netip.AddrFrom4([4]byte{1, 2, 3, 4}), 33)} {
		if got, want := string(appendPrefix(nil, p)), string(p.AppendTo(nil)); got != want {
			t.Errorf("appendPrefix(%#v) = %q, want %q", p, got, want)
		}
	}
}

// FuzzPlainEndpoint: the fast path says yes only to what the full checks
// (checkEndpoint and kv's) accept.
func FuzzPlainEndpoint(f *testing.F) {
	for _, s := range []string{"a:1", "a:65535", "a:65536", "a:0", "a:00001", "[::1]:1", "a#:1", "a :1", "a\u00a0:1", "1.2.3.4:51820", ":1", "a:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if !plainEndpoint(v) {
			return
		}
		if err := checkEndpoint(v); err != nil {
			t.Fatalf("plainEndpoint(%q) but checkEndpoint: %v", v, err)
		}
		w := &writer{}
		if w.kv("Endpoint", v); w.err != nil {
			t.Fatalf("plainEndpoint(%q) but kv: %v", v, w.err)
		}
	})
}

func referenceMarshal(f *File) ([]byte, error) {
	w := &refWriter{}
	for _, c := range f.Comments {
		w.comment(c)
	}
	if len(f.Comments) > 0 {
		w.buf.WriteByte('\n')
	}
	i := &f.Interface
	w.line("[Interface]")
	for _, c := range i.Comments {
		w.comment(c)
	}
	if len(i.Addresses) > 0 {
		w.kv("Address", w.prefixes(i.Addresses))
	}
	if i.ListenPort != 0 {
		w.kv("ListenPort", strconv.Itoa(int(i.ListenPort)))
	}
	if i.PrivateKey != nil {
		w.kv("PrivateKey", i.PrivateKey.String())
	}
	if i.FwMark != 0 {
		w.kv("FwMark", strconv.FormatUint(uint64(i.FwMark), 10))
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
	for _, p := range f.Peers {
		w.buf.WriteByte('\n')
		w.line("[Peer]")
		for _, c := range p.Comments {
			w.comment(c)
		}
		w.kv("PublicKey", p.PublicKey.String())
		if p.PresharedKey != nil {
			w.kv("PresharedKey", p.PresharedKey.String())
		}
		if len(p.AllowedIPs) > 0 {
			w.kv("AllowedIPs", w.prefixes(p.AllowedIPs))
		}
		if p.Endpoint != "" {
			if err := checkEndpoint(p.Endpoint); err != nil {
				w.fail(err)
			}
			w.kv("Endpoint", p.Endpoint)
		}
		if ka := p.PersistentKeepalive; ka != 0 {
			if ka < 0 || ka%time.Second != 0 || ka > 65535*time.Second {
				w.fail(fmt.Errorf("PersistentKeepalive %v is not a whole number of seconds in 1..65535", ka))
			}
			w.kv("PersistentKeepalive", strconv.Itoa(int(ka/time.Second)))
		}
	}
	if w.err != nil {
		return nil, w.err
	}
	return w.buf.Bytes(), nil
}

type refWriter struct {
	buf bytes.Buffer
	err error
}

func (w *refWriter) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

func (w *refWriter) line(s string) {
	w.buf.WriteString(s)
	w.buf.WriteByte('\n')
}

func (w *refWriter) comment(c string) {
	if !strings.HasPrefix(c, "#") || strings.ContainsAny(c, "\n") || strings.TrimSpace(c) != c {
		w.fail(fmt.Errorf("comment %q must be one line starting with '#'", c))
	}
	w.line(c)
}

func (w *refWriter) kv(k, v string) {
	if v == "" || strings.ContainsAny(v, "#\n") || strings.TrimSpace(v) != v {
		w.fail(fmt.Errorf("%s value %q cannot be written: empty, surrounding space, '#' or newline", k, v))
	}
	w.line(k + " = " + v)
}

func (w *refWriter) prefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		if !p.IsValid() {
			w.fail(fmt.Errorf("invalid prefix in %v", ps))
		}
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

func TestIsMasked(t *testing.T) {
	for _, s := range []string{"0.0.0.0/0", "1.2.3.4/0", "1.2.3.4/32", "1.2.3.4/31", "1.2.3.0/24", "1.2.3.128/24", "128.0.0.0/1", "192.0.0.0/1",
		"::/0", "::1/0", "fd00::/8", "fd00::1/64", "::ffff:1.2.3.0/120", "::ffff:1.2.3.4/120"} {
		p := netipPrefix(s)
		if got, want := isMasked(p), p.Masked() == p; got != want {
			t.Errorf("isMasked(%s) = %v, want %v", s, got, want)
		}
	}
	for _, p := range []netip.Prefix{{}, netip.PrefixFrom(netip.AddrFrom4([4]byte{1, 2, 3, 4}), 33)} {
		if got, want := isMasked(p), p.Masked() == p; got != want {
			t.Errorf("isMasked(%#v) = %v, want %v", p, got, want)
		}
	}
}
