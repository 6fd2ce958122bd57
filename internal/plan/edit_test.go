package plan

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// userPlan is written the way a person might: comments everywhere, odd
// indentation, a multi-line list, trailing comments.
const userPlan = `# Our network.

[network]
name = "acme"
tunnel = ["10.255.0.0/24"]   # do not change

# Berlin office
[[site]]
  name = "alpha"   # head office
  public_key = "` + keyAlpha + `"
  endpoint = "203.0.113.1:51820"   # router port-forward
  lan = [
    "192.168.10.0/24",  # main
  ]
  address = ["10.255.0.1"]
  # port = 51821

# Hamburg, behind NAT
[[site]]
name = "beta"
public_key = "` + keyBeta + `"
lan = ["192.168.20.0/24"]
address = ["10.255.0.2"]

[[site]]
name = "gamma"
public_key = "` + keyGamma + `"
endpoint = "198.51.100.7:51820"
lan = ["192.168.30.0/24"]
address = ["10.255.0.3"]
# trailing comment
`

func sub(t *testing.T, s, old, new string) string {
	t.Helper()
	if strings.Count(s, old) != 1 {
		t.Fatalf("test bug: %q occurs %d times", old, strings.Count(s, old))
	}
	return strings.Replace(s, old, new, 1)
}

func lineNo(t *testing.T, s, substr string) int {
	t.Helper()
	i := strings.Index(s, substr)
	if i < 0 {
		t.Fatalf("test bug: %q not found", substr)
	}
	return strings.Count(s[:i], "\n") + 1
}

func TestEditsPreserveText(t *testing.T) {
	mustParse(t, []byte(userPlan))
	tests := []struct {
		name string
		edit func([]byte) ([]byte, error)
		want string
	}{
		{"no-op SetSite", func(d []byte) ([]byte, error) { return SetSite("p", d, "alpha", SiteChange{}) }, userPlan},
		{"SetSite to the same values", func(d []byte) ([]byte, error) {
			return SetSite("p", d, "beta", SiteChange{PublicKey: ptr(keyBeta), LANs: []string{"192.168.20.0/24"}, Port: ptr(uint16(0)), Endpoint: ptr("")})
		}, userPlan},
		{"replace endpoint keeps trailing comment", func(d []byte) ([]byte, error) {
			return SetSite("p", d, "alpha", SiteChange{Endpoint: ptr("office-a.example.com:51821")})
		}, sub(t, userPlan, `"203.0.113.1:51820"   # router`, `"office-a.example.com:51821"   # router`)},
		{"replace multi-line lan", func(d []byte) ([]byte, error) {
			return SetSite("p", d, "alpha", SiteChange{LANs: []string{"192.168.10.0/24", "192.168.11.0/24"}})
		}, sub(t, userPlan, "lan = [\n    \"192.168.10.0/24\",  # main\n  ]", `lan = ["192.168.10.0/24", "192.168.11.0/24"]`)},
		{"add missing keys after the last key", func(d []byte) ([]byte, error) {
			return SetSite("p", d, "beta", SiteChange{Endpoint: ptr("[2001:db8::2]:51820"), Masquerade: ptr(true), Port: ptr(uint16(51999))})
		}, sub(t, userPlan, "address = [\"10.255.0.2\"]\n", "address = [\"10.255.0.2\"]\nendpoint = \"[2001:db8::2]:51820\"\nport = 51999\nmasquerade = true\n")},
		{"insert keeps the site's indentation", func(d []byte) ([]byte, error) {
			return SetSite("p", d, "alpha", SiteChange{MSSClamp: ptr(true)})
		}, sub(t, userPlan, "  address = [\"10.255.0.1\"]\n", "  address = [\"10.255.0.1\"]\n  mss_clamp = true\n")},
		{"remove endpoint deletes the line with its comment", func(d []byte) ([]byte, error) {
			return SetSite("p", d, "alpha", SiteChange{Endpoint: ptr("")})
		}, sub(t, userPlan, "  endpoint = \"203.0.113.1:51820\"   # router port-forward\n", "")},
		{"remove middle site with its description comment", func(d []byte) ([]byte, error) { return RemoveSite("p", d, "beta") },
			sub(t, userPlan, "# Hamburg, behind NAT\n[[site]]\nname = \"beta\"\npublic_key = \""+keyBeta+"\"\nlan = [\"192.168.20.0/24\"]\naddress = [\"10.255.0.2\"]\n\n", "")},
		{"remove first site", func(d []byte) ([]byte, error) { return RemoveSite("p", d, "alpha") },
			userPlan[:strings.Index(userPlan, "# Berlin")] + userPlan[strings.Index(userPlan, "# Hamburg"):]},
		{"remove last site and the blank line before it", func(d []byte) ([]byte, error) { return RemoveSite("p", d, "gamma") },
			userPlan[:strings.Index(userPlan, "\n[[site]]\nname = \"gamma\"")]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(userPlan)
			got, err := tt.edit(in)
			if err != nil {
				t.Fatal(err)
			}
			if string(in) != userPlan {
				t.Fatal("edit modified its input slice")
			}
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("edited text (-want +got):\n%s", diff)
			}
			mustParse(t, got)
		})
	}
}

