package wgconf

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// ParseError is a problem with one line of a wg-quick file.
type ParseError struct {
	Line int // 1-based
	Msg  string
}

func (e *ParseError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// Parse reads a wg-quick file. It accepts what wg-quick and wg accept, with
// these deliberate differences, all of which are errors a human would want
// to hear about:
//   - unknown keys are rejected (wg setconf rejects them too, only later);
//   - a single-valued key given twice is rejected (wg silently keeps the last);
//   - exactly one [Interface] section is required;
//   - empty values are rejected.
//
// Keys and section names are case-insensitive, like in wg and wg-quick.
// Key material never appears in an error.
func Parse(data []byte) (*File, error) {
	f := &File{}
	const (
		none = iota
		inInterface
		inPeer
	)
	section := none
	sawInterface := false
	var seen map[string]int // single-valued keys of the current section -> line
	var peer *Peer
	peerLine := 0
	comments := &f.Comments

	for n, raw := range strings.Split(string(data), "\n") {
		ln := n + 1
		bad := func(format string, a ...any) error {
			return &ParseError{Line: ln, Msg: fmt.Sprintf(format, a...)}
		}
		line := raw
		if i := strings.IndexByte(line, '#'); i >= 0 {
			if strings.TrimSpace(line[:i]) == "" {
				*comments = append(*comments, strings.TrimSpace(line))
				continue
			}
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "[") {
			switch {
			case strings.EqualFold(line, "[Interface]"):
				if sawInterface {
					return nil, bad("second [Interface] section: a file configures one interface")
				}
				sawInterface = true
				section = inInterface
				comments = &f.Interface.Comments
			case strings.EqualFold(line, "[Peer]"):
				if peer != nil {
					if err := finishPeer(peerLine, seen); err != nil {
						return nil, err
					}
				}
				peerLine = ln
				f.Peers = append(f.Peers, Peer{})
				peer = &f.Peers[len(f.Peers)-1]
				section = inPeer
				comments = &peer.Comments
			default:
				return nil, bad("unknown section %q: want [Interface] or [Peer]", line)
			}
			seen = map[string]int{}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, bad("want \"Key = value\" or a [Section]")
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		key, multi, ok := canonicalKey(section, k)
		if section == none {
			return nil, bad("%s before any [Interface] or [Peer] section", k)
		}
		if !ok {
			return nil, bad("unknown key %q in [%s]", k, map[int]string{inInterface: "Interface", inPeer: "Peer"}[section])
		}
		if v == "" {
			return nil, bad("%s has no value", key)
		}
		if !multi {
			if first, dup := seen[key]; dup {
				return nil, bad("%s given twice (first on line %d)", key, first)
			}
			seen[key] = ln
		}
		var err error
		if section == inInterface {
			err = setInterface(&f.Interface, key, v)
		} else {
			err = setPeer(peer, key, v)
		}
		if err != nil {
			return nil, bad("%s: %v", key, err)
		}
	}
	if peer != nil {
		if err := finishPeer(peerLine, seen); err != nil {
			return nil, err
		}
	}
	if !sawInterface {
		return nil, &ParseError{Line: 1, Msg: "no [Interface] section"}
	}
	return f, nil
}

// finishPeer checks what can only be checked at the end of a section.
func finishPeer(line int, seen map[string]int) error {
	if _, ok := seen["PublicKey"]; !ok {
		return &ParseError{Line: line, Msg: "[Peer] without a PublicKey"}
	}
	return nil
}

var interfaceKeys = map[string]bool{ // canonical name -> may repeat
	"PrivateKey": false, "ListenPort": false, "FwMark": false,
	"Address": true, "MTU": false, "DNS": true, "Table": false, "SaveConfig": false,
	"PreUp": true, "PostUp": true, "PreDown": true, "PostDown": true,
}

var peerKeys = map[string]bool{
	"PublicKey": false, "PresharedKey": false, "AllowedIPs": true,
	"Endpoint": false, "PersistentKeepalive": false,
}

func canonicalKey(section int, k string) (key string, multi, ok bool) {
	keys := interfaceKeys
	if section == 2 {
		keys = peerKeys
	}
	for name, m := range keys {
		if strings.EqualFold(name, k) {
			return name, m, true
		}
	}
	return k, false, false
}

func setInterface(i *Interface, key, v string) error {
	switch key {
	case "PrivateKey":
		k, err := parseKey(v)
		if err != nil {
			return err
		}
		i.PrivateKey = &k
	case "ListenPort":
		p, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			return errors.New("want a port number 0..65535")
		}
		i.ListenPort = uint16(p)
	case "FwMark":
		if strings.EqualFold(v, "off") {
			i.FwMark = 0
			return nil
		}
		base := 10
		if s, ok := strings.CutPrefix(strings.ToLower(v), "0x"); ok {
			v, base = s, 16
		}
		m, err := strconv.ParseUint(v, base, 32)
		if err != nil {
			return errors.New("want a 32-bit number or \"off\"")
		}
		i.FwMark = uint32(m)
	case "Address":
		// wg-quick splits Address and DNS on commas and on blanks.
		for _, s := range strings.FieldsFunc(v, isListSep) {
			p, err := parsePrefix(s)
			if err != nil {
				return err
			}
			i.Addresses = append(i.Addresses, p)
		}
	case "MTU":
		m, err := strconv.Atoi(v)
		if err != nil || m < 68 || m > 65535 {
			return errors.New("want a number 68..65535")
		}
		i.MTU = m
	case "DNS":
		for _, d := range strings.FieldsFunc(v, isListSep) {
			if d = strings.TrimSpace(d); d != "" {
				i.DNS = append(i.DNS, d)
			}
		}
	case "Table":
		i.Table = v
	case "SaveConfig":
		switch {
		case strings.EqualFold(v, "true"):
			i.SaveConfig = true
		case strings.EqualFold(v, "false"):
			i.SaveConfig = false
		default:
			return errors.New("want true or false")
		}
	case "PreUp":
		i.PreUp = append(i.PreUp, v)
	case "PostUp":
		i.PostUp = append(i.PostUp, v)
	case "PreDown":
		i.PreDown = append(i.PreDown, v)
	case "PostDown":
		i.PostDown = append(i.PostDown, v)
	}
	return nil
}

func setPeer(p *Peer, key, v string) error {
	switch key {
	case "PublicKey":
		k, err := parseKey(v)
		if err != nil {
			return err
		}
		p.PublicKey = k
	case "PresharedKey":
		k, err := parseKey(v)
		if err != nil {
			return err
		}
		p.PresharedKey = &k
	case "AllowedIPs":
		// wg takes a comma list only; blanks around entries are ignored.
		for _, s := range strings.Split(v, ",") {
			pr, err := parsePrefix(strings.TrimSpace(s))
			if err != nil {
				return err
			}
			p.AllowedIPs = append(p.AllowedIPs, pr)
		}
	case "Endpoint":
		if err := checkEndpoint(v); err != nil {
			return err
		}
		p.Endpoint = v
	case "PersistentKeepalive":
		if strings.EqualFold(v, "off") {
			p.PersistentKeepalive = 0
			return nil
		}
		s, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			return errors.New("want seconds 0..65535 or \"off\"")
		}
		p.PersistentKeepalive = time.Duration(s) * time.Second
	}
	return nil
}

func isListSep(r rune) bool { return r == ',' || r == ' ' || r == '\t' }

// parseKey never quotes its input: it may be a private key.
func parseKey(v string) (wgtypes.Key, error) {
	k, err := wgtypes.ParseKey(v)
	if err != nil {
		return wgtypes.Key{}, errors.New("not a key (want 44 base64 characters, as printed by wg genkey / wg pubkey)")
	}
	return k, nil
}

// parsePrefix accepts "addr/len" and a bare address (a host route), like
// wg and ip do.
func parsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or prefix", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// checkEndpoint accepts "host:port" and "[v6]:port" with a numeric port, as
// wg does; host may be a name, resolved by wg when the file is applied.
func checkEndpoint(v string) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil || host == "" || strings.ContainsAny(host, " \t[]") {
		return fmt.Errorf("%q is not host:port (IPv6 in brackets: [2001:db8::1]:51820)", v)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("%q: port must be 1..65535", v)
	}
	if strings.Contains(host, ":") && !strings.HasPrefix(v, "[") {
		return fmt.Errorf("%q: put an IPv6 address in brackets", v)
	}
	return nil
}
