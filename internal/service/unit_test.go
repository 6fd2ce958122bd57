package service

import (
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files")

var goldenOpts = UnitOptions{
	Binary:    "/usr/local/bin/lanlink",
	PlanPath:  "/etc/lanlink/network.toml",
	KeyPath:   "/etc/lanlink/private.key",
	Interface: "wg0",
}

func TestUnitGolden(t *testing.T) {
	got, err := Unit(goldenOpts)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "lanlink-wg0.service.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("Unit(%+v) (-want +got):\n%s", goldenOpts, diff)
	}
}

// directives returns the unit's Key=value lines, keyed by key.
func directives(unit string) map[string][]string {
	m := map[string][]string{}
	for l := range strings.SplitSeq(unit, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
			m[k] = append(m[k], v)
		}
	}
	return m
}

func TestUnitVariants(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts func(*UnitOptions)
		want map[string][]string // only these keys are compared
	}{
		{
			name: "plan and key in different directories",
			opts: func(o *UnitOptions) { o.KeyPath = "/var/lib/lanlink/keys/wg1.key"; o.Interface = "wg1" },
			want: map[string][]string{
				"ReadOnlyPaths": {"-/etc/lanlink -/var/lib/lanlink/keys"},
				"ExecStart":     {"/usr/local/bin/lanlink up -f /etc/lanlink/network.toml --key /var/lib/lanlink/keys/wg1.key --interface wg1"},
				"ExecReload":    {"/usr/local/bin/lanlink reload --interface wg1"},
				"Description":   {"lanlink site agent on wg1"},
			},
		},
		{
			name: "files under /root need ProtectHome=read-only",
			opts: func(o *UnitOptions) { o.Binary = "/root/go/bin/lanlink" },
			want: map[string][]string{"ProtectHome": {"read-only"}},
		},
		{
			name: "plan under /home",
			opts: func(o *UnitOptions) { o.PlanPath = "/home/admin/network.toml" },
			want: map[string][]string{"ProtectHome": {"read-only"}, "ReadOnlyPaths": {"-/home/admin -/etc/lanlink"}},
		},
		{
			name: "/homestead is not a home directory",
			opts: func(o *UnitOptions) { o.PlanPath = "/homestead/network.toml" },
			want: map[string][]string{"ProtectHome": {"yes"}},
		},
		{
			name: "non-default state dir",
			opts: func(o *UnitOptions) { o.StateDir = "/run/lanlink-test" },
			want: map[string][]string{
				"RuntimeDirectory": {"lanlink-test wireguard"},
				"ExecStart":        {"/usr/local/bin/lanlink up -f /etc/lanlink/network.toml --key /etc/lanlink/private.key --interface wg0 --state-dir /run/lanlink-test"},
				"ExecReload":       {"/usr/local/bin/lanlink reload --interface wg0 --state-dir /run/lanlink-test"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := goldenOpts
			tc.opts(&opts)
			unit, err := Unit(opts)
			if err != nil {
				t.Fatal(err)
			}
			all := directives(unit)
			got := map[string][]string{}
			for k := range tc.want {
				got[k] = all[k]
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("directives (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnitRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name      string
		opts      func(*UnitOptions)
		wantField string
	}{
		{"no interface", func(o *UnitOptions) { o.Interface = "" }, "interface"},
		{"long interface", func(o *UnitOptions) { o.Interface = "abcdefghijklmnop" }, "interface"},
		{"slash in interface", func(o *UnitOptions) { o.Interface = "wg/0" }, "interface"},
		{"space in interface", func(o *UnitOptions) { o.Interface = "wg 0" }, "interface"},
		{"dash first", func(o *UnitOptions) { o.Interface = "-wg0" }, "interface"},
		{"relative binary", func(o *UnitOptions) { o.Binary = "lanlink" }, "binary"},
		{"no binary", func(o *UnitOptions) { o.Binary = "" }, "binary"},
		{"unclean plan", func(o *UnitOptions) { o.PlanPath = "/etc/lanlink/../lanlink/network.toml" }, "plan"},
		{"space in key", func(o *UnitOptions) { o.KeyPath = "/etc/lan link/private.key" }, "key"},
		{"specifier in key", func(o *UnitOptions) { o.KeyPath = "/etc/lanlink/%i.key" }, "key"},
		{"variable in plan", func(o *UnitOptions) { o.PlanPath = "/etc/$HOME/network.toml" }, "plan"},
		{"newline in plan", func(o *UnitOptions) { o.PlanPath = "/etc/lanlink/x\nExecStartPre=/bin/sh" }, "plan"},
		{"state dir outside /run", func(o *UnitOptions) { o.StateDir = "/var/lib/lanlink" }, "state dir"},
		{"state dir /run itself", func(o *UnitOptions) { o.StateDir = "/run" }, "state dir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := goldenOpts
			tc.opts(&opts)
			unit, err := Unit(opts)
			var oe *OptionsError
			if !errors.As(err, &oe) {
				t.Fatalf("Unit() = %q, %v; want an *OptionsError", unit, err)
			}
			if oe.Field != tc.wantField {
				t.Errorf("error names field %q, want %q (%v)", oe.Field, tc.wantField, err)
			}
			if unit != "" {
				t.Errorf("Unit() rendered a unit despite the error")
			}
		})
	}
}

// verify runs systemd-analyze verify on unit (written to dir as name) and
// returns the lines that concern it: verify exits 0 even for unknown keys
// and bad values, and also reports unrelated units on the machine.
func verify(t *testing.T, dir, name, unit string) []string {
	t.Helper()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("systemd-analyze not found, and CI=true requires the verify test: install systemd (apt-get install -y systemd)")
		}
		t.Skip("systemd-analyze not found: install systemd to verify the rendered unit")
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
	var ours []string
	for l := range strings.SplitSeq(string(out), "\n") {
		if strings.Contains(l, name) || strings.Contains(l, path) {
			ours = append(ours, l)
		}
	}
	if err != nil && len(ours) == 0 {
		ours = append(ours, "systemd-analyze verify failed: "+err.Error()+": "+string(out))
	}
	return ours
}

func TestUnitPassesSystemdAnalyzeVerify(t *testing.T) {
	dir := t.TempDir()
	// verify checks that ExecStart's binary exists and is executable.
	bin := filepath.Join(dir, "lanlink")
	exe, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, exe, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := UnitOptions{
		Binary:    bin,
		PlanPath:  filepath.Join(dir, "network.toml"),
		KeyPath:   filepath.Join(dir, "keys", "private.key"),
		Interface: "wg0",
	}
	unit, err := Unit(opts)
	if err != nil {
		t.Fatal(err)
	}
	if warnings := verify(t, dir, UnitName("wg0"), unit); len(warnings) > 0 {
		t.Errorf("systemd-analyze verify complains about the unit:\n%s\nunit:\n%s", strings.Join(warnings, "\n"), unit)
	}

	// The check itself must be able to fail: a broken copy is caught.
	broken := strings.Replace(unit, "ProtectHome=yes", "ProtectHome=maybe\nBogusKey=1", 1)
	if warnings := verify(t, dir, "lanlink-broken.service", broken); len(warnings) < 2 {
		t.Errorf("verify found %d problems in a unit with two, want both: %q", len(warnings), warnings)
	}
}
