package doctor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"lanlink/internal/agent"
	"lanlink/internal/plan"
)

// Run runs every check and returns their results in a fixed order. Later
// checks use what earlier ones found (the site, the agent, the LAN
// interface); a check that lacks what it needs is a Skip saying why.
func Run(ctx context.Context, o Options) []Result {
	if o.Interface == "" {
		o.Interface = "lanlink0"
	}
	if o.Rate <= 0 {
		o.Rate = 1e9
	}
	if o.PlanPath == "" {
		o.PlanPath = plan.DefaultPath
	}
	d := &doc{o: o, obs: o.Observer, rtt: map[string]time.Duration{}}
	d.status, d.agentErr = d.obs.Agent(ctx)
	d.checkPlan()
	d.checkSite()
	d.checkAgent()
	d.readHost()
	d.checkListenPort()
	d.checkForwarding()
	d.checkRPFilter()
	d.checkFirewall()
	d.checkOverlap()
	// Probing first also starts a handshake with every idle peer, so the
	// handshake verdicts below reflect a real attempt.
	if !o.NoProbe && d.status != nil {
		d.measureRTT(ctx)
		if st, err := d.obs.Agent(ctx); err == nil {
			d.status = st
		}
	}
	d.checkHandshakes(ctx)
	d.checkMTU(ctx)
	d.checkTCP()
	return d.results
}

type doc struct {
	o   Options
	obs Observer

	results []Result

	plan     *plan.Plan
	cfg      *plan.SiteConfig
	site     *plan.Site
	status   *agent.Status
	agentErr error
	ifaces   []Interface
	routes   []Route
	lanIface *Interface // the interface with an address in this site's LAN
	lanAddr  netip.Addr // this gateway's address on it
	tunIface *Interface
	rtt      map[string]time.Duration // per peer site, minimum of a few echoes
}

func (d *doc) add(r Result) { d.results = append(d.results, r) }

func (d *doc) skip(id, title, why string) {
	d.add(Result{ID: id, Title: title, Status: Skip, Detail: why})
}

func (d *doc) checkPlan() {
	const id, title = "plan", "plan is valid"
	p, err := d.obs.Plan()
	if err != nil {
		d.add(Result{ID: id, Title: title, Status: Fail, Detail: err.Error(),
			Fix: fmt.Sprintf("fix the plan; `lanlink check -f %s` lists every problem", d.o.PlanPath)})
		return
	}
	d.plan = p
	d.add(Result{ID: id, Title: title, Status: OK, Detail: fmt.Sprintf("%s: network %q, %d sites", d.o.PlanPath, p.Network.Name, len(p.Sites))})
}

func (d *doc) checkSite() {
	const id, title = "site", "this gateway's key is in the plan"
	if d.plan == nil {
		d.skip(id, title, "no valid plan")
		return
	}
	pub, keyErr := d.obs.LocalKey()
	name := d.o.Site
	if name == "" && d.status != nil {
		name = d.status.Site
	}
	if name == "" {
		if keyErr != nil {
			d.add(Result{ID: id, Title: title, Status: Fail, Detail: fmt.Sprintf("cannot read this gateway's key: %v", keyErr),
				Fix: "create it with `lanlink keygen` (or pass --key FILE), then add its public key to the plan"})
			return
		}
		s, ok := d.plan.SiteByKey(pub)
		if !ok {
			d.add(Result{ID: id, Title: title, Status: Fail,
				Detail: fmt.Sprintf("this gateway's public key %s is not in the plan: the plan is stale, or this gateway's key was regenerated", pub),
				Fix: fmt.Sprintf("if this is a new office: lanlink site add NAME --public-key %s --lan CIDR [--endpoint HOST:PORT]\n"+
					"if the key changed: lanlink site set NAME --public-key %s\nthen copy the plan to every gateway", pub, pub)})
			return
		}
		name = s.Name
	}
	s, ok := d.plan.Site(name)
	if !ok {
		d.add(Result{ID: id, Title: title, Status: Fail, Detail: fmt.Sprintf("no site named %q in the plan", name),
			Fix: "`lanlink site list` shows the sites; pass the right one with --site"})
		return
	}
	if keyErr == nil && s.PublicKey != pub {
		d.add(Result{ID: id, Title: title, Status: Fail,
			Detail: fmt.Sprintf("site %s has public key %s in the plan, but this gateway's key has public key %s: peers will drop its handshakes", name, s.PublicKey, pub),
			Fix:    fmt.Sprintf("lanlink site set %s --public-key %s\nthen copy the plan to every gateway", name, pub)})
		// The rest still applies to this site.
	}
	cfg, err := d.plan.SiteConfig(name)
	if err != nil {
		d.add(Result{ID: id, Title: title, Status: Fail, Detail: err.Error()})
		return
	}
	d.site, d.cfg = s, cfg
	if keyErr == nil && s.PublicKey == pub {
		d.add(Result{ID: id, Title: title, Status: OK, Detail: fmt.Sprintf("site %s (public key %s)", name, pub)})
	} else if keyErr != nil {
		d.add(Result{ID: id, Title: title, Status: Warn, Detail: fmt.Sprintf("site %s; cannot read this gateway's key to compare: %v", name, keyErr),
			Fix: "pass the key with --key FILE"})
	}
}

