package plan

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func FuzzParse(f *testing.F) {
	f.Add([]byte(base + beta))
	f.Add([]byte(userPlan))
	if b, err := os.ReadFile("testdata/example.toml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("[network]\nname = 'x'\ntunnel = ['fd00::/64']\n[[site]]\nname = \"a\"\n"))
	f.Add([]byte("a.b = 1\n[site.x]\n[[network]]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("fuzz.toml", data)
		if err != nil {
			var ps Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("error is not non-empty Problems: %#v", err)
			}
			for _, pr := range ps {
				if pr.Msg == "" || pr.File != "fuzz.toml" {
					t.Fatalf("incomplete problem %+v", pr)
				}
			}
			return
		}
		for _, s := range p.Sites {
			if _, err := p.SiteConfig(s.Name); err != nil {
				t.Fatalf("valid plan, SiteConfig(%q): %v", s.Name, err)
			}
		}
		if len(p.Sites) == 0 {
			return
		}
		// A no-op edit keeps every byte.
		s := p.Sites[0]
		out, err := SetSite("fuzz.toml", data, s.Name, SiteChange{})
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("no-op SetSite: err=%v changed=%v", err, !bytes.Equal(out, data))
		}
		// Writing back the current values may respell them but must give
		// the same plan.
		lans := make([]string, 0, len(s.LANs))
		for _, l := range s.LANs {
			lans = append(lans, l.String())
		}
		out, err = SetSite("fuzz.toml", data, s.Name, SiteChange{
			Endpoint: &s.Endpoint, LANs: lans, PublicKey: ptr(s.PublicKey.String()), Port: &s.Port,
			Masquerade: &s.Masquerade, MSSClamp: &s.MSSClamp,
		})
		if err != nil {
			t.Fatalf("SetSite with current values: %v\n%s", err, data)
		}
		q, err := Parse("fuzz.toml", out)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if diff := cmp.Diff(p, q, cmpOpts); diff != "" {
			t.Fatalf("plan changed by rewriting its own values (-before +after):\n%s", diff)
		}
	})
}

func FuzzAddRemoveSite(f *testing.F) {
	f.Add("delta", "192.168.40.0/24", "delta.example.com:51820", uint16(0), "")
	f.Add("x", "10.255.0.0/25", "", uint16(7), "10.255.0.9")
	f.Add("a\"b", "fd00::/8", "[::1]:1", uint16(65535), "fd00::1")
	f.Fuzz(func(t *testing.T, name, lan, endpoint string, port uint16, addr string) {
		spec := SiteSpec{Name: name, PublicKey: keyDelta, LANs: []string{lan}, Endpoint: endpoint, Port: port}
		if addr != "" {
			spec.Address = []string{addr}
		}
		out, s, err := AddSite("p", []byte(userPlan), spec)
		if err != nil {
			var ps Problems
			if out != nil || s != nil || !errors.As(err, &ps) {
				t.Fatalf("failed AddSite returned data or a non-Problems error: %v", err)
			}
			return
		}
		if !strings.HasPrefix(string(out), userPlan) {
			t.Fatalf("AddSite changed existing text:\n%s", out)
		}
		p, err := Parse("p", out)
		if err != nil {
			t.Fatalf("AddSite returned an invalid plan: %v", err)
		}
		got, ok := p.Site(name)
		if !ok || got.Endpoint != endpoint || got.Port != port || s.Name != name {
			t.Fatalf("added site = %+v", got)
		}
		back, err := RemoveSite("p", out, name)
		if err != nil {
			t.Fatalf("RemoveSite: %v", err)
		}
		if diff := cmp.Diff(userPlan, string(back)); diff != "" {
			t.Fatalf("add+remove is not a round trip (-want +got):\n%s", diff)
		}
	})
}
