package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// New builds a lab in fresh network namespaces. If anything fails, every
// namespace already created is deleted before New returns the error. With
// tb non-nil, Close is registered with tb.Cleanup and its error reported
// with tb.Errorf. ctx bounds the build only.
func New(ctx context.Context, tb TB, cfg Config) (*Lab, error) {
	if tb != nil {
		tb.Helper()
	}
	cfg = cfg.withDefaults()
	lans, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	l := &Lab{
		cfg:     cfg,
		log:     cfg.Logger,
		procs:   map[*Proc]struct{}{},
		closers: map[io.Closer]struct{}{},
	}
	if err := l.build(ctx, lans); err != nil {
		if cerr := l.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("remove half-built lab %s: %w", l.ID, cerr))
		}
		return nil, err
	}
	if tb != nil {
		tb.Cleanup(func() {
			if err := l.Close(); err != nil {
				tb.Errorf("close lab %s: %v", l.ID, err)
			}
		})
	}
	l.log.Info("lab up", "id", l.ID, "offices", len(l.Offices), "hostsPerOffice", cfg.HostsPerOffice)
	return l, nil
}

// Nodes returns every namespace of the lab in creation order.
func (l *Lab) Nodes() []*Node {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Node(nil), l.nodes...)
}

// build creates the topology. Every created namespace is recorded in
// l.nodes before anything else is done with it, so Close can undo a partial
// build.
func (l *Lab) build(ctx context.Context, lans []netip.Prefix) error {
	inet, err := l.reserve(ctx)
	if err != nil {
		return err
	}
	l.Internet = inet
	// The internet is a router, not a bridge: every office link is its own
	// interface carrying the ISP-side addresses of both documentation
	// ranges as /32s, with a host route to the office's WAN address and
	// proxy ARP so that routers on the shared /24 reach each other through
	// it. Routed (rather than switched) traffic is what policy routing can
	// steer through a WAN emulator (internal/wanem), so every packet between
	// two offices crosses the internet namespace's IP layer exactly once.
	inet.Addr = coreAddr[wanNet]
	if err := inet.sysctls([]sysctl{
		{"net/ipv4/ip_forward", "1"},
		{"net/ipv4/conf/all/send_redirects", "0"},
		{"net/ipv4/conf/default/send_redirects", "0"},
	}); err != nil {
		return err
	}
	if l.cfg.IPv6WAN {
		// Before the first office link exists, so that every link starts
		// with IPv6 on and forwarding (the all/ switch sets the default
		// for new interfaces too). The internet's IPv6 routes are only
		// the office links' connected /64s.
		if err := inet.sysctls(append(ipv6On(), sysctl{"net/ipv6/conf/all/forwarding", "1"})); err != nil {
			return err
		}
	}
	if err := l.step("internet"); err != nil {
		return err
	}
	for i := 1; i <= l.cfg.Offices; i++ {
		if err := l.addOffice(ctx, i, lans); err != nil {
			return err
		}
	}
	return l.step("done")
}

