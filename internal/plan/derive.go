package plan

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// planIndex caches lookups derived from Sites. Parse fills it; a Plan built
// as a literal (in other packages' tests) has none, and every method then
// computes what it needs on the fly.
type planIndex struct {
	byName map[string]int
	byKey  map[wgtypes.Key]int
	sorted []int // site indexes ordered by name
	hub    int   // -1 when no site has an endpoint
	nNAT   int   // sites without an endpoint
	// Per site, sorted: its LANs, and what a peer entry for it allows
	// (its tunnel addresses as host prefixes plus its LANs). These are
	// the very slices SiteConfig hands out as Peer.LANs and
	// Peer.AllowedIPs, shared by every config derived from the plan, so
	// they are never nil (JSON shows [] rather than null) and their
	// capacity is capped: an append by a caller copies rather than
	// writing into the next site's window.
	lans    [][]netip.Prefix
	allowed [][]netip.Prefix
	// Every LAN with its site, sorted, so Routes is a filter, not a sort.
	allLANs []siteLAN
}

type siteLAN struct {
	pfx  netip.Prefix
	site int
}

func (p *Plan) index() {
	p.idx = p.buildIndex()
}

func (p *Plan) buildIndex() *planIndex {
	n := len(p.Sites)
	x := &planIndex{byName: make(map[string]int, n), byKey: make(map[wgtypes.Key]int, n), hub: -1,
		sorted: make([]int, 0, n), lans: make([][]netip.Prefix, n), allowed: make([][]netip.Prefix, n)}
	nLANs, nAddrs := 0, 0
	for _, s := range p.Sites {
		nLANs += len(s.LANs)
		nAddrs += len(s.Addresses)
	}
	// One backing array for every site's two windows; it is sized up
	// front, so appending never moves it under the windows already cut.
	buf := make([]netip.Prefix, 0, 2*nLANs+nAddrs)
	window := func(start int) []netip.Prefix {
		w := buf[start:len(buf):len(buf)]
		sortPrefixes(w)
		return w
	}
	x.allLANs = make([]siteLAN, 0, nLANs)
	for i, s := range p.Sites {
		x.byName[s.Name] = i
		x.byKey[s.PublicKey] = i
		x.sorted = append(x.sorted, i)
		if s.Endpoint == "" {
			x.nNAT++
		}
		start := len(buf)
		buf = append(buf, s.LANs...)
		x.lans[i] = window(start)
		start = len(buf)
		for _, a := range s.Addresses {
			buf = append(buf, netip.PrefixFrom(a, a.BitLen()))
		}
		buf = append(buf, s.LANs...)
		x.allowed[i] = window(start)
		for _, l := range s.LANs {
			x.allLANs = append(x.allLANs, siteLAN{l, i})
		}
	}
	slices.SortFunc(x.sorted, func(a, b int) int { return cmp.Compare(p.Sites[a].Name, p.Sites[b].Name) })
	slices.SortFunc(x.allLANs, func(a, b siteLAN) int { return comparePrefix(a.pfx, b.pfx) })
	if i, ok := x.byName[p.Network.Hub]; ok && p.Network.Hub != "" {
		x.hub = i
	} else {
		x.hub = slices.IndexFunc(p.Sites, func(s Site) bool { return s.Endpoint != "" })
	}
	return x
}

func (p *Plan) ix() *planIndex {
	if p.idx != nil {
		return p.idx
	}
	return p.buildIndex()
}

// Site returns the site with the given name.
func (p *Plan) Site(name string) (*Site, bool) {
	i, ok := p.ix().byName[name]
	if !ok {
		return nil, false
	}
	return &p.Sites[i], true
}

// SiteByKey returns the site whose gateway has public key k; this is how a
// gateway finds itself in the plan.
func (p *Plan) SiteByKey(k wgtypes.Key) (*Site, bool) {
	i, ok := p.ix().byKey[k]
	if !ok {
		return nil, false
	}
	return &p.Sites[i], true
}

// Hub returns the name of the site that relays between sites without an
// endpoint: Network.Hub if set, else the first site in file order that has
// an endpoint; "" when no site has one.
func (p *Plan) Hub() string {
	if h := p.ix().hub; h >= 0 {
		return p.Sites[h].Name
	}
	return ""
}

