package wanem

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// tbfSizes returns SetRate's burst and limit in bytes for bps bit/s.
func tbfSizes(bps uint64, rtt time.Duration) (burst, limit uint64) {
	bytesPerSec := bps / 8
	burst = max(bytesPerSec/1000, 128<<10)
	bdp := uint64(float64(bytesPerSec) * rtt.Seconds())
	limit = max(bdp+burst, 1<<20)
	return burst, limit
}

// ParseRate parses a tc-style rate in bit units ("500mbit", "1gbit",
// "100kbit", "2500000bit", also "1.5gbit") into bit/s. Prefixes are
// decimal, as in tc.
func ParseRate(s string) (uint64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := 0.0
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSuffix(t, u.suffix), u.mult
			break
		}
	}
	if mult == 0 {
		return 0, fmt.Errorf("%w: rate %q needs a bit unit: bit, kbit, mbit or gbit (e.g. \"500mbit\")", ErrConfig, s)
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || !(v > 0) || v*mult > 1e12 {
		return 0, fmt.Errorf("%w: rate %q is not a positive number of at most 1000gbit", ErrConfig, s)
	}
	return uint64(v * mult), nil
}
