package plan

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2/unstable"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Limits the validation enforces.
const (
	MaxNameLen = 32
	// MinMTU is the smallest MTU for plans that carry IPv6 (a tunnel or a LAN
	// prefix): Linux removes IPv6 from links below 1280. IPv4-only plans may
	// go down to MinMTUIPv4, the smallest datagram every IPv4 host accepts.
	MinMTU     = 1280
	MinMTUIPv4 = 576
	// MaxMTU allows jumbo-frame underlays (9000) minus nothing: WireGuard's
	// own overhead must fit under the underlay MTU, which the plan cannot see.
	MaxMTU = 9000
	// MaxKeepalive is the largest persistent keepalive WireGuard accepts.
	MaxKeepalive = 65535
)

var (
	networkKeys = []string{"name", "tunnel", "port", "mtu", "hub", "keepalive"}
	siteKeys    = []string{"name", "public_key", "endpoint", "lan", "address", "port", "masquerade", "mss_clamp"}
)

// checker collects problems while converting a rawDoc into a Plan.
type checker struct {
	file    string
	doc     *rawDoc
	probs   Problems
	mtuLine int
	// tunnelsOK is false when the tunnel prefixes are missing or have
	// problems; address checks are then skipped, since every address
	// would look wrong against a wrong prefix.
	tunnelsOK bool
}

func (c *checker) add(line int, site, field, msg, fix string) {
	c.probs = append(c.probs, Problem{File: c.file, Line: line, Site: site, Field: field, Msg: msg, Fix: fix})
}

// siteMeta is what validation learnt about a site beyond the typed Site:
// where each of its values sits, for messages.
type siteMeta struct {
	label     string
	line      int
	nameLine  int
	keyLine   int
	hasKey    bool
	lanLines  []int
	addrLines []int
	addrLine  int // line of the address key, or the header when missing
	epLine    int
}

// check converts and validates; the Plan is nil when there are problems.
func check(filename string, d *rawDoc) (*Plan, Problems) {
	c := &checker{file: filename, doc: d}
	p := &Plan{}
	c.network(&p.Network)
	metas := make([]siteMeta, len(d.sites))
	for i, t := range d.sites {
		p.Sites = append(p.Sites, c.site(i, t, &metas[i]))
	}
	c.cross(p, metas)
	if len(c.probs) > 0 {
		return nil, c.probs.sorted()
	}
	p.index()
	return p, nil
}

