package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Iperf3Result is what the bench takes from an iperf3 client's JSON (-J).
type Iperf3Result struct {
	// ReceivedBps is the receiver's goodput over the measured (not
	// omitted) seconds: what the table reports.
	ReceivedBps float64
	// SentBytes is every byte the sender wrote, omitted warm-up seconds
	// included: the CPU accounting window covers those too.
	SentBytes   int64
	Retransmits int
	Streams     int
}

// ErrIperf3 is wrapped by the error iperf3 itself reported in its JSON.
var ErrIperf3 = errors.New("iperf3 failed")

// ParseIperf3 reads an iperf3 client's -J output.
func ParseIperf3(b []byte) (Iperf3Result, error) {
	var doc struct {
		Error     string `json:"error"`
		Intervals []struct {
			Streams []json.RawMessage `json:"streams"`
			Sum     struct {
				Bytes int64 `json:"bytes"`
			} `json:"sum"`
		} `json:"intervals"`
		End struct {
			SumSent struct {
				Retransmits int `json:"retransmits"`
			} `json:"sum_sent"`
			SumReceived *struct {
				Bytes         int64   `json:"bytes"`
				Seconds       float64 `json:"seconds"`
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	// iperf3 may print a warning line before the JSON document.
	if i := bytes.IndexByte(b, '{'); i > 0 {
		b = b[i:]
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return Iperf3Result{}, fmt.Errorf("parse iperf3 JSON: %w", err)
	}
	if doc.Error != "" {
		return Iperf3Result{}, fmt.Errorf("%w: %s", ErrIperf3, doc.Error)
	}
	if doc.End.SumReceived == nil || len(doc.Intervals) == 0 {
		return Iperf3Result{}, fmt.Errorf("parse iperf3 JSON: no end.sum_received or no intervals")
	}
	r := Iperf3Result{
		ReceivedBps: doc.End.SumReceived.BitsPerSecond,
		Retransmits: doc.End.SumSent.Retransmits,
		Streams:     len(doc.Intervals[0].Streams),
	}
	for _, iv := range doc.Intervals {
		r.SentBytes += iv.Sum.Bytes
	}
	return r, nil
}

// ClockTicks is USER_HZ, the unit of /proc/PID/stat times. It is 100 on
// every Linux architecture Go supports (the kernel's ABI fixes it,
// independent of CONFIG_HZ).
const ClockTicks = 100

// ProcStat is what the bench reads from /proc/PID/stat.
type ProcStat struct {
	PID   int
	PPID  int
	Ticks uint64 // utime + stime
}

// ParseProcStat parses one /proc/PID/stat line. The command name (field 2)
// is in parentheses and may itself contain spaces and parentheses, so the
// fields are counted from the last ')'.
func ParseProcStat(b []byte) (ProcStat, error) {
	s := strings.TrimSpace(string(b))
	open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 1 || close < open {
		return ProcStat{}, fmt.Errorf("parse /proc stat %q: no (comm)", s)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(s[:open]))
	if err != nil {
		return ProcStat{}, fmt.Errorf("parse /proc stat pid: %w", err)
	}
	// After ")": state(3) ppid(4) … utime(14) stime(15).
	f := strings.Fields(s[close+1:])
	if len(f) < 13 {
		return ProcStat{}, fmt.Errorf("parse /proc stat of %d: %d fields after comm, want ≥ 13", pid, len(f))
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return ProcStat{}, fmt.Errorf("parse /proc stat ppid of %d: %w", pid, err)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return ProcStat{}, fmt.Errorf("parse /proc stat times of %d: %w", pid, err)
	}
	return ProcStat{PID: pid, PPID: ppid, Ticks: ut + st}, nil
}

// TreeTicks sums the CPU ticks of the processes roots and all their
// descendants in a snapshot of /proc. Descendants matter: sshd runs a
// session process per connection, and it does the tunnel's work.
func TreeTicks(all []ProcStat, roots []int) uint64 {
	children := map[int][]int{}
	byPID := map[int]ProcStat{}
	for _, p := range all {
		children[p.PPID] = append(children[p.PPID], p.PID)
		byPID[p.PID] = p
	}
	seen := map[int]bool{}
	var sum uint64
	stack := append([]int(nil), roots...)
	for len(stack) > 0 {
		pid := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		if p, ok := byPID[pid]; ok {
			sum += p.Ticks
		}
		stack = append(stack, children[pid]...)
	}
	return sum
}
