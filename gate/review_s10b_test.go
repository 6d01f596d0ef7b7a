package gate_test

import (
	"testing"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/propsync/propsyncpb"
	"github.com/guildkit/guild/rpc"
)

// Review s10b #1: a Subscribe that times out at the gateway (RequestTimeout)
// is forgotten by the session (failed -> syncAnswered(ok=false) -> idle ->
// forgetSub), but an actor request is not withdrawn: the grain takes it
// later and holds the session as a subscriber of the *old* user. The
// change of user then revokes nothing, and the old user's deltas reach the
// new user; the subscription takes no slot of Limits.MaxSubscriptions.
func TestReviewTimedOutSubscribeSurvivesRebind(t *testing.T) {
	fg, sc := syncGate(t, gate.Limits{RequestTimeout: 300 * time.Millisecond, MaxSubscriptions: 1}, "u1")
	fg.slow.Store(int64(time.Second))
	wantCode(t, "a Subscribe the grain is slow to take", sc.subscribe(t, "watch", "fake/x"), rpc.DeadlineExceeded)
	fg.slow.Store(0)
	mustCall(t, sc.c, "chat.Login", "u2", "u2")
	await.True(t, waitTimeout, "the grain to take the late Subscribe", func() bool { return fg.subscribers(t, "fake/x") == 1 })
	g := fg.get(t, "fake/x")
	var session, user string
	fg.mu.Lock()
	for s, u := range g.subs {
		session, user = s, u
	}
	fg.mu.Unlock()
	t.Logf("the grain holds session %s for user %q; the session's user is u2", session, user)
	fg.push(t, &propsyncpb.Delta{Entity: "fake/x", Version: 2, Base: 1})
	sc.noDeltas(t, fg.n, session) // fails: u1's delta reaches u2's client
}

// The same hole, without a change of user: the grain holds a
// subscription of the session that takes no slot.
func TestReviewTimedOutSubscribeTakesNoSlot(t *testing.T) {
	fg, sc := syncGate(t, gate.Limits{RequestTimeout: 300 * time.Millisecond, MaxSubscriptions: 1}, "u1")
	fg.slow.Store(int64(time.Second))
	wantCode(t, "a Subscribe the grain is slow to take", sc.subscribe(t, "watch", "fake/x"), rpc.DeadlineExceeded)
	fg.slow.Store(0)
	await.True(t, waitTimeout, "the grain to take the late Subscribe", func() bool { return fg.subscribers(t, "fake/x") == 1 })
	if err := sc.subscribe(t, "watch", "fake/y"); err == nil {
		t.Fatalf("the session holds fake/x and fake/y with MaxSubscriptions 1")
	}
}

// Review s10b #2: an activation that cannot prove its lease (fenceLapsed,
// grain/activation.go refuseFenced) answers any request, the session's
// revoking Unsubscribe too, with a grainpb.Refused, and keeps its
// subscribers. revoke's done takes that reply for a confirmation (syncOK
// only knows *rpcpb.Status), so the session stops dropping the grain's
// deltas: once the lease is proven again, the former user's deltas reach
// the new user.
func TestReviewRefusedRevokeIsNotAConfirmation(t *testing.T) {
	fg, sc := syncGate(t, gate.Limits{}, "u1")
	fg.unsub.Store(unsubRefused)
	if err := sc.subscribe(t, "watch", "fake/x"); err != nil {
		t.Fatal(err)
	}
	mustCall(t, sc.c, "chat.Login", "u2", "u2")
	sc.endNotice(t, "fake/x")
	g := fg.get(t, "fake/x")
	await.True(t, waitTimeout, "the grain to get the Unsubscribe", func() bool { return g.unsubs.Load() == 1 })
	var session string
	fg.mu.Lock()
	for s := range g.subs {
		session = s
	}
	fg.mu.Unlock()
	if session == "" {
		t.Fatal("the grain let the session go")
	}
	time.Sleep(100 * time.Millisecond) // the refusal reaches the session
	fg.push(t, &propsyncpb.Delta{Entity: "fake/x", Version: 2, Base: 1})
	sc.noDeltas(t, fg.n, session) // fails: u1's delta reaches u2's client
}

// Review s10b #3: the session takes any Terminated of the grain it watches
// for the subscription's end, ReasonLinkLost too, and forgets the entry;
// but a grain keeps a subscriber whose watch ends with ReasonLinkLost
// (grain/sync.go terminated) and pushes it again once the link is back. A
// change of user meanwhile revokes nothing, and the former user's deltas
// reach the new user. (The Terminated is sent by hand here, as a
// partition between two nodes would deliver it; the fake grain keeps its
// subscriber, as grain.System does on ReasonLinkLost.)
func TestReviewLinkLostForgetsASubscriptionTheGrainKeeps(t *testing.T) {
	fg, sc := syncGate(t, gate.Limits{}, "u1")
	if err := sc.subscribe(t, "watch", "fake/x"); err != nil {
		t.Fatal(err)
	}
	g := fg.get(t, "fake/x")
	var session string
	fg.mu.Lock()
	for s := range g.subs {
		session = s
	}
	fg.mu.Unlock()
	spid, err := gate.ParseSessionID(session)
	if err != nil {
		t.Fatal(err)
	}
	if err := fg.n.Send(spid, actor.Terminated{PID: g.pid, Reason: actor.ReasonLinkLost}); err != nil {
		t.Fatal(err)
	}
	sc.endNotice(t, "fake/x")
	mustCall(t, sc.c, "chat.Login", "u2", "u2")
	if n := g.unsubs.Load(); n != 0 {
		t.Logf("the grain got %d Unsubscribes", n)
	}
	fg.push(t, &propsyncpb.Delta{Entity: "fake/x", Version: 2, Base: 1})
	sc.noDeltas(t, fg.n, session) // fails: u1's delta reaches u2's client
}
