package plan_test

import (
	"bytes"
	"testing"

	"lanlink/internal/plan"
	"lanlink/internal/wgconf"
)

// Render streams a site's peers instead of building the File that
// FromSiteConfig returns; on derived configs (shared peer slices, the hub's
// relaying entry, NAT keepalives) both must still give the same bytes.
func TestRenderDerivedMatchesFromSiteConfig(t *testing.T) {
	p, err := plan.Parse("big.toml", plan.BigPlan(60))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Sites {
		c, err := p.SiteConfig(s.Name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := wgconf.FromSiteConfig(c, wgconf.Options{})
		if err != nil {
			t.Fatalf("%s: FromSiteConfig: %v", s.Name, err)
		}
		want, err := wgconf.Marshal(f)
		if err != nil {
			t.Fatalf("%s: Marshal: %v", s.Name, err)
		}
		var got bytes.Buffer
		if err := wgconf.Render(&got, c, wgconf.Options{}); err != nil {
			t.Fatalf("%s: Render: %v", s.Name, err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("%s: Render and Marshal(FromSiteConfig) differ:\n--- render\n%s\n--- marshal\n%s", s.Name, got.Bytes(), want)
		}
	}
}

// BenchmarkCheckAndRender1000 is the figure issue 2 asks for: a 1000-site
// plan parsed and validated, every site's desired state derived and every
// site's wg-quick file rendered. It lives in package plan_test because
// wgconf imports plan.
func BenchmarkCheckAndRender1000(b *testing.B) {
	data := plan.BigPlan(1000)
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		p, err := plan.Parse("big.toml", data)
		if err != nil {
			b.Fatal(err)
		}
		for _, s := range p.Sites {
			c, err := p.SiteConfig(s.Name)
			if err != nil {
				b.Fatal(err)
			}
			buf.Reset()
			if err := wgconf.Render(&buf, c, wgconf.Options{}); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkRender1000 is the render share of the figure above: every site
// of the 1000-site plan rendered from configs derived beforehand.
func BenchmarkRender1000(b *testing.B) {
	p, err := plan.Parse("big.toml", plan.BigPlan(1000))
	if err != nil {
		b.Fatal(err)
	}
	cs := make([]*plan.SiteConfig, len(p.Sites))
	for i, s := range p.Sites {
		if cs[i], err = p.SiteConfig(s.Name); err != nil {
			b.Fatal(err)
		}
	}
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		for _, c := range cs {
			buf.Reset()
			if err := wgconf.Render(&buf, c, wgconf.Options{}); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkRenderOneSite renders one site of the 1000-site plan (999 peers):
// the cost per peer, steadier than the whole-plan figures on a busy machine.
func BenchmarkRenderOneSite(b *testing.B) {
	p, err := plan.Parse("big.toml", plan.BigPlan(1000))
	if err != nil {
		b.Fatal(err)
	}
	c, err := p.SiteConfig("s1")
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := wgconf.Render(&buf, c, wgconf.Options{}); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(buf.Len()))
}
