package wanem

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// pkt makes an n-byte packet whose first 4 bytes carry id, so order and
// integrity can be checked after it went through the arena.
func pkt(id uint32, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(int(id) + i)
	}
	if n >= 4 {
		binary.BigEndian.PutUint32(b, id)
	}
	return b
}

func checkPkt(t *testing.T, got []byte, id uint32, n int) {
	t.Helper()
	want := pkt(id, n)
	if bytes.Equal(want, got) {
		return
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("packet %d corrupted (-want +got):\n%s", id, diff)
	}
}

func TestQueueDueTimesWithFakeClock(t *testing.T) {
	const delay = 20
	q := newDelayQueue(1<<20, 1500)
	// Arrivals at fake times 0, 5, 5, 12; each due delay later.
	arrivals := []int64{0, 5, 5, 12}
	for i, at := range arrivals {
		if !q.Push(pkt(uint32(i), 100), at+delay) {
			t.Fatalf("push %d refused", i)
		}
	}
	tests := []struct {
		now  int64
		want int
	}{
		{now: 0, want: 0},
		{now: 19, want: 0},
		{now: 20, want: 1},
		{now: 24, want: 1},
		{now: 25, want: 3},
		{now: 31, want: 3},
		{now: 32, want: 4},
		{now: 1000, want: 4},
	}
	for _, tc := range tests {
		if got := q.Due(tc.now, 128); got != tc.want {
			t.Errorf("Due(now=%d) = %d, want %d", tc.now, got, tc.want)
		}
	}
	if got := q.Due(1000, 2); got != 2 {
		t.Errorf("Due with max 2 = %d, want 2", got)
	}
	// Popping what is due at 25 leaves the last packet at the head.
	q.Pop(q.Due(25, 128))
	b, due := q.Peek(0)
	checkPkt(t, b, 3, 100)
	if due != 32 {
		t.Errorf("head due = %d, want 32", due)
	}
}

func TestQueueTailDropCountsAndKeepsOrder(t *testing.T) {
	tests := []struct {
		name      string
		limit     int
		sizes     []int
		wantKept  []uint32
		wantBytes int
	}{
		{name: "fits exactly", limit: 3000, sizes: []int{1000, 1000, 1000}, wantKept: []uint32{0, 1, 2}, wantBytes: 3000},
		{name: "tail dropped", limit: 2500, sizes: []int{1000, 1000, 1000, 400}, wantKept: []uint32{0, 1, 3}, wantBytes: 2400},
		{name: "oversized never fits", limit: 1000, sizes: []int{1500, 10}, wantKept: []uint32{1}, wantBytes: 10},
		{name: "empty packet refused", limit: 1000, sizes: []int{0, 10}, wantKept: []uint32{1}, wantBytes: 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := newDelayQueue(tc.limit, 1500)
			drops := 0
			for i, n := range tc.sizes {
				if !q.Push(pkt(uint32(i), n), int64(i)) {
					drops++
				}
			}
			if want := len(tc.sizes) - len(tc.wantKept); drops != want {
				t.Errorf("drops = %d, want %d", drops, want)
			}
			if q.Bytes() != tc.wantBytes {
				t.Errorf("Bytes() = %d, want %d", q.Bytes(), tc.wantBytes)
			}
			var got []uint32
			for q.Len() > 0 {
				b, due := q.Peek(0)
				id := uint32(due) // pushed with due = index
				checkPkt(t, b, id, tc.sizes[id])
				got = append(got, id)
				q.Pop(1)
			}
			if diff := cmp.Diff(tc.wantKept, got); diff != "" {
				t.Errorf("packets out (-want +got):\n%s", diff)
			}
			if q.Bytes() != 0 {
				t.Errorf("Bytes() after draining = %d, want 0", q.Bytes())
			}
		})
	}
}