// addOffice builds office i (1-based) with LAN lans[i-1]; its router routes
// every other prefix of lans via its gateway. With Config.IPv6 the LAN is
// dual-stack and the router routes the other offices' LAN6 the same way;
// with Config.IPv6WAN the WAN link is dual-stack too.
func (l *Lab) addOffice(ctx context.Context, i int, lans []netip.Prefix) error {
	inet := l.Internet
	h, err := netlink.NewHandleAt(inet.ns)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", inet.Name, err)
	}
	defer h.Close()
	lan, lan6 := lans[i-1], l.cfg.lan6(i)
	o := &Office{
		Index:         i,
		Name:          "o" + strconv.Itoa(i),
		LAN:           lan,
		WAN:           wanAddr(i),
		WAN6:          l.cfg.wan6(i),
		WANIface:      l.ID + "-wan",
		InternetIface: l.ID + "-i" + strconv.Itoa(i),
		GatewayLAN:    gatewayLAN(lan),
		LAN6:          lan6,
		GatewayLAN6:   addrIn(lan6, gatewayLAN),
		Port:          l.cfg.Port,
		PortForward:   l.cfg.portForward(i),
		lab:           l,
	}
	l.mu.Lock()
	l.Offices = append(l.Offices, o)
	l.mu.Unlock()

	// Router: LAN bridge carrying .1 (and ::1), WAN veth into the internet.
	r, err := l.addNode(ctx, nsRouter(l.ID, i))
	if err != nil {
		return err
	}
	o.Router = r
	if err := r.enableIPv6(lan6); err != nil {
		return err
	}
	rh, err := netlink.NewHandleAt(r.ns)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", r.Name, err)
	}
	defer rh.Close()
	lanBr := l.ID + "-lan"
	if err := addBridge(rh, lanBr); err != nil {
		return fmt.Errorf("router %s: %w", r.Name, err)
	}
	if err := addAddr(rh, lanBr, netip.PrefixFrom(routerLAN(lan), lan.Bits())); err != nil {
		return fmt.Errorf("router %s: %w", r.Name, err)
	}
	r.Addr, r.Iface = routerLAN(lan), lanBr
	if lan6.IsValid() {
		if err := addAddr(rh, lanBr, netip.PrefixFrom(routerLAN(lan6), lan6.Bits())); err != nil {
			return fmt.Errorf("router %s: %w", r.Name, err)
		}
		r.Addr6 = routerLAN(lan6)
	}
	if err := addVeth(rh, o.WANIface, inet, o.InternetIface); err != nil {
		return fmt.Errorf("router %s WAN: %w", r.Name, err)
	}
	if err := setUp(h, o.InternetIface); err != nil {
		return fmt.Errorf("internet %s: %w", inet.Name, err)
	}
	for _, p := range []netip.Prefix{wanNet, wanAlt} {
		if err := addAddr(h, o.InternetIface, netip.PrefixFrom(coreAddr[p], 32)); err != nil {
			return fmt.Errorf("internet %s: %w", inet.Name, err)
		}
	}
	if err := addLinkRoute(h, netip.PrefixFrom(o.WAN, 32), o.InternetIface); err != nil {
		return fmt.Errorf("internet %s: %w", inet.Name, err)
	}
	if err := inet.sysctls([]sysctl{
		{"net/ipv4/conf/" + o.InternetIface + "/proxy_arp", "1"},
		// The kernel delays proxy ARP replies by up to 0.8 s by default
		// (proxy_delay): every first packet between offices would wait
		// for it. A real ISP answers at once.
		{"net/ipv4/neigh/" + o.InternetIface + "/proxy_delay", "0"},
		{"net/ipv4/conf/" + o.InternetIface + "/send_redirects", "0"},
	}); err != nil {
		return err
	}
	if err := addAddr(rh, o.WANIface, netip.PrefixFrom(o.WAN, wanNet.Bits())); err != nil {
		return fmt.Errorf("router %s: %w", r.Name, err)
	}
	if err := addRoute(rh, netip.Prefix{}, coreAddr[wanNet]); err != nil {
		return fmt.Errorf("router %s: %w", r.Name, err)
	}
	if o.WAN6.IsValid() {
		// The office's IPv6 WAN link: a /64 of its own with the internet
		// at ::1 and the router at ::2, so the connected routes on both
		// ends are all the routing it needs.
		p := wan6Prefix(i)
		if err := addAddr(h, o.InternetIface, netip.PrefixFrom(internetWAN6(i), p.Bits())); err != nil {
			return fmt.Errorf("internet %s: %w", inet.Name, err)
		}
		if err := addAddr(rh, o.WANIface, netip.PrefixFrom(o.WAN6, p.Bits())); err != nil {
			return fmt.Errorf("router %s: %w", r.Name, err)
		}
		if err := addRoute(rh, netip.Prefix{}, internetWAN6(i)); err != nil {
			return fmt.Errorf("router %s: %w", r.Name, err)
		}
	}
	if err := r.sysctls(append(routerSysctls(lanBr, lan6.IsValid()),
		// ChangeWANAddress adds the new address before removing the
		// old; without this, removing a primary removes its
		// secondaries too.
		sysctl{"net/ipv4/conf/" + o.WANIface + "/promote_secondaries", "1"})); err != nil {
		return err
	}
	if err := l.step(o.Name + "-router"); err != nil {
		return err
	}

	// Gateway and hosts: one veth each into the router's LAN bridge.
	// at numbers the node in a LAN (gatewayLAN, hostLAN): in LAN and LAN6
	// alike.
	lanNode := func(name, port string, at func(netip.Prefix) netip.Addr) (*Node, error) {
		n, err := l.addNode(ctx, name)
		if err != nil {
			return nil, err
		}
		if err := n.enableIPv6(lan6); err != nil {
			return nil, err
		}
		nh, err := netlink.NewHandleAt(n.ns)
		if err != nil {
			return nil, fmt.Errorf("netlink in %s: %w", name, err)
		}
		defer nh.Close()
		n.Addr, n.Iface, n.Addr6 = at(lan), l.ID+"-eth0", addrIn(lan6, at)
		if err := addVeth(nh, n.Iface, r, port); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if err := attach(rh, port, lanBr); err != nil {
			return nil, fmt.Errorf("router %s: %w", r.Name, err)
		}
		if err := addAddr(nh, n.Iface, netip.PrefixFrom(n.Addr, lan.Bits())); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if err := addRoute(nh, netip.Prefix{}, routerLAN(lan)); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if lan6.IsValid() {
			if err := addAddr(nh, n.Iface, netip.PrefixFrom(n.Addr6, lan6.Bits())); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			if err := addRoute(nh, netip.Prefix{}, routerLAN(lan6)); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			// IPv6 has no send_redirects switch for the router: it is the
			// LAN nodes that ignore redirects, so that remote-LAN traffic
			// keeps going through the router, as with IPv4.
			if err := n.sysctls([]sysctl{{"net/ipv6/conf/" + n.Iface + "/accept_redirects", "0"}}); err != nil {
				return nil, err
			}
		}
		return n, nil
	}
	if o.Gateway, err = lanNode(nsGateway(l.ID, i), l.ID+"-pg", gatewayLAN); err != nil {
		return err
	}
	for j := range l.cfg.HostsPerOffice {
		at := func(p netip.Prefix) netip.Addr { return hostLAN(p, j) }
		hn, err := lanNode(nsHost(l.ID, i, j), l.ID+"-ph"+strconv.Itoa(j+1), at)
		if err != nil {
			return err
		}
		o.Hosts = append(o.Hosts, hn)
	}
	if err := l.step(o.Name + "-lan"); err != nil {
		return err
	}

	// The seed's "static routes in place to route packets to the
	// gateway hosts": every other office's LAN via this gateway.
	for j, other := range lans {
		if j == i-1 {
			continue
		}
		if err := addRoute(rh, other, o.GatewayLAN); err != nil {
			return fmt.Errorf("router %s: %w", r.Name, err)
		}
		if other6 := l.cfg.lan6(j + 1); other6.IsValid() {
			if err := addRoute(rh, other6, o.GatewayLAN6); err != nil {
				return fmt.Errorf("router %s: %w", r.Name, err)
			}
		}
	}
	if _, err := r.execInput(ctx, []byte(natRuleset(o)), "nft", "-f", "-"); err != nil {
		return fmt.Errorf("router %s NAT: %w", r.Name, err)
	}
	return l.step(o.Name + "-nat")
}

