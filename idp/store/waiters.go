package store

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Waiters wakes long-polls (a login waiting for its approval, a device waiting for requests)
// when another instance changes what they wait for. One Redis subscription per process carries
// every topic; a message is only a hint to look again, so a lost one costs a waiter its wait,
// never a wrong answer.
type Waiters struct {
	st *Store

	subMu sync.Mutex // held while subscribing (network I/O), never with mu waiting on it

	mu      sync.Mutex
	ps      *redis.PubSub
	waiting map[string]map[chan struct{}]struct{}
	closed  bool
}

// NewWaiters returns the process's waiters on the store; Close ends the subscription.
func (s *Store) NewWaiters() *Waiters {
	return &Waiters{st: s, waiting: map[string]map[chan struct{}]struct{}{}}
}

// Watch registers interest in topic before the caller checks the state it waits on, so a
// change made after that check is never missed. The channel gets a value when the topic is
// woken; stop must be called when done.
func (w *Waiters) Watch(ctx context.Context, topic string) (<-chan struct{}, func(), error) {
	if err := w.subscribe(ctx); err != nil {
		return nil, nil, err
	}
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	m := w.waiting[topic]
	if m == nil {
		m = map[chan struct{}]struct{}{}
		w.waiting[topic] = m
	}
	m[ch] = struct{}{}
	w.mu.Unlock()
	stop := func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if m := w.waiting[topic]; m != nil {
			delete(m, ch)
			if len(m) == 0 {
				delete(w.waiting, topic)
			}
		}
	}
	return ch, stop, nil
}

// subscribe starts the one subscription, confirmed by Redis before any waiter relies on it.
// The waiters' own lock is not held while Redis is asked, so a slow or failing subscribe never
// holds up wakes, stops or the gauge.
func (w *Waiters) subscribe(ctx context.Context) error {
	w.mu.Lock()
	ready, closed := w.ps != nil, w.closed
	w.mu.Unlock()
	if ready {
		return nil
	}
	if closed {
		return wrap("waiters", redis.ErrClosed)
	}
	w.subMu.Lock()
	defer w.subMu.Unlock()
	w.mu.Lock()
	ready = w.ps != nil
	w.mu.Unlock()
	if ready {
		return nil // another caller subscribed meanwhile
	}
	ps := w.st.rdb.Subscribe(context.WithoutCancel(ctx), w.st.eventsChannel())
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := ps.Receive(cctx); err != nil {
		_ = ps.Close()
		return wrap("waiters: subscribe", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		_ = ps.Close()
		return wrap("waiters", redis.ErrClosed)
	}
	w.ps = ps
	go w.run(ps.Channel())
	return nil
}

func (w *Waiters) run(msgs <-chan *redis.Message) {
	for m := range msgs {
		w.wake(m.Payload)
	}
}

// wake wakes the local waiters of topic.
func (w *Waiters) wake(topic string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.waiting[topic] {
		select {
		case ch <- struct{}{}:
		default: // woken already
		}
	}
}

// Waiting counts the topics with local waiters (a gauge for long-polls in progress).
func (w *Waiters) Waiting() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, m := range w.waiting {
		n += len(m)
	}
	return n
}

// Close ends the subscription.
func (w *Waiters) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	if w.ps == nil {
		return nil
	}
	err := w.ps.Close()
	w.ps = nil
	if err != nil {
		slog.Warn("waiters: close subscription", "err", err)
	}
	return nil
}
