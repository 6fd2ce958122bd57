package bench

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestParseIperf3(t *testing.T) {
	fixture, err := os.ReadFile("testdata/iperf3-p2.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		in      []byte
		want    Iperf3Result
		wantErr error
		errLike string
	}{
		{
			name: "two streams, omitted warm-up counted in SentBytes",
			in:   fixture,
			// sum_received.bits_per_second; SentBytes is the sum of both
			// intervals' sum.bytes, the omitted one included.
			want: Iperf3Result{ReceivedBps: 16613880745.632046, SentBytes: 2478571520 + 2076180480, Retransmits: 20, Streams: 1},
		},
		{
			name: "warning line before the document",
			in:   append([]byte("warning: something\n"), fixture...),
			want: Iperf3Result{ReceivedBps: 16613880745.632046, SentBytes: 2478571520 + 2076180480, Retransmits: 20, Streams: 1},
		},
		{
			name:    "iperf3 reports an error",
			in:      []byte(`{"start":{},"intervals":[],"end":{},"error":"unable to connect to server: Connection refused"}`),
			wantErr: ErrIperf3,
			errLike: "Connection refused",
		},
		{name: "not JSON", in: []byte("iperf3: error"), errLike: "parse iperf3 JSON"},
		{name: "no end", in: []byte(`{"intervals":[{"sum":{"bytes":1}}],"end":{}}`), errLike: "no end.sum_received"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseIperf3(tt.in)
			if tt.errLike != "" || tt.wantErr != nil {
				if err == nil {
					t.Fatalf("ParseIperf3 = %+v, want an error", got)
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("error %v does not wrap %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.errLike) {
					t.Errorf("error %q does not say %q", err, tt.errLike)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseIperf3 (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    ProcStat
		wantErr bool
	}{
		{
			name: "plain",
			in:   "20702 (cat) R 20697 20697 10178 0 -1 4194304 125 0 0 0 7 5 0 0 20 0 1 0 166937\n",
			want: ProcStat{PID: 20702, PPID: 20697, Ticks: 12},
		},
		{
			name: "comm with spaces and parentheses",
			in:   "42 (a) b (c)) S 1 42 42 0 -1 0 0 0 0 0 300 200 0 0 20 0 9 0 1",
			want: ProcStat{PID: 42, PPID: 1, Ticks: 500},
		},
		{name: "truncated", in: "42 (x) S 1 2 3", wantErr: true},
		{name: "no comm", in: "42 x S 1", wantErr: true},
		{name: "bad number", in: "42 (x) S 1 42 42 0 -1 0 0 0 0 0 x 200 0 0 20 0 9 0 1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseProcStat([]byte(tt.in))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseProcStat = %+v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseProcStat (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseProcStatSelf(t *testing.T) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Skip("no /proc on this OS")
	}
	got, err := ParseProcStat(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.PID != os.Getpid() || got.PPID != os.Getppid() {
		t.Errorf("ParseProcStat(/proc/self/stat) = %+v, want pid %d ppid %d", got, os.Getpid(), os.Getppid())
	}
}

func TestTreeTicks(t *testing.T) {
	all := []ProcStat{
		{PID: 1, PPID: 0, Ticks: 1000}, // init: never counted
		{PID: 10, PPID: 1, Ticks: 5},   // sshd listener
		{PID: 11, PPID: 10, Ticks: 7},  // its session
		{PID: 12, PPID: 11, Ticks: 11}, // its session's child
		{PID: 20, PPID: 1, Ticks: 100}, // someone else
		{PID: 30, PPID: 1, Ticks: 3},   // ssh client
	}
	tests := []struct {
		roots []int
		want  uint64
	}{
		{roots: []int{10}, want: 23},
		{roots: []int{10, 30}, want: 26},
		{roots: []int{11, 10}, want: 23}, // overlap counted once
		{roots: []int{99}, want: 0},      // exited
		{roots: nil, want: 0},
	}
	for _, tt := range tests {
		if got := TreeTicks(all, tt.roots); got != tt.want {
			t.Errorf("TreeTicks(%v) = %d, want %d", tt.roots, got, tt.want)
		}
	}
}

func TestMedian(t *testing.T) {
	nan := NaN()
	tests := []struct {
		in   []Num
		want Num
	}{
		{in: []Num{3, 1, 2}, want: 2},
		{in: []Num{4, 1, 3, 2}, want: 2.5},
		{in: []Num{nan, 5, nan}, want: 5},
		{in: []Num{nan}, want: nan},
		{in: nil, want: nan},
	}
	for _, tt := range tests {
		got := Median(tt.in)
		if got != tt.want && !(got.IsNaN() && tt.want.IsNaN()) {
			t.Errorf("Median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// sampleReport is a small report with two scenarios and four planes.
func sampleReport() *Report {
	s := func(t1, t4, rtt, cpu Num) Sample {
		return Sample{Round: 1, TCP1Mbps: t1, TCP4Mbps: t4, RTTms: rtt, CPUPerGB: cpu}
	}
	rows := []Row{
		{Scenario: "lab", Plane: PlaneRaw, Samples: []Sample{s(5000, 7000, 0.2, NaN()), s(6000, 7100, 0.1, NaN()), s(5500, 6900, 0.3, NaN())}},
		{Scenario: "lab", Plane: PlaneLanlink, Samples: []Sample{s(700, 800, 1.0, 12), s(650, 780, 1.2, 13), {Round: 3, Err: "boom", TCP1Mbps: NaN(), TCP4Mbps: NaN(), RTTms: NaN(), CPUPerGB: NaN()}}},
		{Scenario: "lab", Plane: PlaneWGGoUp, Samples: []Sample{s(600, 800, 1.1, 13)}},
		{Scenario: "lab", Plane: PlaneOpenVPN, Samples: []Sample{s(300, 300, 0.6, 26)}},
		{Scenario: "wan80-500m", Plane: PlaneRaw, Samples: []Sample{s(480, 485, 81, NaN())}},
		{Scenario: "wan80-500m", Plane: PlaneLanlink, Samples: []Sample{s(450, 460, 82, 20)}},
	}
	r := &Report{
		Date:      time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC),
		Scenarios: DefaultScenarios[:2],
		Rows:      rows,
	}
	Summarize(r.Rows)
	return r
}

func TestSummarize(t *testing.T) {
	r := sampleReport()
	type fig struct {
		TCP1, TCP4, RTT, Added, CPU Num
		OK                          int
	}
	got := map[string]fig{}
	for _, row := range r.Rows {
		got[row.Scenario+"/"+row.Plane] = fig{row.TCP1Mbps, row.TCP4Mbps, row.RTTms, row.AddedRTTms, row.CPUPerGB, row.OK}
	}
	want := map[string]fig{
		"lab/raw":            {5500, 7000, 0.2, 0, NaN(), 3},
		"lab/lanlink":        {675, 790, 1.1, 0.9, 12.5, 2}, // the failed round is left out
		"lab/wireguard-go":   {600, 800, 1.1, 0.9, 13, 1},
		"lab/openvpn":        {300, 300, 0.6, 0.4, 26, 1},
		"wan80-500m/raw":     {480, 485, 81, 0, NaN(), 1},
		"wan80-500m/lanlink": {450, 460, 82, 1, 20, 1},
	}
	opt := cmp.Options{cmpopts.EquateNaNs(), cmpopts.EquateApprox(0, 1e-9), cmp.Transformer("f64", func(n Num) float64 { return float64(n) })}
	if diff := cmp.Diff(want, got, opt); diff != "" {
		t.Errorf("Summarize (-want +got):\n%s", diff)
	}
}

func TestNumJSON(t *testing.T) {
	in := Row{Scenario: "lab", Plane: PlaneRaw, TCP1Mbps: 12.5, TCP4Mbps: NaN(), RTTms: 0.25, AddedRTTms: 0, CPUPerGB: Num(math.Inf(1))}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"tcp4_mbps":null`) || !strings.Contains(string(b), `"tcp1_mbps":12.5`) {
		t.Errorf("JSON %s: want tcp4_mbps null and tcp1_mbps 12.5", b)
	}
	var out Row
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.TCP1Mbps != 12.5 || !out.TCP4Mbps.IsNaN() || !out.CPUPerGB.IsNaN() || out.RTTms != 0.25 {
		t.Errorf("round trip = %+v", out)
	}
}

func TestWriteTableAndTargets(t *testing.T) {
	r := sampleReport()
	var b bytes.Buffer
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := []string{
		"| WAN | data plane | TCP 1 stream Mbit/s | TCP 4 streams Mbit/s | RTT ms | added RTT ms | CPU s/GB | 1 stream vs wireguard-go | rounds ok |",
		"|---|---|--:|--:|--:|--:|--:|--:|--:|",
		"| lab, no WAN emulation | raw link (no tunnel) | 5500 | 7000 | 0.200 | 0.000 | – | 9.17× | 3/3 |",
		"| lab, no WAN emulation | lanlink (userspace) | 675 | 790 | 1.100 | 0.900 | 12.50 | 1.12× | 2/3 |",
		"| lab, no WAN emulation | wireguard-go (same module) | 600 | 800 | 1.100 | 0.900 | 13.00 | 1.00× | 1/1 |",
		"| lab, no WAN emulation | OpenVPN | 300 | 300 | 0.600 | 0.400 | 26.00 | 0.50× | 1/1 |",
		"| 80ms RTT @ 500mbit | raw link (no tunnel) | 480 | 485 | 81.000 | 0.000 | – | – | 1/1 |",
		"| 80ms RTT @ 500mbit | lanlink (userspace) | 450 | 460 | 82.000 | 1.000 | 20.00 | – | 1/1 |",
	}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("WriteTable (-want +got):\n%s", diff)
	}

	type tgt struct {
		What string
		Met  bool
	}
	var got []tgt
	for _, x := range r.Targets() {
		got = append(got, tgt{x.What, x.Met})
	}
	wantT := []tgt{
		{"lab: lanlink / wireguard-go, 1 stream", true},
		{"lab: lanlink / wireguard-go, 4 streams", false},
		{"lab: lanlink / wireguard-go, 1 stream (stretch)", false},
		{"80 ms @ 500mbit: lanlink / raw link, 1 stream", true}, // 450/480 = 0.9375
		{"lab, no WAN emulation: lanlink / OpenVPN, 1 stream", true},
		{"lab, no WAN emulation: lanlink / OpenVPN, 4 streams", true},
	}
	if diff := cmp.Diff(wantT, got); diff != "" {
		t.Errorf("Targets (-want +got):\n%s", diff)
	}
}

func TestWriteSVG(t *testing.T) {
	r := sampleReport()
	var b bytes.Buffer
	if err := r.WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	// Well-formed XML, and one bar per (panel, row with a figure).
	dec := xml.NewDecoder(&b)
	rects := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			for _, a := range se.Attr {
				if a.Name.Local == "fill" && a.Value == planeColor[PlaneLanlink] {
					rects++
				}
			}
		}
	}
	// lanlink: 2 scenarios × 2 panels, plus its legend swatch.
	if rects != 5 {
		t.Errorf("lanlink-coloured rects = %d, want 5", rects)
	}
}

func TestNiceCeil(t *testing.T) {
	for in, want := range map[float64]float64{0: 1, 7: 10, 10: 10, 11: 20, 480: 500, 6000: 10000, 0.3: 0.5} {
		if got := niceCeil(in); math.Abs(got-want) > 1e-9 {
			t.Errorf("niceCeil(%v) = %v, want %v", in, got, want)
		}
	}
}