func (d *doc) checkAgent() {
	const id, title = "agent", "agent is running"
	if d.status == nil {
		detail := "no lanlink agent answers on " + d.o.Interface
		if d.agentErr != nil && !errors.Is(d.agentErr, agent.ErrNotRunning) {
			detail = d.agentErr.Error()
		}
		d.add(Result{ID: id, Title: title, Status: Fail, Detail: detail,
			Fix: fmt.Sprintf("lanlink up -f %s --interface %s   (or install the service: lanlink service install)", d.o.PlanPath, d.o.Interface)})
		return
	}
	st := d.status
	if st.PlanError != "" {
		d.add(Result{ID: id, Title: title, Status: Warn,
			Detail: fmt.Sprintf("running generation %d, but it rejected the newest plan: %s", st.Generation, st.PlanError),
			Fix:    fmt.Sprintf("fix the plan (`lanlink check -f %s`); the agent picks it up by itself", st.Plan)})
		return
	}
	d.add(Result{ID: id, Title: title, Status: OK,
		Detail: fmt.Sprintf("site %s on %s, %s backend, pid %d, plan generation %d", st.Site, st.Interface, st.Backend, st.PID, st.Generation)})
}

// readHost reads interfaces and routes, and finds the LAN interface.
func (d *doc) readHost() {
	d.ifaces, _ = d.obs.Interfaces()
	d.routes, _ = d.obs.Routes()
	for i := range d.ifaces {
		ifc := &d.ifaces[i]
		if ifc.Name == d.o.Interface {
			d.tunIface = ifc
			continue
		}
		if d.site == nil || d.lanIface != nil {
			continue
		}
		for _, a := range ifc.Addrs {
			for _, lan := range d.site.LANs {
				if lan.Contains(a.Addr()) {
					d.lanIface, d.lanAddr = ifc, a.Addr()
				}
			}
		}
	}
}

func (d *doc) checkListenPort() {
	const id, title = "listen-port", "WireGuard listens on its UDP port"
	if d.cfg == nil {
		d.skip(id, title, "this gateway's site is unknown")
		return
	}
	port := d.cfg.ListenPort
	bound, err := d.obs.UDPBound(port)
	if err != nil {
		d.skip(id, title, fmt.Sprintf("cannot read the UDP sockets: %v", err))
		return
	}
	switch {
	case d.status == nil && bound:
		d.add(Result{ID: id, Title: title, Status: Fail,
			Detail: fmt.Sprintf("the agent is not running but another program holds UDP port %d, so `lanlink up` cannot listen there", port),
			Fix:    fmt.Sprintf("stop that program (`ss -ulpn 'sport = :%d'` names it), or give %s another port: `port = N` in its [[site]] section", port, d.cfg.Site)})
	case d.status == nil:
		d.skip(id, title, "the agent is not running")
	case d.status.ListenPort != port:
		d.add(Result{ID: id, Title: title, Status: Warn,
			Detail: fmt.Sprintf("the agent listens on UDP %d but the plan says %d", d.status.ListenPort, port),
			Fix:    "lanlink reload --interface " + d.o.Interface})
	case !bound:
		d.add(Result{ID: id, Title: title, Status: Fail,
			Detail: fmt.Sprintf("the agent runs but nothing is bound to UDP port %d", port),
			Fix:    fmt.Sprintf("restart it: lanlink down --interface %s; lanlink up -f %s --interface %s", d.o.Interface, d.o.PlanPath, d.o.Interface)})
	default:
		d.add(Result{ID: id, Title: title, Status: OK, Detail: fmt.Sprintf("UDP %d is bound; the office router must forward it to this gateway", port)})
	}
}

// usesIPv6 reports whether the plan carries IPv6 (a tunnel prefix or a LAN).
func (d *doc) usesIPv6() bool {
	if d.plan == nil {
		return false
	}
	for _, t := range d.plan.Network.Tunnels {
		if t.Addr().Is6() {
			return true
		}
	}
	for _, s := range d.plan.Sites {
		for _, l := range s.LANs {
			if l.Addr().Is6() {
				return true
			}
		}
	}
	return false
}

