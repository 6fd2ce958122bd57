package firewall

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// Config is the firewall state one tunnel interface needs.
type Config struct {
	Interface  string // the tunnel interface the rules match
	Masquerade bool   // NAT traffic from the tunnel into the LAN behind the gateway's address
	MSSClamp   bool   // clamp the MSS of TCP SYNs forwarded through the tunnel to the route MTU
}

// Empty reports whether c needs no rules at all (and so no table).
func (c Config) Empty() bool { return !c.Masquerade && !c.MSSClamp }

// Validate reports a Config that could not be applied.
func (c Config) Validate() error {
	if c.Interface == "" {
		return errors.New("firewall config: no interface name")
	}
	if len(c.Interface) > 15 || strings.ContainsAny(c.Interface, "\"\\/ \t\n") {
		return fmt.Errorf("firewall config: %q is not a valid interface name", c.Interface)
	}
	return nil
}

// TableName is the name of the nftables table (family inet) lanlink owns
// for iface. One table per interface, so two agents on one host never
// touch each other's rules.
func TableName(iface string) string { return "lanlink_" + iface }

// Options configure New and Recover.
type Options struct {
	// Logger receives what the Firewall changes; nil discards.
	Logger *slog.Logger
	// NetnsPath, if set, is a network namespace file (such as
	// /run/netns/NAME) whose nftables ruleset is managed instead of the
	// caller's. The agent leaves it empty; tests use it to stay out of the
	// root namespace.
	NetnsPath string
}

func (o Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// Firewall applies Config to the host's nftables ruleset.
type Firewall interface {
	// Set makes lanlink's table match cfg. It may be called any number of
	// times with identical configs (the outcome is the same table) or a
	// new one. The table is replaced in one nftables transaction: either
	// the new rules are in place or the previous ones are untouched. An
	// Empty cfg removes the table. A table the Firewall did not create is
	// left alone unless cfg needs the name (use Recover at start).
	Set(cfg Config) error
	// Repair checks that the table the last Set created is still in the
	// kernel as Set left it, and rebuilds it in one transaction (as Set
	// does) if it is gone or its chains, hooks, policies or rule counts
	// differ — after `nft flush ruleset`, a firewall service reload or a
	// hand edit. It reports whether it rebuilt the table. The check is a
	// few netlink requests about this table alone; a rule edited in place
	// into another rule with as many expressions goes unnoticed. With no
	// table wanted (before Set, or after an Empty one) it does nothing.
	Repair() (rebuilt bool, err error)
	// Close removes the table, if Set created one. Set after Close fails
	// with net.ErrClosed.
	Close() error
}

// Notifier is implemented by Firewalls that can tell the moment anyone
// changes their table — `nft flush ruleset`, a firewall service reload, a
// hand edit — so a caller can Repair at once instead of on its next
// periodic check.
type Notifier interface {
	// Changes subscribes to nftables events that touch the table of the
	// last Set (made while the subscription runs, so a table wanted only
	// later is covered too). The channel receives (coalesced) after each
	// ruleset transaction that touched it, and is closed when ctx is done
	// or the subscription fails; a caller then falls back to periodic
	// Repair.
	Changes(ctx context.Context) (<-chan struct{}, error)
}

// Render is the table Set creates for cfg, as `nft list table` prints it
// (and as `nft -f` accepts it); "" for an Empty cfg. Tests compare it with
// the kernel's view, and the fake records it.
func Render(cfg Config) string {
	if cfg.Empty() {
		return ""
	}
	q := fmt.Sprintf("%q", cfg.Interface)
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", TableName(cfg.Interface))
	var chains []string
	if cfg.Masquerade {
		chains = append(chains, "\tchain postrouting {\n"+
			"\t\ttype nat hook postrouting priority srcnat; policy accept;\n"+
			"\t\tiifname "+q+" oifname != "+q+" masquerade\n"+
			"\t}\n")
	}
	if cfg.MSSClamp {
		chains = append(chains, "\tchain forward {\n"+
			"\t\ttype filter hook forward priority mangle; policy accept;\n"+
			"\t\toifname "+q+" tcp flags syn tcp option maxseg size set rt mtu\n"+
			"\t\tiifname "+q+" tcp flags syn tcp option maxseg size set rt mtu\n"+
			"\t}\n")
	}
	b.WriteString(strings.Join(chains, "\n"))
	b.WriteString("}\n")
	return b.String()
}
