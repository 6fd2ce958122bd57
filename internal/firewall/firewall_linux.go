package firewall

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

type nftFirewall struct {
	o   Options
	log *slog.Logger

	mu     sync.Mutex
	cur    *Config // the table Set created; nil when there is none
	closed bool
}

// New returns a Firewall that manages lanlink's table in the nftables
// ruleset of the calling process's network namespace (or o.NetnsPath). It
// talks to the kernel only when a Config needs rules, so hosts without
// nf_tables run fine as long as no site asks for masquerade or clamping.
func New(o Options) (Firewall, error) {
	return &nftFirewall{o: o, log: o.logger()}, nil
}

func (f *nftFirewall) Set(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return fmt.Errorf("firewall set: %w", net.ErrClosed)
	}
	return f.set(cfg)
}

// set is Set with f.mu held.
func (f *nftFirewall) set(cfg Config) error {
	if cfg.Empty() && f.cur == nil {
		return nil
	}
	err := withConn(f.o, func(c *nftables.Conn) error {
		// One batch is one transaction: the old table goes and the new one
		// comes, or nothing changes. Adding before deleting makes the
		// delete valid whether or not the table exists.
		if f.cur != nil && f.cur.Interface != cfg.Interface {
			c.DelTable(c.AddTable(table(f.cur.Interface)))
		}
		t := c.AddTable(table(cfg.Interface))
		c.DelTable(t)
		if !cfg.Empty() {
			t = c.AddTable(table(cfg.Interface))
			for _, cs := range chains(cfg) {
				ch := cs.chain
				ch.Table = t
				chain := c.AddChain(&ch)
				for _, exprs := range cs.rules {
					c.AddRule(&nftables.Rule{Table: t, Chain: chain, Exprs: exprs})
				}
			}
		}
		return c.Flush()
	})
	if err != nil {
		return fmt.Errorf("nftables table inet %s (masquerade=%t, mss_clamp=%t): %w%s", TableName(cfg.Interface), cfg.Masquerade, cfg.MSSClamp, err, hint(err))
	}
	if cfg.Empty() {
		f.cur = nil
		f.log.Info("firewall table removed", "table", "inet "+TableName(cfg.Interface))
	} else {
		c := cfg
		f.cur = &c
		f.log.Info("firewall table set", "table", "inet "+TableName(cfg.Interface), "masquerade", cfg.Masquerade, "mss_clamp", cfg.MSSClamp)
	}
	return nil
}

func (f *nftFirewall) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	if f.cur == nil {
		return nil
	}
	name := f.cur.Interface
	if err := deleteTable(f.o, name); err != nil {
		return err
	}
	f.cur = nil
	f.log.Info("firewall table removed", "table", "inet "+TableName(name))
	return nil
}

// Recover deletes lanlink's table for iface if one is left over from an
// agent that did not stop cleanly. The table is lanlink's by its name, so
// nothing else is ever removed.
func Recover(o Options, iface string) error {
	return deleteTable(o, iface)
}

// deleteTable removes the table if it exists. A kernel without nf_tables
// has no such table, which is not an error.
func deleteTable(o Options, iface string) error {
	err := withConn(o, func(c *nftables.Conn) error {
		c.DelTable(table(iface))
		return c.Flush()
	})
	switch {
	case err == nil:
		o.logger().Info("removed firewall table", "table", "inet "+TableName(iface))
		return nil
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.EPROTONOSUPPORT), errors.Is(err, unix.EAFNOSUPPORT):
		return nil
	default:
		return fmt.Errorf("remove nftables table inet %s: %w%s", TableName(iface), err, hint(err))
	}
}

func table(iface string) *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName(iface)}
}

// withConn runs fn with a netlink connection to nftables in the right
// namespace. The namespace file stays open only while the connection is
// used: the library dials when the batch is flushed.
func withConn(o Options, fn func(*nftables.Conn) error) error {
	var opts []nftables.ConnOption
	if o.NetnsPath != "" {
		fd, err := unix.Open(o.NetnsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open network namespace %s: %w", o.NetnsPath, err)
		}
		defer unix.Close(fd)
		opts = append(opts, nftables.WithNetNSFd(fd))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return fmt.Errorf("connect to nftables: %w", err)
	}
	return fn(c)
}

// hint turns the errors an administrator can fix into an instruction.
func hint(err error) string {
	switch {
	case errors.Is(err, unix.EPERM):
		return " (lanlink needs CAP_NET_ADMIN to manage its nftables table; run it as root or via the systemd service)"
	case errors.Is(err, unix.EPROTONOSUPPORT), errors.Is(err, unix.EAFNOSUPPORT), errors.Is(err, unix.EOPNOTSUPP):
		return " (the kernel lacks nf_tables or its NAT/exthdr support; load nf_tables and nft_masq, or set masquerade and mss_clamp to false for this site)"
	}
	return ""
}
