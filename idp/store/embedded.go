package store

import (
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// Embedded is the in-process Redis-protocol server of demo mode. Everything in it vanishes
// when the process exits.
type Embedded struct {
	srv  *miniredis.Miniredis
	stop chan struct{}
}

// StartEmbedded starts an in-process Redis-protocol server on a loopback port.
func StartEmbedded() (*Embedded, error) {
	srv := miniredis.NewMiniRedis()
	if err := srv.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("store: start embedded redis: %w", err)
	}
	e := &Embedded{srv: srv, stop: make(chan struct{})}
	// miniredis only expires keys when told that time passed.
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-e.stop:
				return
			case <-t.C:
				srv.FastForward(time.Second)
			}
		}
	}()
	return e, nil
}

// URL is the redis:// URL of the embedded server.
func (e *Embedded) URL() string { return "redis://" + e.srv.Addr() + "/0" }

// Close stops the server.
func (e *Embedded) Close() {
	close(e.stop)
	e.srv.Close()
}
