package doctor

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"lanlink/internal/plan"
)

// RouterProber is the optional part of an Observer that checks a LAN
// router's routes from the gateway.
type RouterProber interface {
	// ProbeRouterRoute sends the LAN router an ICMP echo request on iface
	// whose source address is src, and reports whether the reply came
	// back to this host (seen on iface, whoever it was addressed to).
	// With src inside a remote LAN, a reply arrives only if the router
	// routes that LAN via this gateway; without the route it goes to
	// the router's default route.
	ProbeRouterRoute(ctx context.Context, iface string, router, src netip.Addr, timeout time.Duration) (bool, error)
}

// Route states of RouterRoute.
const (
	RouteInPlace = "in place"
	RouteMissing = "missing"
	RouteUnknown = "unknown"
)

// RouterRoute is one static route an office's LAN router needs.
type RouterRoute struct {
	Dst      netip.Prefix `json:"destination"`
	Via      netip.Addr   `json:"via,omitzero"` // the gateway's LAN address; zero when unknown here
	For      string       `json:"for"`          // the remote site, or "tunnel"
	Optional bool         `json:"optional,omitempty"`
	State    string       `json:"state,omitempty"` // RouteInPlace, RouteMissing, RouteUnknown; "" = not checked
	Why      string       `json:"why,omitempty"`
}

// SiteRoutes is what one office's LAN router needs.
type SiteRoutes struct {
	Site     string        `json:"site"`
	Gateway  netip.Addr    `json:"gateway,omitzero"`  // this site's gateway LAN address, when known
	Gateway6 netip.Addr    `json:"gateway6,omitzero"` // its IPv6 LAN address, for IPv6 routes
	Router   netip.Addr    `json:"router,omitzero"`   // its LAN router, when known (checked from here)
	Routes   []RouterRoute `json:"routes"`
}

// RoutesOptions configure Routes.
type RoutesOptions struct {
	Observer  Observer
	Interface string // the tunnel interface, default "lanlink0"
	Site      string // only this site; "" = every site
	// Local is the site this host is the gateway of ("" = found from the
	// agent or the key). Its gateway address and router are read here,
	// and its routes checked.
	Local   string
	NoProbe bool
}

// Routes works out the static routes every office's LAN router needs: each
// remote LAN (and, optionally, the tunnel network, so LAN hosts can answer
// the gateways themselves) via that office's gateway. For the office this
// host is the gateway of, it fills in the gateway's LAN address and, with a
// RouterProber, whether each route is in place.
func Routes(ctx context.Context, p *plan.Plan, o RoutesOptions) ([]SiteRoutes, error) {
	if o.Site != "" {
		if _, ok := p.Site(o.Site); !ok {
			return nil, fmt.Errorf("no site named %q in the plan; `lanlink site list` shows the sites", o.Site)
		}
	}
	local := o.Local
	if local == "" && o.Observer != nil {
		if st, err := o.Observer.Agent(ctx); err == nil {
			local = st.Site
		} else if pub, err := o.Observer.LocalKey(); err == nil {
			if s, ok := p.SiteByKey(pub); ok {
				local = s.Name
			}
		}
	}
	var out []SiteRoutes
	for _, s := range p.Sites {
		if o.Site != "" && s.Name != o.Site {
			continue
		}
		sr := SiteRoutes{Site: s.Name}
		var lanIface string
		if s.Name == local && o.Observer != nil {
			lanIface, sr.Gateway, sr.Gateway6, sr.Router = localLAN(o.Observer, s)
		}
		via := func(p netip.Prefix) netip.Addr {
			if p.Addr().Is6() {
				return sr.Gateway6
			}
			return sr.Gateway
		}
		for _, other := range p.Sites {
			if other.Name == s.Name {
				continue
			}
			for _, l := range other.LANs {
				sr.Routes = append(sr.Routes, RouterRoute{Dst: l, Via: via(l), For: other.Name})
			}
		}
		for _, t := range p.Network.Tunnels {
			sr.Routes = append(sr.Routes, RouterRoute{Dst: t, Via: via(t), For: "tunnel", Optional: true})
		}
		if pr, ok := o.Observer.(RouterProber); ok && !o.NoProbe && lanIface != "" && sr.Router.IsValid() {
			checkRouterRoutes(ctx, pr, lanIface, &sr, p, s.Name)
		}
		out = append(out, sr)
	}
	return out, nil
}

