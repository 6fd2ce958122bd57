package firewall

import (
	"context"
	"testing"
	"time"

	"github.com/google/nftables"
)

// Changes wakes its subscriber when anyone touches lanlink's table — the
// whole ruleset flushed, the table deleted, a rule added to one of its
// chains — and not for other tables; it closes when its context ends.
func TestChanges(t *testing.T) {
	t.Parallel()
	cfg := Config{Interface: "lanlink0", Masquerade: true, MSSClamp: true}
	for _, tc := range []struct {
		name    string
		breakIt []string
	}{
		{"ruleset flushed", []string{"flush", "ruleset"}},
		{"table deleted", []string{"delete", "table", "inet", "lanlink_lanlink0"}},
		{"rule added", []string{"add", "rule", "inet", "lanlink_lanlink0", "forward", "counter"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := newTestNS(t)
			fw := newFirewall(t, n)
			t.Cleanup(func() { fw.Close() })
			if err := fw.Set(cfg); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ch, err := fw.(Notifier).Changes(ctx)
			if err != nil {
				t.Fatalf("Changes: %v", err)
			}
			// Another table's transaction must not wake us. Nothing
			// else happens in this namespace, so a wake-up here can
			// only come from that table.
			n.nft(t, "table inet admin {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t}\n}\n", "-f", "-")
			select {
			case <-ch:
				t.Fatal("woken by a change to another table")
			case <-time.After(300 * time.Millisecond):
			}
			n.nft(t, "", tc.breakIt...)
			select {
			case _, ok := <-ch:
				if !ok {
					t.Fatal("subscription ended instead of reporting the change")
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("nft %v not reported within 5 s", tc.breakIt)
			}
			cancel()
			deadline := time.After(5 * time.Second)
			for {
				select {
				case _, ok := <-ch:
					if ok {
						continue
					}
				case <-deadline:
					t.Fatal("channel not closed within 5 s of the context ending")
				}
				break
			}
		})
	}
}

func TestTouches(t *testing.T) {
	ours := &nftables.Table{Name: "lanlink_lanlink0", Family: nftables.TableFamilyINet}
	other := &nftables.Table{Name: "admin", Family: nftables.TableFamilyINet}
	ip4 := &nftables.Table{Name: "lanlink_lanlink0", Family: nftables.TableFamilyIPv4}
	ev := func(typ nftables.MonitorEventType, data any, err error) *nftables.MonitorEvent {
		return &nftables.MonitorEvent{Type: typ, Data: data, Error: err}
	}
	for _, tc := range []struct {
		name string
		evs  []*nftables.MonitorEvent
		want bool
	}{
		{"our table deleted", []*nftables.MonitorEvent{ev(nftables.MonitorEventTypeDelTable, ours, nil)}, true},
		{"rule in our chain", []*nftables.MonitorEvent{ev(nftables.MonitorEventTypeNewRule, &nftables.Rule{Table: ours}, nil)}, true},
		{"our chain deleted", []*nftables.MonitorEvent{ev(nftables.MonitorEventTypeDelChain, &nftables.Chain{Table: ours}, nil)}, true},
		{"other table's rule, then ours", []*nftables.MonitorEvent{ev(nftables.MonitorEventTypeNewRule, &nftables.Rule{Table: other}, nil), ev(nftables.MonitorEventTypeDelTable, ours, nil)}, true},
		{"other table only", []*nftables.MonitorEvent{ev(nftables.MonitorEventTypeNewRule, &nftables.Rule{Table: other}, nil), ev(nftables.MonitorEventTypeNewTable, other, nil)}, false},
		{"same name, ip family", []*nftables.MonitorEvent{ev(nftables.MonitorEventTypeDelTable, ip4, nil)}, false},
		{"undecodable table deletion", []*nftables.MonitorEvent{ev(nftables.MonitorEventTypeDelTable, nil, context.Canceled)}, true},
		{"undecodable rule", []*nftables.MonitorEvent{ev(nftables.MonitorEventTypeNewRule, nil, context.Canceled)}, false},
		{"empty transaction", nil, false},
	} {
		if got := touches(&nftables.MonitorEvents{Changes: tc.evs}, "lanlink_lanlink0"); got != tc.want {
			t.Errorf("%s: touches = %t, want %t", tc.name, got, tc.want)
		}
	}
}