// AddOffice adds one office to a running lab, numbered len(Offices)+1 and
// built like the others (LAN from Config.LANPrefix, LAN6 with Config.IPv6,
// WAN6 with Config.IPv6WAN, port forward unless listed in
// Config.NoPortForward), and adds a route to
// its LAN (and LAN6) via the local gateway on every existing office
// router, as an administrator does when a new office joins. Running
// processes are not touched. If it fails, the new office's namespaces are
// removed again and Offices is unchanged.
func (l *Lab) AddOffice(ctx context.Context) (*Office, error) {
	l.mu.Lock()
	closed, n, mark := l.closed, len(l.Offices), len(l.nodes)
	l.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("add office: %w", ErrClosed)
	}
	i := n + 1
	if i > MaxOffices {
		return nil, fmt.Errorf("%w: add office %d: a lab has at most %d offices", ErrConfig, i, MaxOffices)
	}
	cfg := l.cfg
	cfg.Offices = i
	lans, err := cfg.validate() // also: the new LAN overlaps no other
	if err != nil {
		return nil, fmt.Errorf("add office %d: %w", i, err)
	}
	lan, lan6 := lans[i-1], cfg.lan6(i)
	l.cfg.Offices = i
	err = l.addOffice(ctx, i, lans)
	if err == nil {
		for _, o := range l.Offices[:n] {
			if err = o.Router.addRoute(lan, o.GatewayLAN); err != nil {
				break
			}
			if lan6.IsValid() {
				if err = o.Router.addRoute(lan6, o.GatewayLAN6); err != nil {
					break
				}
			}
		}
	}
	if err != nil {
		l.undoOffice(ctx, n, mark)
		l.cfg.Offices = n
		return nil, fmt.Errorf("add office %d: %w", i, err)
	}
	o := l.Offices[n]
	l.log.Info("lab office added", "id", l.ID, "office", i, "lan", lan, "lan6", lan6)
	return o, nil
}

