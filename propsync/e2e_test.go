package propsync_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/grain"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/propsync"
	"github.com/guildkit/guild/propsync/internal/mutate"
	"github.com/guildkit/guild/propsync/internal/testpb"
	"github.com/guildkit/guild/propsync/propsyncpb"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/rpc/rpcpb"
)

// The messages the test's player grain takes from the test itself.
type (
	getState   struct{}
	deactivate struct{}
)

// gameMutate is the method the test's client calls to change its player:
// Stats.hp mutations seeded with Stats.mp.
const gameMutate = "/guild.propsync.test.Game/Mutate"

// playerKind is a synced kind of grain whose state is a testpb.Player.
func playerKind() grain.Kind {
	return grain.Kind{
		Name:        "player",
		IdleTimeout: time.Hour,
		State:       func() any { return &testpb.Player{} },
		Sync:        &grain.SyncOptions{Private: []protoreflect.FullName{notePrivate}},
		New: func(grain.Identity) grain.Actor {
			return grain.ActorFunc(func(c *grain.Context) {
				st := c.State().(*testpb.Player)
				switch m := c.Message().(type) {
				case *rpcpb.Call:
					var req testpb.Stats
					if m.GetMethod() != gameMutate || proto.Unmarshal(m.GetBody(), &req) != nil {
						c.Respond(&rpcpb.Status{Code: 3, Message: "bad request"})
						return
					}
					mu := mutate.Mutator{R: rand.New(rand.NewPCG(uint64(req.GetMp()), 2))}
					for range req.GetHp() {
						mu.Mutate(st)
					}
					c.Respond(&testpb.Stats{})
				case getState:
					c.Respond(propsync.NewDiffer(notePrivate).Redact(st))
				case deactivate:
					c.Deactivate()
					c.Respond(m)
				}
			})
		},
	}
}

// syncClient is a client with a replica of its player, fed by pushes.
type syncClient struct {
	c       *client.Client
	mu      sync.Mutex
	replica *propsync.Replica
	gaps    int
	leaks   []string
}

func newSyncClient(t *testing.T, url string, replica *propsync.Replica) *syncClient {
	t.Helper()
	return newSyncClientAs(t, url, "u1", replica)
}

// newSyncClientAs is newSyncClient for the user user.
func newSyncClientAs(t *testing.T, url, user string, replica *propsync.Replica) *syncClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{Addr: url, Token: user})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	sc := &syncClient{c: c, replica: replica}
	c.OnPush(propsync.DefaultRoute, func(body []byte) {
		sc.mu.Lock()
		defer sc.mu.Unlock()
		if leak := privateIn(body); leak != "" {
			sc.leaks = append(sc.leaks, leak)
		}
		if err := sc.replica.ApplyPush(body); errors.Is(err, propsync.ErrGap) {
			sc.gaps++
		} else if err != nil {
			sc.leaks = append(sc.leaks, "a bad push: "+err.Error())
		}
	})
	return sc
}

// privateIn names the private value in b, or returns "".
func privateIn(b []byte) string {
	switch {
	case bytes.Contains(b, []byte(secretMarker)):
		return "secret"
	case bytes.Contains(b, []byte(noteMarker)):
		return "note"
	case bytes.Contains(b, binary.AppendUvarint(nil, hiddenHP)):
		return "hidden"
	}
	return ""
}

