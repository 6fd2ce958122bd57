package firewall

import (
	"context"
	"fmt"
	"net"

	"github.com/google/nftables"
)

var _ Notifier = (*nftFirewall)(nil)

// Changes: see Notifier. It listens to the kernel's nftables multicast
// group, so it costs nothing while nobody edits the ruleset; on a busy
// ruleset (container runtimes) each transaction is matched by table name
// and only those touching lanlink's table wake the caller.
func (f *nftFirewall) Changes(ctx context.Context) (<-chan struct{}, error) {
	f.mu.Lock()
	closed := f.closed
	f.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("firewall changes: %w", net.ErrClosed)
	}
	mon := nftables.NewMonitor(nftables.WithMonitorEventBuffer(16))
	var events chan *nftables.MonitorEvents
	err := withConn(f.o, func(c *nftables.Conn) (err error) {
		events, err = c.AddGenerationalMonitor(mon) // dials now, inside the namespace
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to nftables events: %w%s", err, hint(err))
	}
	out := make(chan struct{}, 1)
	go func() {
		<-ctx.Done()
		mon.Close()
	}()
	go func() {
		defer close(out)
		for batch := range events { // closed by mon.Close or a netlink error
			f.mu.Lock()
			var ours string
			if f.cur != nil {
				ours = TableName(f.cur.Interface)
			}
			f.mu.Unlock()
			if ours == "" || !touches(batch, ours) {
				continue
			}
			select {
			case out <- struct{}{}:
			default:
			}
		}
	}()
	return out, nil
}

// touches reports whether one ruleset transaction changed table (in the
// inet family): a table, chain or rule event naming it. An event the
// library could not decode (an expression it does not know) counts when it
// deleted a table, which a flush of the whole ruleset does.
func touches(batch *nftables.MonitorEvents, table string) bool {
	for _, ev := range batch.Changes {
		var t *nftables.Table
		switch d := ev.Data.(type) {
		case *nftables.Table:
			t = d
		case *nftables.Chain:
			t = d.Table
		case *nftables.Rule:
			t = d.Table
		}
		if t == nil {
			if ev.Error != nil && ev.Type == nftables.MonitorEventTypeDelTable {
				return true
			}
			continue
		}
		if t.Name == table && t.Family == nftables.TableFamilyINet {
			return true
		}
	}
	return false
}
