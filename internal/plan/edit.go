package plan

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The edit functions work on the text of the plan, not on a Plan: the file
// is the user's, with their comments, ordering and layout, and an edit must
// change only the lines it is about. Each edit is a list of splices (byte
// ranges of the original replaced by new text); the result is re-parsed and
// validated, and an edit that would leave an invalid plan returns Problems
// and no data, so the caller leaves the file as it was.

type splice struct {
	start, end int // byte range of the original text to replace
	text       string
}

// apply performs the splices (sorted, non-overlapping) and validates the
// result. Problems in the result are reported at the lines of the original
// file; a problem inside new text has no such line and gets line 0.
func apply(filename string, d *rawDoc, sp []splice) ([]byte, *Plan, error) {
	slices.SortStableFunc(sp, func(a, b splice) int { return a.start - b.start })
	var out bytes.Buffer
	out.Grow(len(d.data) + 256)
	prev := 0
	for _, s := range sp {
		out.Write(d.data[prev:s.start])
		out.WriteString(s.text)
		prev = s.end
	}
	out.Write(d.data[prev:])
	res := out.Bytes()

	p, err := Parse(filename, res)
	if err != nil {
		probs, ok := err.(Problems)
		if !ok {
			return nil, nil, err
		}
		probs = slices.Clone(probs)
		for i := range probs {
			probs[i].Line = mapLine(d, sp, res, probs[i].Line)
		}
		return nil, nil, probs.sorted()
	}
	return res, p, nil
}

// mapLine turns a line of the edited text into the line of the original
// that holds the same bytes, or 0 when it is part of new text.
func mapLine(d *rawDoc, sp []splice, res []byte, line int) int {
	if line == 0 {
		return 0
	}
	// Offset of the start of the line in res.
	off := 0
	for n := 1; n < line; n++ {
		i := bytes.IndexByte(res[off:], '\n')
		if i < 0 {
			return 0
		}
		off += i + 1
	}
	// Walk the splices to find which original byte lands at off.
	shift := 0
	for _, s := range sp {
		newStart := s.start + shift
		if off < newStart {
			break
		}
		if off < newStart+len(s.text) {
			return 0
		}
		shift += len(s.text) - (s.end - s.start)
	}
	return d.lineOf(off - shift)
}

func docFor(filename string, data []byte) (*rawDoc, error) {
	d, probs := readDoc(filename, data)
	if probs != nil {
		return nil, probs
	}
	return d, nil
}

