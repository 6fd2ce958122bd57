package bench

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"slices"
	"strings"
)

func fmtNum(n Num, prec int) string {
	if n.IsNaN() {
		return "–"
	}
	return fmt.Sprintf("%.*f", prec, float64(n))
}

func fmtRatio(n Num) string {
	if n.IsNaN() {
		return "–"
	}
	return fmt.Sprintf("%.2f×", float64(n))
}

// planeOrder sorts rows by scenario (as listed) and plane (AllPlanes).
func (r *Report) sortedRows() []Row {
	rows := slices.Clone(r.Rows)
	sIdx := map[string]int{}
	for i, s := range r.Scenarios {
		sIdx[s.Name] = i
	}
	slices.SortStableFunc(rows, func(a, b Row) int {
		if d := sIdx[a.Scenario] - sIdx[b.Scenario]; d != 0 {
			return d
		}
		return slices.Index(AllPlanes, a.Plane) - slices.Index(AllPlanes, b.Plane)
	})
	return rows
}

func (r *Report) scenario(name string) Scenario {
	for _, s := range r.Scenarios {
		if s.Name == name {
			return s
		}
	}
	return Scenario{Name: name}
}

// WriteTable writes the results as a Markdown table: one line per plane and
// scenario, medians of the rounds, and each plane's single-stream goodput
// relative to the upstream wireguard-go program of the same scenario.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	b.WriteString("| WAN | data plane | TCP 1 stream Mbit/s | TCP 4 streams Mbit/s | RTT ms | added RTT ms | CPU s/GB | 1 stream vs wireguard-go | rounds ok |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, row := range r.sortedRows() {
		var vsWG Num = NaN()
		if wg := r.Find(row.Scenario, PlaneWGGoUp); wg != nil {
			vsWG = Ratio(row.TCP1Mbps, wg.TCP1Mbps)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %d/%d |\n",
			r.scenario(row.Scenario).Label(), PlaneLabel(row.Plane),
			fmtNum(row.TCP1Mbps, 0), fmtNum(row.TCP4Mbps, 0),
			fmtNum(row.RTTms, 3), fmtNum(row.AddedRTTms, 3), fmtNum(row.CPUPerGB, 2),
			fmtRatio(vsWG), row.OK, len(row.Samples))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Target is one of issue 5's targets, evaluated on a report.
type Target struct {
	What  string
	Value Num // the measured ratio
	Want  float64
	Met   bool
}

// Targets evaluates issue 5's targets on the report: lanlink against the
// upstream wireguard-go program on the plain lab (≥ 1.0, aiming at 1.5),
// lanlink against the raw link on the 80 ms / 500 Mbit/s link (≥ 0.90), and
// lanlink against OpenVPN, SSH and Nebula on every scenario (> 1.0), all on
// single-stream goodput except where said.
func (r *Report) Targets() []Target {
	var ts []Target
	add := func(what string, v Num, want float64, strict bool) {
		met := !v.IsNaN() && (float64(v) >= want)
		if strict {
			met = !v.IsNaN() && float64(v) > want
		}
		ts = append(ts, Target{What: what, Value: v, Want: want, Met: met})
	}
	ll := func(sc string) *Row { return r.Find(sc, PlaneLanlink) }
	if a, b := ll("lab"), r.Find("lab", PlaneWGGoUp); a != nil && b != nil {
		add("lab: lanlink / wireguard-go, 1 stream", Ratio(a.TCP1Mbps, b.TCP1Mbps), 1.0, false)
		add("lab: lanlink / wireguard-go, 4 streams", Ratio(a.TCP4Mbps, b.TCP4Mbps), 1.0, false)
		add("lab: lanlink / wireguard-go, 1 stream (stretch)", Ratio(a.TCP1Mbps, b.TCP1Mbps), 1.5, false)
	}
	if a, b := ll("wan80-500m"), r.Find("wan80-500m", PlaneRaw); a != nil && b != nil {
		add("80 ms @ 500mbit: lanlink / raw link, 1 stream", Ratio(a.TCP1Mbps, b.TCP1Mbps), 0.9, false)
	}
	for _, s := range r.Scenarios {
		a := ll(s.Name)
		if a == nil {
			continue
		}
		for _, p := range []string{PlaneOpenVPN, PlaneSSH, PlaneNebula} {
			b := r.Find(s.Name, p)
			if b == nil {
				continue
			}
			add(fmt.Sprintf("%s: lanlink / %s, 1 stream", s.Label(), PlaneLabel(p)), Ratio(a.TCP1Mbps, b.TCP1Mbps), 1.0, true)
			add(fmt.Sprintf("%s: lanlink / %s, 4 streams", s.Label(), PlaneLabel(p)), Ratio(a.TCP4Mbps, b.TCP4Mbps), 1.0, true)
		}
	}
	return ts
}