func (d *doc) checkForwarding() {
	const id, title = "forwarding", "IP forwarding is on"
	keys := []string{"net.ipv4.ip_forward"}
	if d.usesIPv6() {
		keys = append(keys, "net.ipv6.conf.all.forwarding")
	}
	var off []string
	for _, k := range keys {
		v, err := d.obs.Sysctl(k)
		if err != nil {
			d.skip(id, title, fmt.Sprintf("cannot read %s: %v", k, err))
			return
		}
		if v != "1" {
			off = append(off, k)
		}
	}
	if len(off) == 0 {
		d.add(Result{ID: id, Title: title, Status: OK, Detail: strings.Join(keys, ", ") + " = 1"})
		return
	}
	detail := strings.Join(off, ", ") + " = 0: this gateway does not pass packets between the LAN and the tunnel"
	if d.status != nil {
		detail += " (lanlink up turned it on; something turned it off since — a firewall or container tool?)"
	}
	var fix []string
	for _, k := range off {
		fix = append(fix, "sysctl -w "+k+"=1")
	}
	fix = append(fix, "to keep it across reboots, put in /etc/sysctl.d/90-lanlink.conf:")
	for _, k := range off {
		fix = append(fix, "  "+k+" = 1")
	}
	d.add(Result{ID: id, Title: title, Status: Fail, Detail: detail, Fix: strings.Join(fix, "\n")})
}

// checkRPFilter looks at reverse path filtering on the LAN and tunnel
// interfaces. The kernel uses max(conf.all, conf.<iface>); 1 (strict)
// drops a packet whose source is not routed back out the interface it came
// in on. lanlink's routes make the usual paths symmetric, so strict mode
// is only a Fail when the kernel itself says it drops one of them (asked
// through ReversePath); otherwise it is a Warn, because any asymmetric
// path (a relayed site, LAN subnets behind another router, a second
// uplink) is then dropped without a trace.
func (d *doc) checkRPFilter() {
	const id, title = "rp-filter", "reverse path filtering lets tunnel traffic through"
	all, err := d.obs.Sysctl("net.ipv4.conf.all.rp_filter")
	if err != nil {
		d.skip(id, title, fmt.Sprintf("cannot read net.ipv4.conf.all.rp_filter: %v", err))
		return
	}
	allV, _ := strconv.Atoi(all)
	var strict []string // interfaces in strict mode
	var names []string
	for _, ifc := range []*Interface{d.lanIface, d.tunIface} {
		if ifc == nil {
			continue
		}
		names = append(names, ifc.Name)
		v, err := d.obs.Sysctl("net.ipv4.conf." + ifc.Name + ".rp_filter")
		if err != nil {
			continue
		}
		n, _ := strconv.Atoi(v)
		if max(n, allV) == 1 {
			strict = append(strict, ifc.Name)
		}
	}
	if len(names) == 0 {
		d.skip(id, title, "neither the LAN nor the tunnel interface was found")
		return
	}
	if len(strict) == 0 {
		d.add(Result{ID: id, Title: title, Status: OK, Detail: "not strict on " + strings.Join(names, ", ")})
		return
	}
	fix := "sysctl -w net.ipv4.conf.all.rp_filter=2"
	persist := "net.ipv4.conf.all.rp_filter = 2"
	for _, n := range strict {
		fix += " net.ipv4.conf." + n + ".rp_filter=2"
		persist += "\n  net.ipv4.conf." + n + ".rp_filter = 2"
	}
	fix += "\n(2 = loose: a source must be routable at all, not via the arrival interface; it keeps spoofing\n" +
		"protection but lets asymmetric paths through.) To keep it, put in /etc/sysctl.d/90-lanlink.conf:\n  " + persist

	// Ask the kernel about the two paths lanlink needs.
	var drops []string
	if d.cfg != nil && d.lanIface != nil && slices.Contains(strict, d.o.Interface) {
		for _, r := range d.cfg.Routes {
			if !r.Addr().Is4() || !d.lanAddr.Is4() {
				continue
			}
			src := r.Masked().Addr().Next()
			if errors.Is(d.obs.ReversePath(d.o.Interface, src, d.lanAddr), ErrReversePath) {
				drops = append(drops, fmt.Sprintf("packets from %s arriving on %s", r, d.o.Interface))
			}
		}
	}
	if d.cfg != nil && d.lanIface != nil && slices.Contains(strict, d.lanIface.Name) {
		var tun netip.Addr
		for _, a := range d.cfg.Addresses {
			if a.Addr().Is4() {
				tun = a.Addr()
			}
		}
		for _, lan := range d.site.LANs {
			src := lan.Masked().Addr().Next()
			if src == d.lanAddr {
				src = src.Next()
			}
			if tun.IsValid() && src.Is4() && errors.Is(d.obs.ReversePath(d.lanIface.Name, src, tun), ErrReversePath) {
				drops = append(drops, fmt.Sprintf("packets from %s arriving on %s", lan, d.lanIface.Name))
			}
		}
	}
	if len(drops) > 0 {
		d.add(Result{ID: id, Title: title, Status: Fail,
			Detail: fmt.Sprintf("strict rp_filter (1) on %s drops %s: the route back to their source leaves by another interface",
				strings.Join(strict, ", "), strings.Join(drops, " and ")),
			Fix: fix})
		return
	}
	d.add(Result{ID: id, Title: title, Status: Warn,
		Detail: fmt.Sprintf("strict rp_filter (1) on %s: today's paths pass, but any asymmetric path (a relayed site, LAN subnets behind another router, a second uplink) is dropped silently",
			strings.Join(strict, ", ")),
		Fix: fix})
}