// undoOffice deletes the namespaces created after l.nodes[:mark] and drops
// offices beyond the first n, after a failed AddOffice. Existing routers
// may keep a route to the removed LAN (or LAN6); it leads to their own
// gateway, which drops it.
func (l *Lab) undoOffice(ctx context.Context, n, mark int) {
	l.mu.Lock()
	extra := append([]*Node(nil), l.nodes[mark:]...)
	l.nodes = l.nodes[:mark]
	l.Offices = l.Offices[:n]
	l.mu.Unlock()
	for j := len(extra) - 1; j >= 0; j-- {
		nd := extra[j]
		if nd.ns >= 0 {
			nd.ns.Close()
			nd.ns = -1
		}
		if err := deleteNetns(ctx, l.ID, nd.Name); err != nil {
			l.log.Warn("remove half-added office", "err", err)
		}
		_ = os.RemoveAll(filepath.Join(l.dir, nd.Name))
	}
}

// addRoute adds dst via gw in the node's namespace.
func (n *Node) addRoute(dst netip.Prefix, gw netip.Addr) error {
	h, err := netlink.NewHandleAt(n.ns)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", n.Name, err)
	}
	defer h.Close()
	if err := addRoute(h, dst, gw); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	return nil
}

// step is the failure-injection point for tests (Config.failAt).
func (l *Lab) step(name string) error {
	if l.cfg.failAt == name {
		return fmt.Errorf("injected failure after step %q", name)
	}
	return nil
}

// natRuleset is the office router's firewall: masquerade the LAN behind
// the WAN address and forward the WireGuard port to the gateway, like a
// consumer router with one port-forward rule. Matching the WAN interface
// rather than its address keeps both rules valid across ChangeWANAddress.
// With an IPv6 WAN (o.WAN6) a second table, of the ip6 family and the
// same name, does exactly the same for IPv6 (NAT66: masquerade behind
// WAN6, UDP Port to GatewayLAN6); both go in one `nft -f` transaction.
// The ip table keeps its name and content either way: other lab users
// (internal/bench) add rules to it.
func natRuleset(o *Office) string {
	var b strings.Builder
	table := func(family string, gateway netip.Addr) {
		fmt.Fprintf(&b, "table %s lanlink_lab {\n", family)
		fmt.Fprintf(&b, "\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n")
		if o.PortForward {
			fmt.Fprintf(&b, "\t\tiifname %q udp dport %d dnat to %s\n", o.WANIface, o.Port, gateway)
		}
		fmt.Fprintf(&b, "\t}\n")
		fmt.Fprintf(&b, "\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n")
		fmt.Fprintf(&b, "\t\toifname %q masquerade\n\t}\n}\n", o.WANIface)
	}
	table("ip", o.GatewayLAN)
	if o.WAN6.IsValid() {
		table("ip6", o.GatewayLAN6)
	}
	return b.String()
}

