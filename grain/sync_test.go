package grain_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/grain"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/propsync"
	"github.com/guildkit/guild/propsync/propsyncpb"
	"github.com/guildkit/guild/rpc"
)

// pushes records the pushes of a synced kind, by session.
type pushes struct {
	mu   sync.Mutex
	got  map[string][]*propsyncpb.Delta
	fail map[string]bool // sessions whose pushes fail, as if gone
}

func (p *pushes) push(session, route string, msg proto.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if route != propsync.DefaultRoute {
		return errors.New("wrong route " + route)
	}
	if p.fail[session] {
		return errors.New("session gone")
	}
	p.got[session] = append(p.got[session], proto.Clone(msg).(*propsyncpb.Delta))
	return nil
}

func (p *pushes) take(session string) []*propsyncpb.Delta {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.got[session]
	p.got[session] = nil
	return d
}

// syncKind's grains keep a structpb.Struct: a StringValue "k=v" sets a
// field, "deactivate" deactivates.
func syncKind(name string, opts *grain.SyncOptions) grain.Kind {
	return grain.Kind{
		Name:        name,
		IdleTimeout: time.Hour,
		State:       func() any { return &structpb.Struct{Fields: map[string]*structpb.Value{}} },
		Sync:        opts,
		New: func(grain.Identity) grain.Actor {
			return grain.ActorFunc(func(c *grain.Context) {
				m, ok := c.Message().(*wrapperspb.StringValue)
				if !ok {
					return
				}
				st := c.State().(*structpb.Struct)
				if m.Value == "deactivate" {
					c.Deactivate()
				} else if k, v, ok := cut(m.Value); ok {
					st.Fields[k] = structpb.NewStringValue(v)
				}
				c.Respond(m)
			})
		},
	}
}

func cut(s string) (string, string, bool) {
	for i := range s {
		if s[i] == '=' {
			return s[:i], s[i+1:], true
		}
	}
	return "", "", false
}

