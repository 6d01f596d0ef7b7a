package grain

import (
	"context"
	"sync"

	"github.com/guildkit/guild/actor"
)

// Claimer decides which node may activate a grain: at most one node holds
// the claim of an identity at a time, and only the holder activates it.
// Its methods are safe for concurrent use.
type Claimer interface {
	// TryClaim claims id for the node self, unless another node holds it.
	// It returns self when self holds the claim now (it may have held it
	// already), and the holder otherwise. It does not wait.
	TryClaim(ctx context.Context, id Identity, self actor.Addr) (holder actor.Addr, err error)
	// Release gives up self's claim of id. Releasing a claim self does not
	// hold does nothing.
	Release(ctx context.Context, id Identity, self actor.Addr) error
}

// LocalClaimer is a Claimer held in memory: right for one node, or for
// several Systems in one process that share it (tests, benchmarks). It
// knows nothing of other processes. The zero value is ready to use.
type LocalClaimer struct {
	mu     sync.Mutex
	claims map[Identity]actor.Addr
}

// NewLocalClaimer returns an empty LocalClaimer.
func NewLocalClaimer() *LocalClaimer { return &LocalClaimer{} }

// TryClaim implements Claimer.
func (l *LocalClaimer) TryClaim(ctx context.Context, id Identity, self actor.Addr) (actor.Addr, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if h, ok := l.claims[id]; ok {
		return h, nil
	}
	if l.claims == nil {
		l.claims = make(map[Identity]actor.Addr)
	}
	l.claims[id] = self
	return self, nil
}

// Release implements Claimer.
func (l *LocalClaimer) Release(ctx context.Context, id Identity, self actor.Addr) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.claims[id] == self {
		delete(l.claims, id)
	}
	return nil
}

// ReleaseAll drops every claim of node, as a lease's expiry would: for a
// process that hosts several nodes and loses one.
func (l *LocalClaimer) ReleaseAll(node actor.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, h := range l.claims {
		if h == node {
			delete(l.claims, id)
		}
	}
}

// Len returns the number of claims held.
func (l *LocalClaimer) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.claims)
}
