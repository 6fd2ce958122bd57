package service

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// DefaultStateDir is the agent's default state directory (control sockets,
// locks, crash journals). It must stay equal to agent.DefaultStateDir; it
// is repeated here so that rendering a unit does not pull in the agent.
const DefaultStateDir = "/run/lanlink"

// wireguardSocketDir is where wireguard-go puts its UAPI sockets, so that
// stock `wg` finds userspace interfaces (/var/run links to /run).
const wireguardSocketDir = "/run/wireguard"

// marker begins every unit this package writes; Uninstall and Install
// refuse to touch a unit file without it.
const marker = "# Managed by lanlink."

// UnitOptions describe the agent a unit runs. Paths must be absolute.
type UnitOptions struct {
	Binary    string // the lanlink executable, e.g. /usr/local/bin/lanlink
	PlanPath  string // the network file, e.g. /etc/lanlink/network.toml
	KeyPath   string // this gateway's private key, e.g. /etc/lanlink/private.key
	Interface string // the WireGuard interface, e.g. wg0
	// StateDir is the agent's state directory; "" means DefaultStateDir.
	// It must lie under /run: systemd creates it as a RuntimeDirectory.
	// A non-default one is passed to the agent as --state-dir.
	StateDir string
}

// UnitName is the systemd unit name for the agent on iface.
func UnitName(iface string) string { return "lanlink-" + iface + ".service" }

// OptionsError says which option is unusable in a unit and why.
type OptionsError struct {
	Field, Value, Reason string
}

func (e *OptionsError) Error() string {
	return fmt.Sprintf("service %s %q: %s", e.Field, e.Value, e.Reason)
}

func checkInterface(iface string) error {
	bad := func(reason string) error { return &OptionsError{"interface", iface, reason} }
	switch {
	case iface == "":
		return bad("is required (the interface the agent manages, e.g. wg0)")
	case len(iface) > 15:
		return bad("is longer than Linux's 15-character limit for interface names")
	case iface == "." || iface == "..":
		return bad("is not a valid interface name")
	case iface[0] == '-':
		return bad("must not start with '-'")
	}
	for _, r := range iface {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			return bad(fmt.Sprintf("contains %q; use letters, digits, '.', '_' and '-' (it becomes part of the unit name %s)", r, UnitName("IFACE")))
		}
	}
	return nil
}

// checkPath accepts clean absolute paths made of characters that need no
// quoting or escaping anywhere in a unit file. systemd gives meaning to
// '%' (specifiers), '$' (variables), quotes, backslashes and spaces in
// different ways in different directives; refusing them is simpler and
// safer than escaping each correctly, and real install paths never need them.
func checkPath(field, p string) error {
	bad := func(reason string) error { return &OptionsError{field, p, reason} }
	if p == "" {
		return bad("is required")
	}
	if !filepath.IsAbs(p) {
		return bad("must be an absolute path: systemd does not run services in your current directory")
	}
	if filepath.Clean(p) != p {
		return bad(fmt.Sprintf("is not a clean path; use %s", filepath.Clean(p)))
	}
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+,@:", r)) {
			return bad(fmt.Sprintf("contains %q, which a systemd unit would need quoting for; use a path of letters, digits and /._-+,@:", r))
		}
	}
	return nil
}

func (o UnitOptions) stateDir() string {
	if o.StateDir == "" {
		return DefaultStateDir
	}
	return o.StateDir
}

// Validate reports the first option that cannot go into a unit.
func (o UnitOptions) Validate() error {
	if err := checkInterface(o.Interface); err != nil {
		return err
	}
	for _, f := range []struct{ name, value string }{
		{"binary", o.Binary}, {"plan", o.PlanPath}, {"key", o.KeyPath}, {"state dir", o.stateDir()},
	} {
		if err := checkPath(f.name, f.value); err != nil {
			return err
		}
	}
	if rel, ok := strings.CutPrefix(o.stateDir(), "/run/"); !ok || rel == "" {
		return &OptionsError{"state dir", o.StateDir, "must be a directory under /run (systemd creates it as the unit's RuntimeDirectory)"}
	}
	return nil
}

// underHome reports whether p lies in a directory ProtectHome=yes hides.
func underHome(p string) bool {
	for _, h := range []string{"/home", "/root", "/run/user"} {
		if p == h || strings.HasPrefix(p, h+"/") {
			return true
		}
	}
	return false
}

