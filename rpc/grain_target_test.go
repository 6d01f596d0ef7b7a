package rpc_test

import (
	"context"
	"testing"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/rpc/internal/echopb"
)

// grainsOf resolves every grain of kind "echo" to one service actor, as a
// grain system would resolve a grain to its activation.
type grainsOf struct {
	pid  actor.PID
	keys chan string
}

func (g grainsOf) ResolveGrain(_ context.Context, kind, key string) (actor.PID, error) {
	g.keys <- kind + "/" + key
	return g.pid, nil
}

func TestGrainTarget(t *testing.T) {
	n := newNode(t)
	svc, _ := serve(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	_, err := newEcho(n).Say(ctx, rpc.Grain("echo", "k1"), &echopb.SayRequest{Text: "x"})
	wantCode(t, err, rpc.FailedPrecondition)

	r := grainsOf{pid: svc, keys: make(chan string, 1)}
	reply, err := newEcho(n, rpc.WithGrains(r)).Say(ctx, rpc.Grain("echo", "k1"), &echopb.SayRequest{Text: "x"})
	if err != nil || reply.GetText() != "echo:x" {
		t.Fatalf("Say through a grain target: %v, %v", reply, err)
	}
	if got := <-r.keys; got != "echo/k1" {
		t.Fatalf("resolved %q, want echo/k1", got)
	}
	if s := rpc.Grain("player", "10086").String(); s != "grain player/10086" {
		t.Fatalf("String() = %q", s)
	}
}
