package rpc_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/rpc/internal/echopb"
)

// ctxKey is the key a server interceptor stores a value under, for the
// "value" mode.
type ctxKey struct{}

// echoServer is the test implementation of echopb.EchoServer. Say behaves
// as req.Mode says:
//
//	""       reply {text: "echo:"+text, node, deadline_unix_ms}
//	"status" fail with rpc.Error(req.Code, "status "+text)
//	"plain"  fail with a plain error
//	"panic"  panic
//	"sleep"  sleep for text (a time.Duration), then reply as ""
//	"nil"    return neither a reply nor an error
//	"value"  reply with text set to ctx.Value(ctxKey{}) (a string)
//	"caller" reply with text set to ctx.Caller()
//
// Note records the text on notes. Both record the request pointer they
// received on reqs. The methods run in the service actor; the channels
// carry what they saw to the test goroutine.
type echoServer struct {
	notes chan string
	reqs  chan *echopb.SayRequest
	calls chan struct{} // a value for every Say call, for tests that assert none came
	quit  chan struct{} // closed at cleanup: ends any "sleep" early
}

// newEchoServer returns a handler whose sleeps end when t ends.
func newEchoServer(t *testing.T) *echoServer {
	h := &echoServer{
		notes: make(chan string, 64),
		reqs:  make(chan *echopb.SayRequest, 64),
		calls: make(chan struct{}, 64),
		quit:  make(chan struct{}),
	}
	t.Cleanup(h.wake)
	return h
}

// wake ends every sleep in progress and to come. Safe to call twice.
func (h *echoServer) wake() {
	select {
	case <-h.quit:
	default:
		close(h.quit)
	}
}

// record keeps v on ch without ever blocking the service actor.
func record[T any](ch chan T, v T) {
	select {
	case ch <- v:
	default:
	}
}

func (h *echoServer) Say(ctx *rpc.Context, req *echopb.SayRequest) (*echopb.SayReply, error) {
	record(h.reqs, req)
	record(h.calls, struct{}{})
	switch req.GetMode() {
	case "status":
		return nil, rpc.Error(rpc.Code(req.GetCode()), "status "+req.GetText())
	case "plain":
		return nil, errors.New("plain failure")
	case "panic":
		panic("boom")
	case "nil":
		return nil, nil
	case "value":
		v, _ := ctx.Value(ctxKey{}).(string)
		return &echopb.SayReply{Text: v, Node: self(ctx).Node.String()}, nil
	case "caller":
		return &echopb.SayReply{Text: ctx.Caller().String(), Node: self(ctx).Node.String()}, nil
	case "metadata": // the value of the key named by the text, and how many keys came
		md := rpc.IncomingMetadata(ctx)
		return &echopb.SayReply{Text: fmt.Sprintf("%s=%s n=%d", req.GetText(), md.Get(req.GetText()), md.Len()), Node: self(ctx).Node.String()}, nil
	case "sleep":
		d, err := time.ParseDuration(req.GetText())
		if err != nil {
			return nil, rpc.Errorf(rpc.InvalidArgument, "sleep: %v", err)
		}
		// An interruptible time.Sleep: a test that ends before the sleep
		// does must not leave the service actor's worker behind.
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-h.quit:
			t.Stop()
		}
	}
	reply := &echopb.SayReply{Text: "echo:" + req.GetText(), Node: self(ctx).Node.String()}
	if dl, ok := ctx.Deadline(); ok {
		reply.DeadlineUnixMs = dl.UnixMilli()
	}
	return reply, nil
}

func (h *echoServer) Note(_ *rpc.Context, req *echopb.SayRequest) (*emptypb.Empty, error) {
	record(h.reqs, req)
	record(h.notes, req.GetText())
	return &emptypb.Empty{}, nil
}

func self(ctx *rpc.Context) actor.PID { return ctx.Actor().Self() }

// recv waits up to 5 s for a value on ch.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("nothing received in 5s")
	}
	var zero T
	return zero
}

// ctxTimeout returns a context that ends after d, cancelled at cleanup.
func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