func TestAddSiteAppendsOnly(t *testing.T) {
	block := "[[site]]\nname = \"delta\"\npublic_key = \"" + keyDelta + "\"\nendpoint = \"delta.example.com:51820\"\nlan = [\"192.168.40.0/24\"]\naddress = [\"10.255.0.4\"]\nmss_clamp = false\n"
	tests := []struct{ name, in, want string }{
		{"ends with newline", userPlan, userPlan + "\n" + block},
		{"no final newline", strings.TrimSuffix(userPlan, "\n"), userPlan + "\n" + block},
		{"ends with blank line", userPlan + "\n", userPlan + "\n" + block},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, s, err := AddSite("p", []byte(tt.in), SiteSpec{Name: "delta", PublicKey: keyDelta, LANs: []string{"192.168.40.0/24"},
				Endpoint: "delta.example.com:51820", MSSClamp: ptr(false)})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("AddSite text (-want +got):\n%s", diff)
			}
			if s.Name != "delta" || s.Addresses[0] != netip.MustParseAddr("10.255.0.4") || s.Endpoint != "delta.example.com:51820" {
				t.Errorf("added site %+v", s)
			}
		})
	}
}

func TestFailedEditsReturnNoData(t *testing.T) {
	withHub := sub(t, userPlan, `name = "acme"`, "name = \"acme\"\nhub = \"gamma\"")
	tests := []struct {
		name  string
		in    string
		edit  func([]byte) ([]byte, error)
		want  Problem // File "p" implied; Msg/Fix are substrings
		lineQ string  // the problem is at the line holding this text of the input ("" = line 0)
	}{
		{"SetSite makes LANs overlap", userPlan, func(d []byte) ([]byte, error) {
			return SetSite("p", d, "beta", SiteChange{LANs: []string{"192.168.10.0/25"}})
		}, Problem{Site: "beta", Field: "lan", Msg: `overlaps 192.168.10.0/24 of site "alpha"`}, `lan = ["192.168.20.0/24"]`},
		{"SetSite bad endpoint", userPlan, func(d []byte) ([]byte, error) {
			return SetSite("p", d, "alpha", SiteChange{Endpoint: ptr("no-port.example.com")})
		}, Problem{Site: "alpha", Field: "endpoint", Msg: "has no port", Fix: "no-port.example.com:51820"}, `endpoint = "203.0.113.1`},
		{"SetSite inserted bad key", userPlan, func(d []byte) ([]byte, error) {
			return SetSite("p", d, "beta", SiteChange{PublicKey: ptr("short")})
		}, Problem{Site: "beta", Field: "public_key", Msg: "not a WireGuard public key"}, "public_key = \"" + keyBeta},
		{"SetSite unknown site", userPlan, func(d []byte) ([]byte, error) {
			return SetSite("p", d, "gamm", SiteChange{Endpoint: ptr("x:1")})
		}, Problem{Site: "gamm", Msg: "no such site", Fix: `did you mean "gamma"?`}, ""},
		{"RemoveSite leaves hub dangling", withHub, func(d []byte) ([]byte, error) { return RemoveSite("p", d, "gamma") },
			Problem{Field: "hub", Msg: `no site is named "gamma"`}, `hub = "gamma"`},
		{"RemoveSite unknown", userPlan, func(d []byte) ([]byte, error) { return RemoveSite("p", d, "zzzzzz") },
			Problem{Site: "zzzzzz", Msg: "no such site", Fix: "known sites: alpha, beta, gamma"}, ""},
		{"AddSite bad LAN", userPlan, func(d []byte) ([]byte, error) {
			out, _, err := AddSite("p", d, SiteSpec{Name: "delta", PublicKey: keyDelta, LANs: []string{"192.168.40.1/24"}})
			return out, err
		}, Problem{Site: "delta", Field: "lan", Msg: "host bits set", Fix: "use 192.168.40.0/24"}, ""},
		{"AddSite duplicate name", userPlan, func(d []byte) ([]byte, error) {
			out, _, err := AddSite("p", d, SiteSpec{Name: "beta", PublicKey: keyDelta})
			return out, err
		}, Problem{Site: "beta", Field: "name", Msg: "already exists"}, ""},
		{"AddSite duplicate key", userPlan, func(d []byte) ([]byte, error) {
			out, _, err := AddSite("p", d, SiteSpec{Name: "delta", PublicKey: keyBeta})
			return out, err
		}, Problem{Site: "delta", Field: "public_key", Msg: `same public key as site "beta"`}, ""},
		{"edit of broken TOML", "[network\n", func(d []byte) ([]byte, error) { return RemoveSite("p", d, "alpha") },
			Problem{Msg: "not valid TOML"}, "[network"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := tt.edit([]byte(tt.in))
			if out != nil {
				t.Errorf("failed edit returned data:\n%s", out)
			}
			if err == nil {
				t.Fatal("edit succeeded")
			}
			ps := problemsOf(t, err)
			got := ps[0]
			if strings.Contains(got.Msg, tt.want.Msg) {
				got.Msg = tt.want.Msg
			}
			if strings.Contains(got.Fix, tt.want.Fix) {
				got.Fix = tt.want.Fix
			}
			want := tt.want
			want.File = "p"
			if tt.lineQ != "" {
				want.Line = lineNo(t, tt.in, tt.lineQ)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("first problem (-want +got):\n%s\nall: %v", diff, err)
			}
		})
	}
}

