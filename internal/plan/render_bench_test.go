package plan_test

import (
	"bytes"
	"testing"

	"lanlink/internal/plan"
	"lanlink/internal/wgconf"
)

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
