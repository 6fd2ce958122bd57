// Package hub fans a fake's "the kernel reported a change" out to its
// subscribers, as hostnet.Notifier and firewall.Notifier do for real: the
// fakes of both embed a Hub.
package hub

import (
	"context"
	"slices"
	"sync"
)

// Hub is a set of Changes subscriptions. Its zero value is ready to use;
// it is safe for concurrent use.
type Hub struct {
	mu   sync.Mutex
	subs []chan struct{}
}

// Changes subscribes until ctx is done, when the channel is closed.
func (h *Hub) Changes(ctx context.Context) (<-chan struct{}, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := make(chan struct{}, 1)
	h.subs = append(h.subs, ch)
	go func() {
		<-ctx.Done()
		h.mu.Lock()
		defer h.mu.Unlock()
		h.subs = slices.DeleteFunc(h.subs, func(c chan struct{}) bool { return c == ch })
		close(ch)
	}()
	return ch, nil
}

// Watchers is how many subscriptions are open, so a test can wait for its
// subscriber before it calls Notify.
func (h *Hub) Watchers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Notify wakes every subscriber; wake-ups not yet received coalesce, as
// the real notifiers' do.
func (h *Hub) Notify() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ch := range h.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
