package plan

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// base is a valid one-site plan; rows edit it. Line numbers:
//
//	1 [network]  2 name  3 tunnel  4 blank  5 [[site]]  6 name  7 public_key
//	8 endpoint  9 lan  10 address
const base = `[network]
name = "acme"
tunnel = ["10.255.0.0/24"]

[[site]]
name = "alpha"
public_key = "` + keyAlpha + `"
endpoint = "203.0.113.1:51820"
lan = ["192.168.10.0/24"]
address = ["10.255.0.1"]
`

// beta is a valid second site (lines 12-17 when appended to base).
const beta = `
[[site]]
name = "beta"
public_key = "` + keyBeta + `"
lan = ["192.168.20.0/24"]
address = ["10.255.0.2"]
`

func replace(old, new string) string {
	if !strings.Contains(base+beta, old) {
		panic("test bug: " + old + " not in base")
	}
	return strings.Replace(base, old, new, 1)
}

func TestValidBase(t *testing.T) {
	p := mustParse(t, []byte(base+beta))
	if len(p.Sites) != 2 || p.Sites[1].Name != "beta" {
		t.Fatalf("got %+v", p.Sites)
	}
}

func TestValidationProblems(t *testing.T) {
	type want struct {
		Line        int
		Site, Field string
		Msg, Fix    string // substrings
	}
	tests := []struct {
		name string
		in   string
		want []want
	}{
		{"malformed TOML", replace(`lan = ["192.168.10.0/24"]`, `lan = ["192.168.10.0/24"`),
			[]want{{Line: 10, Msg: "not valid TOML", Fix: "syntax"}}},
		{"unknown site key", replace("lan =", "lna ="),
			[]want{{9, "alpha", "lna", "unknown key", `did you mean "lan"?`}}},
		{"unknown network key", replace(`name = "acme"`, `name = "acme"`+"\nmut = 1400"),
			[]want{{3, "", "mut", "unknown key", `did you mean "mtu"?`}}},
		{"unknown table", base + "[netwrok]\n", []want{{11, "", "", `unknown table "netwrok"`, "did you mean [network]?"}}},
		{"single-bracket site", base[:strings.Index(base, "[[site]]")] + "[site]\nname = \"x\"\n", []want{{5, "", "", "[site] is not a plan table", "[[site]]"}}},
		{"missing network", base[strings.Index(base, "[[site]]"):], []want{{0, "", "", "no [network] table", "lanlink init"}}},
		{"invalid CIDR", replace("192.168.10.0/24", "192.168.10.0/33"),
			[]want{{9, "alpha", "lan", `"192.168.10.0/33" is not a CIDR prefix`, "192.168.10.0/24"}}},
		{"LAN without length", replace("192.168.10.0/24", "192.168.10.0"),
			[]want{{9, "alpha", "lan", "has no prefix length", "192.168.10.0/24"}}},
		{"host bits set", replace("192.168.10.0/24", "192.168.1.5/24"),
			[]want{{9, "alpha", "lan", "192.168.1.5/24 has host bits set", "use 192.168.1.0/24"}}},
		{"tunnel host bits", replace("10.255.0.0/24", "10.255.0.7/24"),
			[]want{{3, "", "tunnel", "has host bits set", "use 10.255.0.0/24"}}},
		{"LANs of two sites overlap", base + strings.Replace(beta, "192.168.20.0/24", "192.168.10.128/25", 1),
			[]want{{15, "beta", "lan", `192.168.10.128/25 overlaps 192.168.10.0/24 of site "alpha" (line 9)`, "must not overlap"}}},
		{"LAN overlaps tunnel", replace(`lan = ["192.168.10.0/24"]`, `lan = ["10.0.0.0/8"]`),
			[]want{{9, "alpha", "lan", "10.0.0.0/8 overlaps the tunnel prefix 10.255.0.0/24", "tunnel prefix no LAN uses"}}},
		{"LANs of one site overlap", replace(`lan = ["192.168.10.0/24"]`, `lan = ["192.168.0.0/16", "192.168.10.0/24"]`),
			[]want{{9, "alpha", "lan", "192.168.10.0/24 overlaps 192.168.0.0/16 of the same site", "remove 192.168.10.0/24"}}},
		{"default route as LAN", replace(`"192.168.10.0/24"`, `"0.0.0.0/0"`),
			[]want{{9, "alpha", "lan", "all traffic", "only the site's own"}}, // also overlaps nothing: rejected first
		},
		{"address outside tunnel", replace(`"10.255.0.1"`, `"10.254.0.1"`),
			[]want{{10, "alpha", "address", "10.254.0.1 is outside the tunnel prefix", "inside 10.255.0.0/24"}, {10, "alpha", "address", "no address in tunnel prefix", "10.255.0.1"}}},
		{"address is network address", replace(`"10.255.0.1"`, `"10.255.0.0"`),
			[]want{{10, "alpha", "address", "10.255.0.0 is the network address", "10.255.0.1"}, {10, "alpha", "address", "no address", "10.255.0.1"}}},
		{"address is broadcast", replace(`"10.255.0.1"`, `"10.255.0.255"`),
			[]want{{10, "alpha", "address", "10.255.0.255 is the broadcast address of 10.255.0.0/24", "10.255.0.1"}, {10, "alpha", "address", "no address", "10.255.0.1"}}},
		{"address taken", base + strings.Replace(beta, "10.255.0.2", "10.255.0.1", 1),
			[]want{{16, "beta", "address", `10.255.0.1 is already used by site "alpha"`, "such as 10.255.0.2"}, {16, "beta", "address", "no address in tunnel prefix 10.255.0.0/24", "10.255.0.2"}}},
		{"address with length", replace(`"10.255.0.1"`, `"10.255.0.1/24"`),
			[]want{{10, "alpha", "address", "not an IP address", `"10.255.0.1"`}, {10, "alpha", "address", "no address", ""}}},
		{"missing address", replace("address = [\"10.255.0.1\"]\n", ""),
			[]want{{5, "alpha", "address", "no address in tunnel prefix 10.255.0.0/24", "such as 10.255.0.1"}}},
		{"missing address for second tunnel", replace(`["10.255.0.0/24"]`, `["10.255.0.0/24", "fd00:ff::/64"]`),
			[]want{{10, "alpha", "address", "no address in tunnel prefix fd00:ff::/64", "such as fd00:ff::1"}}},
		{"duplicate site names", base + strings.Replace(beta, `"beta"`, `"alpha"`, 1),
			[]want{{13, "alpha", "name", `site name "alpha" is already used at line 5`, "its own name"}}},
		{"duplicate public keys", base + strings.Replace(beta, keyBeta, keyAlpha, 1),
			[]want{{14, "beta", "public_key", `same public key as site "alpha" (line 7)`, "lanlink keygen"}}},
		{"key not base64", replace(keyAlpha, "not-a-key"),
			[]want{{7, "alpha", "public_key", "not a WireGuard public key", "lanlink keygen"}}},
		{"key wrong length", replace(keyAlpha, "AAAA"),
			[]want{{7, "alpha", "public_key", "32 bytes", ""}}},
		{"missing key", replace("public_key = \""+keyAlpha+"\"\n", ""),
			[]want{{5, "alpha", "public_key", "no public key", "lanlink keygen"}}},
		{"endpoint without port", replace("203.0.113.1:51820", "203.0.113.1"),
			[]want{{8, "alpha", "endpoint", "has no port", `"203.0.113.1:51820"`}}},
		{"endpoint port out of range", replace("203.0.113.1:51820", "203.0.113.1:70000"),
			[]want{{8, "alpha", "endpoint", `port "70000" is out of range 1-65535`, "51820"}}},
		{"endpoint port zero", replace("203.0.113.1:51820", "203.0.113.1:0"),
			[]want{{8, "alpha", "endpoint", "out of range", ""}}},
		{"endpoint empty host", replace("203.0.113.1:51820", ":51820"),
			[]want{{8, "alpha", "endpoint", "empty host", "example.com"}}},
		{"endpoint IPv6 without brackets", replace("203.0.113.1:51820", "2001:db8::1:51820"),
			[]want{{8, "alpha", "endpoint", "needs brackets", "[address]:port"}}},
		{"endpoint bad host name", replace("203.0.113.1:51820", "bad_host!:51820"),
			[]want{{8, "alpha", "endpoint", "not a valid host name", ""}}},
		{"site name with space", replace(`"alpha"`, `"al pha"`),
			[]want{{6, "al pha", "name", `contains ' '`, "letters, digits and '-'"}}},
		{"site name too long", replace(`"alpha"`, `"`+strings.Repeat("a", 33)+`"`),
			[]want{{6, strings.Repeat("a", 33), "name", "longer than 32", ""}}},
		{"site name leading dash", replace(`"alpha"`, `"-alpha"`),
			[]want{{6, "-alpha", "name", "starts with '-'", ""}}},
		{"missing site name", replace("name = \"alpha\"\n", ""),
			[]want{{5, "#1", "name", "site has no name", "add name"}}},
		{"two IPv4 tunnels", replace(`["10.255.0.0/24"]`, `["10.255.0.0/24", "10.254.0.0/24"]`),
			[]want{{3, "", "tunnel", "10.254.0.0/24 is a second IPv4 tunnel prefix", "one IPv4"}}},
		{"tunnel too small", replace(`["10.255.0.0/24"]`, `["10.255.0.0/31"]`),
			[]want{{3, "", "tunnel", "too small", "/30"}}},
		{"mtu out of range", replace(`name = "acme"`, "name = \"acme\"\nmtu = 100"),
			[]want{{3, "", "mtu", "100 is out of range 576-9000", "1420"}}},
		{"mtu too small for IPv6", strings.Replace(replace(`name = "acme"`, "name = \"acme\"\nmtu = 1000"), "192.168.10.0/24", "fd00:10::/64", 1),
			[]want{{3, "", "mtu", "minimum for IPv6", "at least 1280"}}},
		{"port wrong type", replace(`name = "acme"`, "name = \"acme\"\nport = \"51820\""),
			[]want{{3, "", "port", "must be an integer, not a string", "between 1 and 65535"}}},
		{"site port out of range", replace(`address =`, "port = 0\naddress ="),
			[]want{{10, "alpha", "port", "0 is out of range 1-65535", "network's port"}}},
		{"bool wrong type", replace(`address =`, "masquerade = \"yes\"\naddress ="),
			[]want{{10, "alpha", "masquerade", "must be true or false", "without quotes"}}},
		{"lan not a list", replace(`lan = ["192.168.10.0/24"]`, `lan = "192.168.10.0/24"`),
			[]want{{9, "alpha", "lan", "must be a list of strings", `lan = [`}}},
		{"hub unknown", replace(`name = "acme"`, "name = \"acme\"\nhub = \"alpah\""),
			[]want{{3, "", "hub", `no site is named "alpah"`, `did you mean "alpha"?`}}},
		{"hub without endpoint", replace(`name = "acme"`, "name = \"acme\"\nhub = \"beta\"") + beta,
			[]want{{3, "", "hub", `site "beta" has no endpoint`, "give \"beta\" an endpoint"}}},
		{"no path between NAT sites", replace("endpoint = \"203.0.113.1:51820\"\n", "") + beta,
			[]want{{11, "beta", "endpoint", `no path between sites "alpha" and "beta"`, "give at least one site an endpoint"}}},
		{"key outside table", "stray = 1\n" + base,
			[]want{{1, "", "stray", "outside any table", "[network]"}}},
		{"many problems reported together, by line", replace("192.168.10.0/24", "192.168.10.1/24") + strings.Replace(beta, keyBeta, "bad", 1) + "bogus = 1\n",
			[]want{{9, "alpha", "lan", "host bits", ""}, {14, "beta", "public_key", "not a WireGuard public key", ""}, {17, "beta", "bogus", "unknown key", ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("test.toml", []byte(tt.in))
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", tt.in)
			}
			ps := problemsOf(t, err)
			var got []want
			for i, p := range ps {
				if p.File != "test.toml" {
					t.Errorf("problem %d: File = %q", i, p.File)
				}
				w := want{Line: p.Line, Site: p.Site, Field: p.Field, Msg: p.Msg, Fix: p.Fix}
				if i < len(tt.want) {
					// Keep the whole text only where the substring does not match,
					// so the diff shows what is wrong.
					if strings.Contains(p.Msg, tt.want[i].Msg) {
						w.Msg = tt.want[i].Msg
					}
					if strings.Contains(p.Fix, tt.want[i].Fix) {
						w.Fix = tt.want[i].Fix
					}
				}
				got = append(got, w)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s\nerror text:\n%v", diff, err)
			}
		})
	}
}

func TestProblemsErrorFormat(t *testing.T) {
	_, err := Parse("net.toml", []byte(replace("192.168.10.0/24", "192.168.1.5/24")+"bogus = 1\n"))
	want := `net.toml:9: site "alpha": lan: 192.168.1.5/24 has host bits set; use 192.168.1.0/24
net.toml:11: site "alpha": bogus: unknown key; known keys are name, public_key, endpoint, lan, address, port, masquerade, mss_clamp`
	if err == nil {
		t.Fatal("no error")
	}
	if diff := cmp.Diff(want, err.Error()); diff != "" {
		t.Errorf("Error() (-want +got):\n%s", diff)
	}
}

func TestDefaults(t *testing.T) {
	p := mustParse(t, []byte(base))
	want := Network{Name: "acme", Tunnels: p.Network.Tunnels, Port: DefaultPort, MTU: DefaultMTU, Keepalive: DefaultKeepalive}
	if diff := cmp.Diff(want, p.Network, cmpOpts); diff != "" {
		t.Errorf("network (-want +got):\n%s", diff)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(t.TempDir() + "/nope.toml")
	if err == nil || !strings.Contains(err.Error(), "nope.toml") {
		t.Fatalf("got %v", err)
	}
}