// flowVerdict is what a chain does with the first packet of a connection
// from iif to oif.
type flowVerdict struct {
	dropped bool
	by      string // "policy drop" or "a drop rule" …
	unsure  bool   // rules doctor cannot evaluate came before the verdict
}

func evalChain(c FirewallChain, iif, oif string) flowVerdict {
	unsure := c.Opaque && c.RuleCount > 0
	if !c.Opaque {
		for _, r := range c.Rules {
			if r.EstablishedOnly {
				continue
			}
			if r.IIF != "" && (iif == "" || r.IIF != iif) {
				if iif == "" {
					unsure = true
				}
				continue
			}
			if r.OIF != "" && (oif == "" || r.OIF != oif) {
				if oif == "" {
					unsure = true
				}
				continue
			}
			switch {
			case r.Verdict == "":
				continue
			case r.Conditional, r.Verdict == "jump", r.Verdict == "goto":
				unsure = true
				continue
			case r.Verdict == "accept":
				return flowVerdict{}
			case r.Verdict == "drop", r.Verdict == "reject":
				return flowVerdict{dropped: true, by: "a rule that " + r.Verdict + "s it", unsure: unsure}
			case r.Verdict == "return":
				return flowVerdict{dropped: c.Policy == "drop", by: "policy drop", unsure: unsure}
			}
		}
	}
	return flowVerdict{dropped: c.Policy == "drop", by: "policy drop", unsure: unsure}
}

func (d *doc) checkFirewall() {
	const id, title = "firewall", "the firewall forwards between the LAN and the tunnel"
	chains, err := d.obs.Firewall()
	if err != nil {
		d.skip(id, title, fmt.Sprintf("cannot read the firewall: %v", err))
		return
	}
	lan, tun := "", d.o.Interface
	if d.lanIface != nil {
		lan = d.lanIface.Name
	}
	v6 := d.usesIPv6()
	var fails, warns, fixes []string
	for _, c := range chains {
		if c.Family == "ip6" && !v6 {
			continue
		}
		name := fmt.Sprintf("%s chain %s %s %s", c.Source, c.Family, c.Table, c.Chain)
		if c.Source == "iptables-legacy" {
			name = "iptables-legacy filter FORWARD"
		}
		var dropped []string
		unsure := false
		for _, f := range [][2]string{{lan, tun}, {tun, lan}} {
			v := evalChain(c, f[0], f[1])
			if v.dropped {
				dropped = append(dropped, fmt.Sprintf("%s → %s (%s)", cmp.Or(f[0], "LAN"), f[1], v.by))
				unsure = unsure || v.unsure
			}
		}
		if len(dropped) == 0 {
			if c.Opaque && c.RuleCount > 0 {
				warns = append(warns, fmt.Sprintf("%s has %d rules lanlink cannot read; check them with `iptables-legacy -L FORWARD -v -n`", name, c.RuleCount))
			}
			continue
		}
		msg := fmt.Sprintf("%s drops new connections %s", name, strings.Join(dropped, " and "))
		if unsure {
			warns = append(warns, msg+" unless one of its rules lanlink cannot evaluate accepts them")
		} else {
			fails = append(fails, msg)
		}
		fixes = append(fixes, firewallFix(c, cmp.Or(lan, "LAN-IFACE"), tun)...)
	}
	switch {
	case len(fails) > 0:
		d.add(Result{ID: id, Title: title, Status: Fail, Detail: strings.Join(append(fails, warns...), "; "), Fix: strings.Join(fixes, "\n")})
	case len(warns) > 0:
		d.add(Result{ID: id, Title: title, Status: Warn, Detail: strings.Join(warns, "; "), Fix: strings.Join(fixes, "\n")})
	case len(chains) == 0:
		d.add(Result{ID: id, Title: title, Status: OK, Detail: "no forward filtering (no nftables forward chain, no iptables-legacy filter table)"})
	default:
		d.add(Result{ID: id, Title: title, Status: OK, Detail: fmt.Sprintf("%d forward chain(s) let %s ↔ %s through", len(chains), cmp.Or(lan, "LAN"), tun)})
	}
}

