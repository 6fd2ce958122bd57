package cli

import "testing"

func TestParseRate(t *testing.T) {
	for in, want := range map[string]float64{
		"1gbit": 1e9, "100mbit": 1e8, "1.5g": 1.5e9, "800M": 8e8, "10gbit/s": 1e10, "500kbit": 5e5, "2000000": 2e6,
	} {
		got, err := parseRate(in)
		if err != nil || got != want {
			t.Errorf("parseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "fast", "-1g", "0"} {
		if _, err := parseRate(in); err == nil {
			t.Errorf("parseRate(%q) accepted", in)
		}
	}
}
