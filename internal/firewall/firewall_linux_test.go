//go:build linux

package firewall

import (
	"errors"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables/expr"

	"lanlink/internal/testutil"
)

// testNS is a fresh network namespace; every rule the tests make is in it.
type testNS struct{ name, path string }

func newTestNS(t *testing.T) testNS {
	t.Helper()
	n := testNS{name: testutil.Netns(t, "llfw")}
	n.path = "/run/netns/" + n.name
	return n
}

// nft runs nft inside the namespace.
func (n testNS) nft(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.name, "nft"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("nft %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ruleset is the namespace's whole ruleset as nft prints it.
func (n testNS) ruleset(t *testing.T) string {
	t.Helper()
	return n.nft(t, "", "list", "ruleset")
}

var handleSuffix = regexp.MustCompile(`(?m)^(inet \S+ \S+) \d+$`)

// bytecode is the table's rules as the kernel holds them, in nft's
// netlink debug notation, without rule handles.
func (n testNS) bytecode(t *testing.T, table string) string {
	t.Helper()
	out := n.nft(t, "", "--debug=netlink", "list", "table", "inet", table)
	out, _, _ = strings.Cut(out, "\ntable inet")
	return handleSuffix.ReplaceAllString(out, "$1")
}

func newFirewall(t *testing.T, n testNS) Firewall {
	t.Helper()
	fw, err := New(Options{NetnsPath: n.path})
	if err != nil {
		t.Fatal(err)
	}
	return fw
}

// The table Set creates is, rule for rule and down to the kernel's
// bytecode, the one nft makes from Render's text, which is also what
// `lanlink render` writes into wg-quick files.
func TestSetMatchesNft(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{Interface: "lanlink0", Masquerade: true},
		{Interface: "lanlink0", MSSClamp: true},
		{Interface: "wg-office", Masquerade: true, MSSClamp: true},
	} {
		t.Run(cfg.Interface+map[bool]string{true: "-masq"}[cfg.Masquerade]+map[bool]string{true: "-clamp"}[cfg.MSSClamp], func(t *testing.T) {
			t.Parallel()
			n := newTestNS(t)
			fw := newFirewall(t, n)
			if err := fw.Set(cfg); err != nil {
				t.Fatalf("Set: %v", err)
			}
			if diff := cmp.Diff(Render(cfg), n.ruleset(t)); diff != "" {
				t.Errorf("ruleset after Set (-want +got):\n%s", diff)
			}
			got := n.bytecode(t, TableName(cfg.Interface))
			if err := fw.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if rs := n.ruleset(t); rs != "" {
				t.Fatalf("ruleset after Close = %q, want empty", rs)
			}
			n.nft(t, Render(cfg), "-f", "-")
			want := n.bytecode(t, TableName(cfg.Interface))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("kernel bytecode: nft -f Render (-want) vs Set (+got):\n%s", diff)
			}
		})
	}
}

// Set is desired state: repeating it changes nothing, a new config replaces
// the table, an empty one removes it, and other tables are never touched.
func TestSetSequence(t *testing.T) {
	t.Parallel()
	n := newTestNS(t)
	const foreign = "table inet admin {\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy drop;\n\t}\n}\n"
	n.nft(t, foreign, "-f", "-")
	fw := newFirewall(t, n)
	t.Cleanup(func() { fw.Close() })

	both := Config{Interface: "lanlink0", Masquerade: true, MSSClamp: true}
	steps := []struct {
		name string
		cfg  Config
		want string // our part of the ruleset
	}{
		{"empty before anything", Config{Interface: "lanlink0"}, ""},
		{"both", both, Render(both)},
		{"both again", both, Render(both)},
		{"masquerade only", Config{Interface: "lanlink0", Masquerade: true}, Render(Config{Interface: "lanlink0", Masquerade: true})},
		{"other interface", Config{Interface: "lanlink9", MSSClamp: true}, Render(Config{Interface: "lanlink9", MSSClamp: true})},
		{"empty", Config{Interface: "lanlink9"}, ""},
		{"both after empty", both, Render(both)},
	}
	for _, s := range steps {
		if err := fw.Set(s.cfg); err != nil {
			t.Fatalf("%s: Set: %v", s.name, err)
		}
		want := foreign
		if s.want != "" {
			want += s.want
		}
		if diff := cmp.Diff(want, n.ruleset(t)); diff != "" {
			t.Errorf("%s: ruleset (-want +got):\n%s", s.name, diff)
		}
	}
	if err := fw.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if diff := cmp.Diff(foreign, n.ruleset(t)); diff != "" {
		t.Errorf("after Close (-want +got):\n%s", diff)
	}
	if err := fw.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := fw.Set(both); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Set after Close = %v, want net.ErrClosed", err)
	}
}

// Set repairs a table someone flushed or deleted (firewall reloads do).
func TestSetRepairs(t *testing.T) {
	t.Parallel()
	n := newTestNS(t)
	fw := newFirewall(t, n)
	t.Cleanup(func() { fw.Close() })
	cfg := Config{Interface: "lanlink0", Masquerade: true, MSSClamp: true}
	for _, breakIt := range [][]string{
		{"flush", "ruleset"},
		{"flush", "chain", "inet", "lanlink_lanlink0", "forward"},
	} {
		if err := fw.Set(cfg); err != nil {
			t.Fatal(err)
		}
		n.nft(t, "", breakIt...)
		if err := fw.Set(cfg); err != nil {
			t.Fatalf("Set after nft %s: %v", strings.Join(breakIt, " "), err)
		}
		if diff := cmp.Diff(Render(cfg), n.ruleset(t)); diff != "" {
			t.Errorf("after nft %s and Set (-want +got):\n%s", strings.Join(breakIt, " "), diff)
		}
	}
}

// Recover removes a table a crashed agent left and nothing else; with
// nothing left over it is a no-op.
func TestRecover(t *testing.T) {
	t.Parallel()
	n := newTestNS(t)
	cfg := Config{Interface: "lanlink0", Masquerade: true, MSSClamp: true}
	other := Config{Interface: "lanlink1", Masquerade: true}
	n.nft(t, Render(cfg)+Render(other), "-f", "-")
	o := Options{NetnsPath: n.path}
	for i := range 2 {
		if err := Recover(o, "lanlink0"); err != nil {
			t.Fatalf("Recover #%d: %v", i+1, err)
		}
		if diff := cmp.Diff(Render(other), n.ruleset(t)); diff != "" {
			t.Errorf("after Recover #%d (-want +got):\n%s", i+1, diff)
		}
	}
}

// The expressions are built for the whole ruleset in one place; this pins
// the parts whose encoding is easy to get subtly wrong.
func TestChainsEncoding(t *testing.T) {
	t.Parallel()
	cs := chains(Config{Interface: "lanlink0", Masquerade: true, MSSClamp: true})
	if len(cs) != 2 || len(cs[0].rules) != 1 || len(cs[1].rules) != 2 {
		t.Fatalf("chains = %d (rules %v), want postrouting with 1 rule and forward with 2", len(cs), cs)
	}
	cmpName := cs[0].rules[0][1].(*expr.Cmp)
	if diff := cmp.Diff([]byte("lanlink0\x00\x00\x00\x00\x00\x00\x00\x00"), cmpName.Data); diff != "" {
		t.Errorf("interface name encoding (-want +got):\n%s", diff)
	}
}
