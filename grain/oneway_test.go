package grain_test

// Tests of one-way messages to a grain whose
// activation cannot start.

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/grain"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/store"
	"github.com/guildkit/guild/store/memstore"
)

// badLoadStore fails every Load (a corrupt or unreachable document).
type badLoadStore struct {
	store.Store
	loads atomic.Int64
}

func (b *badLoadStore) Load(ctx context.Context, kind, key string) ([]byte, uint64, error) {
	b.loads.Add(1)
	return nil, 0, errors.New("attack: load fails")
}

// TestOneWayToFailingGrainIsDropped: a one-way Send to a grain whose
// state cannot be loaded. The activation fails, and refuses its queued
// one-way message, which is dropped (as a request would be answered with
// the refusal) rather than routed again: it once made a new activation,
// which failed and routed it again, 50,000 to 100,000 times a second, for
// ever.
func TestOneWayToFailingGrainIsDropped(t *testing.T) {
	bs := &badLoadStore{Store: memstore.New()}
	log := &turnLog{}
	var slow atomic.Int64
	s := localSystem(t, cluster.NewMemory(), 1, grain.Config{
		Kinds:  []grain.Kind{ctrKind("c", log, &slow, nil, 0)},
		Store:  bs,
		Claims: grain.NewLocalClaimer(),
	})
	id := grain.Identity{Kind: "c", Key: "x"}
	if err := s.Send(id, wrapperspb.Int64(1)); err != nil {
		t.Fatal(err)
	}
	await.True(t, 10*time.Second, "the failed activation to refuse the message", func() bool { return s.Stats().Refused >= 1 })
	// A request after it: answered with the failure, after a load of its
	// own. A message still bouncing between activations would have made
	// many loads by the time it is answered.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Call(ctx, id, wrapperspb.Int64(2)); err == nil {
		t.Fatal("a call to a grain whose state does not load succeeded")
	}
	if n := bs.loads.Load(); n > 4 {
		t.Fatalf("one one-way message and one call to a grain whose load fails caused %d store loads", n)
	}
}