// SiteConfig derives the desired state of the named site: a full mesh,
// except that two sites without an endpoint cannot reach each other
// directly, so each reaches the other through the hub (see Hub): on such a
// site the hub's peer entry also carries the other site's tunnel addresses
// and LANs and lists it in Via, and the hub gets Relay = true.
func (p *Plan) SiteConfig(name string) (*SiteConfig, error) {
	x := p.ix()
	si, ok := x.byName[name]
	if !ok {
		return nil, fmt.Errorf("derive site config: no site named %q in network %q", name, p.Network.Name)
	}
	s := &p.Sites[si]
	nat := func(i int) bool { return p.Sites[i].Endpoint == "" }
	selfNAT := nat(si)
	if selfNAT && x.hub < 0 && len(p.Sites) > 1 {
		return nil, fmt.Errorf("derive site config for %q: it has no endpoint and no site has one to relay through", name)
	}

	c := &SiteConfig{
		Network:    p.Network.Name,
		Site:       s.Name,
		PublicKey:  s.PublicKey,
		ListenPort: int(cmp.Or(s.Port, p.Network.Port, DefaultPort)),
		MTU:        cmp.Or(p.Network.MTU, DefaultMTU),
		Masquerade: s.Masquerade,
		MSSClamp:   s.MSSClamp,
		Addresses:  make([]netip.Prefix, 0, len(s.Addresses)),
	}
	for i, a := range s.Addresses {
		if i < len(p.Network.Tunnels) {
			c.Addresses = append(c.Addresses, netip.PrefixFrom(a, p.Network.Tunnels[i].Bits()))
		}
	}
	var keepalive = p.Network.Keepalive
	if keepalive == 0 {
		keepalive = DefaultKeepalive
	}
	c.Relay = si == x.hub && x.nNAT >= 2

	// A full mesh of n sites derives n² peers, so per-peer slices would
	// make allocation dominate: a plain peer entry shares the index's
	// slices for that site (see planIndex). Only the hub's entry on a site
	// without an endpoint, which also carries the relayed sites, is built
	// here.
	nPeers := len(p.Sites) - 1
	if selfNAT {
		nPeers = len(p.Sites) - x.nNAT
	}
	c.Peers = make([]Peer, 0, max(nPeers, 0))
	for _, oi := range x.sorted {
		if oi == si || (selfNAT && nat(oi)) {
			continue // NAT-to-NAT is reached through the hub's entry below
		}
		o := &p.Sites[oi]
		peer := Peer{Site: o.Name, PublicKey: o.PublicKey, Endpoint: o.Endpoint, AllowedIPs: x.allowed[oi], LANs: x.lans[oi]}
		if selfNAT && oi == x.hub && x.nNAT > 1 {
			n := len(x.allowed[oi])
			for mi := range p.Sites {
				if mi != si && nat(mi) {
					n += len(x.allowed[mi])
				}
			}
			allowed := make([]netip.Prefix, 0, n)
			allowed = append(allowed, x.allowed[oi]...)
			peer.Via = make([]string, 0, x.nNAT-1)
			for _, mi := range x.sorted {
				if mi != si && nat(mi) {
					peer.Via = append(peer.Via, p.Sites[mi].Name)
					allowed = append(allowed, x.allowed[mi]...)
				}
			}
			sortPrefixes(allowed)
			peer.AllowedIPs = allowed
		}
		if selfNAT {
			peer.PersistentKeepalive = keepalive
		}
		c.Peers = append(c.Peers, peer)
	}

	// Every other site's LANs, relayed ones included; the tunnel prefix is
	// covered by the interface address.
	c.Routes = make([]netip.Prefix, 0, len(x.allLANs))
	for _, l := range x.allLANs {
		if l.site != si && (len(c.Routes) == 0 || c.Routes[len(c.Routes)-1] != l.pfx) {
			c.Routes = append(c.Routes, l.pfx)
		}
	}
	return c, nil
}

func hostPrefixes(addrs []netip.Addr, extra int) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(addrs)+extra)
	for _, a := range addrs {
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out
}

func comparePrefix(a, b netip.Prefix) int {
	if r := a.Addr().Compare(b.Addr()); r != 0 {
		return r
	}
	return a.Bits() - b.Bits()
}

func sortPrefixes(ps []netip.Prefix) { slices.SortFunc(ps, comparePrefix) }

// Equal reports whether c and o describe the same desired state. Nil and
// empty slices are equal, so a config that went through JSON compares
// equal to the original.
func (c *SiteConfig) Equal(o *SiteConfig) bool {
	if c == nil || o == nil {
		return c == o
	}
	if c.Network != o.Network || c.Site != o.Site || c.PublicKey != o.PublicKey || c.ListenPort != o.ListenPort ||
		c.MTU != o.MTU || c.Relay != o.Relay || c.Masquerade != o.Masquerade || c.MSSClamp != o.MSSClamp ||
		!slices.Equal(c.Addresses, o.Addresses) || !slices.Equal(c.Routes, o.Routes) {
		return false
	}
	return slices.EqualFunc(c.Peers, o.Peers, Peer.Equal)
}

// Equal reports whether two peers are the same; nil and empty slices are equal.
func (p Peer) Equal(o Peer) bool {
	return p.Site == o.Site && p.PublicKey == o.PublicKey && p.Endpoint == o.Endpoint &&
		p.PersistentKeepalive == o.PersistentKeepalive && slices.Equal(p.AllowedIPs, o.AllowedIPs) &&
		slices.Equal(p.LANs, o.LANs) && slices.Equal(p.Via, o.Via)
}

// Clone returns a deep copy of c, so callers may keep the last applied
// config while a new one is derived.
func (c *SiteConfig) Clone() *SiteConfig {
	if c == nil {
		return nil
	}
	n := *c
	n.Addresses = slices.Clone(c.Addresses)
	n.Routes = slices.Clone(c.Routes)
	n.Peers = slices.Clone(c.Peers)
	for i := range n.Peers {
		p := &n.Peers[i]
		p.AllowedIPs = slices.Clone(p.AllowedIPs)
		p.LANs = slices.Clone(p.LANs)
		p.Via = slices.Clone(p.Via)
	}
	return &n
}
