package wgconf

import (
	"bytes"
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

type writer struct {
	buf bytes.Buffer
	err error
}

func (w *writer) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

func (w *writer) line(s string) {
	w.buf.WriteString(s)
	w.buf.WriteByte('\n')
}

func (w *writer) comment(c string) {
	if !strings.HasPrefix(c, "#") || strings.ContainsAny(c, "\n") || strings.TrimSpace(c) != c {
		w.fail(fmt.Errorf("comment %q must be one line starting with '#'", c))
	}
	w.line(c)
}

func (w *writer) kv(k, v string) {
	if v == "" || strings.ContainsAny(v, "#\n") || strings.TrimSpace(v) != v {
		w.fail(fmt.Errorf("%s value %q cannot be written: empty, surrounding space, '#' or newline", k, v))
	}
	w.line(k + " = " + v)
}

func (w *writer) prefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		if !p.IsValid() {
			w.fail(fmt.Errorf("invalid prefix in %v", ps))
		}
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}
