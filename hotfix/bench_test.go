package hotfix_test

import (
	"context"
	"encoding/binary"
	"strconv"
	"testing"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/hotfix"
)

// The cost of a hot-fixed handler against the same logic in Go, in the
// same run:
//
//	go test -run '^$' -bench 'Call$|Actor$' -benchmem ./hotfix
//
// Call: one message through the handler alone (Module.Call against a Go
// function of the same shape: state and message in, new state and reply
// out). Actor: one request through an actor on a node (node.Call to a
// hotfix.Actor against an actor that calls the Go function), which is
// what a game pays per message.

// nativeCounter is counter1 (testdata/counter1) in Go.
func nativeCounter(state []byte, msgType string, msg []byte) (hotfix.Result, error) {
	var n uint64
	if len(state) == 8 {
		n = binary.LittleEndian.Uint64(state)
	}
	n++
	return hotfix.Result{State: binary.LittleEndian.AppendUint64(nil, n), Reply: []byte("v1:" + strconv.FormatUint(n, 10))}, nil
}

// nativeCounter's signature, so that the compiler cannot inline it away
// from the benchmark, as a handler looked up by route is not.
var nativeHandler = nativeCounter

func BenchmarkNativeCall(b *testing.B) {
	var state []byte
	msg := []byte("payload")
	for b.Loop() {
		res, err := nativeHandler(state, "inc", msg)
		if err != nil {
			b.Fatal(err)
		}
		state = res.State
	}
}

func BenchmarkHotfixCall(b *testing.B) {
	e := newEngine(b, hotfix.Config{})
	h := hotfix.NewHandler("counter")
	load(b, e, h, "counter1")
	ctx := context.Background()
	var state []byte
	msg := []byte("payload")
	for b.Loop() {
		res, _, err := h.Call(ctx, state, "inc", msg)
		if err != nil {
			b.Fatal(err)
		}
		state = res.State
	}
	if n := binary.LittleEndian.Uint64(state); n < uint64(b.N) {
		b.Fatalf("count %d after %d calls", n, b.N)
	}
}

// nativeActor is the Go counterpart of a hotfix.Actor running counter1.
type nativeActor struct{ state []byte }

func (a *nativeActor) Receive(c *actor.Context) {
	m, ok := c.Message().(*hotfix.Message)
	if !ok {
		return
	}
	res, err := nativeHandler(a.state, m.Type, m.Data)
	if err != nil {
		c.Respond(err)
		return
	}
	a.state = res.State
	c.Respond(&hotfix.Message{Type: res.ReplyType, Data: res.Reply})
}

func benchActor(b *testing.B, prod actor.Producer) {
	node, err := actor.NewNode(actor.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer node.Close()
	pid, err := node.Spawn(prod)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	msg := &hotfix.Message{Type: "inc", Data: []byte("payload")}
	for b.Loop() {
		if _, err := node.Call(ctx, pid, msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNativeActor(b *testing.B) {
	benchActor(b, func() actor.Actor { return &nativeActor{} })
}

func BenchmarkHotfixActor(b *testing.B) {
	e := newEngine(b, hotfix.Config{})
	h := hotfix.NewHandler("counter")
	load(b, e, h, "counter1")
	benchActor(b, func() actor.Actor { return hotfix.NewActor(h, nil) })
}

// BenchmarkHotfixCallTimeout is BenchmarkHotfixCall with a CallTimeout,
// which costs a timer and a watching goroutine per call.
func BenchmarkHotfixCallTimeout(b *testing.B) {
	e := newEngine(b, hotfix.Config{CallTimeout: time.Second})
	h := hotfix.NewHandler("counter")
	load(b, e, h, "counter1")
	ctx := context.Background()
	var state []byte
	for b.Loop() {
		res, _, err := h.Call(ctx, state, "inc", nil)
		if err != nil {
			b.Fatal(err)
		}
		state = res.State
	}
}

// BenchmarkHotfixCallCtx is BenchmarkHotfixCall without a CallTimeout
// but with a ctx that can end: the call runs on the compilation that
// stops at ctx's end, and costs a watching goroutine (no timer).
func BenchmarkHotfixCallCtx(b *testing.B) {
	e := newEngine(b, hotfix.Config{})
	h := hotfix.NewHandler("counter")
	load(b, e, h, "counter1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var state []byte
	for b.Loop() {
		res, _, err := h.Call(ctx, state, "inc", nil)
		if err != nil {
			b.Fatal(err)
		}
		state = res.State
	}
}