type sysctl struct{ key, value string }

// routerSysctls: forwarding on (IPv6 too with ipv6), and no ICMP
// redirects, so that LAN hosts keep sending remote-LAN traffic through the
// router (as on a real office LAN whose hosts only know their default
// gateway) and tests see a deterministic path. IPv6 has no switch for
// sending redirects; LAN nodes ignore them instead (addOffice).
func routerSysctls(lanIface string, ipv6 bool) []sysctl {
	s := []sysctl{
		{"net/ipv4/ip_forward", "1"},
		{"net/ipv4/conf/all/send_redirects", "0"},
		{"net/ipv4/conf/default/send_redirects", "0"},
		{"net/ipv4/conf/" + lanIface + "/send_redirects", "0"},
	}
	if ipv6 {
		s = append(s, sysctl{"net/ipv6/conf/all/forwarding", "1"})
	}
	return s
}

// enableIPv6 makes sure IPv6 is on in the node's namespace before it gets
// interfaces, when the office has an IPv6 LAN (lan6 valid). A new
// namespace normally starts with IPv6 on, but inherits the host's
// disable_ipv6 when net.core.devconf_inherit_init_net is set; the lab's
// IPv6 must not depend on that. Only the node's own namespace changes.
func (n *Node) enableIPv6(lan6 netip.Prefix) error {
	if !lan6.IsValid() {
		return nil
	}
	return n.sysctls(ipv6On())
}

// ipv6On is IPv6 on, without duplicate address detection, for every
// interface a namespace gets later (default/; a veth end created in
// another namespace takes the defaults of the one it lands in). Global
// addresses skip DAD anyway (addAddr); this is for the link-local ones.
// While an interface's link-local address is tentative (a second or
// more), the kernel sends no neighbour solicitation for a packet it
// forwards out of it, since it solicits from that address: a router
// would drop what it forwards to a fresh neighbour, such as a port
// forward to the gateway or the internet's first packets to a new
// office. The lab numbers every address itself and veth MACs are
// random, so there is nothing for DAD to find.
func ipv6On() []sysctl {
	return []sysctl{
		{"net/ipv6/conf/all/disable_ipv6", "0"},
		{"net/ipv6/conf/default/disable_ipv6", "0"},
		{"net/ipv6/conf/all/accept_dad", "0"},
		{"net/ipv6/conf/default/accept_dad", "0"},
	}
}

// sysctls writes /proc/sys/net entries inside the node's namespace: a
// /proc/sys/net file opened by a thread belongs to that thread's namespace.
func (n *Node) sysctls(s []sysctl) error {
	return n.do(func() error {
		for _, kv := range s {
			if err := os.WriteFile("/proc/sys/"+kv.key, []byte(kv.value), 0); err != nil {
				return fmt.Errorf("sysctl %s=%s in %s: %w", strings.ReplaceAll(kv.key, "/", "."), kv.value, n.Name, err)
			}
		}
		return nil
	})
}

// reserve picks the lab ID and creates the lab directory and the internet
// namespace. The directory is created with mkdir, which fails if it exists,
// so two labs on one machine can never share an ID; `ip netns add` failing
// on an existing name is the second guard.
func (l *Lab) reserve(ctx context.Context) (*Node, error) {
	for attempt := 1; ; attempt++ {
		id := l.cfg.ID
		if id == "" {
			id = NewID()
		}
		used, err := idInUse(id)
		if err != nil {
			return nil, err
		}
		dir := labDir(id)
		if !used {
			err = os.Mkdir(dir, 0o755)
			if err == nil {
				l.ID, l.dir = id, dir
				return l.addNode(ctx, nsInternet(id))
			}
			if !errors.Is(err, os.ErrExist) {
				return nil, fmt.Errorf("lab directory: %w", err)
			}
		}
		if l.cfg.ID != "" || attempt == 8 {
			return nil, fmt.Errorf("lab ID %s is in use: namespaces %s-* or directory %s exist", id, id, dir)
		}
	}
}

