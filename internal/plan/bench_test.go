package plan

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
)

// bigPlan generates n sites: tunnel /16, each site one /24 LAN, alternating
// between 10.x and 172.16/12; every tenth site is behind NAT (so the hub
// relays for n/10 sites).
func bigPlan(n int) []byte {
	var b strings.Builder
	b.WriteString("[network]\nname = \"big\"\ntunnel = [\"10.255.0.0/16\"]\n")
	for i := range n {
		var k [32]byte
		binary.BigEndian.PutUint32(k[:], uint32(i+1))
		lan := fmt.Sprintf("10.%d.%d.0/24", i/2/256, i/2%256)
		if i%2 == 1 {
			lan = fmt.Sprintf("172.%d.%d.0/24", 16+i/2/256, i/2%256)
		}
		fmt.Fprintf(&b, "\n[[site]]\nname = \"s%d\"\npublic_key = %q\n", i, base64.StdEncoding.EncodeToString(k[:]))
		if i%10 != 5 {
			fmt.Fprintf(&b, "endpoint = \"s%d.example.com:51820\"\n", i)
		}
		fmt.Fprintf(&b, "lan = [%q]\naddress = [\"10.255.%d.%d\"]\n", lan, (i+1)/256, (i+1)%256)
	}
	return []byte(b.String())
}

func TestBigPlanValid(t *testing.T) {
	p := mustParse(t, bigPlan(1000))
	c, err := p.SiteConfig("s5")
	if err != nil {
		t.Fatal(err)
	}
	// s5 is behind NAT: it peers with the 900 public sites only, and the
	// hub (s0) carries the other 99 NAT sites.
	if len(c.Peers) != 900 || len(c.Routes) != 999 {
		t.Errorf("peers %d routes %d", len(c.Peers), len(c.Routes))
	}
	if hub := c.Peers[0]; hub.Site != "s0" || len(hub.Via) != 99 {
		t.Errorf("hub entry %s via %d", hub.Site, len(hub.Via))
	}
}

func BenchmarkCheckAndDerive1000(b *testing.B) {
	data := bigPlan(1000)
	b.ReportAllocs()
	for b.Loop() {
		p, err := Parse("big.toml", data)
		if err != nil {
			b.Fatal(err)
		}
		for _, s := range p.Sites {
			if _, err := p.SiteConfig(s.Name); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkParse1000(b *testing.B) {
	data := bigPlan(1000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("big.toml", data); err != nil {
			b.Fatal(err)
		}
	}
}
