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
//
// Its claims are kept by kind, then by key (an entry is a key and a
// holder, not a whole Identity), since a node may hold a million.
type LocalClaimer struct {
	mu     sync.Mutex
	claims map[string]map[string]actor.Addr // kind → key → holder
	n      int
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
	keys := l.claims[id.Kind]
	if h, ok := keys[id.Key]; ok {
		return h, nil
	}
	if keys == nil {
		if l.claims == nil {
			l.claims = make(map[string]map[string]actor.Addr)
		}
		keys = make(map[string]actor.Addr)
		l.claims[id.Kind] = keys
	}
	keys[id.Key] = self
	l.n++
	return self, nil
}

// Release implements Claimer.
func (l *LocalClaimer) Release(ctx context.Context, id Identity, self actor.Addr) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	keys := l.claims[id.Kind]
	if h, ok := keys[id.Key]; ok && h == self {
		l.drop(id.Kind, keys, id.Key)
	}
	return nil
}

// drop deletes the claim of key in kind, whose claims are keys. The caller
// holds l.mu.
func (l *LocalClaimer) drop(kind string, keys map[string]actor.Addr, key string) {
	delete(keys, key)
	l.n--
	if len(keys) == 0 {
		delete(l.claims, kind) // a map never shrinks: let it go
	}
}

// ReleaseAll drops every claim of node, as a lease's expiry would: for a
// process that hosts several nodes and loses one.
func (l *LocalClaimer) ReleaseAll(node actor.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for kind, keys := range l.claims {
		for key, h := range keys {
			if h == node {
				l.drop(kind, keys, key)
			}
		}
	}
}

// Len returns the number of claims held.
func (l *LocalClaimer) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

// SoleClaimer is the Claimer of a System that is the only one hosting its
// kinds (one node): every claim succeeds at once and costs nothing, since
// the System's own table of activations already keeps each grain's
// activation unique on its node. It is the default when Config.Claims is
// nil. Two Systems that may host the same kind need a shared Claimer
// (LocalClaimer in one process, EtcdClaimer in a cluster).
type SoleClaimer struct{}

// TryClaim implements Claimer: self always holds the claim.
func (SoleClaimer) TryClaim(ctx context.Context, _ Identity, self actor.Addr) (actor.Addr, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return self, nil
}

// Release implements Claimer.
func (SoleClaimer) Release(context.Context, Identity, actor.Addr) error { return nil }
