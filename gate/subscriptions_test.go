package gate_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/grain/grainpb"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/propsync/propsyncpb"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/rpc/rpcpb"
)

// The property-sync routes' names in these tests (package gate does not
// import package propsync, nor do its tests).
const (
	syncService = "guild.propsync.Sync"
	deltaRoute  = "propsync"
	markRoute   = "mark"
)

// How a fakeGrains' grain answers Unsubscribe.
const (
	unsubAnswer  = iota // it drops the subscriber and answers
	unsubDeaf           // it never answers, and keeps the subscriber
	unsubFail           // it answers Unavailable, and keeps the subscriber
	unsubRefused        // it answers a grainpb.Refused (retry), as an activation that cannot prove its lease does, and keeps the subscriber
)

// fakeGrains stands in for a grain.System behind the gateway's
// property-sync routes: each grain (one actor per entity, made when first
// resolved) answers Subscribe with a snapshot and keeps its subscribers by
// session; the test pushes them deltas with push. Unsubscribe is answered
// as unsub says.
type fakeGrains struct {
	n      *actor.Node
	unsub  atomic.Int32
	refuse atomic.Bool  // the route "guarded"'s WatchedBy says no
	slow   atomic.Int64 // nanoseconds a Subscribe waits before the grain takes it
	mu     sync.Mutex   // guards grains, and each grain's subs
	grain  map[string]*fakeGrain
}

type fakeGrain struct {
	entity string
	pid    actor.PID
	subs   map[string]string // session → user
	unsubs atomic.Int32      // Unsubscribes received
	// Unsubscribes answered: the answer is in the session's mailbox, so
	// a push sent after this is seen counts comes after it.
	unsubsAnswered atomic.Int32
}

func newFakeGrains(n *actor.Node) *fakeGrains {
	return &fakeGrains{n: n, grain: make(map[string]*fakeGrain)}
}

// ResolveGrain implements rpc.GrainResolver.
func (f *fakeGrains) ResolveGrain(_ context.Context, kind, key string) (actor.PID, error) {
	entity := kind + "/" + key
	f.mu.Lock()
	defer f.mu.Unlock()
	if g := f.grain[entity]; g != nil {
		return g.pid, nil
	}
	g := &fakeGrain{entity: entity, subs: make(map[string]string)}
	pid, err := f.n.SpawnFunc(func(c *actor.Context) { f.receive(c, g) })
	if err != nil {
		return actor.PID{}, err
	}
	g.pid = pid
	f.grain[entity] = g
	return pid, nil
}

func (f *fakeGrains) receive(c *actor.Context, g *fakeGrain) {
	call, ok := c.Message().(*rpcpb.Call)
	if !ok {
		return
	}
	session, user := c.Metadata().Get(gate.MetadataSessionID), c.Metadata().Get(gate.MetadataUserID)
	switch call.GetMethod() {
	case rpc.FullMethodName(syncService, "Subscribe"):
		if d := f.slow.Load(); d > 0 {
			time.Sleep(time.Duration(d))
		}
		f.mu.Lock()
		g.subs[session] = user
		f.mu.Unlock()
		c.Respond(&propsyncpb.Delta{Entity: g.entity, Version: 1, IsSnapshot: true})
	case rpc.FullMethodName(syncService, "Unsubscribe"):
		g.unsubs.Add(1)
		switch f.unsub.Load() {
		case unsubDeaf:
		case unsubFail:
			c.Respond(&rpcpb.Status{Code: uint32(rpc.Unavailable), Message: "busy"})
			g.unsubsAnswered.Add(1)
		case unsubRefused:
			c.Respond(&grainpb.Refused{Code: uint32(rpc.Unavailable), Message: "cannot prove its lease", Retry: true})
			g.unsubsAnswered.Add(1)
		default:
			// The answer first: once the test sees the subscriber gone,
			// the session has the answer in its mailbox.
			c.Respond(&propsyncpb.Unsubscribe{Entity: g.entity})
			f.mu.Lock()
			delete(g.subs, session)
			f.mu.Unlock()
			g.unsubsAnswered.Add(1)
		}
	}
}

// get returns the grain of entity, which must have been resolved.
func (f *fakeGrains) get(t *testing.T, entity string) *fakeGrain {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	g := f.grain[entity]
	if g == nil {
		t.Fatalf("no grain %s", entity)
	}
	return g
}

// subscribers returns how many sessions entity's grain holds.
func (f *fakeGrains) subscribers(t *testing.T, entity string) int {
	g := f.get(t, entity)
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(g.subs)
}