func (c *checker) network(n *Network) {
	d := c.doc
	for _, f := range d.root.fields {
		fix := "put it under [network] or inside a [[site]] table"
		if f.key == "site" {
			fix = "write each site as its own [[site]] table"
		}
		c.add(f.line, "", f.key, "key outside any table is not part of a plan", fix)
	}
	for _, t := range d.tables {
		if t.kind != tableOther {
			continue
		}
		switch {
		case t.header == "network":
			c.add(t.line, "", "", "[[network]] is not a plan table", "write [network] (single brackets): there is one network per plan")
		case t.header == "site":
			c.add(t.line, "", "", "[site] is not a plan table", "write [[site]] (double brackets): a plan has a list of sites")
		default:
			fix := "the plan has only [network] and [[site]] tables"
			if s := closest(t.header, []string{"network", "site"}); s != "" {
				fix = fmt.Sprintf("did you mean %s?", map[string]string{"network": "[network]", "site": "[[site]]"}[s])
			}
			c.add(t.line, "", "", fmt.Sprintf("unknown table %q", t.header), fix)
		}
	}

	n.Port, n.MTU, n.Keepalive = DefaultPort, DefaultMTU, DefaultKeepalive
	t := d.network
	if t == nil {
		c.add(0, "", "", "no [network] table",
			`add a [network] table with name and tunnel, e.g. [network] name = "acme" tunnel = ["10.255.0.0/24"] (lanlink init writes one)`)
		return
	}
	var haveName, haveTunnel bool
	for _, f := range t.fields {
		switch f.key {
		case "name":
			if s, ok := c.str(f, ""); ok {
				haveName = true
				if msg := badName(s); msg != "" {
					c.add(f.line, "", f.key, msg, nameFix)
				}
				n.Name = s
			}
		case "tunnel":
			haveTunnel = true
			before := len(c.probs)
			n.Tunnels = c.tunnels(f)
			c.tunnelsOK = len(c.probs) == before
		case "port":
			if v, ok := c.intIn(f, "", 1, 65535, "use a UDP port between 1 and 65535, e.g. 51820"); ok {
				n.Port = uint16(v)
			}
		case "mtu":
			c.mtuLine = f.line
			if v, ok := c.intIn(f, "", MinMTUIPv4, MaxMTU, fmt.Sprintf("use a value between %d and %d; %d suits most links", MinMTU, MaxMTU, DefaultMTU)); ok {
				n.MTU = int(v)
			}
		case "hub":
			if s, ok := c.str(f, ""); ok {
				n.Hub = s
				if s == "" {
					c.add(f.line, "", f.key, "is empty", "name a site that has an endpoint, or remove the line to use the first such site")
				}
			}
		case "keepalive":
			if v, ok := c.intIn(f, "", 1, MaxKeepalive, "use seconds between 1 and 65535; 25 keeps almost every NAT mapping open"); ok {
				n.Keepalive = time.Duration(v) * time.Second
			}
		default:
			c.unknownKey(f, "", networkKeys)
		}
	}
	if !haveName {
		c.add(t.line, "", "name", "[network] has no name", `add name = "yourcompany" under [network]`)
	}
	if !haveTunnel {
		c.add(t.line, "", "tunnel", "[network] has no tunnel prefix",
			`add tunnel = ["10.255.0.0/24"] (a private range no LAN uses) under [network]`)
	}
}

const nameFix = "use 1-32 letters, digits and '-', not starting with '-'"

func badName(s string) string {
	switch {
	case s == "":
		return "is empty"
	case len(s) > MaxNameLen:
		return fmt.Sprintf("%q is longer than %d characters", s, MaxNameLen)
	case s[0] == '-':
		return fmt.Sprintf("%q starts with '-'", s)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return fmt.Sprintf("%q contains %q", s, r)
		}
	}
	return ""
}

func (c *checker) unknownKey(f rawField, site string, known []string) {
	fix := "known keys are " + strings.Join(known, ", ")
	if s := closest(f.key, known); s != "" {
		fix = fmt.Sprintf("did you mean %q?", s)
	}
	c.add(f.line, site, f.key, "unknown key", fix)
}

func kindName(k unstable.Kind) string {
	switch k {
	case unstable.String:
		return "a string"
	case unstable.Integer:
		return "an integer"
	case unstable.Float:
		return "a number with a fraction"
	case unstable.Bool:
		return "true/false"
	case unstable.Array:
		return "a list"
	case unstable.InlineTable:
		return "a table"
	}
	return "a date/time"
}

func (c *checker) str(f rawField, site string) (string, bool) {
	if f.val.kind != unstable.String {
		c.add(f.line, site, f.key, "must be a string, not "+kindName(f.val.kind), fmt.Sprintf(`write %s = "…" with double quotes`, f.key))
		return "", false
	}
	return f.val.text, true
}

type lineStr struct {
	s    string
	line int
}

func (c *checker) strs(f rawField, site, example string) ([]lineStr, bool) {
	if f.val.kind != unstable.Array {
		c.add(f.line, site, f.key, "must be a list of strings, not "+kindName(f.val.kind), fmt.Sprintf(`write %s = [%q]`, f.key, example))
		return nil, false
	}
	out := make([]lineStr, 0, len(f.val.items))
	ok := true
	for _, it := range f.val.items {
		if it.kind != unstable.String {
			c.add(cmp.Or(it.line, f.line), site, f.key, "list items must be strings, not "+kindName(it.kind), fmt.Sprintf(`quote each item, e.g. [%q]`, example))
			ok = false
			continue
		}
		out = append(out, lineStr{it.text, cmp.Or(it.line, f.line)})
	}
	return out, ok
}