// labDir holds the RunDir of every node of lab id.
func labDir(id string) string { return filepath.Join(os.TempDir(), "lanlink-lab-"+id) }

func idInUse(id string) (bool, error) {
	names, err := listNetns()
	if err != nil {
		return false, err
	}
	for _, name := range names {
		if strings.HasPrefix(name, id+"-") {
			return true, nil
		}
	}
	return false, nil
}

const netnsDir = "/run/netns"

// listNetns lists named network namespaces, as `ip netns list` does.
func listNetns() ([]string, error) {
	ents, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list network namespaces: %w", err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names, nil
}

// addNode creates a named namespace with loopback up. The namespace is
// recorded before any other step so that Close deletes it whatever fails
// next. `ip netns add` rather than netns.NewNamed: ip also sets up the
// shared /run/netns mount that `ip netns exec` and users' tools expect.
func (l *Lab) addNode(ctx context.Context, name string) (*Node, error) {
	if !nsNameRe.MatchString(name) {
		return nil, fmt.Errorf("namespace name %q does not follow the lab scheme", name)
	}
	if out, err := runCmd(ctx, nil, "ip", "netns", "add", name); err != nil {
		return nil, fmt.Errorf("create namespace %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	n := &Node{Name: name, lab: l, ns: -1, RunDir: filepath.Join(l.dir, name, "run")}
	l.mu.Lock()
	l.nodes = append(l.nodes, n)
	l.mu.Unlock()
	if err := os.MkdirAll(n.RunDir, 0o755); err != nil {
		return nil, fmt.Errorf("run directory of %s: %w", name, err)
	}
	ns, err := netns.GetFromName(name)
	if err != nil {
		return nil, fmt.Errorf("open namespace %s: %w", name, err)
	}
	n.ns = ns
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", name, err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		return nil, fmt.Errorf("loopback up in %s: %w", name, err)
	}
	return n, nil
}

func addBridge(h *netlink.Handle, name string) error {
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
	if err := h.LinkAdd(br); err != nil {
		return fmt.Errorf("add bridge %s: %w", name, err)
	}
	if err := h.LinkSetUp(br); err != nil {
		return fmt.Errorf("bridge %s up: %w", name, err)
	}
	return nil
}

// addVeth creates a veth pair from inside h's namespace with the peer
// created directly in peer's namespace: no end ever exists in the root
// namespace, so no name there can clash and nothing there changes.
func addVeth(h *netlink.Handle, name string, peer *Node, peerName string) error {
	v := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: name},
		PeerName:      peerName,
		PeerNamespace: netlink.NsFd(int(peer.ns)),
	}
	if err := h.LinkAdd(v); err != nil {
		return fmt.Errorf("add veth %s (peer %s in %s): %w", name, peerName, peer.Name, err)
	}
	if err := h.LinkSetUp(v); err != nil {
		return fmt.Errorf("veth %s up: %w", name, err)
	}
	return nil
}

// attach puts port on bridge (both in h's namespace) and sets it up.
func attach(h *netlink.Handle, port, bridge string) error {
	p, err := h.LinkByName(port)
	if err != nil {
		return fmt.Errorf("find %s: %w", port, err)
	}
	br, err := h.LinkByName(bridge)
	if err != nil {
		return fmt.Errorf("find %s: %w", bridge, err)
	}
	if err := h.LinkSetMaster(p, br); err != nil {
		return fmt.Errorf("attach %s to %s: %w", port, bridge, err)
	}
	if err := h.LinkSetUp(p); err != nil {
		return fmt.Errorf("%s up: %w", port, err)
	}
	return nil
}

func setUp(h *netlink.Handle, name string) error {
	link, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("%s up: %w", name, err)
	}
	return nil
}

