package wanem

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		in      string
		want    uint64
		wantErr bool
	}{
		{in: "500mbit", want: 500e6},
		{in: "1gbit", want: 1e9},
		{in: "1.5Gbit", want: 1.5e9},
		{in: " 100kbit ", want: 100e3},
		{in: "2500000bit", want: 2.5e6},
		{in: "500mbps", wantErr: true}, // tc's mbps is megabytes: refuse the ambiguity
		{in: "500", wantErr: true},
		{in: "mbit", wantErr: true},
		{in: "-1mbit", wantErr: true},
		{in: "2000gbit", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseRate(tc.in)
			if tc.wantErr {
				if !errors.Is(err, ErrConfig) {
					t.Fatalf("ParseRate(%q) = %d, %v; want an ErrConfig", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseRate(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestTBFSizes(t *testing.T) {
	tests := []struct {
		name                 string
		bps                  uint64
		rtt                  time.Duration
		wantBurst, wantLimit uint64
	}{
		// 1 ms of 100 Mbit/s is 12.5 kB: the 128 KiB floor for whole
		// GSO super-packets wins; the BDP (125 kB) is under the 1 MiB floor.
		{name: "100mbit 10ms", bps: 100e6, rtt: 10 * time.Millisecond, wantBurst: 128 << 10, wantLimit: 1 << 20},
		// 500 Mbit/s × 80 ms = 5 MB BDP, plus the burst.
		{name: "500mbit 80ms", bps: 500e6, rtt: 80 * time.Millisecond, wantBurst: 128 << 10, wantLimit: 5e6 + 128<<10},
		// 10 Gbit/s: 1 ms of tokens is 1.25 MB.
		{name: "10gbit 80ms", bps: 10e9, rtt: 80 * time.Millisecond, wantBurst: 1.25e6, wantLimit: 100e6 + 1.25e6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, l := tbfSizes(tc.bps, tc.rtt)
			if b != tc.wantBurst || l != tc.wantLimit {
				t.Errorf("tbfSizes = burst %d, limit %d; want %d, %d", b, l, tc.wantBurst, tc.wantLimit)
			}
		})
	}
}

func TestArgsRoundTripThroughMainFlags(t *testing.T) {
	// Invalid config on purpose (no such namespace) so mainWith parses the
	// flags and fails in Start, reporting what it parsed.
	cfg := Config{TUN: "x", Delay: 40 * time.Millisecond, Loss: 0.001, QueueLimit: 1 << 20, MTU: 1500, Seed: 9}
	args := Args("wanem-no-such-ns", cfg)
	var out, errb strings.Builder
	if code := mainWith(args, &out, &errb); code != 1 {
		t.Fatalf("mainWith(%q) = %d, want 1; stderr: %s", args, code, errb.String())
	}
	if code := mainWith([]string{"--bogus"}, &out, &errb); code != 2 {
		t.Errorf("mainWith with an unknown flag = %d, want 2", code)
	}
	if code := mainWith([]string{"--tun", "x", "--loss", "2"}, &out, &errb); code != 1 {
		t.Errorf("mainWith with loss 2 = %d, want 1", code)
	}
	if out.String() != "" {
		t.Errorf("stdout = %q, want nothing (never ready)", out.String())
	}
}
