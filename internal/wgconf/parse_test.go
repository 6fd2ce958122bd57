package wgconf

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	priv := testKey(seedAlpha)
	peer := pub(seedBeta)
	in := `# header comment
[interface]
PrivateKey=` + priv.String() + `   # trailing comments are dropped
address = 10.0.0.1/24, fd00::1/64
Address = 10.0.1.1
listenport = 51820
FwMark = 0x10
MTU = 1380
DNS = 10.0.0.53 example.com,corp.example
Table = off
SaveConfig = True
  # indented comment
PreUp = echo pre
PostUp = iptables -A FORWARD -i %i -j ACCEPT; echo 'a=b'
PostUp = echo two
PreDown = true
PostDown = false

[PEER]
PublicKey = ` + peer.String() + `
PresharedKey = ` + priv.String() + `
AllowedIPs = 10.0.0.2/32 , 192.168.0.0/16
AllowedIPs = 192.168.5.5
Endpoint = [2001:db8::1]:51820
PersistentKeepalive = 25
`
	k, psk := priv, priv
	want := &File{
		Comments: []string{"# header comment"},
		Interface: Interface{
			Comments:   []string{"# indented comment"},
			PrivateKey: &k,
			ListenPort: 51820,
			FwMark:     16,
			Addresses:  pfx("10.0.0.1/24", "fd00::1/64", "10.0.1.1/32"),
			MTU:        1380,
			DNS:        []string{"10.0.0.53", "example.com", "corp.example"},
			Table:      "off",
			SaveConfig: true,
			PreUp:      []string{"echo pre"},
			PostUp:     []string{"iptables -A FORWARD -i %i -j ACCEPT; echo 'a=b'", "echo two"},
			PreDown:    []string{"true"},
			PostDown:   []string{"false"},
		},
		Peers: []Peer{{
			PublicKey:           peer,
			PresharedKey:        &psk,
			AllowedIPs:          pfx("10.0.0.2/32", "192.168.0.0/16", "192.168.5.5/32"),
			Endpoint:            "[2001:db8::1]:51820",
			PersistentKeepalive: 25 * time.Second,
		}},
	}
	got, err := Parse([]byte(in))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
	out, err := Marshal(got)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	again, err := Parse(out)
	if err != nil {
		t.Fatalf("Parse(Marshal): %v\n%s", err, out)
	}
	if diff := cmp.Diff(got, again, cmpOpts); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestParseErrors(t *testing.T) {
	priv := testKey(seedAlpha).String()
	peer := pub(seedBeta).String()
	tests := []struct {
		name     string
		in       string
		wantLine int
		wantMsg  string
	}{
		{"no interface", "[Peer]\nPublicKey = " + peer + "\n", 1, "no [Interface]"},
		{"two interfaces", "[Interface]\n[Interface]\n", 2, "second [Interface]"},
		{"unknown section", "[Interface]\n\n[Peers]\n", 3, "unknown section"},
		{"key before section", "ListenPort = 1\n[Interface]\n", 1, "before any"},
		{"unknown key", "[Interface]\nListenPrt = 1\n", 2, `unknown key "ListenPrt"`},
		{"peer key in interface", "[Interface]\nEndpoint = 192.0.2.1:1\n", 2, "unknown key"},
		{"no equals", "[Interface]\nMTU 1420\n", 2, "Key = value"},
		{"empty value", "[Interface]\nMTU =\n", 2, "MTU has no value"},
		{"duplicate", "[Interface]\nMTU = 1420\n\nmtu = 1400\n", 4, "first on line 2"},
		{"bad port", "[Interface]\nListenPort = 70000\n", 2, "ListenPort"},
		{"bad mtu", "[Interface]\nMTU = 12\n", 2, "MTU"},
		{"bad address", "[Interface]\nAddress = 10.0.0.300/24\n", 2, "not an IP address"},
		{"bad savecfg", "[Interface]\nSaveConfig = yes\n", 2, "true or false"},
		{"bad private key", "[Interface]\nPrivateKey = " + priv[:30] + "\n", 2, "PrivateKey: not a key"},
		{"peer without key", "[Interface]\n[Peer]\nAllowedIPs = 10.0.0.0/8\n[Peer]\nPublicKey = " + peer + "\n", 2, "without a PublicKey"},
		{"last peer without key", "[Interface]\n[Peer]\nPublicKey = " + peer + "\n[Peer]\n", 4, "without a PublicKey"},
		{"allowed ips space separated", "[Interface]\n[Peer]\nPublicKey = " + peer + "\nAllowedIPs = 10.0.0.0/8 10.1.0.0/16\n", 4, "AllowedIPs"},
		{"endpoint no port", "[Interface]\n[Peer]\nPublicKey = " + peer + "\nEndpoint = 192.0.2.1\n", 4, "host:port"},
		{"endpoint v6 no brackets", "[Interface]\n[Peer]\nPublicKey = " + peer + "\nEndpoint = 2001:db8::1:51820\n", 4, "host:port"},
		{"keepalive", "[Interface]\n[Peer]\nPublicKey = " + peer + "\nPersistentKeepalive = soon\n", 4, "seconds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("got %v, want a *ParseError", err)
			}
			if pe.Line != tt.wantLine || !strings.Contains(pe.Msg, tt.wantMsg) {
				t.Errorf("got %q, want line %d and a message containing %q", err, tt.wantLine, tt.wantMsg)
			}
			if strings.Contains(err.Error(), priv[:20]) {
				t.Errorf("error %q contains key material", err)
			}
		})
	}
}

func TestMarshalRejects(t *testing.T) {
	for name, f := range map[string]*File{
		"hash in hook":       {Interface: Interface{PostUp: []string{"echo # not a comment to wg-quick"}}},
		"newline in hook":    {Interface: Interface{PostUp: []string{"a\nb"}}},
		"comment without #":  {Comments: []string{"hello"}},
		"bad endpoint":       {Peers: []Peer{{Endpoint: "nope"}}},
		"fractional keepalv": {Peers: []Peer{{PersistentKeepalive: 1500 * time.Millisecond}}},
	} {
		t.Run(name, func(t *testing.T) {
			if out, err := Marshal(f); err == nil {
				t.Fatalf("Marshal succeeded:\n%s", out)
			}
		})
	}
}

// FuzzParse: Parse never panics, and whatever it accepts survives
// Marshal and Parse again unchanged.
func FuzzParse(f *testing.F) {
	golden, _ := filepath.Glob(filepath.Join("testdata", "*.conf"))
	for _, g := range golden {
		b, err := os.ReadFile(g)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("[Interface]\nAddress = 10.0.0.1, fd00::1/64\nDNS = a,b c\n[Peer]\nPublicKey = " + pub(1).String() + "\nAllowedIPs = ::/0\n"))
	f.Add([]byte("#c\r\n[interface]\r\nFwMark = off\r\nPostUp = x = y\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Parse(data)
		if err != nil {
			return
		}
		out, err := Marshal(a)
		if err != nil {
			t.Fatalf("Marshal of a parsed file: %v\ninput: %q", err, data)
		}
		b, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Marshal(Parse(x))): %v\nmarshalled: %q", err, out)
		}
		if diff := cmp.Diff(a, b, cmpOpts); diff != "" {
			t.Fatalf("round trip changed the file (-want +got):\n%s\ninput: %q", diff, data)
		}
	})
}
