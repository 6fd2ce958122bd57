package wgconf

import (
	"bytes"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"lanlink/internal/plan"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func TestRenderGolden(t *testing.T) {
	cases := renderCases()
	names := make([]string, 0, len(cases))
	for n := range cases {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		c := cases[name]
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Render(&buf, c, Options{}); err != nil {
				t.Fatalf("Render: %v", err)
			}
			golden(t, filepath.Join("testdata", name+".conf"), buf.Bytes())
			// What Render writes parses back to what it meant.
			f, err := Parse(buf.Bytes())
			if err != nil {
				t.Fatalf("Parse(Render()): %v", err)
			}
			if diff := cmp.Diff(canonical(c.Routes), Routes(f), cmpOpts); diff != "" {
				t.Errorf("wg-quick routes differ from the SiteConfig's (-want +got):\n%s", diff)
			}
			if len(f.Peers) != len(c.Peers) {
				t.Fatalf("%d peers, want %d", len(f.Peers), len(c.Peers))
			}
			for i, p := range c.Peers {
				want := Peer{PublicKey: p.PublicKey, AllowedIPs: p.AllowedIPs, Endpoint: p.Endpoint, PersistentKeepalive: p.PersistentKeepalive}
				got := f.Peers[i]
				got.Comments = nil
				if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
					t.Errorf("peer %s (-want +got):\n%s", p.Site, diff)
				}
			}
		})
	}
}

func TestRenderKey(t *testing.T) {
	c := renderCases()["mesh-alpha"]
	priv := testKey(seedAlpha)
	secret := priv.String()

	t.Run("no key: no secret, PostUp loads the key file", func(t *testing.T) {
		var buf bytes.Buffer
		if err := Render(&buf, c, Options{KeyFile: "/etc/lanlink/my key"}); err != nil {
			t.Fatal(err)
		}
		f, err := Parse(buf.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if f.Interface.PrivateKey != nil || strings.Contains(buf.String(), secret) {
			t.Error("file without --key holds a private key")
		}
		if want := "wg set %i private-key '/etc/lanlink/my key'"; !slices.Contains(f.Interface.PostUp, want) {
			t.Errorf("PostUp %q lacks %q", f.Interface.PostUp, want)
		}
	})
	t.Run("embedded key", func(t *testing.T) {
		var buf bytes.Buffer
		if err := Render(&buf, c, Options{PrivateKey: &priv, Interface: "wg-corp"}); err != nil {
			t.Fatal(err)
		}
		golden(t, filepath.Join("testdata", "mesh-alpha-key.conf"), buf.Bytes())
		f, err := Parse(buf.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if f.Interface.PrivateKey == nil || *f.Interface.PrivateKey != priv {
			t.Error("embedded key missing or wrong")
		}
		for _, h := range f.Interface.PostUp {
			if strings.Contains(h, "private-key") {
				t.Errorf("file with an embedded key also loads a key file: %q", h)
			}
		}
	})
	t.Run("key of another site", func(t *testing.T) {
		other := testKey(seedBeta)
		var buf bytes.Buffer
		err := Render(&buf, c, Options{PrivateKey: &other})
		if err == nil || !strings.Contains(err.Error(), "site alpha") {
			t.Fatalf("Render with beta's key for alpha: got %v, want an error naming the site", err)
		}
		if strings.Contains(err.Error(), other.String()) {
			t.Fatal("error contains the private key")
		}
		if buf.Len() != 0 {
			t.Error("Render wrote output despite failing")
		}
	})
}

func TestRenderRejects(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(c *plan.SiteConfig, o *Options)
		wantErr string
	}{
		{"bad interface name", func(c *plan.SiteConfig, o *Options) { o.Interface = "a/b" }, "interface name"},
		{"long interface name", func(c *plan.SiteConfig, o *Options) { o.Interface = "abcdefghijklmnop" }, "interface name"},
		{"key file with #", func(c *plan.SiteConfig, o *Options) { o.KeyFile = "/etc/#key" }, "key file path"},
		{"route not in AllowedIPs", func(c *plan.SiteConfig, o *Options) {
			c.Routes = append(c.Routes, netipPrefix("192.168.99.0/24"))
		}, "wg-quick would route"},
		{"AllowedIPs not routed by lanlink", func(c *plan.SiteConfig, o *Options) {
			c.Routes = c.Routes[1:]
		}, "wg-quick would route"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := renderCases()["mesh-alpha"]
			var o Options
			tt.mutate(c, &o)
			var buf bytes.Buffer
			err := Render(&buf, c, o)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
			}
			if buf.Len() != 0 {
				t.Error("Render wrote output despite failing")
			}
		})
	}
}

func TestKeepaliveRoundsUp(t *testing.T) {
	c := renderCases()["nat-site"]
	c.Peers[0].PersistentKeepalive = 1500 * 1e6 // 1.5s
	f, err := FromSiteConfig(c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Peers[0].PersistentKeepalive.Seconds(); got != 2 {
		t.Errorf("keepalive %vs, want 2s", got)
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got), rerun with -update if intended:\n%s", path, diff)
	}
}

// cmpOpts compares netip values by value (they have unexported fields).
var cmpOpts = cmp.Options{
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
}