func (c *checker) intIn(f rawField, site string, lo, hi int64, fix string) (int64, bool) {
	if f.val.kind != unstable.Integer {
		c.add(f.line, site, f.key, "must be an integer, not "+kindName(f.val.kind), fix)
		return 0, false
	}
	v, err := strconv.ParseInt(f.val.text, 0, 64)
	if err != nil || v < lo || v > hi {
		c.add(f.line, site, f.key, fmt.Sprintf("%s is out of range %d-%d", f.val.text, lo, hi), fix)
		return 0, false
	}
	return v, true
}

func (c *checker) boolean(f rawField, site string) (bool, bool) {
	if f.val.kind != unstable.Bool {
		c.add(f.line, site, f.key, "must be true or false, not "+kindName(f.val.kind), fmt.Sprintf("write %s = true or %s = false, without quotes", f.key, f.key))
		return false, false
	}
	return f.val.text == "true", true
}

// prefix parses a CIDR and insists on a clean network address, because a
// prefix with host bits set is almost always a gateway address typed where
// the network was meant.
func prefix(s string) (netip.Prefix, string, string) {
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		if a, aerr := netip.ParseAddr(s); aerr == nil {
			bits := 24
			if a.Is6() {
				bits = 64
			}
			return netip.Prefix{}, fmt.Sprintf("%q has no prefix length", s), fmt.Sprintf("write it as a network, e.g. %s", netip.PrefixFrom(a, bits).Masked())
		}
		return netip.Prefix{}, fmt.Sprintf("%q is not a CIDR prefix", s), `write a network like "192.168.10.0/24" or "fd00:10::/64"`
	}
	if pfx.Addr().Zone() != "" {
		return netip.Prefix{}, fmt.Sprintf("%q has an IPv6 zone", s), "remove the %zone"
	}
	if m := pfx.Masked(); m != pfx {
		return netip.Prefix{}, fmt.Sprintf("%s has host bits set", s), fmt.Sprintf("use %s", m)
	}
	if pfx.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Sprintf("%s is an IPv4-mapped IPv6 prefix", s), "write the IPv4 prefix instead"
	}
	return pfx, "", ""
}

func (c *checker) tunnels(f rawField) []netip.Prefix {
	items, _ := c.strs(f, "", "10.255.0.0/24")
	if f.val.kind == unstable.Array && len(items) == 0 && len(f.val.items) == 0 {
		c.add(f.line, "", f.key, "is empty", `add a private prefix no LAN uses, e.g. tunnel = ["10.255.0.0/24"]`)
	}
	var out []netip.Prefix
	var have4, have6 bool
	for _, it := range items {
		pfx, msg, fix := prefix(it.s)
		if msg != "" {
			c.add(it.line, "", f.key, msg, fix)
			continue
		}
		if pfx.Addr().Is4() {
			if have4 {
				c.add(it.line, "", f.key, fmt.Sprintf("%s is a second IPv4 tunnel prefix", pfx), "keep one IPv4 and at most one IPv6 prefix")
				continue
			}
			have4 = true
			if pfx.Bits() > 30 {
				c.add(it.line, "", f.key, fmt.Sprintf("%s is too small for two sites", pfx), "use /30 or larger, e.g. "+pfx.Addr().String()+"/24")
				continue
			}
		} else {
			if have6 {
				c.add(it.line, "", f.key, fmt.Sprintf("%s is a second IPv6 tunnel prefix", pfx), "keep one IPv4 and at most one IPv6 prefix")
				continue
			}
			have6 = true
			if pfx.Bits() > 126 {
				c.add(it.line, "", f.key, fmt.Sprintf("%s is too small for two sites", pfx), "use /126 or larger, e.g. /64")
				continue
			}
		}
		out = append(out, pfx)
	}
	return out
}

