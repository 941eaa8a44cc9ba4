package store

import (
	"context"
	"fmt"
)

// MaxmemoryPolicy returns Redis's maxmemory-policy (CONFIG GET). Managed Redis services often
// refuse CONFIG; that comes back as an error for the caller to note and carry on. On a Cluster
// client the answer is one node's.
func (s *Store) MaxmemoryPolicy(ctx context.Context) (string, error) {
	m, err := s.rdb.ConfigGet(ctx, "maxmemory-policy").Result()
	if err != nil {
		return "", wrap("config get maxmemory-policy", err)
	}
	p, ok := m["maxmemory-policy"]
	if !ok {
		return "", fmt.Errorf("store: config get maxmemory-policy: no such parameter in the answer: %w", ErrNotFound)
	}
	return p, nil
}