// subscribe asks for a snapshot and applies it.
func (sc *syncClient) subscribe(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body, err := proto.Marshal(&propsyncpb.Subscribe{})
	if err != nil {
		t.Fatal(err)
	}
	sc.mu.Lock()
	sc.replica.Desync() // hold what overtakes the snapshot
	sc.mu.Unlock()
	reply, err := sc.c.RequestRaw(ctx, "sync.Subscribe", body)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if leak := privateIn(reply); leak != "" {
		t.Fatalf("the snapshot holds the private field %s", leak)
	}
	var snap propsyncpb.Delta
	if err := proto.Unmarshal(reply, &snap); err != nil || !snap.GetIsSnapshot() {
		t.Fatalf("subscribe answered %v, %v", &snap, err)
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if err := sc.replica.Apply(&snap); err != nil {
		t.Fatal(err)
	}
}

func (sc *syncClient) mutate(t *testing.T, n, seed int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sc.c.Request(ctx, "game.Mutate", &testpb.Stats{Hp: n, Mp: seed}, nil); err != nil {
		t.Fatalf("mutate: %v", err)
	}
}

// TestPropertySyncEndToEnd runs a synced player grain behind a gateway
// on real sockets and the Go client: the client subscribes, changes its
// player through requests, and its replica must equal the server's state
// (private fields removed) after every change; no private value ever
// reaches it; after a reconnection, and after the grain deactivated (its
// subscribers told by the end notice), the client subscribes again and
// is equal again.
func TestPropertySyncEndToEnd(t *testing.T) {
	node, err := actor.NewNode(actor.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sys, err := grain.Start(ctx, grain.Config{
		Node:  node,
		Kinds: []grain.Kind{playerKind()},
		Push: func(session, route string, msg proto.Message) error {
			return gate.Push(node, session, route, msg)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sys.Close(context.Background()) })
	syncEndToEnd(t, newGateway(t, node, sys), sys)
}

// newGateway starts a gateway on node with the routes of the end-to-end
// tests, listening on TCP, and returns its client address.
func newGateway(t *testing.T, node *actor.Node, grains *grain.System) string {
	t.Helper()
	g, err := gate.New(gate.Config{
		Node:   node,
		Grains: grains,
		Routes: map[string]gate.Route{
			"sync":  gate.UserGrain("player", propsync.Service),
			"game":  gate.UserGrain("player", "guild.propsync.test.Game"),
			"watch": gate.SyncGrain("player"),
			// The gateway refuses what the grain would, before activating
			// it; a panic in the check counts as no.
			"guarded": gate.SyncGrain("player").WatchedBy(func(user, key string) bool {
				if key == "boom" {
					panic("a bug in the game's check")
				}
				return user == key || user == "friend"
			}),
		},
		Auth:   func(_ context.Context, token string) (string, error) { return token, nil },
		Limits: gate.Limits{Rate: 100000, Burst: 100000},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	addr, err := g.ListenTCP("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	return "tcp://" + addr.String()
}

// syncEndToEnd is the scenario of the end-to-end tests: a client of the
// gateway at url, the player grain hosted by host.
func syncEndToEnd(t *testing.T, url string, host *grain.System) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sys := host
	id := grain.Identity{Kind: "player", Key: "u1"}
	server := func() proto.Message {
		r, err := sys.Call(ctx, id, getState{})
		if err != nil {
			t.Fatal(err)
		}
		return r.(proto.Message)
	}
	equal := func(sc *syncClient, what string) {
		t.Helper()
		want := server()
		await.True(t, 10*time.Second, what, func() bool {
			sc.mu.Lock()
			defer sc.mu.Unlock()
			return proto.Equal(sc.replica.State(), want)
		})
		sc.mu.Lock()
		defer sc.mu.Unlock()
		if len(sc.leaks) > 0 {
			t.Fatalf("pushes: %q", sc.leaks)
		}
	}
	seed := int32(seed(t) % (1 << 30))
	replica := propsync.NewReplica(&testpb.Player{})
	sc := newSyncClient(t, url, replica)
	sc.mutate(t, 20, seed)
	sc.subscribe(t)
	equal(sc, "the snapshot")
	for i := range int32(150) {
		sc.mutate(t, 1+i%4, seed+i)
		equal(sc, "the replica after a turn")
	}

	// The client goes; its session ends, and the grain drops it.
	_ = sc.c.Close()
	sc = newSyncClient(t, url, replica)
	sc.mutate(t, 30, seed-1)
	sc.subscribe(t)
	equal(sc, "the replica after a reconnection")
	for i := range int32(30) {
		sc.mutate(t, 3, seed+1000+i)
		equal(sc, "the replica after a reconnection and a turn")
	}

	// The grain deactivates: the client hears of the end, subscribes
	// again (to the next activation) and is equal again.
	if _, err := sys.Call(ctx, id, deactivate{}); err != nil {
		t.Fatal(err)
	}
	await.True(t, 10*time.Second, "the end notice", func() bool {
		sc.mu.Lock()
		defer sc.mu.Unlock()
		return sc.gaps > 0 && !sc.replica.Synced()
	})
	sc.mutate(t, 5, seed+2000) // activates the grain again
	sc.subscribe(t)
	equal(sc, "the replica after the grain came back")
	for i := range int32(30) {
		sc.mutate(t, 2, seed+3000+i)
		equal(sc, "the replica after the grain came back and a turn")
	}
}

// TestPropertySyncEndToEndCluster is TestPropertySyncEndToEnd with the
// gateway and the grain on two nodes of a cluster (loopback TCP): the
// subscribe and the requests cross the mesh to the grain, the pushes
// cross it back to the session, and the grain watches a session on
// another node.
func TestPropertySyncEndToEndCluster(t *testing.T) {
	ms := cluster.NewMemory()
	start := func(index int, kinds []grain.Kind) (*actor.Node, *grain.System) {
		addr := actor.MustAddr(1, 1, index)
		m := ms.Membership(addr)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n, err := cluster.Start(ctx, cluster.NodeConfig{
			Actor: actor.Config{Addr: addr}, Listen: "127.0.0.1:0", Membership: m,
			Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		sys, err := grain.Start(ctx, grain.Config{
			Node: n.Actor(), Membership: m, Kinds: kinds,
			Push: func(session, route string, msg proto.Message) error {
				return gate.Push(n.Actor(), session, route, msg)
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = sys.Close(ctx)
			_ = n.Close()
			_ = m.Close()
		})
		return n.Actor(), sys
	}
	gateNode, front := start(1, nil)
	_, back := start(2, []grain.Kind{playerKind()})
	await.True(t, 10*time.Second, "the gateway's node reaches the player kind", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := front.ResolveGrain(ctx, "player", "probe")
		return err == nil
	})
	syncEndToEnd(t, newGateway(t, gateNode, front), back)

	// System.Subscribe from the gateway's node: the grain's refusal
	// crosses the mesh with its code.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	session := actor.PID{Node: gateNode.Addr(), Serial: 99}.String()
	if _, err := front.Subscribe(ctx, "player/u1", session, "stranger"); rpc.CodeOf(err) != rpc.PermissionDenied {
		t.Fatalf("a stranger subscribes through another node: %v, want PermissionDenied", err)
	}
}

// TestPropertySyncWatchOthers subscribes a client to another user's
// synced grain through a gate.SyncGrain route: a friend (whom the kind's
// MaySubscribe lets in) gets the snapshot and then the owner's changes,
// and its replica equals the owner's state after each; a stranger is
// refused with PermissionDenied, and an entity of another kind, or a body
// that is not a Subscribe, gets InvalidArgument; a route with WatchedBy
// refuses at the gateway, activating no grain; after an Unsubscribe the
// friend gets no more deltas. WatchedBy on another kind of route is a
// configuration error.
func TestPropertySyncWatchOthers(t *testing.T) {
	node, err := actor.NewNode(actor.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kind := playerKind()
	sync := *kind.Sync
	sync.MaySubscribe = func(id grain.Identity, user string) bool { return user == id.Key || user == "friend" }
	kind.Sync = &sync
	sys, err := grain.Start(ctx, grain.Config{
		Node:  node,
		Kinds: []grain.Kind{kind},
		Push: func(session, route string, msg proto.Message) error {
			return gate.Push(node, session, route, msg)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sys.Close(context.Background()) })
	url := newGateway(t, node, sys)
	if _, err := gate.New(gate.Config{Node: node, Grains: sys, Routes: map[string]gate.Route{
		"x": gate.UserGrain("player", propsync.Service).WatchedBy(func(string, string) bool { return true }),
	}}); !errors.Is(err, gate.ErrBadConfig) {
		t.Fatalf("WatchedBy on a UserGrain route: %v, want ErrBadConfig", err)
	}

	owner := newSyncClient(t, url, propsync.NewReplica(&testpb.Player{}))
	seed := int32(seed(t) % (1 << 30))
	owner.mutate(t, 10, seed)
	dial := func(user string) *syncClient {
		t.Helper()
		return newSyncClientAs(t, url, user, propsync.NewReplica(&testpb.Player{}))
	}
	watch := func(sc *syncClient, method string, body []byte) ([]byte, error) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return sc.c.RequestRaw(ctx, "watch."+method, body)
	}
	subscribe, _ := proto.Marshal(&propsyncpb.Subscribe{Entity: "player/u1"})

	friend := dial("friend")
	friend.mu.Lock()
	friend.replica.Desync()
	friend.mu.Unlock()
	reply, err := watch(friend, "Subscribe", subscribe)
	if err != nil {
		t.Fatalf("the friend's subscribe: %v", err)
	}
	var snap propsyncpb.Delta
	if err := proto.Unmarshal(reply, &snap); err != nil || !snap.GetIsSnapshot() || snap.GetEntity() != "player/u1" {
		t.Fatalf("the friend's subscribe answered %v, %v", &snap, err)
	}
	friend.mu.Lock()
	err = friend.replica.Apply(&snap)
	friend.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	id := grain.Identity{Kind: "player", Key: "u1"}
	state := func() proto.Message {
		r, err := sys.Call(ctx, id, getState{})
		if err != nil {
			t.Fatal(err)
		}
		return r.(proto.Message)
	}
	for i := range int32(40) {
		owner.mutate(t, 1+i%3, seed+i)
		want := state()
		await.True(t, 10*time.Second, "the friend's replica equals the owner's state", func() bool {
			friend.mu.Lock()
			defer friend.mu.Unlock()
			return proto.Equal(friend.replica.State(), want)
		})
	}

	stranger := dial("stranger")
	if _, err := watch(stranger, "Subscribe", subscribe); rpc.CodeOf(err) != rpc.PermissionDenied {
		t.Fatalf("a stranger's subscribe: %v, want PermissionDenied", err)
	}
	other, _ := proto.Marshal(&propsyncpb.Subscribe{Entity: "guild/u1"})
	for name, body := range map[string][]byte{"another kind": other, "no entity": nil, "not a Subscribe": {0xff, 0xff}} {
		if _, err := watch(friend, "Subscribe", body); rpc.CodeOf(err) != rpc.InvalidArgument {
			t.Fatalf("%s: %v, want InvalidArgument", name, err)
		}
	}

	// A refused Subscribe through the plain route activates the grain it
	// names (the grain's MaySubscribe refuses it); through the guarded
	// route (WatchedBy) the gateway refuses it and nothing is activated.
	active := func() int { return sys.ActiveByKind()["player"] }
	before := active()
	nobody, _ := proto.Marshal(&propsyncpb.Subscribe{Entity: "player/nobody"})
	if _, err := watch(stranger, "Subscribe", nobody); rpc.CodeOf(err) != rpc.PermissionDenied {
		t.Fatalf("a stranger's subscribe to nobody: %v, want PermissionDenied", err)
	}
	if active() != before+1 {
		t.Fatalf("the plain route: %d active players, want %d (the grain activated, then refused)", active(), before+1)
	}
	guarded := func(sc *syncClient, body []byte) error {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := sc.c.RequestRaw(ctx, "guarded.Subscribe", body)
		return err
	}
	nobody2, _ := proto.Marshal(&propsyncpb.Subscribe{Entity: "player/nobody2"})
	boom, _ := proto.Marshal(&propsyncpb.Subscribe{Entity: "player/boom"})
	for name, body := range map[string][]byte{"nobody2": nobody2, "boom (the check panics)": boom} {
		if err := guarded(stranger, body); rpc.CodeOf(err) != rpc.PermissionDenied {
			t.Fatalf("the guarded route, %s: %v, want PermissionDenied", name, err)
		}
	}
	if active() != before+1 {
		t.Fatalf("the guarded route activated a grain: %d active players, want %d", active(), before+1)
	}
	if err := guarded(friend, subscribe); err != nil {
		t.Fatalf("the friend through the guarded route: %v", err)
	}
	// The rule holds for Unsubscribe too, which would activate the grain
	// it names as well.
	{
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		unsub, _ := proto.Marshal(&propsyncpb.Unsubscribe{Entity: "player/nobody3"})
		_, err := stranger.c.RequestRaw(ctx, "guarded.Unsubscribe", unsub)
		cancel()
		if rpc.CodeOf(err) != rpc.PermissionDenied || active() != before+1 {
			t.Fatalf("an Unsubscribe the rule refuses: %v, %d active players (want PermissionDenied, %d)", err, active(), before+1)
		}
	}
	// Only Subscribe and Unsubscribe go through a SyncGrain route, and a
	// grain answers the other methods of the sync service itself (the
	// game's code never sees them).
	if _, err := watch(friend, "Poke", subscribe); rpc.CodeOf(err) != rpc.Unimplemented {
		t.Fatalf("watch.Poke: %v, want Unimplemented", err)
	}
	{
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := owner.c.RequestRaw(ctx, "sync.Poke", nil)
		cancel()
		if rpc.CodeOf(err) != rpc.Unimplemented {
			t.Fatalf("sync.Poke to the owner's grain: %v, want Unimplemented", err)
		}
	}

	unsubscribe, _ := proto.Marshal(&propsyncpb.Unsubscribe{Entity: "player/u1"})
	if _, err := watch(friend, "Unsubscribe", unsubscribe); err != nil {
		t.Fatalf("the friend's unsubscribe: %v", err)
	}
	friend.mu.Lock()
	version := friend.replica.Version()
	friend.mu.Unlock()
	owner.mutate(t, 5, seed-7)
	// The owner subscribes after its change: its snapshot is taken after
	// the turn's push to the friend's session, if any. A request of the
	// friend's after that is answered by its session after it forwarded
	// the push: by its reply the friend would have had the delta.
	owner.subscribe(t)
	if _, err := watch(friend, "Subscribe", other); rpc.CodeOf(err) != rpc.InvalidArgument {
		t.Fatalf("another kind: %v, want InvalidArgument", err)
	}
	friend.mu.Lock()
	defer friend.mu.Unlock()
	if friend.replica.Version() != version {
		t.Fatalf("the friend got deltas after its unsubscribe: version %d, was %d", friend.replica.Version(), version)
	}
	if len(friend.leaks) > 0 || friend.gaps > 0 {
		t.Fatalf("pushes: %q, %d gaps", friend.leaks, friend.gaps)
	}
}