func (c *checker) site(i int, t *rawTable, m *siteMeta) Site {
	var s Site
	m.line, m.addrLine = t.line, t.line
	m.label = fmt.Sprintf("#%d", i+1)
	if f := t.field("name"); f != nil && f.val.kind == unstable.String && f.val.text != "" {
		m.label = f.val.text
	}
	lbl := m.label
	var haveName, haveKey bool
	for _, f := range t.fields {
		switch f.key {
		case "name":
			haveName = true
			m.nameLine = f.line
			if v, ok := c.str(f, lbl); ok {
				if msg := badName(v); msg != "" {
					c.add(f.line, lbl, f.key, msg, nameFix)
				}
				s.Name = v
			}
		case "public_key":
			haveKey = true
			m.keyLine = f.line
			if v, ok := c.str(f, lbl); ok {
				k, err := wgtypes.ParseKey(v)
				if err != nil {
					c.add(f.line, lbl, f.key, fmt.Sprintf("%q is not a WireGuard public key (44 characters of standard base64 encoding 32 bytes)", v),
						"paste the public key that `lanlink keygen` printed on this site's gateway")
				} else {
					s.PublicKey, m.hasKey = k, true
				}
			}
		case "endpoint":
			m.epLine = f.line
			if v, ok := c.str(f, lbl); ok {
				if v == "" {
					c.add(f.line, lbl, f.key, "is empty", "remove the line if the site has no public address, or write host:port")
				} else if msg, fix := badEndpoint(v); msg != "" {
					c.add(f.line, lbl, f.key, msg, fix)
				} else {
					s.Endpoint = v
				}
			}
		case "lan":
			items, _ := c.strs(f, lbl, "192.168.10.0/24")
			for _, it := range items {
				pfx, msg, fix := prefix(it.s)
				if msg == "" && pfx.Bits() == 0 {
					msg, fix = fmt.Sprintf("%s would send all traffic into the tunnel", pfx), "list only the site's own LAN networks"
				}
				if msg != "" {
					c.add(it.line, lbl, f.key, msg, fix)
					continue
				}
				s.LANs = append(s.LANs, pfx)
				m.lanLines = append(m.lanLines, it.line)
			}
		case "address":
			m.addrLine = f.line
			items, _ := c.strs(f, lbl, "10.255.0.1")
			for _, it := range items {
				a, err := netip.ParseAddr(it.s)
				if err != nil || a.Zone() != "" || a.Is4In6() {
					fix := "write a plain address from the tunnel prefix, e.g. \"10.255.0.1\""
					if p, perr := netip.ParsePrefix(it.s); perr == nil {
						fix = fmt.Sprintf("write just the address: %q", p.Addr())
					}
					c.add(it.line, lbl, f.key, fmt.Sprintf("%q is not an IP address", it.s), fix)
					continue
				}
				s.Addresses = append(s.Addresses, a)
				m.addrLines = append(m.addrLines, it.line)
			}
		case "port":
			if v, ok := c.intIn(f, lbl, 1, 65535, "use a UDP port between 1 and 65535, or remove the line to use the network's port"); ok {
				s.Port = uint16(v)
			}
		case "masquerade":
			s.Masquerade, _ = c.boolean(f, lbl)
		case "mss_clamp":
			s.MSSClamp, _ = c.boolean(f, lbl)
		default:
			c.unknownKey(f, lbl, siteKeys)
		}
	}
	if !haveName {
		c.add(t.line, lbl, "name", "site has no name", `add name = "office-name" to this [[site]]`)
	}
	if !haveKey {
		c.add(t.line, lbl, "public_key", "site has no public key", "run `lanlink keygen` on the site's gateway and add public_key = \"<what it printed>\"")
	}
	return s
}

