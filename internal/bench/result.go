package bench

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"time"
)

// Num is a figure that may be missing (NaN): JSON has no NaN, so a missing
// figure is written as null and read back as NaN.
type Num float64

// NaN is the missing figure.
func NaN() Num { return Num(math.NaN()) }

// IsNaN reports whether the figure is missing.
func (n Num) IsNaN() bool { return math.IsNaN(float64(n)) }

// MarshalJSON writes null for a missing figure.
func (n Num) MarshalJSON() ([]byte, error) {
	if n.IsNaN() || math.IsInf(float64(n), 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, float64(n), 'g', 6, 64), nil
}

// UnmarshalJSON reads null as NaN.
func (n *Num) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = NaN()
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*n = Num(f)
	return nil
}

// Data planes, in the order tables and charts show them.
const (
	PlaneRaw        = "raw"
	PlaneLanlink    = "lanlink"
	PlaneWGGoUp     = "wireguard-go"
	PlaneWGGoDebian = "wireguard-go-debian"
	PlaneOpenVPN    = "openvpn"
	PlaneSSH        = "ssh"
	PlaneNebula     = "nebula"
)

// AllPlanes lists every data plane the bench knows, in display order.
var AllPlanes = []string{PlaneRaw, PlaneLanlink, PlaneWGGoUp, PlaneWGGoDebian, PlaneOpenVPN, PlaneSSH, PlaneNebula}

// PlaneLabel is how a table names a plane.
func PlaneLabel(p string) string {
	switch p {
	case PlaneRaw:
		return "raw link (no tunnel)"
	case PlaneLanlink:
		return "lanlink (userspace)"
	case PlaneWGGoUp:
		return "wireguard-go (same module)"
	case PlaneWGGoDebian:
		return "wireguard-go (Debian)"
	case PlaneOpenVPN:
		return "OpenVPN"
	case PlaneSSH:
		return "ssh -w"
	case PlaneNebula:
		return "Nebula"
	}
	return p
}

// Scenario is one WAN condition between the offices.
type Scenario struct {
	Name string        `json:"name"`
	RTT  time.Duration `json:"rtt_ns"` // added round trip; 0: none
	Rate string        `json:"rate"`   // tc rate ("500mbit"); "": unlimited
}

// Label is the scenario's name for humans.
func (s Scenario) Label() string {
	if s.RTT == 0 && s.Rate == "" {
		return "lab, no WAN emulation"
	}
	l := s.RTT.String() + " RTT"
	if s.Rate != "" {
		l += " @ " + s.Rate
	}
	return l
}

// DefaultScenarios are issue 5's rows: (a) the plain lab, (b) an 80 ms RTT
// link at 500 Mbit/s and at 1 Gbit/s.
var DefaultScenarios = []Scenario{
	{Name: "lab"},
	{Name: "wan80-500m", RTT: 80 * time.Millisecond, Rate: "500mbit"},
	{Name: "wan80-1g", RTT: 80 * time.Millisecond, Rate: "1gbit"},
}

// Sample is one round's measurement of one plane in one scenario.
type Sample struct {
	Round    int `json:"round"`
	TCP1Mbps Num `json:"tcp1_mbps"` // one stream, receiver goodput
	TCP4Mbps Num `json:"tcp4_mbps"` // four streams, sum
	RTTms    Num `json:"rtt_ms"`    // median ICMP echo RTT, idle link
	// CPUSec is the user+system CPU time of the tunnel processes on both
	// gateways over both TCP tests; Bytes is what those tests moved.
	CPUSec   Num    `json:"cpu_seconds"`
	Bytes    int64  `json:"bytes"`
	CPUPerGB Num    `json:"cpu_s_per_gb"` // NaN for kernel paths
	Retrans1 int    `json:"tcp1_retransmits"`
	SetupSec Num    `json:"setup_seconds"` // start to first echo answered
	Err      string `json:"error,omitempty"`
}

// Row is one plane in one scenario: its rounds and their medians.
type Row struct {
	Scenario   string   `json:"scenario"`
	Plane      string   `json:"plane"`
	Samples    []Sample `json:"samples"`
	TCP1Mbps   Num      `json:"tcp1_mbps"`
	TCP4Mbps   Num      `json:"tcp4_mbps"`
	RTTms      Num      `json:"rtt_ms"`
	AddedRTTms Num      `json:"added_rtt_ms"` // RTTms minus the raw plane's, same scenario
	CPUPerGB   Num      `json:"cpu_s_per_gb"`
	OK         int      `json:"ok_rounds"`
}

// Report is a whole bench run.
type Report struct {
	Date      time.Time         `json:"date"`
	Host      HostInfo          `json:"host"`
	Options   ReportOptions     `json:"options"`
	Versions  map[string]string `json:"versions"`
	Scenarios []Scenario        `json:"scenarios"`
	Rows      []Row             `json:"rows"`
	Emulator  string            `json:"emulator"`
	LabID     string            `json:"lab_id"` // namespaces were "<LabID>-…"
}

// HostInfo describes the machine, so figures are read in context.
type HostInfo struct {
	Kernel     string `json:"kernel"`
	CPUs       int    `json:"cpus"`
	CPUModel   string `json:"cpu_model"`
	LoadBefore string `json:"load_before"`
	LoadAfter  string `json:"load_after"`
}

// ReportOptions are the settings that shaped the figures.
type ReportOptions struct {
	Duration time.Duration `json:"duration_ns"`
	Omit     time.Duration `json:"omit_ns"`
	Rounds   int           `json:"rounds"`
	Planes   []string      `json:"planes"`
}

// Summarize fills the medians of every row from its successful samples and
// the added RTT from the raw plane of the same scenario.
func Summarize(rows []Row) {
	rawRTT := map[string]Num{}
	for i := range rows {
		r := &rows[i]
		var t1, t4, rtt, cpu []Num
		for _, s := range r.Samples {
			if s.Err != "" {
				continue
			}
			t1 = append(t1, s.TCP1Mbps)
			t4 = append(t4, s.TCP4Mbps)
			rtt = append(rtt, s.RTTms)
			cpu = append(cpu, s.CPUPerGB)
		}
		r.OK = len(t1)
		r.TCP1Mbps, r.TCP4Mbps, r.RTTms, r.CPUPerGB = Median(t1), Median(t4), Median(rtt), Median(cpu)
		if r.Plane == PlaneRaw {
			rawRTT[r.Scenario] = r.RTTms
		}
	}
	for i := range rows {
		r := &rows[i]
		raw, ok := rawRTT[r.Scenario]
		if !ok || raw.IsNaN() || r.RTTms.IsNaN() {
			r.AddedRTTms = NaN()
			continue
		}
		r.AddedRTTms = r.RTTms - raw
	}
}

// Median of xs ignoring missing figures; missing when nothing is left.
func Median(xs []Num) Num {
	v := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !x.IsNaN() {
			v = append(v, float64(x))
		}
	}
	if len(v) == 0 {
		return NaN()
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return Num(v[len(v)/2])
	}
	return Num((v[len(v)/2-1] + v[len(v)/2]) / 2)
}

// Find returns the row of plane in scenario, or nil.
func (r *Report) Find(scenario, plane string) *Row {
	for i := range r.Rows {
		if r.Rows[i].Scenario == scenario && r.Rows[i].Plane == plane {
			return &r.Rows[i]
		}
	}
	return nil
}

// Ratio is a/b, missing when either is missing or b is 0.
func Ratio(a, b Num) Num {
	if a.IsNaN() || b.IsNaN() || b == 0 {
		return NaN()
	}
	return a / b
}