// addLinkRoute adds dst directly on iface (scope link).
func addLinkRoute(h *netlink.Handle, dst netip.Prefix, iface string) error {
	link, err := h.LinkByName(iface)
	if err != nil {
		return fmt.Errorf("find %s: %w", iface, err)
	}
	r := &netlink.Route{Dst: ipNet(dst), LinkIndex: link.Attrs().Index, Scope: netlink.SCOPE_LINK}
	if err := h.RouteReplace(r); err != nil {
		return fmt.Errorf("add route %s dev %s: %w", dst, iface, err)
	}
	return nil
}

// addAddr adds p's address to iface. An IPv6 address is added without
// duplicate address detection (IFA_F_NODAD): the lab numbers its LANs
// itself, and a "tentative" address could neither be bound nor answer for
// the second or so DAD takes.
func addAddr(h *netlink.Handle, iface string, p netip.Prefix) error {
	link, err := h.LinkByName(iface)
	if err != nil {
		return fmt.Errorf("find %s: %w", iface, err)
	}
	a := &netlink.Addr{IPNet: ipNet(p)}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	if err := h.AddrAdd(link, a); err != nil {
		return fmt.Errorf("add address %s to %s: %w", p, iface, err)
	}
	return nil
}

// addRoute adds dst via gw; the zero dst is the default route.
func addRoute(h *netlink.Handle, dst netip.Prefix, gw netip.Addr) error {
	r := &netlink.Route{Gw: gw.AsSlice()}
	if dst.IsValid() {
		r.Dst = ipNet(dst)
	}
	if err := h.RouteReplace(r); err != nil {
		if !dst.IsValid() {
			return fmt.Errorf("add default route via %s: %w", gw, err)
		}
		return fmt.Errorf("add route %s via %s: %w", dst, gw, err)
	}
	return nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// ChangeWANAddress moves the office router to a new public address, as
// when an ISP hands out a new one: the old address disappears (and with it
// the router's NAT mappings), the port forward follows. addr must be in
// 198.51.100.0/24 or 203.0.113.0/24, not .0, .1 or .255, and not used by
// another office. It is IPv4-only: with Config.IPv6WAN, WAN6 and its
// routes stay as they are.
func (o *Office) ChangeWANAddress(ctx context.Context, addr netip.Addr) error {
	var wp netip.Prefix
	for _, p := range []netip.Prefix{wanNet, wanAlt} {
		if p.Contains(addr) {
			wp = p
		}
	}
	last := addr.As4()[3]
	if !wp.IsValid() || last == 0 || last == 1 || last == 255 {
		return fmt.Errorf("%w: new WAN address %v for office %d: want a host in %v or %v other than .1",
			ErrConfig, addr, o.Index, wanNet, wanAlt)
	}
	for _, other := range o.lab.Offices {
		if other.WAN == addr {
			return fmt.Errorf("%w: new WAN address %v for office %d is office %d's", ErrConfig, addr, o.Index, other.Index)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	h, err := netlink.NewHandleAt(o.Router.ns)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", o.Router.Name, err)
	}
	defer h.Close()
	link, err := h.LinkByName(o.WANIface)
	if err != nil {
		return fmt.Errorf("find %s in %s: %w", o.WANIface, o.Router.Name, err)
	}
	// New address and route first, then drop the old: the router is never
	// without a default route.
	if err := h.AddrAdd(link, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(addr, wp.Bits()))}); err != nil {
		return fmt.Errorf("add WAN address %v in %s: %w", addr, o.Router.Name, err)
	}
	if err := addRoute(h, netip.Prefix{}, coreAddr[wp]); err != nil {
		return fmt.Errorf("router %s: %w", o.Router.Name, err)
	}
	if err := h.AddrDel(link, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(o.WAN, wanNet.Bits()))}); err != nil {
		return fmt.Errorf("remove old WAN address %v in %s: %w", o.WAN, o.Router.Name, err)
	}
	// The internet routes to the new address and forgets the old one.
	ih, err := netlink.NewHandleAt(o.lab.Internet.ns)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", o.lab.Internet.Name, err)
	}
	defer ih.Close()
	if err := addLinkRoute(ih, netip.PrefixFrom(addr, 32), o.InternetIface); err != nil {
		return fmt.Errorf("internet %s: %w", o.lab.Internet.Name, err)
	}
	port, err := ih.LinkByName(o.InternetIface)
	if err != nil {
		return fmt.Errorf("internet %s: find %s: %w", o.lab.Internet.Name, o.InternetIface, err)
	}
	if err := ih.RouteDel(&netlink.Route{Dst: ipNet(netip.PrefixFrom(o.WAN, 32)), LinkIndex: port.Attrs().Index, Scope: netlink.SCOPE_LINK}); err != nil {
		return fmt.Errorf("internet %s: remove route to old WAN address %v: %w", o.lab.Internet.Name, o.WAN, err)
	}
	// A home router forgets its NAT state with its old lease. Linux drops
	// masquerade entries of a vanished address itself, but not the port
	// forward's: it would keep rewriting the gateway's packets to the old
	// address for as long as they come.
	if err := h.ConntrackTableFlush(netlink.ConntrackTable); err != nil {
		return fmt.Errorf("router %s: flush NAT state: %w", o.Router.Name, err)
	}
	o.lab.log.Info("lab WAN address changed", "id", o.lab.ID, "office", o.Index, "old", o.WAN, "new", addr)
	o.WAN = addr
	return nil
}

