package e2e

import (
	"context"
	"sort"
	"testing"
	"time"

	"lanlink/internal/lab"
)

// BenchmarkUpToFirstPacket measures the time from starting `lanlink up` on
// both gateways of a fresh two-office lab to the first ping between their
// LAN hosts. The lab is built outside the timer.
//
//	sudo go test ./e2e -run '^$' -bench UpToFirstPacket -benchtime 5x
func BenchmarkUpToFirstPacket(b *testing.B) {
	var samples []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		n := newNetwork(b, netOpts{offices: 2})
		a, c := n.sites[0], n.sites[1]
		b.StartTimer()
		start := time.Now()
		n.up(a)
		n.up(c)
		waitPing(b, a.host(), c.host().Addr, 10*time.Second)
		samples = append(samples, time.Since(start))
		b.StopTimer()
		n.lab.Close()
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	b.ReportMetric(float64(samples[len(samples)/2].Microseconds())/1000, "ms-median")
}

// BenchmarkTCPSingleStream measures one TCP stream between LAN hosts of
// two offices through lanlink tunnels on the lab (no WAN emulation).
//
//	sudo go test ./e2e -run '^$' -bench TCPSingleStream -benchtime 3x
func BenchmarkTCPSingleStream(b *testing.B) {
	n := newNetwork(b, netOpts{offices: 2})
	a, c := n.sites[0], n.sites[1]
	n.up(a)
	n.up(c)
	waitPing(b, a.host(), c.host().Addr, 10*time.Second)
	const size = 256 << 20
	b.SetBytes(size)
	b.ResetTimer()
	var mbps []float64
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		res, err := lab.Transfer(ctx, a.host(), c.host(), size)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		mbps = append(mbps, res.BitsPerSecond()/1e6)
	}
	sort.Float64s(mbps)
	b.ReportMetric(mbps[len(mbps)/2], "Mbit/s-median")
}