// quote writes s as a TOML basic string. strconv.Quote is not used because
// Go's \x escapes are not TOML.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == utf8.RuneError:
			b.WriteString(`\uFFFD`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func editProblem(filename, site, field, msg, fix string) Problems {
	return Problems{{File: filename, Site: site, Field: field, Msg: msg, Fix: fix}}
}

func (d *rawDoc) siteNames() []string {
	var names []string
	for _, t := range d.sites {
		if f := t.field("name"); f != nil {
			names = append(names, f.val.text)
		}
	}
	return names
}

func (d *rawDoc) findSite(filename, name string) (*rawTable, error) {
	i := d.siteNamed(name)
	if i >= 0 {
		return d.sites[i], nil
	}
	fix := "known sites: " + strings.Join(d.siteNames(), ", ")
	if s := closest(name, d.siteNames()); s != "" {
		fix = fmt.Sprintf("did you mean %q?", s)
	}
	if len(d.sites) == 0 {
		fix = "the plan has no sites yet; add one with `lanlink site add`"
	}
	return nil, editProblem(filename, name, "", "no such site", fix)
}

// New returns the text of a fresh plan file (with comments explaining each
// setting) for `lanlink init`. port 0 means DefaultPort. Bad inputs return
// Problems without a line.
func New(name string, tunnels []netip.Prefix, port uint16) ([]byte, error) {
	const file = "new plan"
	var probs Problems
	if msg := badName(name); msg != "" {
		probs = append(probs, Problem{File: file, Field: "name", Msg: msg, Fix: nameFix})
	}
	if len(tunnels) == 0 {
		probs = append(probs, Problem{File: file, Field: "tunnel", Msg: "no tunnel prefix given",
			Fix: "give a private prefix no LAN uses, e.g. --tunnel 10.255.0.0/24"})
	}
	ts := make([]string, len(tunnels))
	for i, t := range tunnels {
		ts[i] = t.String()
	}
	if len(probs) > 0 {
		return nil, probs
	}
	if port == 0 {
		port = DefaultPort
	}
	example := "10.255.0.1"
	if len(tunnels) > 0 && tunnels[0].IsValid() {
		if a, ok := lowestFree(tunnels[0].Masked(), func(netip.Addr) bool { return false }); ok {
			example = a.String()
		}
	}
	addrLine := fmt.Sprintf("# address = [%q]", example)
	addrLine += strings.Repeat(" ", max(1, 43-len(addrLine))) + `# tunnel address, chosen by "site add"`
	text := fmt.Sprintf(newTemplate, quote(name), quoteList(ts), port, DefaultMTU, int(DefaultKeepalive.Seconds()), addrLine)
	if _, err := Parse(file, []byte(text)); err != nil {
		probs := err.(Problems)
		for i := range probs {
			probs[i].Line = 0
		}
		return nil, probs
	}
	return []byte(text), nil
}

const newTemplate = `# lanlink network plan.
#
# This one file describes the whole network; copy the same file to every
# gateway. It holds only public keys: private keys never leave their gateway.
# Edit it with "lanlink site add|set|remove" (they keep your comments) or by
# hand, then run "lanlink check".

[network]
name = %s
# Tunnel addresses: one IPv4 and/or one IPv6 prefix that no LAN uses. Each
# site gets one address from each. When it fills up, widen it (e.g. /24 to
# /23): existing addresses stay valid.
tunnel = %s
# UDP port every site listens on unless the site sets its own port.
port = %d
# MTU of the tunnel interface: 1280-9000 (576 is accepted for IPv4-only plans).
mtu = %d
# Sites without an endpoint (behind NAT) reach each other through the hub.
# Default: the first site that has an endpoint.
# hub = "alpha"
# Seconds between keepalives from sites without an endpoint, to keep their
# NAT mapping open.
# keepalive = %d

# One [[site]] table per office, added by "lanlink site add", e.g.:
#
# [[site]]
# name = "alpha"                           # letters, digits, '-'; at most 32
# public_key = "..."                       # printed by "lanlink keygen" on the gateway
# endpoint = "office-a.example.com:51820"  # leave out when behind NAT
# lan = ["192.168.10.0/24"]                # networks behind the gateway
%s
# port = 51820                             # optional own listen port
# masquerade = false                       # optional: NAT tunnel traffic into the LAN
# mss_clamp = false                        # optional: clamp TCP MSS on the tunnel
`

// AddSite appends a [[site]] table to the plan text. Unless s.Address is
// given it allocates, in each tunnel prefix, the lowest address that is
// not reserved and not used by another site; existing sites are never
// renumbered. The rest of the file is kept byte for byte.
func AddSite(filename string, data []byte, s SiteSpec) (out []byte, added *Site, err error) {
	d, err := docFor(filename, data)
	if err != nil {
		return nil, nil, err
	}
	if d.siteNamed(s.Name) >= 0 {
		return nil, nil, editProblem(filename, s.Name, "name", "a site with this name already exists",
			"choose another name, or change the existing site with `lanlink site set`")
	}
	addrs := s.Address
	if len(addrs) == 0 {
		addrs, err = allocate(filename, d, s.Name)
		if err != nil {
			return nil, nil, err
		}
	}

	var b strings.Builder
	b.WriteString("[[site]]\n")
	fmt.Fprintf(&b, "name = %s\n", quote(s.Name))
	fmt.Fprintf(&b, "public_key = %s\n", quote(s.PublicKey))
	if s.Endpoint != "" {
		fmt.Fprintf(&b, "endpoint = %s\n", quote(s.Endpoint))
	}
	fmt.Fprintf(&b, "lan = %s\n", quoteList(s.LANs))
	fmt.Fprintf(&b, "address = %s\n", quoteList(addrs))
	if s.Port != 0 {
		fmt.Fprintf(&b, "port = %d\n", s.Port)
	}
	if s.Masquerade != nil {
		fmt.Fprintf(&b, "masquerade = %t\n", *s.Masquerade)
	}
	if s.MSSClamp != nil {
		fmt.Fprintf(&b, "mss_clamp = %t\n", *s.MSSClamp)
	}

	// Separate from what is above by one blank line, adding a final
	// newline to the last line if it lacks one.
	var sep string
	switch {
	case len(data) == 0:
	case data[len(data)-1] != '\n':
		sep = "\n\n"
	case !bytes.HasSuffix(data, []byte("\n\n")):
		sep = "\n"
	}
	res, p, err := apply(filename, d, []splice{{start: len(data), end: len(data), text: sep + b.String()}})
	if err != nil {
		return nil, nil, err
	}
	site, _ := p.Site(s.Name)
	return res, site, nil
}

// allocate picks the lowest free address in each tunnel prefix, reading
// the raw document so that it works even when the plan has unrelated
// problems (they are reported after the edit).
func allocate(filename string, d *rawDoc, site string) ([]string, error) {
	var tunnels []netip.Prefix
	if d.network != nil {
		if f := d.network.field("tunnel"); f != nil {
			for _, it := range f.val.items {
				if p, msg, _ := prefix(it.text); msg == "" {
					tunnels = append(tunnels, p)
				}
			}
		}
	}
	if len(tunnels) == 0 {
		return nil, editProblem(filename, "", "tunnel", "the plan has no valid tunnel prefix to allocate an address from",
			`set tunnel = ["10.255.0.0/24"] under [network] first`)
	}
	taken := map[netip.Addr]bool{}
	for _, t := range d.sites {
		if f := t.field("address"); f != nil {
			for _, it := range f.val.items {
				if a, err := netip.ParseAddr(it.text); err == nil {
					taken[a] = true
				}
			}
		}
	}
	var out []string
	var probs Problems
	for _, t := range tunnels {
		a, ok := lowestFree(t, func(a netip.Addr) bool { return taken[a] })
		if !ok {
			probs = append(probs, Problem{File: filename, Line: d.network.field("tunnel").line, Site: site, Field: "address",
				Msg: fmt.Sprintf("tunnel prefix %s is full", t), Fix: fullFix(t)})
			continue
		}
		out = append(out, a.String())
	}
	if len(probs) > 0 {
		return nil, probs
	}
	return out, nil
}

// SetSite changes fields of an existing site in the plan text: a value
// that is present is replaced in place (keeping the key's spelling,
// indentation and a trailing comment), a missing one is added after the
// site's last key, and an empty endpoint or a zero port removes the line.
func SetSite(filename string, data []byte, name string, c SiteChange) ([]byte, error) {
	d, err := docFor(filename, data)
	if err != nil {
		return nil, err
	}
	t, err := d.findSite(filename, name)
	if err != nil {
		return nil, err
	}
	var sp []splice
	var inserts []string
	set := func(key, value string, remove bool) {
		f := t.field(key)
		switch {
		case f != nil && remove:
			sp = append(sp, splice{start: d.lineStart(f.line), end: d.lineEnd(f.end - 1)})
		case f != nil:
			if string(d.data[f.valStart:f.end]) != value {
				sp = append(sp, splice{start: f.valStart, end: f.end, text: value})
			}
		case !remove:
			inserts = append(inserts, key+" = "+value)
		}
	}
	if c.PublicKey != nil {
		set("public_key", quote(*c.PublicKey), false)
	}
	if c.Endpoint != nil {
		set("endpoint", quote(*c.Endpoint), *c.Endpoint == "")
	}
	if c.LANs != nil {
		set("lan", quoteList(c.LANs), false)
	}
	if c.Port != nil {
		set("port", strconv.Itoa(int(*c.Port)), *c.Port == 0)
	}
	if c.Masquerade != nil {
		set("masquerade", strconv.FormatBool(*c.Masquerade), false)
	}
	if c.MSSClamp != nil {
		set("mss_clamp", strconv.FormatBool(*c.MSSClamp), false)
	}
	if len(inserts) > 0 {
		// After the site's last key, with that line's indentation. A site
		// found by name has at least its name key.
		last := t.fields[len(t.fields)-1]
		ls := d.lineStart(last.line)
		indent := d.data[ls:last.start]
		at := d.lineEnd(last.end - 1)
		var b strings.Builder
		if at == len(d.data) && (at == 0 || d.data[at-1] != '\n') {
			b.WriteByte('\n')
		}
		for _, l := range inserts {
			b.Write(indent)
			b.WriteString(l)
			b.WriteByte('\n')
		}
		sp = append(sp, splice{start: at, end: at, text: b.String()})
	}
	out, _, err := apply(filename, d, sp)
	return out, err
}

// RemoveSite deletes a [[site]] table from the plan text: its header, its
// keys, comments inside it, and a comment block directly above the header
// (no blank line between) that starts after a blank line, since that is
// the site's own description. Everything else is kept byte for byte.
func RemoveSite(filename string, data []byte, name string) ([]byte, error) {
	d, err := docFor(filename, data)
	if err != nil {
		return nil, err
	}
	t, err := d.findSite(filename, name)
	if err != nil {
		return nil, err
	}
	start := d.attachedStart(t)
	end := len(d.data)
	for i, u := range d.tables {
		if u == t && i+1 < len(d.tables) {
			end = d.attachedStart(d.tables[i+1])
		}
	}
	if end == len(d.data) {
		// Last table: also drop the blank lines that separated it, so the
		// file does not end in blank lines.
		for n := d.lineOf(start) - 1; n >= 1 && d.blankLine(n); n-- {
			start = d.lineStart(n)
		}
	}
	out, _, err := apply(filename, d, []splice{{start: start, end: end}})
	return out, err
}

// attachedStart returns where a table begins when the comment lines right
// above its header describe it: a run of comment-only lines touching the
// header, itself preceded by a blank line (or the top of the file).
func (d *rawDoc) attachedStart(t *rawTable) int {
	n := t.line - 1
	for n >= 1 && d.commentLines[n] {
		n--
	}
	if n == t.line-1 || (n >= 1 && !d.blankLine(n)) {
		return t.hdrStart
	}
	return d.lineStart(n + 1)
}
