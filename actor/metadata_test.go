package actor

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestMetadataValue(t *testing.T) {
	var zero Metadata
	if zero.Len() != 0 || zero.Get("k") != "" || zero.String() != "{}" {
		t.Fatalf("zero Metadata: %v", zero)
	}
	m := NewMetadata("a", "1", "b", "2", "a", "3", "odd")
	if m.Len() != 3 || m.Get("a") != "3" || m.Get("b") != "2" {
		t.Fatalf("NewMetadata: %v", m)
	}
	if v, ok := m.Lookup("odd"); !ok || v != "" {
		t.Fatalf("odd key: %q %v", v, ok)
	}
	m2 := m.With("b", "x").With("c", "y")
	if m.Get("b") != "2" || m.Len() != 3 {
		t.Fatalf("With changed the original: %v", m)
	}
	if m2.Get("b") != "x" || m2.Get("c") != "y" || m2.Len() != 4 {
		t.Fatalf("With: %v", m2)
	}
	var keys []string
	for k := range m2.All() {
		keys = append(keys, k)
	}
	if strings.Join(keys, ",") != "a,b,odd,c" {
		t.Fatalf("All order: %v", keys)
	}
	if err := m2.Validate(); err != nil {
		t.Fatal(err)
	}
	big := NewMetadata("k", strings.Repeat("v", MaxMetadataSize))
	if err := big.Validate(); !errors.Is(err, ErrBadMetadata) {
		t.Fatalf("oversize: %v", err)
	}
	if err := NewMetadata("", "v").Validate(); !errors.Is(err, ErrBadMetadata) {
		t.Fatalf("empty key: %v", err)
	}
	var many []string
	for i := range MaxMetadataEntries + 1 {
		many = append(many, string(rune('a'+i%26))+strings.Repeat("k", i/26+1), "v")
	}
	if err := NewMetadata(many...).Validate(); !errors.Is(err, ErrBadMetadata) {
		t.Fatalf("too many keys: %v", err)
	}
	if WithMetadata("msg", Metadata{}) != "msg" {
		t.Fatal("WithMetadata of no metadata wraps")
	}
	w := WithMetadata(WithMetadata("msg", NewMetadata("a", "1")), NewMetadata("b", "2"))
	msg, md := SplitMetadata(w)
	if msg != "msg" || md.Get("b") != "2" || md.Get("a") != "" {
		t.Fatalf("rewrapping: %v %v", msg, md)
	}
}

// TestMetadataReachesTheHandler: metadata sent with Send, Request, Call
// and through Forward reaches Context.Metadata, with the message alone in
// Context.Message; a message without metadata right after one with it
// finds none; replies and dead letters carry the message alone.
func TestMetadataReachesTheHandler(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	type seen struct {
		msg any
		md  Metadata
	}
	got := make(chan seen, 16)
	target, err := n.SpawnFunc(func(c *Context) {
		switch c.Message().(type) {
		case string, int:
			got <- seen{c.Message(), c.Metadata()}
			if c.IsRequest() {
				c.Respond(WithMetadata("reply", NewMetadata("r", "1")))
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	forwarder, err := n.SpawnFunc(func(c *Context) {
		if _, ok := c.Message().(string); ok {
			if err := c.Forward(target); err != nil {
				t.Error(err)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	md := NewMetadata("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "guild-user-id", "u7")
	next := func(what string) seen {
		t.Helper()
		select {
		case s := <-got:
			return s
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: nothing arrived", what)
		}
		return seen{}
	}
	if err := n.Send(target, WithMetadata("one", md)); err != nil {
		t.Fatal(err)
	}
	if s := next("send"); s.msg != "one" || s.md.Get("guild-user-id") != "u7" {
		t.Fatalf("send: %v %v", s.msg, s.md)
	}
	if err := n.Send(target, 2); err != nil {
		t.Fatal(err)
	}
	if s := next("plain send"); s.msg != 2 || s.md.Len() != 0 {
		t.Fatalf("a plain message after one with metadata: %v %v", s.msg, s.md)
	}
	reply, err := n.Call(context.Background(), target, WithMetadata("three", md))
	if err != nil || reply != "reply" {
		t.Fatalf("call: %v %v", reply, err)
	}
	if s := next("call"); s.msg != "three" || s.md.Get("traceparent") == "" {
		t.Fatalf("call: %v %v", s.msg, s.md)
	}
	reply, err = n.Call(context.Background(), forwarder, WithMetadata("four", md))
	if err != nil || reply != "reply" {
		t.Fatalf("forwarded call: %v %v", reply, err)
	}
	if s := next("forward"); s.msg != "four" || s.md.Get("guild-user-id") != "u7" {
		t.Fatalf("forward lost the metadata: %v %v", s.msg, s.md)
	}
	done := make(chan any, 1)
	if err := n.Request(target, WithMetadata("five", md), time.Second, func(r any, err error) { done <- r }); err != nil {
		t.Fatal(err)
	}
	if s := next("request"); s.msg != "five" || s.md.Len() != 2 {
		t.Fatalf("request: %v %v", s.msg, s.md)
	}
	if r := <-done; r != "reply" {
		t.Fatalf("request reply: %v", r)
	}

	dead := make(chan DeadLetter, 1)
	unsub := n.SubscribeDeadLetters(func(d DeadLetter) {
		select {
		case dead <- d:
		default:
		}
	})
	defer unsub()
	gone := PID{Node: n.Addr(), Serial: 1 << 40}
	_ = n.Send(gone, WithMetadata("lost", md))
	select {
	case d := <-dead:
		if d.Message != "lost" {
			t.Fatalf("dead letter carries %T %v, want the message alone", d.Message, d.Message)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no dead letter")
	}
}