func TestAllocation(t *testing.T) {
	add := func(t *testing.T, data []byte, name, pubkey string, addr ...string) ([]byte, *Site, error) {
		t.Helper()
		return AddSite("p", data, SiteSpec{Name: name, PublicKey: pubkey, Endpoint: name + ".example.com:51820", Address: addr})
	}
	newPlan := func(t *testing.T, tunnels ...string) []byte {
		t.Helper()
		data, err := New("acme", pfxs(tunnels...), 0)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	addrs := func(s *Site) []string {
		var out []string
		for _, a := range s.Addresses {
			out = append(out, a.String())
		}
		return out
	}

	t.Run("lowest free, both families", func(t *testing.T) {
		data := newPlan(t, "10.255.0.0/24", "fd00:ff::/64")
		var s *Site
		var err error
		for _, n := range []struct{ name, key string }{{"alpha", keyAlpha}, {"beta", keyBeta}} {
			data, s, err = add(t, data, n.name, n.key)
			if err != nil {
				t.Fatal(err)
			}
		}
		if diff := cmp.Diff([]string{"10.255.0.2", "fd00:ff::2"}, addrs(s)); diff != "" {
			t.Errorf("beta (-want +got):\n%s", diff)
		}
	})
	t.Run("fills a gap, never renumbers", func(t *testing.T) {
		data := newPlan(t, "10.255.0.0/24")
		data, _, _ = add(t, data, "alpha", keyAlpha)
		data, _, _ = add(t, data, "beta", keyBeta)
		data, _, _ = add(t, data, "gamma", keyGamma)
		data, err := RemoveSite("p", data, "beta")
		if err != nil {
			t.Fatal(err)
		}
		data, s, err := add(t, data, "delta", keyDelta)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"10.255.0.2"}, addrs(s)); diff != "" {
			t.Errorf("delta (-want +got):\n%s", diff)
		}
		p := mustParse(t, data)
		got := map[string]string{}
		for _, s := range p.Sites {
			got[s.Name] = s.Addresses[0].String()
		}
		if diff := cmp.Diff(map[string]string{"alpha": "10.255.0.1", "gamma": "10.255.0.3", "delta": "10.255.0.2"}, got); diff != "" {
			t.Errorf("addresses (-want +got):\n%s", diff)
		}
	})
	t.Run("skips network and broadcast; full prefix", func(t *testing.T) {
		data := newPlan(t, "10.255.0.0/30")
		data, a, _ := add(t, data, "alpha", keyAlpha)
		data, b, _ := add(t, data, "beta", keyBeta)
		if a.Addresses[0].String() != "10.255.0.1" || b.Addresses[0].String() != "10.255.0.2" {
			t.Fatalf("got %v %v", a.Addresses, b.Addresses)
		}
		out, s, err := add(t, data, "gamma", keyGamma)
		if out != nil || s != nil || err == nil {
			t.Fatalf("full prefix: out=%q site=%v err=%v", out, s, err)
		}
		ps := problemsOf(t, err)
		if ps[0].Field != "address" || !strings.Contains(ps[0].Msg, "10.255.0.0/30 is full") || !strings.Contains(ps[0].Fix, "widen tunnel to 10.255.0.0/29") {
			t.Errorf("problem %+v", ps[0])
		}
	})
	t.Run("explicit address honoured and validated", func(t *testing.T) {
		data := newPlan(t, "10.255.0.0/24")
		data, s, err := add(t, data, "alpha", keyAlpha, "10.255.0.9")
		if err != nil || s.Addresses[0].String() != "10.255.0.9" {
			t.Fatalf("got %v, %v", s, err)
		}
		for _, bad := range []struct{ addr, msg string }{
			{"10.255.0.9", `already used by site "alpha"`},
			{"10.254.0.9", "outside the tunnel prefix"},
			{"10.255.0.255", "broadcast address"},
			{"banana", "not an IP address"},
		} {
			out, _, err := add(t, data, "beta", keyBeta, bad.addr)
			if out != nil || err == nil {
				t.Errorf("%s: accepted", bad.addr)
				continue
			}
			if ps := problemsOf(t, err); ps[0].Site != "beta" || ps[0].Field != "address" || !strings.Contains(ps[0].Msg, bad.msg) {
				t.Errorf("%s: got %v", bad.addr, err)
			}
		}
	})
}

