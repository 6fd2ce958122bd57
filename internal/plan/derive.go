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
}

func (p *Plan) index() {
	p.idx = p.buildIndex()
}

func (p *Plan) buildIndex() *planIndex {
	x := &planIndex{byName: make(map[string]int, len(p.Sites)), byKey: make(map[wgtypes.Key]int, len(p.Sites)), hub: -1}
	for i, s := range p.Sites {
		x.byName[s.Name] = i
		x.byKey[s.PublicKey] = i
		x.sorted = append(x.sorted, i)
	}
	slices.SortFunc(x.sorted, func(a, b int) int { return cmp.Compare(p.Sites[a].Name, p.Sites[b].Name) })
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
		Peers:      make([]Peer, 0, len(p.Sites)-1),
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
	nNAT := 0
	for i := range p.Sites {
		if nat(i) {
			nNAT++
		}
	}
	c.Relay = si == x.hub && nNAT >= 2

	routes := 0
	for i := range p.Sites {
		if i != si {
			routes += len(p.Sites[i].LANs)
		}
	}
	c.Routes = make([]netip.Prefix, 0, routes)

	for _, oi := range x.sorted {
		if oi == si {
			continue
		}
		o := &p.Sites[oi]
		c.Routes = append(c.Routes, o.LANs...)
		if selfNAT && nat(oi) {
			continue // reached through the hub's entry below
		}
		peer := Peer{
			Site:       o.Name,
			PublicKey:  o.PublicKey,
			Endpoint:   o.Endpoint,
			AllowedIPs: hostPrefixes(o.Addresses, len(o.LANs)),
			LANs:       slices.Clone(o.LANs),
		}
		peer.AllowedIPs = append(peer.AllowedIPs, o.LANs...)
		if selfNAT {
			peer.PersistentKeepalive = keepalive
		}
		if selfNAT && oi == x.hub {
			for _, mi := range x.sorted {
				if mi == si || !nat(mi) {
					continue
				}
				m := &p.Sites[mi]
				peer.Via = append(peer.Via, m.Name)
				peer.AllowedIPs = append(peer.AllowedIPs, hostPrefixes(m.Addresses, 0)...)
				peer.AllowedIPs = append(peer.AllowedIPs, m.LANs...)
			}
		}
		sortPrefixes(peer.AllowedIPs)
		sortPrefixes(peer.LANs)
		c.Peers = append(c.Peers, peer)
	}
	sortPrefixes(c.Routes)
	c.Routes = slices.Compact(c.Routes)
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
