package hostnet

import "log/slog"

// DefaultStateDir is where journals go when Options.StateDir is empty. It
// is on tmpfs on purpose: after a reboot the kernel state a journal
// describes is gone too.
const DefaultStateDir = "/run/lanlink"

// RouteProtocol is the rtm_protocol number lanlink's routes carry (0x4c,
// 'L'; unassigned in iproute2's rt_protos). It lets an administrator see
// them (ip route show proto 76) and lets lanlink tell its own routes from
// identical ones someone else added: it never deletes a route without it.
const RouteProtocol = 0x4c

// Options configure New.
type Options struct {
	// Logger receives what the Host changes and why; nil discards.
	Logger *slog.Logger
	// StateDir holds one journal per interface (<iface>.json, 0600)
	// listing what the Host changed, so a crashed agent's changes can be
	// undone by Recover. Empty means DefaultStateDir.
	StateDir string
	// NetnsPath, if set, is a network namespace file (such as
	// /run/netns/NAME) the Host works in instead of the caller's. The
	// agent leaves it empty: it is already started inside the right
	// namespace (ip netns exec). Tests use it to stay out of the root
	// namespace.
	NetnsPath string
}

func (o Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

func (o Options) stateDir() string {
	if o.StateDir == "" {
		return DefaultStateDir
	}
	return o.StateDir
}