func firewallFix(c FirewallChain, lan, tun string) []string {
	switch {
	case c.Source == "iptables-legacy":
		return []string{
			fmt.Sprintf("iptables-legacy -I FORWARD -i %s -o %s -j ACCEPT", lan, tun),
			fmt.Sprintf("iptables-legacy -I FORWARD -i %s -o %s -j ACCEPT", tun, lan),
		}
	case c.Table == "filter" && c.Chain == "FORWARD":
		// iptables-nft's table: keep using iptables so its tools can
		// still list and save the rules.
		ipt := "iptables"
		if c.Family == "ip6" {
			ipt = "ip6tables"
		}
		return []string{
			fmt.Sprintf("%s -I FORWARD -i %s -o %s -j ACCEPT", ipt, lan, tun),
			fmt.Sprintf("%s -I FORWARD -i %s -o %s -j ACCEPT", ipt, tun, lan),
		}
	default:
		return []string{
			fmt.Sprintf("nft insert rule %s %s %s iifname %q oifname %q accept", c.Family, c.Table, c.Chain, lan, tun),
			fmt.Sprintf("nft insert rule %s %s %s iifname %q oifname %q accept", c.Family, c.Table, c.Chain, tun, lan),
		}
	}
}

func (d *doc) checkOverlap() {
	const id, title = "overlap", "plan networks do not overlap this host's other networks"
	if d.cfg == nil {
		d.skip(id, title, "this gateway's site is unknown")
		return
	}
	type pnet struct {
		p    netip.Prefix
		what string
	}
	var remote []pnet
	for _, s := range d.plan.Sites {
		if s.Name == d.site.Name {
			continue
		}
		for _, l := range s.LANs {
			remote = append(remote, pnet{l, fmt.Sprintf("%s's LAN %s", s.Name, l)})
		}
	}
	for _, t := range d.plan.Network.Tunnels {
		remote = append(remote, pnet{t, fmt.Sprintf("the tunnel network %s", t)})
	}
	var problems, fixes []string
	for _, ifc := range d.ifaces {
		if ifc.Name == d.o.Interface || ifc.Name == "lo" {
			continue
		}
		for _, a := range ifc.Addrs {
			if a.Addr().IsLinkLocalUnicast() || a.Addr().IsLoopback() {
				continue
			}
			for _, r := range remote {
				if a.Masked().Overlaps(r.p) {
					problems = append(problems, fmt.Sprintf("%s has %s (network %s), which overlaps %s", ifc.Name, a, a.Masked(), r.what))
					fixes = append(fixes, fmt.Sprintf("renumber one of them: move %s off %s, or change %s in the plan (lanlink site set … --lan CIDR)", ifc.Name, a.Masked(), r.what))
				}
			}
		}
	}
	for _, rt := range d.routes {
		if rt.Dst.Bits() != 0 || !rt.Gw.IsValid() {
			continue
		}
		for _, r := range remote {
			if r.p.Contains(rt.Gw) {
				problems = append(problems, fmt.Sprintf("the default route's gateway %s (on %s) lies in %s: lanlink's route for it would take this host's internet access into the tunnel", rt.Gw, rt.Dev, r.what))
				fixes = append(fixes, fmt.Sprintf("renumber %s or this office's uplink network", r.what))
			}
		}
	}
	if len(problems) > 0 {
		d.add(Result{ID: id, Title: title, Status: Fail, Detail: strings.Join(problems, "; "), Fix: strings.Join(slices.Compact(fixes), "\n")})
		return
	}
	if d.lanIface == nil {
		var lans []string
		for _, l := range d.site.LANs {
			lans = append(lans, l.String())
		}
		d.add(Result{ID: id, Title: title, Status: Warn,
			Detail: fmt.Sprintf("no interface of this host has an address in %s's LAN %s: is this %s's gateway?", d.site.Name, strings.Join(lans, ", "), d.site.Name),
			Fix:    fmt.Sprintf("run doctor on %s's gateway, pass the right --site, or fix %s's lan in the plan", d.site.Name, d.site.Name)})
		return
	}
	d.add(Result{ID: id, Title: title, Status: OK, Detail: fmt.Sprintf("LAN interface %s (%s); no overlaps", d.lanIface.Name, d.lanAddr)})
}

