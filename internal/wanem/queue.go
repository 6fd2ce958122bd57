package wanem

// delayQueue is the FIFO at the heart of the delay line. Every packet gets
// the same delay, so packets leave in arrival order and a plain FIFO is also
// a priority queue by due time: only the head ever needs to be looked at.
//
// Packet bytes live in one preallocated byte ring (arena), stored
// contiguously in arrival order, so the hot path neither allocates nor keeps
// a pointer per packet for the garbage collector to scan. A packet that does
// not fit between the tail and the end of the arena starts again at offset 0;
// the gap left at the end is reclaimed when the head passes it. The metadata
// (offset, length, due time) lives in a parallel ring that grows only when
// more packets are queued than ever before.
//
// delayQueue is not safe for concurrent use; the delay line guards it with a
// mutex.
type delayQueue struct {
	arena []byte
	limit int // bytes of packet data the queue may hold (QueueLimit)
	bytes int // bytes of packet data queued now

	// head is where the oldest packet starts and tail where the newest one
	// ends; both are offsets into arena and meaningless while empty. Packets
	// are never empty, so a non-empty queue has wrapped around the end of the
	// arena exactly when tail <= head.
	head, tail int

	meta  []entry
	mHead int
	mLen  int

	resOff int // offset of the outstanding Reserve, -1 if none
}

type entry struct {
	off int
	n   int
	due int64 // nanoseconds on the line's monotonic clock
}

// newDelayQueue returns a queue holding at most limit bytes of packets, each
// at most maxPacket bytes long. The arena gets one extra maxPacket so that
// the wrap-around gap can never make a queue under its limit refuse a packet.
func newDelayQueue(limit, maxPacket int) *delayQueue {
	return &delayQueue{
		arena: make([]byte, limit+maxPacket),
		limit: limit,
		meta:  make([]entry, 1024),

		resOff: -1,
	}
}

// Len is the number of packets queued.
func (q *delayQueue) Len() int { return q.mLen }

// Bytes is the number of packet bytes queued.
func (q *delayQueue) Bytes() int { return q.bytes }

// Push copies pkt into the queue, due at due. It reports false, leaving the
// queue unchanged, when the packet would take the queue over its limit (tail
// drop) or is longer than the arena can ever hold.
func (q *delayQueue) Push(pkt []byte, due int64) bool {
	n := len(pkt)
	if n == 0 || q.bytes+n > q.limit || n > len(q.arena) {
		return false
	}
	off, ok := q.place(n)
	if !ok {
		return false
	}
	copy(q.arena[off:off+n], pkt)
	q.append(off, n, due)
	return true
}

func (q *delayQueue) append(off, n int, due int64) {
	if q.mLen == 0 {
		q.head = off
	}
	q.tail = off + n
	q.bytes += n
	if q.mLen == len(q.meta) {
		q.growMeta()
	}
	q.meta[(q.mHead+q.mLen)%len(q.meta)] = entry{off: off, n: n, due: due}
	q.mLen++
}

// Reserve returns max free contiguous bytes at the tail for the caller to
// read a packet into directly, saving a copy; nil when there is no room.
// Until Commit or Cancel, the only other calls allowed are Peek, Due and
// Pop (by the consumer): those only ever free space, so the reservation
// stays valid while the caller reads without holding the queue's lock.
func (q *delayQueue) Reserve(max int) []byte {
	if q.resOff >= 0 {
		panic("wanem: delayQueue.Reserve with a reservation outstanding")
	}
	off, ok := q.place(max)
	if !ok {
		return nil
	}
	q.resOff = off
	return q.arena[off : off+max : off+max]
}

// Commit queues the first n bytes of the reservation, due at due. Like
// Push it reports false, dropping the packet, beyond the queue's limit.
func (q *delayQueue) Commit(n int, due int64) bool {
	off := q.resOff
	q.resOff = -1
	if off < 0 {
		panic("wanem: delayQueue.Commit without Reserve")
	}
	if n <= 0 || q.bytes+n > q.limit {
		return false
	}
	q.append(off, n, due)
	return true
}

// place finds n contiguous free bytes in the arena.
func (q *delayQueue) place(n int) (int, bool) {
	if q.mLen == 0 {
		q.head, q.tail = 0, 0
		return 0, n <= len(q.arena)
	}
	if q.head < q.tail {
		// Used region is [head, tail): free space is after tail, then
		// before head.
		if q.tail+n <= len(q.arena) {
			return q.tail, true
		}
		if n <= q.head {
			return 0, true
		}
		return 0, false
	}
	// Wrapped: used region is [head, end) and [0, tail).
	if q.tail+n <= q.head {
		return q.tail, true
	}
	return 0, false
}

func (q *delayQueue) growMeta() {
	bigger := make([]entry, 2*len(q.meta))
	for i := 0; i < q.mLen; i++ {
		bigger[i] = q.meta[(q.mHead+i)%len(q.meta)]
	}
	q.meta = bigger
	q.mHead = 0
}

// Peek returns the i-th oldest packet (0 is the head) and its due time. The
// bytes alias the arena and stay valid until that packet is popped.
func (q *delayQueue) Peek(i int) ([]byte, int64) {
	e := q.meta[(q.mHead+i)%len(q.meta)]
	return q.arena[e.off : e.off+e.n], e.due
}

// Due counts the packets at the head that are due at now, at most max.
func (q *delayQueue) Due(now int64, max int) int {
	k := 0
	for k < max && k < q.mLen && q.meta[(q.mHead+k)%len(q.meta)].due <= now {
		k++
	}
	return k
}

// Pop removes the k oldest packets.
func (q *delayQueue) Pop(k int) {
	for ; k > 0 && q.mLen > 0; k-- {
		q.bytes -= q.meta[q.mHead].n
		q.mHead = (q.mHead + 1) % len(q.meta)
		q.mLen--
	}
	if q.mLen == 0 {
		q.head, q.tail, q.mHead = 0, 0, 0
		return
	}
	// The next packet's own offset, not the end of the popped one: that
	// also skips the gap a wrap-around left at the end of the arena.
	q.head = q.meta[q.mHead].off
}
