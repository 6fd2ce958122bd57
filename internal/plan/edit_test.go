package plan

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNewAddSetRemove(t *testing.T) {
	data, err := New("acme", []netip.Prefix{netip.MustParsePrefix("10.255.0.0/24")}, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", data)
	p := mustParse(t, data)
	if p.Network.Name != "acme" || p.Network.Port != DefaultPort || len(p.Sites) != 0 {
		t.Fatalf("got %+v", p.Network)
	}
	data, a, err := AddSite("p", data, SiteSpec{Name: "alpha", PublicKey: keyAlpha, LANs: []string{"192.168.10.0/24"}, Endpoint: "203.0.113.1:51820"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", data)
	if a.Addresses[0] != netip.MustParseAddr("10.255.0.1") {
		t.Errorf("alpha got %v", a.Addresses)
	}
	data, _, err = AddSite("p", data, SiteSpec{Name: "beta", PublicKey: keyBeta, LANs: []string{"192.168.20.0/24"}})
	if err != nil {
		t.Fatal(err)
	}
	data2, err := SetSite("p", data, "beta", SiteChange{Endpoint: ptr("198.51.100.2:51820"), Port: ptr(uint16(1000))})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", data2)
	data3, err := RemoveSite("p", data2, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", data3)
	if diff := cmp.Diff(string(data), string(data)); diff != "" {
		t.Error(diff)
	}
	_ = bytes.Equal
	_ = strings.Contains
}