// Unit renders the systemd unit that runs the agent for opts.Interface.
// The result is deterministic (golden-tested) and passes
// `systemd-analyze verify`. The reasons for each directive are in
// unit.go's comments and in the package documentation.
func Unit(opts UnitOptions) (string, error) {
	if err := opts.Validate(); err != nil {
		return "", err
	}
	iface := opts.Interface
	state := opts.stateDir()
	stateFlag := ""
	if state != DefaultStateDir {
		stateFlag = " --state-dir " + state
	}

	// ProtectHome=yes hides /home, /root and /run/user entirely; a binary,
	// plan or key kept there would vanish. Read-only still stops writes.
	protectHome := "yes"
	if underHome(opts.Binary) || underHome(opts.PlanPath) || underHome(opts.KeyPath) {
		protectHome = "read-only"
	}
	// Plan and key are only ever read. ProtectSystem=strict already makes
	// them read-only; naming them keeps that true if someone relaxes it in
	// a drop-in. '-': a missing file is reported by lanlink itself, with
	// a better message than systemd's namespace setup failure.
	var ro []string
	for _, d := range []string{filepath.Dir(opts.PlanPath), filepath.Dir(opts.KeyPath)} {
		if !slices.Contains(ro, "-"+d) {
			ro = append(ro, "-"+d)
		}
	}
	runtimeDirs := strings.TrimPrefix(state, "/run/") + " " + strings.TrimPrefix(wireguardSocketDir, "/run/")

	var b strings.Builder
	line := func(s ...string) {
		for _, l := range s {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	line(
		marker+" Written by `lanlink service install`; remove it with",
		"# `lanlink service uninstall --interface "+iface+"`. Do not edit: put local",
		"# changes in a drop-in (systemctl edit "+UnitName(iface)+").",
		"",
		"[Unit]",
		"Description=lanlink site agent on "+iface,
		// The agent resolves peer endpoints by name and binds its UDP
		// port; it retries both, but starting after the network is up
		// avoids a burst of errors at every boot.
		"After=network-online.target",
		"Wants=network-online.target",
		// A gateway must come back by itself after any outage: never
		// give up restarting (the default limit of 5 starts in 10 s
		// would leave it dead after a bad plan until someone runs
		// systemctl reset-failed).
		"StartLimitIntervalSec=0",
		"",
		"[Service]",
		"Type=notify",
		"NotifyAccess=main",
		"ExecStart="+opts.Binary+" up -f "+opts.PlanPath+" --key "+opts.KeyPath+" --interface "+iface+stateFlag,
		// Synchronous: `lanlink reload` waits for the agent's answer
		// and exits non-zero when the new plan is rejected, so
		// `systemctl reload` reports the failure. kill -HUP would
		// return at once and always succeed.
		"ExecReload="+opts.Binary+" reload --interface "+iface+stateFlag,
		"Restart=always",
		"RestartSec=2",
		"WatchdogSec=30",
		"",
		// Runs as root, so the bounding set alone decides: NET_ADMIN
		// for netlink, WireGuard, TUN, nftables, SO_MARK and net
		// sysctls; NET_BIND_SERVICE for a ListenPort below 1024. No
		// raw or packet sockets are used, so no NET_RAW.
		"CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_BIND_SERVICE",
		"NoNewPrivileges=yes",
		"UMask=0077",
		"ProtectSystem=strict",
		"ProtectHome="+protectHome,
		"PrivateTmp=yes",
		// /proc/sys read-only except the network subtree: forwarding
		// sysctls are written there, while kernel.*, vm.* and fs.*
		// (core_pattern, modprobe …) stay out of reach.
		"ProtectKernelTunables=yes",
		"ReadWritePaths=/proc/sys/net",
		"ReadOnlyPaths="+strings.Join(ro, " "),
		// Kernel modules still autoload (wireguard, nf_tables): the
		// kernel runs modprobe itself, outside this sandbox.
		"ProtectKernelModules=yes",
		"ProtectKernelLogs=yes",
		"ProtectControlGroups=yes",
		"ProtectClock=yes",
		"ProtectHostname=yes",
		"DevicePolicy=closed",
		"DeviceAllow=/dev/net/tun rw",
		"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
		"RestrictNamespaces=yes",
		"RestrictRealtime=yes",
		"RestrictSUIDSGID=yes",
		"LockPersonality=yes",
		"MemoryDenyWriteExecute=yes",
		"SystemCallArchitectures=native",
		// The state dir and wireguard-go's UAPI socket dir. ProtectSystem
		// makes /run read-only, so systemd must create both; that also
		// makes them writable. Preserved across stops and restarts: the
		// crash journals there describe kernel state that lives until
		// reboot, like /run itself, and other lanlink units share the dir.
		"RuntimeDirectory="+runtimeDirs,
		"RuntimeDirectoryMode=0700",
		"RuntimeDirectoryPreserve=yes",
		"",
		"[Install]",
		"WantedBy=multi-user.target",
	)
	return b.String(), nil
}
