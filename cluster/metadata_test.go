package cluster_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster/clustertest"
)

// TestMetadataAcrossNodes: metadata sent with a request crosses nodes,
// survives a Forward to a third node, reaches the handler beside the
// message alone, and comes with one-way sends too; metadata past its
// bounds is refused at the sender with actor.ErrBadMetadata.
func TestMetadataAcrossNodes(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3})
	a, b, z := c.Node(0), c.Node(1), c.Node(2)
	type seen struct {
		msg string
		md  actor.Metadata
	}
	got := make(chan seen, 8)
	last, err := z.SpawnFunc(func(ac *actor.Context) {
		m, ok := ac.Message().(*wrapperspb.StringValue)
		if !ok {
			return
		}
		got <- seen{m.GetValue(), ac.Metadata()}
		if ac.IsRequest() {
			ac.Respond(wrapperspb.String("ok " + ac.Metadata().Get("guild-user-id")))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	middle, err := b.SpawnFunc(func(ac *actor.Context) {
		if _, ok := ac.Message().(*wrapperspb.StringValue); ok {
			if err := ac.Forward(last); err != nil {
				ac.Respond(err)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	md := actor.NewMetadata("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "guild-user-id", "u42", "empty", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reply, err := a.Call(ctx, middle, actor.WithMetadata(wrapperspb.String("hello"), md))
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := reply.(*wrapperspb.StringValue); !ok || r.GetValue() != "ok u42" {
		t.Fatalf("reply %v, want ok u42", reply)
	}
	check := func(what, msg string) {
		t.Helper()
		select {
		case s := <-got:
			if s.msg != msg || s.md.Len() != 3 || s.md.Get("traceparent") != md.Get("traceparent") || s.md.Get("guild-user-id") != "u42" {
				t.Fatalf("%s: got %q with %v, want %q with %v", what, s.msg, s.md, msg, md)
			}
			if v, ok := s.md.Lookup("empty"); !ok || v != "" {
				t.Fatalf("%s: the empty value was lost: %v", what, s.md)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: nothing arrived", what)
		}
	}
	check("request forwarded across three nodes", "hello")
	if err := a.Send(last, actor.WithMetadata(wrapperspb.String("one-way"), md)); err != nil {
		t.Fatal(err)
	}
	check("one-way send", "one-way")

	big := actor.NewMetadata("k", strings.Repeat("v", actor.MaxMetadataSize+1))
	if _, err := a.Call(ctx, last, actor.WithMetadata(wrapperspb.String("big"), big)); !errors.Is(err, actor.ErrBadMetadata) {
		t.Fatalf("oversize metadata: %v, want actor.ErrBadMetadata", err)
	}
}
