package firewall

import (
	"errors"
	"fmt"
	"math/bits"
	"net"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// Repair: see Firewall.
func (f *nftFirewall) Repair() (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false, fmt.Errorf("firewall repair: %w", net.ErrClosed)
	}
	if f.cur == nil {
		return false, nil
	}
	cfg := *f.cur
	ok, err := intact(f.o, cfg)
	if err != nil {
		return false, fmt.Errorf("check nftables table inet %s: %w%s", TableName(cfg.Interface), err, hint(err))
	}
	if ok {
		return false, nil
	}
	if err := f.set(cfg); err != nil {
		return false, err
	}
	return true, nil
}

// intact compares a fingerprint of the kernel's table with what Set
// builds for cfg: the table's chain count, each chain's hook, priority,
// type and policy, and its number of rules. It reads
// only this table (one request per chain and one per chain's rules).
func intact(o Options, cfg Config) (bool, error) {
	want := chains(cfg)
	ok := true
	err := withConn(o, func(c *nftables.Conn) error {
		t, err := c.ListTableOfFamily(TableName(cfg.Interface), nftables.TableFamilyINet)
		if errors.Is(err, unix.ENOENT) {
			ok = false
			return nil
		}
		if err != nil {
			return err
		}
		// nftables v0.3.0 decodes NFTA_TABLE_USE in host byte order
		// although the kernel sends it big-endian; accept either reading.
		if n := uint32(len(want)); t.Use != n && t.Use != bits.ReverseBytes32(n) {
			ok = false
			return nil
		}
		for _, cs := range want {
			// ListChain does not wrap its errors; the table is there, so
			// a failure here is a missing chain, and if it is anything
			// else the rebuild reports it.
			ch, err := c.ListChain(t, cs.chain.Name)
			if err != nil || !sameChain(ch, &cs.chain) {
				ok = false
				return nil
			}
			rules, err := c.GetRules(t, ch)
			if err != nil {
				return err
			}
			// Only the count: the library does not decode every
			// expression kind the kernel returns, so comparing rules
			// themselves would see changes where there are none.
			if len(rules) != len(cs.rules) {
				ok = false
				return nil
			}
		}
		return nil
	})
	return ok, err
}

func sameChain(have, want *nftables.Chain) bool {
	if have.Type != want.Type || have.Hooknum == nil || *have.Hooknum != *want.Hooknum ||
		have.Priority == nil || *have.Priority != *want.Priority {
		return false
	}
	// Set creates base chains with the default accept policy.
	return have.Policy == nil || *have.Policy == nftables.ChainPolicyAccept
}
