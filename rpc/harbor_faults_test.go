package rpc_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/rpc/internal/echopb"
	"github.com/guildkit/guild/transport"
)

// TestHarborRPCFaults: a generated client calling a service of another
// cluster through the harbors. The docs: "ctx's deadline travels to the
// handler; ctx's end stops the wait at once"; "a lost peer is Unavailable
// and matches transport.ErrPeerLost, a timeout is DeadlineExceeded";
// cluster/doc.go: "every verb above works so, with the same deadlines and
// errors, and a request whose harbor is lost fails at once".
func TestHarborRPCFaults(t *testing.T) {
	cs := clustertest.StartClusters(t, clustertest.ClustersOptions{Nodes: 2})
	a, b := cs.Each[0], cs.Each[1]
	echo := newEcho(a.Node(0))
	svc, h := serve(t, b.Node(0))  // one service per node: the subtests share it
	settle := func(t *testing.T) { // wait for the service to be free, then forget its calls
		t.Helper()
		if _, err := echo.Say(ctxTimeout(t, 10*time.Second), rpc.To(svc), &echopb.SayRequest{}); err != nil {
			t.Fatal(err)
		}
		for len(h.calls) > 0 {
			<-h.calls
		}
	}

	t.Run("deadline reaches the handler", func(t *testing.T) {
		ctx := ctxTimeout(t, 2*time.Second)
		dl, _ := ctx.Deadline()
		reply, err := echo.Say(ctx, rpc.To(svc), &echopb.SayRequest{Text: "dl"})
		if err != nil {
			t.Fatal(err)
		}
		if diff := reply.GetDeadlineUnixMs() - dl.UnixMilli(); diff < -5 || diff > 5 {
			t.Errorf("handler saw deadline %d, want %d (±5 ms)", reply.GetDeadlineUnixMs(), dl.UnixMilli())
		}
	})

	t.Run("deadline exceeded", func(t *testing.T) {
		ctx := ctxTimeout(t, 500*time.Millisecond)
		start := time.Now()
		_, err := echo.Say(ctx, rpc.To(svc), &echopb.SayRequest{Mode: "sleep", Text: "1s"})
		if d := time.Since(start); d > 900*time.Millisecond {
			t.Errorf("a call past its 500ms deadline returned after %v", d)
		}
		wantCode(t, err, rpc.DeadlineExceeded)
	})

	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		time.AfterFunc(50*time.Millisecond, cancel)
		start := time.Now()
		_, err := echo.Say(ctx, rpc.To(svc), &echopb.SayRequest{Mode: "sleep", Text: "1s"})
		if d := time.Since(start); d > 400*time.Millisecond {
			t.Errorf("a cancelled call returned after %v", d)
		}
		wantCode(t, err, rpc.Canceled)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("errors.Is(%v, context.Canceled) = false", err)
		}
	})

	t.Run("harbor of cluster 2 killed", func(t *testing.T) {
		settle(t)
		done := make(chan error, 1)
		go func() {
			_, err := echo.Say(ctxTimeout(t, 15*time.Second), rpc.To(svc), &echopb.SayRequest{Mode: "sleep", Text: "10s"})
			done <- err
		}()
		recv(t, h.calls)
		killed := -1
		for k := range cs.Harbors {
			if i := cs.Harbor(k); b.Nodes[i].Pending() > 0 {
				killed = i
			}
		}
		if killed < 0 {
			t.Fatal("no harbor of cluster 2 relays the call")
		}
		start := time.Now()
		b.Kill(killed)
		select {
		case err := <-done:
			t.Logf("failed after %v: %v", time.Since(start), err)
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("the call failed %v after its harbor's kill", d)
			}
			wantCode(t, err, rpc.Unavailable)
			if !errors.Is(err, transport.ErrPeerLost) {
				t.Errorf("err = %v, want one matching transport.ErrPeerLost", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the call through the killed harbor neither failed nor was answered")
		}
		// The other harbor carries the next call (once the handler's
		// sleep is over).
		await.True(t, 30*time.Second, "a call through the other harbor", func() bool {
			r, err := echo.Say(ctxTimeout(t, 12*time.Second), rpc.To(svc), &echopb.SayRequest{Text: "again"})
			return err == nil && r.GetText() == "echo:again"
		})
	})

	t.Run("target node killed", func(t *testing.T) {
		svc, h := serve(t, b.Node(1))
		_ = svc
		done := make(chan error, 1)
		go func() {
			_, err := echo.Say(ctxTimeout(t, 15*time.Second), rpc.To(svc), &echopb.SayRequest{Mode: "sleep", Text: "10s"})
			done <- err
		}()
		recv(t, h.calls)
		start := time.Now()
		b.Kill(1)
		select {
		case err := <-done:
			t.Logf("failed after %v: %v", time.Since(start), err)
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("the call failed %v after its target's kill", d)
			}
			wantCode(t, err, rpc.Unavailable)
			if !errors.Is(err, transport.ErrPeerLost) {
				t.Errorf("err = %v, want one matching transport.ErrPeerLost", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the call to the killed node neither failed nor was answered")
		}
		h.wake()
		// A new call to the dead node fails promptly, not at its deadline.
		start = time.Now()
		_, err := echo.Say(ctxTimeout(t, 8*time.Second), rpc.To(svc), &echopb.SayRequest{Text: "dead"})
		d := time.Since(start)
		t.Logf("a call to the dead node: %v after %v", err, d)
		if err == nil {
			t.Fatal("a killed node answered")
		}
		if d > 3*time.Second {
			t.Errorf("a call to the killed node failed after %v, want at once", d)
		}
	})
}

// TestHarborRPCAsync: asynchronous calls through the harbors ("an
// asynchronous call from inside an actor whose callback runs in that
// actor's turn"): a call whose handler outlives the timeout gets exactly
// one callback, DeadlineExceeded, and the late reply brings no second; a
// call whose target node is killed gets exactly one callback,
// Unavailable matching transport.ErrPeerLost, at once.
func TestHarborRPCAsync(t *testing.T) {
	cs := clustertest.StartClusters(t, clustertest.ClustersOptions{Nodes: 2})
	a, b := cs.Each[0], cs.Each[1]
	echo := newEcho(a.Node(0))
	svcSlow, _ := serve(t, b.Node(0))
	svcKill, hk := serve(t, b.Node(1))

	slowPID, slowOut := spawnAsyncCaller(t, a.Node(0), echo, rpc.To(svcSlow), &echopb.SayRequest{Mode: "sleep", Text: "6500ms"})
	killPID, killOut := spawnAsyncCaller(t, a.Node(0), echo, rpc.To(svcKill), &echopb.SayRequest{Mode: "sleep", Text: "20s"})
	start := time.Now()
	if err := a.Node(0).Send(slowPID, "call"); err != nil {
		t.Fatal(err)
	}
	if err := a.Node(0).Send(killPID, "call"); err != nil {
		t.Fatal(err)
	}
	recv(t, hk.calls)
	killAt := time.Now()
	b.Kill(1)
	select {
	case r := <-killOut:
		t.Logf("kill: callback after %v: %v", time.Since(killAt), r.err)
		if d := time.Since(killAt); d > 3*time.Second {
			t.Errorf("the callback came %v after the kill", d)
		}
		wantCode(t, r.err, rpc.Unavailable)
		if !errors.Is(r.err, transport.ErrPeerLost) {
			t.Errorf("err = %v, want one matching transport.ErrPeerLost", r.err)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("no callback for the call to the killed node")
	}
	select {
	case r := <-slowOut:
		d := time.Since(start)
		t.Logf("slow: callback after %v: %v", d, r.err)
		if d < 4500*time.Millisecond || d > 6*time.Second {
			t.Errorf("the timed-out call's callback came after %v, want about its 5s timeout", d)
		}
		wantCode(t, r.err, rpc.DeadlineExceeded)
	case <-time.After(8 * time.Second):
		t.Fatal("no callback for the slow call")
	}
	// The slow handler answers at 6.5s: no second callback, nor a late
	// one for the killed call.
	await.True(t, 10*time.Second, "the slow handler's late answer", func() bool { return time.Since(start) > 7500*time.Millisecond })
	for _, p := range []struct {
		name string
		pid  any
		ch   <-chan asyncResult
	}{{"slow", slowPID, slowOut}, {"kill", killPID, killOut}} {
		select {
		case r := <-p.ch:
			t.Errorf("%s: a second callback: %v, %v", p.name, r.reply, r.err)
		default:
		}
	}
}