// peerAddr is the tunnel address doctor probes for a peer (IPv4 first).
func (d *doc) peerAddr(site string) netip.Addr {
	s, ok := d.plan.Site(site)
	if !ok {
		return netip.Addr{}
	}
	var best netip.Addr
	for _, a := range s.Addresses {
		if a.Is4() {
			return a
		}
		best = a
	}
	return best
}

const pingSize = 84 // a default `ping`: 20 + 8 + 56

func (d *doc) measureRTT(ctx context.Context) {
	if d.cfg == nil {
		return
	}
	for _, p := range d.cfg.Peers {
		addr := d.peerAddr(p.Site)
		if !addr.IsValid() {
			continue
		}
		// The first echo may wait for a handshake; keep the best of a few.
		var best time.Duration
		for i := 0; i < 4; i++ {
			rtt, err := d.obs.Ping(ctx, addr, pingSize, time.Second)
			if err != nil {
				if i >= 1 && best == 0 {
					break // no answer twice: the handshake check says why
				}
				continue
			}
			if best == 0 || rtt < best {
				best = rtt
			}
		}
		if best > 0 {
			d.rtt[p.Site] = best
		}
	}
}

func (d *doc) checkHandshakes(ctx context.Context) {
	if d.cfg == nil {
		return
	}
	for _, p := range d.cfg.Peers {
		id, title := "handshake:"+p.Site, "handshake with "+p.Site
		if d.status == nil {
			d.skip(id, title, "the agent is not running")
			continue
		}
		var ps *agent.PeerStatus
		for i := range d.status.Peers {
			if d.status.Peers[i].Site == p.Site {
				ps = &d.status.Peers[i]
			}
		}
		if ps == nil {
			d.add(Result{ID: id, Title: title, Status: Warn, Detail: "the agent does not know this peer: it runs an older plan",
				Fix: "lanlink reload --interface " + d.o.Interface})
			continue
		}
		d.add(d.handshakeVerdict(ctx, id, title, p, ps))
	}
}

func (d *doc) handshakeVerdict(ctx context.Context, id, title string, p plan.Peer, ps *agent.PeerStatus) Result {
	r := Result{ID: id, Title: title}
	counters := fmt.Sprintf("rx %d B, tx %d B", ps.RxBytes, ps.TxBytes)
	if ps.State == agent.PeerUp {
		r.Status = OK
		r.Detail = fmt.Sprintf("last handshake %s ago via %s, %s", time.Duration(ps.HandshakeAge*float64(time.Second)), cmp.Or(ps.Actual, ps.Endpoint), counters)
		if rtt, ok := d.rtt[p.Site]; ok {
			r.Detail += fmt.Sprintf(", RTT %s", rtt.Round(10*time.Microsecond))
		}
		return r
	}
	r.Status = Fail
	when := "never had a handshake"
	if ps.State == agent.PeerStale {
		when = fmt.Sprintf("last handshake %s ago", time.Duration(ps.HandshakeAge*float64(time.Second)))
	}
	port := strconv.Itoa(d.cfg.ListenPort)
	if p.Endpoint == "" {
		r.Detail = fmt.Sprintf("%s %s; it has no endpoint, so it must connect to us: its agent is not running, it cannot reach our endpoint (the port forward of UDP %s at this office), or the keys do not match (%s)", p.Site, when, port, counters)
		r.Fix = fmt.Sprintf("check this office's router forwards UDP %s to %s; run `lanlink doctor` on %s's gateway", port, cmp.Or(d.lanAddrString(), "this gateway"), p.Site)
		return r
	}
	host, pport, err := net.SplitHostPort(p.Endpoint)
	if err == nil {
		if _, perr := netip.ParseAddr(host); perr != nil {
			if _, rerr := d.obs.Resolve(ctx, host); rerr != nil {
				r.Detail = fmt.Sprintf("%s %s: its endpoint host %s does not resolve (%v), so nothing is sent to it", p.Site, when, host, rerr)
				r.Fix = fmt.Sprintf("fix the DNS record of %s (dynamic DNS at %s's office?), or set the endpoint: lanlink site set %s --endpoint HOST:PORT", host, p.Site, p.Site)
				return r
			}
		}
	}
	switch {
	case ps.TxBytes == 0:
		r.Status = Warn
		r.Detail = fmt.Sprintf("%s %s and nothing was sent to it yet (%s)", p.Site, when, counters)
		r.Fix = fmt.Sprintf("send traffic to start one: ping %s", d.peerAddr(p.Site))
	case ps.RxBytes == 0:
		r.Detail = fmt.Sprintf("%s %s: handshakes go to %s but nothing comes back (%s). Most likely the port forward of UDP %s to %s's gateway at %s's office is missing or points elsewhere; "+
			"less likely a firewall there drops it, its agent is not running, or the plan's key for %s is not its key (a wrong key also gets no answer)",
			p.Site, when, cmp.Or(ps.Actual, p.Endpoint), counters, pport, p.Site, p.Site, p.Site)
		r.Fix = fmt.Sprintf("at %s's office: forward UDP %s on the internet router to the gateway's LAN address; then run `lanlink doctor` on %s's gateway (its site check finds a key mismatch)", p.Site, pport, p.Site)
	default:
		r.Detail = fmt.Sprintf("%s %s although packets come back from it (%s): the keys do not match — the plan's key for %s, or %s's plan has another key for %s", p.Site, when, counters, p.Site, p.Site, d.cfg.Site)
		r.Fix = fmt.Sprintf("compare `lanlink pubkey` on %s's gateway with `lanlink site list`; copy the same plan to both gateways", p.Site)
	}
	return r
}

