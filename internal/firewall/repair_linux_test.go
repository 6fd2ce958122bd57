package firewall

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Repair leaves an intact table alone and rebuilds one that was flushed,
// deleted, emptied or edited, without touching other tables.
func TestRepair(t *testing.T) {
	t.Parallel()
	const foreign = "table inet admin {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t}\n}\n"
	cfg := Config{Interface: "lanlink0", Masquerade: true, MSSClamp: true}
	for _, tc := range []struct {
		name    string
		breakIt []string // nft arguments; nil breaks nothing
		stdin   string
	}{
		{"intact", nil, ""},
		{"ruleset flushed", []string{"flush", "ruleset"}, ""},
		{"table deleted", []string{"delete", "table", "inet", "lanlink_lanlink0"}, ""},
		{"table flushed", []string{"flush", "table", "inet", "lanlink_lanlink0"}, ""},
		{"chain flushed", []string{"flush", "chain", "inet", "lanlink_lanlink0", "forward"}, ""},
		{"chain deleted", []string{"delete", "chain", "inet", "lanlink_lanlink0", "postrouting"}, ""},
		{"rule added", []string{"add", "rule", "inet", "lanlink_lanlink0", "forward", "counter"}, ""},
		{"policy changed", []string{"-f", "-"}, "table inet lanlink_lanlink0 {\n\tchain forward {\n\t\ttype filter hook forward priority mangle; policy drop;\n\t}\n}\n"},
		{"chain added", []string{"add", "chain", "inet", "lanlink_lanlink0", "extra"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := newTestNS(t)
			fw := newFirewall(t, n)
			t.Cleanup(func() { fw.Close() })
			if rebuilt, err := fw.Repair(); rebuilt || err != nil {
				t.Fatalf("Repair before Set = %t, %v; want false, nil", rebuilt, err)
			}
			if err := fw.Set(cfg); err != nil {
				t.Fatal(err)
			}
			if tc.breakIt != nil {
				n.nft(t, tc.stdin, tc.breakIt...)
				if n.ruleset(t) == Render(cfg) {
					t.Fatal("breaking the table changed nothing: the test proves nothing")
				}
			}
			if tc.breakIt == nil || tc.breakIt[0] != "flush" || tc.breakIt[1] != "ruleset" {
				n.nft(t, foreign, "-f", "-")
			}
			rebuilt, err := fw.Repair()
			if err != nil {
				t.Fatalf("Repair: %v", err)
			}
			if want := tc.breakIt != nil; rebuilt != want {
				t.Errorf("Repair rebuilt = %t, want %t", rebuilt, want)
			}
			got := n.ruleset(t)
			if tc.breakIt != nil && tc.breakIt[0] == "flush" && tc.breakIt[1] == "ruleset" {
				if diff := cmp.Diff(Render(cfg), got); diff != "" {
					t.Errorf("ruleset after Repair (-want +got):\n%s", diff)
				}
			}
			if !strings.Contains(got, Render(cfg)) {
				t.Errorf("ruleset after Repair lacks lanlink's table:\n%s", got)
			}
			if tc.breakIt == nil || tc.breakIt[0] != "flush" || tc.breakIt[1] != "ruleset" {
				if !strings.Contains(got, foreign) || len(got) != len(foreign)+len(Render(cfg)) {
					t.Errorf("Repair touched the admin table:\n%s", got)
				}
			}
			if rebuilt, err := fw.Repair(); rebuilt || err != nil {
				t.Errorf("second Repair = %t, %v; want false, nil", rebuilt, err)
			}
		})
	}
	t.Run("after Close", func(t *testing.T) {
		t.Parallel()
		n := newTestNS(t)
		fw := newFirewall(t, n)
		if err := fw.Set(cfg); err != nil {
			t.Fatal(err)
		}
		fw.Close()
		if _, err := fw.Repair(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Repair after Close = %v, want net.ErrClosed", err)
		}
		if rs := n.ruleset(t); rs != "" {
			t.Errorf("ruleset after Close and Repair = %q", rs)
		}
	})
}