// TestQueueWrapAroundKeepsOrderAndBytes drives the arena through many
// wrap-arounds with random sizes and a random consumer, checking that every
// accepted packet comes out intact and in order, and that a queue under its
// limit never refuses a packet because of fragmentation.
func TestQueueWrapAroundKeepsOrderAndBytes(t *testing.T) {
	const (
		limit     = 64 << 10
		maxPacket = 9000
	)
	rng := rand.New(rand.NewPCG(1, 2))
	q := newDelayQueue(limit, maxPacket)
	sizes := map[uint32]int{}
	var next, want uint32
	var accepted, refused int
	for step := 0; step < 50000; step++ {
		if rng.IntN(2) == 0 {
			n := 1 + rng.IntN(maxPacket)
			if rng.IntN(4) != 0 {
				n = 40 + rng.IntN(100) // mostly ACK-sized, to fill the metadata ring
			}
			if n < 4 {
				n = 4
			}
			fits := q.Bytes()+n <= limit
			ok := q.Push(pkt(next, n), int64(next))
			if ok != fits {
				t.Fatalf("step %d: Push of %d bytes with %d/%d queued = %v, want %v", step, n, q.Bytes(), limit, ok, fits)
			}
			if ok {
				sizes[next] = n
				accepted++
			} else {
				refused++
			}
			next++
			continue
		}
		// Draining a bit slower than filling keeps the queue near its limit
		// half the time and empty now and then.
		k := rng.IntN(2)
		if step%10000 > 7000 {
			k = 3
		}
		for i := 0; i < k && q.Len() > 0; i++ {
			b, due := q.Peek(0)
			id := uint32(due)
			if id < want {
				t.Fatalf("step %d: packet %d came out after %d", step, id, want)
			}
			checkPkt(t, b, id, sizes[id])
			delete(sizes, id)
			want = id + 1
			q.Pop(1)
		}
	}
	if accepted == 0 || refused == 0 {
		t.Fatalf("accepted %d, refused %d: the test did not exercise both paths", accepted, refused)
	}
	if q.Len() != len(sizes) {
		t.Errorf("Len() = %d, want %d", q.Len(), len(sizes))
	}
}

func TestQueueReserveCommit(t *testing.T) {
	q := newDelayQueue(4000, 1500)
	// Fill, reserving the worst case and committing what was "read".
	for i := uint32(0); i < 3; i++ {
		buf := q.Reserve(1500)
		if buf == nil {
			t.Fatalf("Reserve %d: no room", i)
		}
		n := copy(buf, pkt(i, 1000))
		if !q.Commit(n, int64(i)) {
			t.Fatalf("Commit %d refused", i)
		}
	}
	// 3000 of 4000 bytes queued: a 1500-byte packet is over the limit.
	buf := q.Reserve(1500)
	if buf == nil {
		t.Fatal("Reserve: no room, want room in the arena's spare packet")
	}
	copy(buf, pkt(9, 1500))
	if q.Commit(1500, 9) {
		t.Fatal("Commit over the limit accepted")
	}
	// The consumer pops while a reservation is outstanding; the commit
	// must land where the reservation was, after the remaining packets.
	buf = q.Reserve(1500)
	q.Pop(3)
	copy(buf, pkt(3, 200))
	if !q.Commit(200, 3) {
		t.Fatal("Commit into an emptied queue refused")
	}
	if q.Len() != 1 || q.Bytes() != 200 {
		t.Fatalf("Len, Bytes = %d, %d; want 1, 200", q.Len(), q.Bytes())
	}
	b, due := q.Peek(0)
	checkPkt(t, b, 3, 200)
	if due != 3 {
		t.Errorf("due = %d, want 3", due)
	}
	// And the queue goes on working from there.
	if !q.Push(pkt(4, 100), 4) {
		t.Fatal("Push after Commit refused")
	}
	q.Pop(1)
	b, _ = q.Peek(0)
	checkPkt(t, b, 4, 100)
}