func (d *doc) lanAddrString() string {
	if d.lanAddr.IsValid() {
		return d.lanAddr.String()
	}
	return ""
}

// pathMTU finds the largest packet that reaches addr with DF set, between
// lo and hi bytes, by binary search. ok is false when not even lo passes.
func pathMTU(ctx context.Context, obs Observer, addr netip.Addr, lo, hi int, timeout time.Duration) (int, bool) {
	try := func(size int) bool {
		for range 2 { // one lost echo must not halve the answer
			_, err := obs.Ping(ctx, addr, size, timeout)
			if err == nil {
				return true
			}
			if errors.Is(err, ErrTooBig) || ctx.Err() != nil {
				return false
			}
		}
		return false
	}
	if try(hi) {
		return hi, true
	}
	if !try(lo) {
		return 0, false
	}
	for hi-lo > 1 { // invariant: lo passes, hi does not
		mid := (lo + hi) / 2
		if try(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, true
}

func (d *doc) checkMTU(ctx context.Context) {
	if d.cfg == nil {
		return
	}
	mtu := d.cfg.MTU
	if d.tunIface != nil && d.tunIface.MTU > 0 {
		mtu = d.tunIface.MTU
	}
	for _, p := range d.cfg.Peers {
		id, title := "mtu:"+p.Site, "full-size packets reach "+p.Site
		rtt, ok := d.rtt[p.Site]
		switch {
		case d.o.NoProbe:
			d.skip(id, title, "probes disabled")
			continue
		case !ok:
			d.skip(id, title, "no echo reply from "+p.Site+" over the tunnel")
			continue
		}
		timeout := min(max(4*rtt+200*time.Millisecond, 300*time.Millisecond), 2*time.Second)
		addr := d.peerAddr(p.Site)
		lo := 576
		if addr.Is6() {
			lo = 1280
		}
		got, ok := pathMTU(ctx, d.obs, addr, lo, mtu, timeout)
		switch {
		case !ok:
			d.add(Result{ID: id, Title: title, Status: Warn, Detail: fmt.Sprintf("no reply even to %d-byte packets with DF set", lo)})
		case got >= mtu:
			d.add(Result{ID: id, Title: title, Status: OK, Detail: fmt.Sprintf("%d-byte packets (the interface MTU) pass", mtu)})
		default:
			d.add(Result{ID: id, Title: title, Status: Fail,
				Detail: fmt.Sprintf("path MTU to %s is %d bytes but %s's MTU is %d: larger packets are dropped on the WAN path without an error (an MTU black hole), so big transfers stall", p.Site, got, d.o.Interface, mtu),
				Fix:    fmt.Sprintf("set `mtu = %d` in the [network] section of %s and copy the plan to every gateway\n(or raise the MTU of the WAN link between the offices by %d bytes)", got, d.o.PlanPath, mtu-got)})
		}
	}
}

// checkTCP compares TCP buffer limits with the bandwidth-delay product of
// the slowest-answering peer at the assumed rate. TCP needs about twice
// the BDP of buffer: the kernel spends part of it on overhead.
func (d *doc) checkTCP() {
	const bufID, bufTitle = "tcp-buffers", "TCP buffers fit the bandwidth-delay product"
	const ccID, ccTitle = "congestion-control", "TCP congestion control suits long links"
	if d.cfg == nil {
		return
	}
	var maxRTT time.Duration
	var far string
	for _, p := range d.cfg.Peers {
		if r, ok := d.rtt[p.Site]; ok && r > maxRTT {
			maxRTT, far = r, p.Site
		}
	}
	if maxRTT == 0 {
		d.skip(bufID, bufTitle, "no RTT measured to any peer")
		d.skip(ccID, ccTitle, "no RTT measured to any peer")
		return
	}
	bdp := int64(d.o.Rate / 8 * maxRTT.Seconds())
	want := max(2*bdp, 4<<20)
	if want > 4<<20 { // round up to a whole MiB
		want = (want + 1<<20 - 1) &^ (1<<20 - 1)
	}
	rateS := formatRate(d.o.Rate)
	bdpS := fmt.Sprintf("BDP %s × %s = %s", rateS, maxRTT.Round(10*time.Microsecond), bytesIEC(bdp))

	var low, fix, persist []string
	for _, k := range []string{"net.core.rmem_max", "net.core.wmem_max"} {
		v, err := d.obs.Sysctl(k)
		n, perr := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || perr != nil {
			continue
		}
		if n < 2*bdp {
			low = append(low, fmt.Sprintf("%s = %d", k, n))
			fix = append(fix, fmt.Sprintf("sysctl -w %s=%d", k, want))
			persist = append(persist, fmt.Sprintf("%s = %d", k, want))
		}
	}
	for _, k := range []string{"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"} {
		v, err := d.obs.Sysctl(k)
		f := strings.Fields(v)
		if err != nil || len(f) != 3 {
			continue
		}
		n, perr := strconv.ParseInt(f[2], 10, 64)
		if perr != nil {
			continue
		}
		if n < 2*bdp {
			low = append(low, fmt.Sprintf("%s max = %d", k, n))
			line := fmt.Sprintf("%s %s %d", f[0], f[1], want)
			fix = append(fix, fmt.Sprintf("sysctl -w %s=%q", k, line))
			persist = append(persist, fmt.Sprintf("%s = %s", k, line))
		}
	}
	if len(low) == 0 {
		d.add(Result{ID: bufID, Title: bufTitle, Status: OK, Detail: fmt.Sprintf("%s (to %s); buffers allow at least twice that", bdpS, far)})
	} else {
		d.add(Result{ID: bufID, Title: bufTitle, Status: Warn,
			Detail: fmt.Sprintf("%s (to %s), but %s: one TCP connection cannot fill the link", bdpS, far, strings.Join(low, ", ")),
			Fix:    strings.Join(fix, "\n") + "\nto keep them, put in /etc/sysctl.d/90-lanlink.conf:\n  " + strings.Join(persist, "\n  ")})
	}

	cc, err := d.obs.Sysctl("net.ipv4.tcp_congestion_control")
	if err != nil {
		d.skip(ccID, ccTitle, fmt.Sprintf("cannot read net.ipv4.tcp_congestion_control: %v", err))
		return
	}
	avail, _ := d.obs.Sysctl("net.ipv4.tcp_available_congestion_control")
	switch {
	case cc == "bbr":
		d.add(Result{ID: ccID, Title: ccTitle, Status: OK, Detail: "bbr"})
	case bdp < 1<<20:
		d.add(Result{ID: ccID, Title: ccTitle, Status: OK, Detail: fmt.Sprintf("%s; fine for a %s BDP", cc, bytesIEC(bdp))})
	default:
		fix := "sysctl -w net.core.default_qdisc=fq net.ipv4.tcp_congestion_control=bbr\n" +
			"to keep it, put in /etc/sysctl.d/90-lanlink.conf:\n  net.core.default_qdisc = fq\n  net.ipv4.tcp_congestion_control = bbr"
		if !slices.Contains(strings.Fields(avail), "bbr") {
			fix = "modprobe tcp_bbr && echo tcp_bbr > /etc/modules-load.d/bbr.conf\n" + fix
		}
		d.add(Result{ID: ccID, Title: ccTitle, Status: Warn,
			Detail: fmt.Sprintf("%s with a %s BDP: a loss-based algorithm backs off hard on every loss over a long path; bbr keeps such links full", cc, bytesIEC(bdp)),
			Fix:    fix})
	}
}

func formatRate(bps float64) string {
	switch {
	case bps >= 1e9:
		return strconv.FormatFloat(bps/1e9, 'f', -1, 64) + " Gbit/s"
	case bps >= 1e6:
		return strconv.FormatFloat(bps/1e6, 'f', -1, 64) + " Mbit/s"
	default:
		return strconv.FormatFloat(bps/1e3, 'f', -1, 64) + " kbit/s"
	}
}

func bytesIEC(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%d B", n)
	}
}