// localLAN finds this host's interface and address on s's LAN, and the
// LAN router: the default route's gateway when it is on that LAN.
func localLAN(obs Observer, s plan.Site) (iface string, gw, gw6, router netip.Addr) {
	ifaces, _ := obs.Interfaces()
	for _, ifc := range ifaces {
		for _, a := range ifc.Addrs {
			for _, l := range s.LANs {
				switch {
				case !l.Contains(a.Addr()):
				case a.Addr().Is4() && !gw.IsValid():
					iface, gw = ifc.Name, a.Addr()
				case a.Addr().Is6() && !gw6.IsValid():
					gw6 = a.Addr()
				}
			}
		}
	}
	routes, _ := obs.Routes()
	for _, r := range routes {
		if r.Dst.Bits() == 0 && r.Dst.Addr().Is4() && r.Gw.IsValid() && r.Dev == iface {
			router = r.Gw
		}
	}
	return iface, gw, gw6, router
}

func checkRouterRoutes(ctx context.Context, pr RouterProber, iface string, sr *SiteRoutes, p *plan.Plan, self string) {
	const timeout = time.Second
	// A router that does not answer pings at all tells nothing.
	if ok, err := pr.ProbeRouterRoute(ctx, iface, sr.Router, sr.Gateway, timeout); err != nil || !ok {
		why := fmt.Sprintf("the router %s does not answer pings from this gateway", sr.Router)
		if err != nil {
			why = fmt.Sprintf("cannot probe the router %s: %v", sr.Router, err)
		}
		for i := range sr.Routes {
			sr.Routes[i].State, sr.Routes[i].Why = RouteUnknown, why
		}
		return
	}
	var tunnelSrc []netip.Addr
	if s, ok := p.Site(self); ok {
		tunnelSrc = s.Addresses
	}
	for i := range sr.Routes {
		r := &sr.Routes[i]
		if !r.Dst.Addr().Is4() {
			r.State, r.Why = RouteUnknown, "only IPv4 routes are checked"
			continue
		}
		src := r.Dst.Masked().Addr().Next()
		if r.For == "tunnel" {
			for _, a := range tunnelSrc {
				if r.Dst.Contains(a) {
					src = a
				}
			}
		}
		ok, err := pr.ProbeRouterRoute(ctx, iface, sr.Router, src, timeout)
		switch {
		case err != nil:
			r.State, r.Why = RouteUnknown, err.Error()
		case ok:
			r.State, r.Why = RouteInPlace, fmt.Sprintf("the router's reply to %s came back through this gateway", src)
		default:
			r.State, r.Why = RouteMissing, fmt.Sprintf("the router's reply to %s did not come back through this gateway", src)
		}
	}
}

// WriteRoutes prints each office's routes as `ip route` lines and as a
// generic instruction for routers configured through a web page.
func WriteRoutes(w io.Writer, srs []SiteRoutes) {
	for i, sr := range srs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		via := func(r RouterRoute) string {
			switch {
			case r.Via.IsValid():
				return r.Via.String()
			case r.Dst.Addr().Is6():
				return "<gateway IPv6 LAN address>"
			}
			return "<gateway LAN address>"
		}
		fmt.Fprintf(w, "office %s: its LAN router needs these routes via the gateway %s", sr.Site, via(RouterRoute{Via: sr.Gateway}))
		if sr.Router.IsValid() {
			fmt.Fprintf(w, " (router %s, checked from this gateway)", sr.Router)
		} else if !sr.Gateway.IsValid() {
			fmt.Fprintf(w, " (run `lanlink routes` on %s's gateway to fill it in and check them)", sr.Site)
		}
		fmt.Fprintln(w)
		for _, r := range sr.Routes {
			line := fmt.Sprintf("  ip route add %s via %s", r.Dst, via(r))
			if r.Dst.Addr().Is6() {
				line = fmt.Sprintf("  ip -6 route add %s via %s", r.Dst, via(r))
			}
			var notes []string
			if r.For == "tunnel" {
				notes = append(notes, "optional: lets LAN hosts answer the gateways' own tunnel addresses")
			} else {
				notes = append(notes, r.For+"'s LAN")
			}
			if r.State != "" {
				notes = append(notes, r.State)
			}
			fmt.Fprintf(w, "%-52s # %s\n", line, strings.Join(notes, ", "))
		}
		fmt.Fprintf(w, "  other routers: on the router's static routes page, add for each line:\n")
		for _, r := range sr.Routes {
			if !r.Dst.Addr().Is4() {
				fmt.Fprintf(w, "    destination %s, gateway %s\n", r.Dst, via(r))
				continue
			}
			fmt.Fprintf(w, "    destination %s, netmask %s, gateway %s\n", r.Dst.Masked().Addr(), netmask(r.Dst.Bits()), via(r))
		}
	}
}

func netmask(bits int) string {
	var m [4]byte
	for i := 0; i < bits; i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom4(m).String()
}

// RoutesMissing reports whether a required (non-optional) route was found
// missing.
func RoutesMissing(srs []SiteRoutes) bool {
	for _, sr := range srs {
		for _, r := range sr.Routes {
			if r.State == RouteMissing && !r.Optional {
				return true
			}
		}
	}
	return false
}