// WriteTargets writes the targets as a Markdown list.
func (r *Report) WriteTargets(w io.Writer) error {
	var b strings.Builder
	for _, t := range r.Targets() {
		mark := "MET"
		if !t.Met {
			mark = "NOT MET"
		}
		fmt.Fprintf(&b, "- %s: %s (target %.2f×) — %s\n", t.What, fmtRatio(t.Value), t.Want, mark)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Colors of the planes in the chart, fixed so charts of different runs
// read the same.
var planeColor = map[string]string{
	PlaneRaw:        "#9e9e9e",
	PlaneLanlink:    "#1b7f3b",
	PlaneWGGoUp:     "#3f6fb5",
	PlaneWGGoDebian: "#8fb0de",
	PlaneOpenVPN:    "#d9822b",
	PlaneSSH:        "#b23b3b",
	PlaneNebula:     "#7b4fa8",
}

// WriteSVG draws two grouped bar charts (one TCP stream, four streams):
// one group per scenario, one bar per plane, goodput in Mbit/s. It is a
// few lines of hand-written SVG so that the bench needs no plotting
// library.
func (r *Report) WriteSVG(w io.Writer) error {
	var planes []string
	for _, p := range AllPlanes {
		for _, row := range r.Rows {
			if row.Plane == p {
				planes = append(planes, p)
				break
			}
		}
	}
	const (
		width    = 900
		panelH   = 300
		top      = 40
		left     = 70
		right    = 20
		legendH  = 40
		barGap   = 2
		groupGap = 30
	)
	panels := []struct {
		title string
		get   func(Row) Num
	}{
		{"TCP, 1 stream (Mbit/s, median)", func(r Row) Num { return r.TCP1Mbps }},
		{"TCP, 4 streams (Mbit/s, median)", func(r Row) Num { return r.TCP4Mbps }},
	}
	height := top + len(panels)*(panelH+60) + legendH
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="16" font-weight="bold">lanlink benchmarks, %s (LAN host to LAN host)</text>`+"\n", left, html.EscapeString(r.Date.Format("2006-01-02")))
	nsc := len(r.Scenarios)
	for pi, panel := range panels {
		y0 := top + pi*(panelH+60) + 20
		maxV := 0.0
		for _, row := range r.Rows {
			if v := panel.get(row); !v.IsNaN() {
				maxV = math.Max(maxV, float64(v))
			}
		}
		maxV = niceCeil(maxV)
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="14">%s</text>`+"\n", left, y0-6, html.EscapeString(panel.title))
		plotW := width - left - right
		// Axis and grid: five steps.
		for i := 0; i <= 5; i++ {
			v := maxV * float64(i) / 5
			y := float64(y0+panelH) - float64(panelH)*float64(i)/5
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", left, y, width-right, y)
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%.0f</text>`+"\n", left-6, y+4, v)
		}
		if nsc == 0 || len(planes) == 0 {
			continue
		}
		groupW := (float64(plotW) - float64(groupGap*(nsc+1))) / float64(nsc)
		barW := (groupW - float64(barGap*(len(planes)-1))) / float64(len(planes))
		for si, sc := range r.Scenarios {
			gx := float64(left+groupGap) + float64(si)*(groupW+groupGap)
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", gx+groupW/2, y0+panelH+18, html.EscapeString(sc.Label()))
			for bi, p := range planes {
				row := r.Find(sc.Name, p)
				if row == nil {
					continue
				}
				v := panel.get(*row)
				x := gx + float64(bi)*(barW+barGap)
				if v.IsNaN() || maxV == 0 {
					fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#999">×</text>`+"\n", x+barW/2, y0+panelH-4)
					continue
				}
				h := float64(panelH) * float64(v) / maxV
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %s %.0f Mbit/s</title></rect>`+"\n",
					x, float64(y0+panelH)-h, barW, h, planeColor[p], html.EscapeString(sc.Label()), html.EscapeString(PlaneLabel(p)), float64(v))
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="9">%.0f</text>`+"\n", x+barW/2, float64(y0+panelH)-h-3, float64(v))
			}
		}
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`+"\n", left, y0+panelH, width-right, y0+panelH)
	}
	// Legend, wrapped onto a second line when it would run off the right
	// edge (7 px per character is generous for 12 px sans-serif).
	ly := height - legendH - 8
	x := left
	for _, p := range planes {
		w := 16 + 7*len(PlaneLabel(p)) + 14
		if x+w > width-right && x > left {
			x, ly = left, ly+18
		}
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/>`, x, ly, planeColor[p])
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", x+16, ly+10, html.EscapeString(PlaneLabel(p)))
		x += w
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten, for axis labels.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}