// push pushes d to every subscriber of d's grain, as the grain would.
func (f *fakeGrains) push(t *testing.T, d *propsyncpb.Delta) {
	t.Helper()
	g := f.get(t, d.GetEntity())
	f.mu.Lock()
	sessions := make([]string, 0, len(g.subs))
	for s := range g.subs {
		sessions = append(sessions, s)
	}
	f.mu.Unlock()
	for _, s := range sessions {
		if err := gate.Push(f.n, s, deltaRoute, d); err != nil {
			t.Fatal(err)
		}
	}
}

// syncTestClient is a client of a gateway with property-sync routes over
// fakeGrains, which records the deltas pushed to it.
type syncTestClient struct {
	c      *client.Client
	deltas chan *propsyncpb.Delta
	marks  chan string
}

// syncGate starts a node, fakeGrains, and a gateway with the routes
// "chat" (chatService: Login binds the session to another user), "watch"
// (SyncGrain("fake")), "guarded" (the same, WatchedBy a rule that says
// no while fakeGrains.refuse is set) and "sync" (UserGrain("fake",
// guild.propsync.Sync)), and dials it as user.
func syncGate(t *testing.T, lim gate.Limits, user string) (*fakeGrains, *syncTestClient) {
	t.Helper()
	n := newNode(t)
	fg := newFakeGrains(n)
	newG := func(routes map[string]gate.Route) (*gate.Gateway, error) {
		return gate.New(gate.Config{
			Node: n, Grains: fg, Routes: routes, Limits: lim,
			Auth: func(_ context.Context, token string) (string, error) { return token, nil },
		})
	}
	if _, err := newG(map[string]gate.Route{"chat": gate.To(rpc.To(actor.PID{Serial: 1})).DeltasOn("x")}); !errors.Is(err, gate.ErrBadConfig) {
		t.Fatalf("DeltasOn on a route that does not sync: %v, want ErrBadConfig", err)
	}
	g, err := newG(map[string]gate.Route{
		"chat":    gate.To(rpc.To(serve(t, n, chatService("chat")))),
		"watch":   gate.SyncGrain("fake"),
		"guarded": gate.SyncGrain("fake").WatchedBy(func(string, string) bool { return !fg.refuse.Load() }),
		"sync":    gate.UserGrain("fake", syncService),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	url, _ := listenTCP(t, g)
	sc := &syncTestClient{c: dial(t, client.Config{Addr: url, Token: user}), deltas: make(chan *propsyncpb.Delta, 100), marks: make(chan string, 10)}
	sc.c.OnPush(deltaRoute, func(body []byte) {
		d := new(propsyncpb.Delta)
		if err := proto.Unmarshal(body, d); err != nil {
			t.Errorf("a push on %s: %v", deltaRoute, err)
		}
		sc.deltas <- d
	})
	sc.c.OnPush(markRoute, func(body []byte) {
		var m wrapperspb.StringValue
		_ = proto.Unmarshal(body, &m)
		sc.marks <- m.GetValue()
	})
	return fg, sc
}

// subscribe calls route.Subscribe for entity and checks the snapshot.
func (sc *syncTestClient) subscribe(t *testing.T, route, entity string) error {
	t.Helper()
	var snap propsyncpb.Delta
	err := sc.c.Request(testCtx(t), route+".Subscribe", &propsyncpb.Subscribe{Entity: entity}, &snap)
	if err == nil && (!snap.GetIsSnapshot() || entity != "" && snap.GetEntity() != entity) {
		t.Fatalf("%s.Subscribe %q answered %v", route, entity, &snap)
	}
	return err
}

// unsubscribe calls route.Unsubscribe for entity.
func (sc *syncTestClient) unsubscribe(t *testing.T, route, entity string) error {
	t.Helper()
	return sc.c.Request(testCtx(t), route+".Unsubscribe", &propsyncpb.Unsubscribe{Entity: entity}, nil)
}

// endNotice waits for the next push, which must be the end notice of
// entity.
func (sc *syncTestClient) endNotice(t *testing.T, entity string) {
	t.Helper()
	d := recv(t, sc.deltas, "the end notice of "+entity)
	if d.GetEntity() != entity || d.GetIsSnapshot() || d.GetVersion() != 0 || d.GetBase() != 0 || len(d.GetOps()) != 0 {
		t.Fatalf("got %v, want the end notice of %s", d, entity)
	}
}

// noDeltas checks that the client got no push on the deltas' route before
// a push on markRoute sent now to session: pushes sent before it to the
// session (from this goroutine) have come by then.
func (sc *syncTestClient) noDeltas(t *testing.T, n *actor.Node, session string) {
	t.Helper()
	if err := gate.Push(n, session, markRoute, wrapperspb.String("mark")); err != nil {
		t.Fatal(err)
	}
	recv(t, sc.marks, "the mark")
	select {
	case d := <-sc.deltas:
		t.Fatalf("the client got %v", d)
	default:
	}
}

// TestSyncRebindEndsSubscriptions: a session bound to another user
// (Session.Bind, here chat.Login) has its subscriptions ended: each grain
// gets the Unsubscribe and holds the session no more, and the client gets
// each one's end notice before the login's reply. The new user subscribes
// again as itself.
func TestSyncRebindEndsSubscriptions(t *testing.T) {
	fg, sc := syncGate(t, gate.Limits{}, "u1")
	if err := sc.subscribe(t, "sync", ""); err != nil {
		t.Fatal(err)
	}
	if err := sc.subscribe(t, "watch", "fake/x"); err != nil {
		t.Fatal(err)
	}
	mustCall(t, sc.c, "chat.Login", "u2", "u2")
	got := map[string]bool{}
	for range 2 {
		d := recv(t, sc.deltas, "the end notices")
		if d.GetVersion() != 0 || d.GetIsSnapshot() {
			t.Fatalf("got %v, want an end notice", d)
		}
		got[d.GetEntity()] = true
	}
	if !got["fake/u1"] || !got["fake/x"] {
		t.Fatalf("end notices of %v, want fake/u1 and fake/x", got)
	}
	for _, e := range []string{"fake/u1", "fake/x"} {
		await.True(t, waitTimeout, e+" to hold the session no more", func() bool { return fg.subscribers(t, e) == 0 })
	}
	if err := sc.subscribe(t, "watch", "fake/x"); err != nil {
		t.Fatal(err)
	}
	fg.mu.Lock()
	user := fg.grain["fake/x"].subs
	var who string
	for _, u := range user {
		who = u
	}
	fg.mu.Unlock()
	if who != "u2" {
		t.Fatalf("the new subscription is %q's, want u2's", who)
	}
	fg.push(t, &propsyncpb.Delta{Entity: "fake/x", Version: 2, Base: 1})
	if d := recv(t, sc.deltas, "the new user's delta"); d.GetVersion() != 2 {
		t.Fatalf("got %v, want version 2", d)
	}
}

// TestSyncRebindDropsDeltasOfALostUnsubscribe: when a grain does not
// confirm the Unsubscribe the session sent it as its user changed (never
// answered, or answered with an error), and goes on pushing the session,
// the session drops those deltas: nothing of the former user's
// subscriptions reaches the new user.
func TestSyncRebindDropsDeltasOfALostUnsubscribe(t *testing.T) {
	for name, mode := range map[string]int32{"deaf": unsubDeaf, "failing": unsubFail, "refused": unsubRefused} {
		t.Run(name, func(t *testing.T) {
			fg, sc := syncGate(t, gate.Limits{}, "u1")
			fg.unsub.Store(mode)
			if err := sc.subscribe(t, "watch", "fake/x"); err != nil {
				t.Fatal(err)
			}
			mustCall(t, sc.c, "chat.Login", "u2", "u2")
			sc.endNotice(t, "fake/x")
			g := fg.get(t, "fake/x")
			await.True(t, waitTimeout, "the grain to get the Unsubscribe", func() bool { return g.unsubs.Load() >= 1 })
			if mode != unsubDeaf {
				// Its answer first (a refusal was once taken for a
				// confirmation, and the deltas let through).
				await.True(t, waitTimeout, "the grain to answer the Unsubscribe", func() bool { return g.unsubsAnswered.Load() >= 1 })
			}
			if n := fg.subscribers(t, "fake/x"); n != 1 {
				t.Fatalf("the grain holds %d sessions, want the one it did not let go", n)
			}
			var session string
			fg.mu.Lock()
			for s := range g.subs {
				session = s
			}
			fg.mu.Unlock()
			for v := range uint64(3) {
				fg.push(t, &propsyncpb.Delta{Entity: "fake/x", Version: v + 2, Base: v + 1})
			}
			sc.noDeltas(t, fg.n, session)
		})
	}
}

// TestSyncMaxSubscriptions: a session holds at most
// Limits.MaxSubscriptions subscriptions: a Subscribe of one more grain
// gets ResourceExhausted, one of a grain it holds does not; an
// Unsubscribe, or the grain's end notice, frees a slot. A negative bound
// is a configuration error.
func TestSyncMaxSubscriptions(t *testing.T) {
	if _, err := gate.New(gate.Config{Node: newNode(t), Limits: gate.Limits{MaxSubscriptions: -1}}); !errors.Is(err, gate.ErrBadConfig) {
		t.Fatalf("MaxSubscriptions -1: %v, want ErrBadConfig", err)
	}
	fg, sc := syncGate(t, gate.Limits{MaxSubscriptions: 3}, "u1")
	for _, e := range []string{"fake/a", "fake/b"} {
		if err := sc.subscribe(t, "watch", e); err != nil {
			t.Fatal(err)
		}
	}
	if err := sc.subscribe(t, "sync", ""); err != nil { // fake/u1
		t.Fatal(err)
	}
	wantCode(t, "a 4th subscription", sc.subscribe(t, "watch", "fake/c"), rpc.ResourceExhausted)
	if err := sc.subscribe(t, "watch", "fake/a"); err != nil {
		t.Fatalf("a subscription held already: %v", err)
	}
	if err := sc.subscribe(t, "watch", "fake/u1"); err != nil {
		t.Fatalf("the own grain through the other route: %v", err)
	}
	if err := sc.unsubscribe(t, "watch", "fake/b"); err != nil {
		t.Fatal(err)
	}
	if err := sc.subscribe(t, "watch", "fake/c"); err != nil {
		t.Fatalf("after an Unsubscribe: %v", err)
	}
	wantCode(t, "a 4th subscription", sc.subscribe(t, "watch", "fake/d"), rpc.ResourceExhausted)
	fg.push(t, &propsyncpb.Delta{Entity: "fake/a"}) // fake/a's end notice
	sc.endNotice(t, "fake/a")
	if err := sc.subscribe(t, "watch", "fake/d"); err != nil {
		t.Fatalf("after an end notice: %v", err)
	}
	if err := sc.unsubscribe(t, "sync", ""); err != nil {
		t.Fatal(err)
	}
	if err := sc.subscribe(t, "watch", "fake/e"); err != nil {
		t.Fatalf("after an Unsubscribe through the UserGrain route: %v", err)
	}
}

// TestSyncUnsubscribeOfAHeldGrain: an Unsubscribe of a grain the session
// holds passes a WatchedBy rule that no longer lets its user watch it
// (freeing the slot must not depend on the rule); one of a grain it does
// not hold is refused by the rule, as a Subscribe is.
func TestSyncUnsubscribeOfAHeldGrain(t *testing.T) {
	fg, sc := syncGate(t, gate.Limits{MaxSubscriptions: 1}, "u1")
	if err := sc.subscribe(t, "guarded", "fake/x"); err != nil {
		t.Fatal(err)
	}
	fg.refuse.Store(true)
	wantCode(t, "a Subscribe the rule refuses", sc.subscribe(t, "guarded", "fake/y"), rpc.PermissionDenied)
	wantCode(t, "an Unsubscribe of a grain not held", sc.unsubscribe(t, "guarded", "fake/y"), rpc.PermissionDenied)
	if err := sc.unsubscribe(t, "guarded", "fake/x"); err != nil {
		t.Fatalf("the Unsubscribe of the grain held: %v", err)
	}
	await.True(t, waitTimeout, "the grain to let the session go", func() bool { return fg.subscribers(t, "fake/x") == 0 })
	if err := sc.subscribe(t, "watch", "fake/z"); err != nil {
		t.Fatalf("the slot freed: %v", err)
	}
}

// TestSyncGrainGoneEndsSubscription: when the activation that answered a
// Subscribe ends without its end notice (its node crashed: here, its
// actor stops), the gateway pushes the client the end notice itself, and
// the slot is free again.
func TestSyncGrainGoneEndsSubscription(t *testing.T) {
	fg, sc := syncGate(t, gate.Limits{MaxSubscriptions: 1}, "u1")
	if err := sc.subscribe(t, "watch", "fake/x"); err != nil {
		t.Fatal(err)
	}
	if err := fg.n.Stop(fg.get(t, "fake/x").pid); err != nil {
		t.Fatal(err)
	}
	sc.endNotice(t, "fake/x")
	if err := sc.subscribe(t, "watch", "fake/y"); err != nil {
		t.Fatalf("after the grain's end: %v", err)
	}
}

// TestSyncTimedOutSubscribeIsUndone: a Subscribe that times out at the
// gateway (Limits.RequestTimeout) may still be taken by its grain, which
// would then push the session as the user it was made for, while the
// client was told it failed. The session undoes it (an Unsubscribe, which
// the grain takes after the late Subscribe), drops the grain's deltas
// meanwhile, and keeps its slot until the grain confirms: a change of user
// in between leaks nothing, and the bound holds.
func TestSyncTimedOutSubscribeIsUndone(t *testing.T) {
	fg, sc := syncGate(t, gate.Limits{RequestTimeout: 300 * time.Millisecond, MaxSubscriptions: 1}, "u1")
	// Longer than RequestTimeout, and well within the three tries of the
	// Unsubscribe that undoes it (3 × 300ms), even on a slow machine.
	fg.slow.Store(int64(500 * time.Millisecond))
	wantCode(t, "a Subscribe the grain is slow to take", sc.subscribe(t, "watch", "fake/x"), rpc.DeadlineExceeded)
	fg.slow.Store(0)
	wantCode(t, "a second grain while the first may be held", sc.subscribe(t, "watch", "fake/y"), rpc.ResourceExhausted)
	mustCall(t, sc.c, "chat.Login", "u2", "u2")
	g := fg.get(t, "fake/x")
	await.True(t, waitTimeout, "the grain to take the late Subscribe, then the Unsubscribe", func() bool {
		return g.unsubsAnswered.Load() >= 1 && fg.subscribers(t, "fake/x") == 0
	})
	// Nothing reached the client meanwhile (no snapshot, no end notice of
	// a subscription it never had), and the slot is free again.
	var session string
	await.True(t, waitTimeout, "the slot to be free", func() bool {
		err := sc.subscribe(t, "watch", "fake/y")
		if err == nil {
			return true
		}
		if rpc.CodeOf(err) != rpc.ResourceExhausted {
			t.Fatalf("Subscribe fake/y: %v", err)
		}
		return false
	})
	y := fg.get(t, "fake/y")
	fg.mu.Lock()
	for s, u := range y.subs {
		if u != "u2" {
			t.Fatalf("fake/y holds session %s for %q, want u2", s, u)
		}
		session = s
	}
	fg.mu.Unlock()
	sc.noDeltas(t, fg.n, session)
}

// TestSyncLinkLostKeepsSubscription: the watch of a subscribed grain that
// ends with actor.ReasonLinkLost (a partition between the grain's node
// and the gateway's, as the runtime reports it; sent by hand here) does
// not end the subscription: the grain keeps its subscriber in that case
// and pushes it again once the link is back. The session keeps it too
// (once it forgot it, and a change of user then revoked nothing, so the
// former user's deltas reached the new user).
func TestSyncLinkLostKeepsSubscription(t *testing.T) {
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
	// Still subscribed: the grain's deltas reach the client.
	fg.push(t, &propsyncpb.Delta{Entity: "fake/x", Version: 2, Base: 1})
	if d := recv(t, sc.deltas, "the delta after the lost link"); d.GetVersion() != 2 {
		t.Fatalf("got %v, want version 2", d)
	}
	// A change of user ends it, as any subscription of the former user.
	mustCall(t, sc.c, "chat.Login", "u2", "u2")
	sc.endNotice(t, "fake/x")
	await.True(t, waitTimeout, "the grain to let the session go", func() bool { return g.unsubsAnswered.Load() == 1 })
	if n := fg.subscribers(t, "fake/x"); n != 0 {
		t.Fatalf("the grain holds %d sessions after the change of user", n)
	}
	sc.noDeltas(t, fg.n, session)
}

// TestSyncEndNoticePassesRevoked: the grain's own end notice reaches the
// client even while the session drops that grain's deltas (a former
// user's subscription it could not get confirmed as ended): it carries
// nothing of the state, and the client may hold a subscription of its
// present user to the grain, which it ends. The deltas stay dropped.
func TestSyncEndNoticePassesRevoked(t *testing.T) {
	fg, sc := syncGate(t, gate.Limits{}, "u1")
	fg.unsub.Store(unsubDeaf)
	if err := sc.subscribe(t, "watch", "fake/x"); err != nil {
		t.Fatal(err)
	}
	mustCall(t, sc.c, "chat.Login", "u2", "u2")
	sc.endNotice(t, "fake/x") // the gateway's, for the change of user
	g := fg.get(t, "fake/x")
	await.True(t, waitTimeout, "the grain to get the Unsubscribe", func() bool { return g.unsubs.Load() >= 1 })
	var session string
	fg.mu.Lock()
	for s := range g.subs {
		session = s
	}
	fg.mu.Unlock()
	fg.push(t, &propsyncpb.Delta{Entity: "fake/x", Version: 2, Base: 1})
	fg.push(t, &propsyncpb.Delta{Entity: "fake/x"}) // the grain's end notice
	sc.endNotice(t, "fake/x")                       // the delta before it was dropped
	sc.noDeltas(t, fg.n, session)
}