// badEndpoint checks "host:port" where host is a DNS name, an IPv4 address
// or a bracketed IPv6 address.
func badEndpoint(s string) (msg, fix string) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if strings.Count(s, ":") > 1 && !strings.HasPrefix(s, "[") {
			return fmt.Sprintf("%q: an IPv6 address needs brackets", s), fmt.Sprintf("write [address]:port, e.g. \"[%s]:%d\"", s, DefaultPort)
		}
		if !strings.Contains(s, ":") {
			return fmt.Sprintf("%q has no port", s), fmt.Sprintf("write host:port, e.g. \"%s:%d\"", s, DefaultPort)
		}
		return fmt.Sprintf("%q is not host:port", s), fmt.Sprintf("write host:port, e.g. \"office-a.example.com:%d\"", DefaultPort)
	}
	if host == "" {
		return fmt.Sprintf("%q has an empty host", s), fmt.Sprintf("write the gateway's public DNS name or address before the port, e.g. \"office-a.example.com:%s\"", port)
	}
	pn, err := strconv.Atoi(port)
	if err != nil || port[0] == '+' || port[0] == '-' || pn < 1 || pn > 65535 {
		return fmt.Sprintf("%q: port %q is out of range 1-65535", s, port), "use the UDP port forwarded to the gateway, e.g. 51820"
	}
	bracketed := strings.HasPrefix(s, "[")
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return fmt.Sprintf("%q has an IPv6 zone", s), "remove the %zone: endpoints must be global addresses"
		}
		if bracketed != a.Is6() {
			return fmt.Sprintf("%q: only IPv6 addresses go in brackets", s), fmt.Sprintf("write \"%s:%s\"", a, port)
		}
		return "", ""
	}
	if bracketed {
		return fmt.Sprintf("%q: %q is not an IPv6 address", s, host), "put only IPv6 addresses in brackets"
	}
	if len(host) > 253 {
		return fmt.Sprintf("%q: host name is too long", s), "use a DNS name of at most 253 characters"
	}
	for _, label := range strings.Split(strings.TrimSuffix(host, "."), ".") {
		ok := label != "" && len(label) <= 63 && label[0] != '-' && label[len(label)-1] != '-'
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				ok = false
			}
		}
		if !ok {
			return fmt.Sprintf("%q: %q is not a valid host name", s, host), "use a DNS name (letters, digits, '-' and '.'), an IPv4 address or [IPv6]"
		}
	}
	return "", ""
}

// tunnelReserved reports addresses no site may use: the network address of
// the tunnel prefix, and for IPv4 its broadcast address.
func tunnelReserved(pfx netip.Prefix, a netip.Addr) bool {
	return a == pfx.Addr() || (a.Is4() && a == lastAddr(pfx))
}

