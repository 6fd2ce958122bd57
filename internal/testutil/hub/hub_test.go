package hub

import (
	"context"
	"testing"
	"time"
)

func TestHub(t *testing.T) {
	var h Hub
	ctx, cancel := context.WithCancel(context.Background())
	a, _ := h.Changes(ctx)
	b, _ := h.Changes(context.Background())
	if h.Watchers() != 2 {
		t.Fatalf("Watchers = %d, want 2", h.Watchers())
	}
	h.Notify()
	h.Notify() // coalesces with the first
	for _, ch := range []<-chan struct{}{a, b} {
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatal("subscriber not woken")
		}
		select {
		case <-ch:
			t.Fatal("two wake-ups were not coalesced")
		default:
		}
	}
	cancel()
	select {
	case _, ok := <-a:
		if ok {
			t.Fatal("woken after its context was done")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed when its context was done")
	}
	if h.Watchers() != 1 {
		t.Errorf("Watchers = %d after one unsubscribed, want 1", h.Watchers())
	}
}