func TestNew(t *testing.T) {
	data, err := New("acme", pfxs("10.255.0.0/24", "fd00:ff::/64"), 51999)
	if err != nil {
		t.Fatal(err)
	}
	p := mustParse(t, data)
	if diff := cmp.Diff(Network{Name: "acme", Tunnels: pfxs("10.255.0.0/24", "fd00:ff::/64"), Port: 51999, MTU: DefaultMTU, Keepalive: DefaultKeepalive}, p.Network, cmpOpts); diff != "" {
		t.Errorf("network (-want +got):\n%s", diff)
	}
	for _, bad := range []struct {
		name    string
		tunnels []netip.Prefix
		field   string
	}{
		{"bad name!", pfxs("10.255.0.0/24"), "name"},
		{"acme", nil, "tunnel"},
		{"acme", []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr("10.255.0.1"), 24)}, "tunnel"},
		{"acme", pfxs("10.255.0.0/24", "10.254.0.0/24"), "tunnel"},
	} {
		out, err := New(bad.name, bad.tunnels, 0)
		if out != nil || err == nil {
			t.Errorf("New(%q, %v) accepted", bad.name, bad.tunnels)
			continue
		}
		if ps := problemsOf(t, err); ps[0].Field != bad.field || ps[0].Line != 0 {
			t.Errorf("New(%q, %v): %+v", bad.name, bad.tunnels, ps)
		}
	}
}