// Close stops every process the lab started (SIGTERM, then SIGKILL after
// StopGrace), closes every socket it opened, and deletes every namespace it
// created. It is safe to call more than once; later calls return nil.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	procs, closers, nodes := l.procs, l.closers, l.nodes
	l.procs, l.closers = nil, nil
	l.mu.Unlock()

	var (
		errMu sync.Mutex
		errs  []error
	)
	var wg sync.WaitGroup
	for p := range procs {
		wg.Go(func() {
			if err := p.Stop(StopGrace); err != nil {
				errMu.Lock()
				errs = append(errs, err)
				errMu.Unlock()
			}
		})
	}
	wg.Wait()
	// A socket keeps its namespace (and every interface in it) alive after
	// the name is deleted, so close them before deleting names.
	for c := range closers {
		_ = c.Close() // already closed by the caller is fine
	}
	ctx, cancel := context.WithTimeout(context.Background(), DefaultExecTimeout)
	defer cancel()
	for i := len(nodes) - 1; i >= 0; i-- {
		n := nodes[i]
		if n.ns >= 0 {
			n.ns.Close()
			n.ns = -1
		}
		if err := deleteNetns(ctx, l.ID, n.Name); err != nil {
			errs = append(errs, err)
		}
	}
	// Only after every process is gone: they may still write to RunDir.
	if l.dir != "" {
		if err := os.RemoveAll(l.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove lab directory: %w", err))
		}
	}
	if l.ID != "" {
		l.log.Info("lab down", "id", l.ID)
	}
	return errors.Join(errs...)
}

// deleteNetns deletes one of lab id's namespaces, refusing any name outside
// the lab scheme so a bug can never delete someone else's namespace.
func deleteNetns(ctx context.Context, id, name string) error {
	m := nsNameRe.FindStringSubmatch(name)
	if m == nil || m[1] != id {
		return fmt.Errorf("refusing to delete namespace %q: not one of lab %s's", name, id)
	}
	if _, err := os.Stat(netnsDir + "/" + name); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if out, err := runCmd(ctx, nil, "ip", "netns", "delete", name); err != nil {
		return fmt.Errorf("delete namespace %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// runCmd runs a short command with a bounded wait and returns its combined
// output.
func runCmd(ctx context.Context, stdin []byte, argv ...string) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultExecTimeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if stdin != nil {
		cmd.Stdin = strings.NewReader(string(stdin))
	}
	cmd.WaitDelay = 2 * StopGrace
	return cmd.CombinedOutput()
}