// syncSetup returns what the sync tests start from: a recorder of
// pushes, a node and a context, all ended with the test.
func syncSetup(t *testing.T) (*pushes, *actor.Node, context.Context) {
	t.Helper()
	node, err := actor.NewNode(actor.Config{Addr: actor.MustAddr(1, 1, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return &pushes{got: map[string][]*propsyncpb.Delta{}, fail: map[string]bool{}}, node, ctx
}

// TestSyncGrain subscribes to a synced grain as a gateway route would, and
// checks the snapshot, the deltas after each turn, who may subscribe, a
// subscriber whose pushes fail, and the end notice of a deactivation.
func TestSyncGrain(t *testing.T) {
	ps, node, ctx := syncSetup(t)
	if _, err := grain.Start(ctx, grain.Config{Node: node, Kinds: []grain.Kind{syncKind("p", &grain.SyncOptions{})}}); !errors.Is(err, grain.ErrBadConfig) {
		t.Fatalf("a synced kind without Config.Push: %v, want ErrBadConfig", err)
	}
	friends := &grain.SyncOptions{MaySubscribe: func(id grain.Identity, user string) bool { return user == "friend-of-"+id.Key }}
	sys, err := grain.Start(ctx, grain.Config{Node: node, Push: ps.push, Kinds: []grain.Kind{syncKind("p", &grain.SyncOptions{}), syncKind("q", friends)}})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close(ctx)
	// Sessions are actors: the grain watches them.
	session := func() string {
		pid, err := node.SpawnFunc(func(*actor.Context) {})
		if err != nil {
			t.Fatal(err)
		}
		return pid.String()
	}
	s1, s2 := session(), session()
	id := grain.Identity{Kind: "p", Key: "u1"}
	subscribe := func(session, user string) (*propsyncpb.Delta, error) {
		r, err := sys.Call(ctx, id, actor.WithMetadata(&propsyncpb.Subscribe{}, actor.NewMetadata("guild-session-id", session, "guild-user-id", user)))
		if err != nil {
			return nil, err
		}
		return r.(*propsyncpb.Delta), nil
	}
	set := func(kv string) {
		if _, err := sys.Call(ctx, id, wrapperspb.String(kv)); err != nil {
			t.Fatal(err)
		}
	}
	set("a=1")
	if _, err := subscribe(s2, "u2"); rpc.CodeOf(err) != rpc.PermissionDenied {
		t.Fatalf("another user subscribes: %v, want PermissionDenied", err)
	}
	// MaySubscribe lets others in, and only them.
	q := grain.Identity{Kind: "q", Key: "u1"}
	for user, want := range map[string]rpc.Code{"friend-of-u1": rpc.OK, "u1": rpc.PermissionDenied, "": rpc.PermissionDenied} {
		_, err := sys.Call(ctx, q, actor.WithMetadata(&propsyncpb.Subscribe{}, actor.NewMetadata("guild-session-id", s2, "guild-user-id", user)))
		if rpc.CodeOf(err) != want {
			t.Errorf("user %q subscribes to %v with MaySubscribe: %v, want %v", user, q, err, want)
		}
	}
	// System.Subscribe, for a game's own route to others' grains.
	if d, err := sys.Subscribe(ctx, "q/u1", s2, "friend-of-u1"); err != nil || !d.GetIsSnapshot() {
		t.Fatalf("System.Subscribe: %v, %v", d, err)
	}
	if err := sys.Unsubscribe(ctx, "q/u1", s2, "friend-of-u1"); err != nil {
		t.Fatal(err)
	}
	if _, err := sys.Subscribe(ctx, "q/u1", s2, "stranger"); rpc.CodeOf(err) != rpc.PermissionDenied {
		t.Fatalf("System.Subscribe of a stranger: %v", err)
	}
	if _, err := sys.Subscribe(ctx, "nokind", s2, "u1"); rpc.CodeOf(err) != rpc.InvalidArgument {
		t.Fatalf("System.Subscribe of a bad entity: %v", err)
	}
	if _, err := sys.Call(ctx, id, &propsyncpb.Subscribe{}); rpc.CodeOf(err) != rpc.InvalidArgument {
		t.Errorf("a subscribe without a session: %v, want InvalidArgument", err)
	}
	snap, err := subscribe(s1, "u1")
	if err != nil {
		t.Fatal(err)
	}
	replica := propsync.NewReplica(&structpb.Struct{})
	if err := replica.Apply(snap); err != nil {
		t.Fatal(err)
	}
	state := &structpb.Struct{Fields: map[string]*structpb.Value{"a": structpb.NewStringValue("1")}}
	if !proto.Equal(replica.State(), state) {
		t.Fatalf("snapshot %v", replica.State())
	}
	for _, kv := range []string{"b=2", "a=3", "a=3", "c=4"} {
		set(kv)
		k, v, _ := cut(kv)
		state.Fields[k] = structpb.NewStringValue(v)
	}
	// A turn's delta is pushed once the turn is over: after its reply.
	await.True(t, 10*time.Second, "three deltas", func() bool {
		ps.mu.Lock()
		defer ps.mu.Unlock()
		return len(ps.got[s1]) >= 3
	})
	set("a=3") // no change: no delta; and the turn before is over
	ds := ps.take(s1)
	if len(ds) != 3 { // "a=3" again: it changed nothing
		t.Fatalf("%d deltas, want 3: %v", len(ds), ds)
	}
	for _, d := range ds {
		if err := replica.Apply(d); err != nil {
			t.Fatal(err)
		}
	}
	if !proto.Equal(replica.State(), state) {
		t.Fatalf("replica %v, want %v", replica.State(), state)
	}
	// A session whose pushes fail is dropped.
	ps.mu.Lock()
	ps.fail[s1] = true
	ps.mu.Unlock()
	set("d=5")
	set("a=3") // the turn of d=5 is over
	ps.mu.Lock()
	ps.fail[s1] = false
	ps.mu.Unlock()
	set("e=6")
	if ds := ps.take(s1); len(ds) != 0 {
		t.Fatalf("a dropped subscriber got %v", ds)
	}
	// Resubscribe, then deactivate: the end notice is a gap.
	snap, err = subscribe(s1, "u1")
	if err != nil {
		t.Fatal(err)
	}
	if err := replica.Apply(snap); err != nil {
		t.Fatal(err)
	}
	set("deactivate")
	await.True(t, 10*time.Second, "the end notice", func() bool {
		ps.mu.Lock()
		defer ps.mu.Unlock()
		return len(ps.got[s1]) > 0
	})
	var gap error
	for _, d := range ps.take(s1) {
		if err := replica.Apply(d); err != nil {
			gap = err
		}
	}
	if !errors.Is(gap, propsync.ErrGap) {
		t.Fatalf("after a deactivation: %v, want ErrGap", gap)
	}
}

// TestSyncMaxSubscribers fills a synced grain's subscriber list
// (SyncOptions.MaxSubscribers) and checks that one more session is
// refused with ResourceExhausted, that a session already subscribed may
// subscribe again, and that a place freed by an Unsubscribe is taken.
func TestSyncMaxSubscribers(t *testing.T) {
	ps, node, ctx := syncSetup(t)
	anyone := func(grain.Identity, string) bool { return true }
	if _, err := grain.Start(ctx, grain.Config{Node: node, Push: ps.push, Kinds: []grain.Kind{syncKind("p", &grain.SyncOptions{MaxSubscribers: -1})}}); !errors.Is(err, grain.ErrBadConfig) {
		t.Fatalf("a negative MaxSubscribers: %v, want ErrBadConfig", err)
	}
	sys, err := grain.Start(ctx, grain.Config{Node: node, Push: ps.push, Kinds: []grain.Kind{syncKind("p", &grain.SyncOptions{MaySubscribe: anyone, MaxSubscribers: 2})}})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close(ctx)
	var sessions []string
	for range 3 {
		pid, err := node.SpawnFunc(func(*actor.Context) {})
		if err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, pid.String())
	}
	for i, want := range []rpc.Code{rpc.OK, rpc.OK, rpc.ResourceExhausted} {
		if _, err := sys.Subscribe(ctx, "p/k", sessions[i], "u"); rpc.CodeOf(err) != want {
			t.Fatalf("session %d subscribes: %v, want %v", i, err, want)
		}
	}
	if _, err := sys.Subscribe(ctx, "p/k", sessions[0], "u"); err != nil {
		t.Fatalf("a session subscribed already subscribes again: %v", err)
	}
	if err := sys.Unsubscribe(ctx, "p/k", sessions[1], "u"); err != nil {
		t.Fatal(err)
	}
	if _, err := sys.Subscribe(ctx, "p/k", sessions[2], "u"); err != nil {
		t.Fatalf("after an Unsubscribe: %v", err)
	}
}
