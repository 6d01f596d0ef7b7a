package grain_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/grain"
)

// seqState is the state of the test grain: every sequence number it was
// sent, and how many.
type seqState struct {
	N    int64
	Seqs []int64
}

// counts records the activations of each identity (Kind.New calls).
type counts struct{ m sync.Map }

func (c *counts) inc(id grain.Identity) {
	v, _ := c.m.LoadOrStore(id, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

func (c *counts) get(id grain.Identity) int64 {
	v, ok := c.m.Load(id)
	if !ok {
		return 0
	}
	return v.(*atomic.Int64).Load()
}

// seqKind is a grain kind whose grains handle:
//
//	Int64Value v   append v to Seqs, N++ (no MarkDirty: the hash finds it); reply N
//	"get"          reply the state as JSON
//	"flush"        flush now; reply "ok" or the error
//	"where"        reply the node's address
func seqKind(name string, cs *counts, idle, flush time.Duration) grain.Kind {
	return grain.Kind{
		Name:        name,
		IdleTimeout: idle,
		FlushEvery:  flush,
		State:       func() any { return new(seqState) },
		New: func(id grain.Identity) grain.Actor {
			if cs != nil {
				cs.inc(id)
			}
			return grain.ActorFunc(seqReceive)
		},
	}
}

func seqReceive(c *grain.Context) {
	st := c.State().(*seqState)
	switch m := c.Message().(type) {
	case *wrapperspb.Int64Value:
		st.Seqs = append(st.Seqs, m.Value)
		st.N++
		c.Respond(wrapperspb.Int64(st.N))
	case *wrapperspb.StringValue:
		switch m.Value {
		case "get":
			b, _ := json.Marshal(st)
			c.Respond(wrapperspb.String(string(b)))
		case "flush":
			if err := c.Flush(context.Background()); err != nil {
				c.Respond(err)
				return
			}
			c.Respond(wrapperspb.String("ok"))
		case "where":
			c.Respond(wrapperspb.String(c.Actor().Self().Node.String()))
		}
	}
}

// getState asks a grain for its state.
func getState(t testing.TB, s *grain.System, id grain.Identity) seqState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := s.Call(ctx, id, wrapperspb.String("get"))
	if err != nil {
		t.Fatalf("get %v: %v", id, err)
	}
	var st seqState
	if err := json.Unmarshal([]byte(r.(*wrapperspb.StringValue).Value), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// call sends an Int64Value and returns N.
func call(t testing.TB, s *grain.System, id grain.Identity, v int64) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := s.Call(ctx, id, wrapperspb.Int64(v))
	if err != nil {
		t.Fatalf("call %v: %v", id, err)
	}
	return r.(*wrapperspb.Int64Value).Value
}

// waitFor polls cond every 5 ms for up to 15 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// localSystem starts a cluster node (TCP on 127.0.0.1) and a System on a
// membership of the Memory store ms (nil: a store of its own).
func localSystem(t testing.TB, ms *cluster.Memory, index int, cfg grain.Config) *grain.System {
	t.Helper()
	if ms == nil {
		ms = cluster.NewMemory()
	}
	addr := actor.MustAddr(1, 1, index)
	m := ms.Membership(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := cluster.Start(ctx, cluster.NodeConfig{
		Actor:      actor.Config{Addr: addr},
		Listen:     "127.0.0.1:0",
		Membership: m,
		Logger:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Node = n.Actor()
	cfg.Membership = m
	s, err := grain.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
		_ = n.Close()
		_ = m.Close()
	})
	return s
}
