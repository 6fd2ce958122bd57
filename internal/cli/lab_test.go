package cli

import (
	"regexp"
	"testing"
)

func TestLabNodeSpec(t *testing.T) {
	st := &labState{Name: "x", Internet: &labNode{Namespace: "llabcd-inet"}}
	for i := 1; i <= 2; i++ {
		o := labOffice{Index: i, Site: "office" + string(rune('0'+i)),
			Router: labNode{Namespace: "r" + string(rune('0'+i))}, Gateway: labNode{Namespace: "g" + string(rune('0'+i))}}
		o.Hosts = []labNode{{Namespace: "h" + string(rune('0'+i)) + "1"}, {Namespace: "h" + string(rune('0'+i)) + "2"}}
		st.Offices = append(st.Offices, o)
	}
	for _, tc := range []struct {
		spec, wantNS string
		wantErr      bool
	}{
		{"office1", "h11", false}, {"o2", "h21", false}, {"2", "h21", false},
		{"office1/host", "h11", false}, {"o1/host2", "h12", false}, {"1/h2", "h12", false},
		{"o2/gw", "g2", false}, {"2/gateway", "g2", false}, {"o1/router", "r1", false}, {"o1/r", "r1", false},
		{"internet", "llabcd-inet", false},
		{"office3", "", true}, {"o1/host3", "", true}, {"o1/host0", "", true}, {"o1/printer", "", true}, {"", "", true},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			n, _, err := st.node(tc.spec)
			if (err != nil) != tc.wantErr || n.Namespace != tc.wantNS {
				t.Errorf("node(%q) = %q, %v; want %q, error %v", tc.spec, n.Namespace, err, tc.wantNS, tc.wantErr)
			}
		})
	}
}

func TestParseLoss(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		bad  bool
	}{
		{"", 0, false}, {"0.1%", 0.001, false}, {"5%", 0.05, false}, {"0.002", 0.002, false}, {"100%", 1, false},
		{"101%", 0, true}, {"-1%", 0, true}, {"x", 0, true}, {"2", 0, true},
	} {
		got, err := parseLoss(tc.in)
		if (err != nil) != tc.bad || (!tc.bad && got != tc.want) {
			t.Errorf("parseLoss(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

func TestLabIDIsStableAndValid(t *testing.T) {
	re := regexp.MustCompile(`^ll[0-9a-z]{4}$`)
	for _, name := range []string{"default", "a", "bench-80ms"} {
		if id := labID(name); !re.MatchString(id) || id != labID(name) {
			t.Errorf("labID(%q) = %q: not stable or not a lab ID", name, id)
		}
	}
	if labID("default") == labID("other") {
		t.Errorf("two names, one ID")
	}
	for _, bad := range []string{"", "UP", "a/b", "-x", "toolongtoolongtoolongtoolongtoolong"} {
		if checkLabName(bad) == nil {
			t.Errorf("checkLabName(%q) accepted", bad)
		}
	}
}