func lastAddr(pfx netip.Prefix) netip.Addr {
	b := pfx.Addr().AsSlice()
	for i := pfx.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// owned is a prefix tagged with who uses it, for the overlap sweep.
type owned struct {
	pfx  netip.Prefix
	site int // index into Sites; -1 for a tunnel prefix
	line int
}

func (c *checker) cross(p *Plan, metas []siteMeta) {
	tunnels := p.Network.Tunnels

	// Names and keys: report the later duplicate and name the earlier one.
	names := map[string]int{}
	keys := map[wgtypes.Key]int{}
	for i, s := range p.Sites {
		if s.Name != "" && badName(s.Name) == "" {
			if j, dup := names[s.Name]; dup {
				c.add(metas[i].nameLine, metas[i].label, "name", fmt.Sprintf("site name %q is already used at line %d", s.Name, metas[j].line), "give each site its own name")
			} else {
				names[s.Name] = i
			}
		}
		if metas[i].hasKey {
			if j, dup := keys[s.PublicKey]; dup {
				c.add(metas[i].keyLine, metas[i].label, "public_key", fmt.Sprintf("same public key as site %q (line %d)", metas[j].label, metas[j].keyLine),
					"each gateway needs its own key: run `lanlink keygen` on this site's gateway and use the key it prints")
			} else {
				keys[s.PublicKey] = i
			}
		}
	}

	// Overlaps: CIDR blocks are either nested or disjoint, so after sorting
	// by start address a block overlaps an earlier one exactly when some
	// still-open block contains its start. A stack of open blocks makes this
	// O(n log n) instead of comparing every pair.
	var all []owned
	for _, t := range tunnels {
		all = append(all, owned{pfx: t, site: -1, line: c.doc.network.field("tunnel").line})
	}
	for i, s := range p.Sites {
		for j, l := range s.LANs {
			all = append(all, owned{pfx: l, site: i, line: metas[i].lanLines[j]})
		}
	}
	slices.SortStableFunc(all, func(a, b owned) int {
		if r := a.pfx.Addr().Compare(b.pfx.Addr()); r != 0 {
			return r
		}
		return a.pfx.Bits() - b.pfx.Bits()
	})
	var open []owned
	for _, o := range all {
		for len(open) > 0 && !open[len(open)-1].pfx.Contains(o.pfx.Addr()) {
			open = open[:len(open)-1]
		}
		if len(open) > 0 {
			c.overlap(p, metas, open[len(open)-1], o)
		}
		open = append(open, o)
	}

	// Tunnel addresses: one per tunnel prefix, inside it, not reserved,
	// not shared.
	taken := map[netip.Addr]int{}
	for i, s := range p.Sites {
		for _, a := range s.Addresses {
			if _, dup := taken[a]; !dup {
				taken[a] = i
			}
		}
	}
	for i := range p.Sites {
		if !c.tunnelsOK {
			break
		}
		s := &p.Sites[i]
		m := &metas[i]
		byTunnel := make([]netip.Addr, len(tunnels))
		for j, a := range s.Addresses {
			line := m.addrLines[j]
			ti := slices.IndexFunc(tunnels, func(t netip.Prefix) bool { return t.Contains(a) })
			switch {
			case ti < 0:
				fix := "use an address inside the tunnel prefix"
				if len(tunnels) > 0 {
					fix = fmt.Sprintf("use an address inside %s", joinPrefixes(tunnels))
				}
				c.add(line, m.label, "address", fmt.Sprintf("%s is outside the tunnel prefix", a), fix)
				continue
			case tunnelReserved(tunnels[ti], a):
				what := "network"
				if a != tunnels[ti].Addr() {
					what = "broadcast"
				}
				c.add(line, m.label, "address", fmt.Sprintf("%s is the %s address of %s", a, what, tunnels[ti]), c.suggestFix(tunnels[ti], taken))
				continue
			case byTunnel[ti].IsValid():
				c.add(line, m.label, "address", fmt.Sprintf("%s is a second address in %s", a, tunnels[ti]), "keep one address per tunnel prefix")
				continue
			}
			if j := taken[a]; j != i {
				c.add(line, m.label, "address", fmt.Sprintf("%s is already used by site %q", a, metas[j].label), c.suggestFix(tunnels[ti], taken))
				continue
			}
			byTunnel[ti] = a
		}
		s.Addresses = byTunnel
		for ti, a := range byTunnel {
			if !a.IsValid() {
				c.add(m.addrLine, m.label, "address", fmt.Sprintf("no address in tunnel prefix %s", tunnels[ti]), c.suggestFix(tunnels[ti], taken))
			}
		}
	}

	// Linux drops IPv6 from links with an MTU below 1280.
	if p.Network.MTU < MinMTU && c.mtuLine > 0 {
		v6 := slices.ContainsFunc(all, func(o owned) bool { return o.pfx.Addr().Is6() })
		if v6 {
			c.add(c.mtuLine, "", "mtu", fmt.Sprintf("%d is below %d, the minimum for IPv6, which this plan carries", p.Network.MTU, MinMTU),
				fmt.Sprintf("use at least %d; %d suits most links", MinMTU, DefaultMTU))
		}
	}

	// Hub and paths.
	hubLine := 0
	if f := c.doc.network; f != nil {
		if hf := f.field("hub"); hf != nil {
			hubLine = hf.line
		}
	}
	firstPublic, nat := -1, []int{}
	for i, s := range p.Sites {
		if s.Endpoint != "" {
			if firstPublic < 0 {
				firstPublic = i
			}
		} else if metas[i].epLine == 0 {
			nat = append(nat, i)
		}
	}
	if h := p.Network.Hub; h != "" {
		i, ok := names[h]
		switch {
		case !ok:
			fix := "name a site that has an endpoint, or remove hub to use the first such site"
			if s := closest(h, slices.Collect(mapKeys(names))); s != "" {
				fix = fmt.Sprintf("did you mean %q?", s)
			}
			c.add(hubLine, "", "hub", fmt.Sprintf("no site is named %q", h), fix)
		case p.Sites[i].Endpoint == "" && metas[i].epLine == 0:
			c.add(hubLine, "", "hub", fmt.Sprintf("site %q has no endpoint, so other sites cannot reach it to be relayed", h),
				fmt.Sprintf("give %q an endpoint, or name a site that has one", h))
		}
	}
	if firstPublic < 0 && len(nat) >= 2 {
		a, b := metas[nat[0]], metas[nat[1]]
		c.add(b.line, b.label, "endpoint", fmt.Sprintf("no path between sites %q and %q: neither has an endpoint and no site has one to relay through", a.label, b.label),
			"give at least one site an endpoint (a public host:port the others can reach): it becomes the hub that relays for sites behind NAT")
	}
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func (c *checker) overlap(p *Plan, metas []siteMeta, outer, inner owned) {
	switch {
	case outer.site < 0 && inner.site < 0:
		// Tunnel prefixes of different families never overlap.
	case inner.site < 0:
		c.add(outer.line, metas[outer.site].label, "lan", fmt.Sprintf("%s overlaps the tunnel prefix %s", outer.pfx, inner.pfx),
			"pick a tunnel prefix no LAN uses, or correct the LAN")
	case outer.site < 0:
		c.add(inner.line, metas[inner.site].label, "lan", fmt.Sprintf("%s overlaps the tunnel prefix %s", inner.pfx, outer.pfx),
			"pick a tunnel prefix no LAN uses, or correct the LAN")
	case outer.site == inner.site:
		c.add(inner.line, metas[inner.site].label, "lan", fmt.Sprintf("%s overlaps %s of the same site", inner.pfx, outer.pfx),
			fmt.Sprintf("remove %s: %s already covers it", inner.pfx, outer.pfx))
	default:
		a, b := outer, inner
		if b.line < a.line {
			a, b = b, a
		}
		c.add(b.line, metas[b.site].label, "lan", fmt.Sprintf("%s overlaps %s of site %q (line %d)", b.pfx, a.pfx, metas[a.site].label, a.line),
			"LANs joined by lanlink must not overlap: renumber one of them, or list only the part that really is this site's")
	}
}

func (c *checker) suggestFix(pfx netip.Prefix, taken map[netip.Addr]int) string {
	if a, ok := lowestFree(pfx, func(a netip.Addr) bool { _, t := taken[a]; return t }); ok {
		return fmt.Sprintf("use a free address such as %s", a)
	}
	return fullFix(pfx)
}

func fullFix(pfx netip.Prefix) string {
	if pfx.Bits() == 0 {
		return "remove sites"
	}
	wider := netip.PrefixFrom(pfx.Addr(), pfx.Bits()-1).Masked()
	return fmt.Sprintf("widen tunnel to %s (existing addresses stay valid) or remove unused sites", wider)
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, " and ")
}
