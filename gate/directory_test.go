package gate_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/rpc"
)

// testSeed returns the seed of a randomized test: GUILD_SEED, or the
// time. It is logged, so that a failure can be replayed.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("GUILD_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("GUILD_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (GUILD_SEED=%d replays it)", seed, seed)
	return seed
}

// roomService serves "room": Join joins the caller's session to group
// <req> (from the backend node), Login binds it to user <req>.
func roomService() *gate.Service {
	svc := gate.NewService("room")
	gate.Handle(svc, "Join", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := gate.JoinGroup(ctx, s.Actor().Node(), req.Value, s.ID()); err != nil {
			return nil, err
		}
		return wrapperspb.String("joined"), nil
	})
	gate.Handle(svc, "Login", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		s.Bind(req.Value)
		return wrapperspb.String(s.UserID()), nil
	})
	return svc
}

// member is one test client in the room: what it received, in order.
type member struct {
	c    *client.Client
	gate int
	user string
	mu   sync.Mutex
	seqs []int // the broadcasts received, in order
	kick chan error
}

func (m *member) received() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.seqs)
}

// TestGroupSurvivesKill kills -9 (clustertest.Kill) the gateway that
// created a group, and runs its directory shard, while a backend
// broadcasts to the group: the group lives on. Three gateways (nodes 0-2)
// and a backend (node 3). Each broadcast carries a sequence number and
// each member records what it gets. The history is then checked: before
// the kill every member got every broadcast; no member ever got one twice
// or out of order; every Broadcast call returned at once, with nil,
// Unavailable or NotFound; once the group's size shows the dead
// gateway's members dropped, every surviving member got every later
// broadcast; and the surviving users are found again by PushUser,
// through shards rebuilt from the gateways.
func TestGroupSurvivesKill(t *testing.T) {
	seed := testSeed(t)
	rnd := rand.New(rand.NewPCG(seed, seed>>1))
	c := clustertest.Start(t, clustertest.Options{Nodes: 4, Types: []int{1, 1, 1, 2}})
	ctx := testCtx(t)
	backend := c.Node(3)
	svc := serve(t, backend, roomService())
	urls := make([]string, 3)
	for i := range 3 {
		g := newGate(t, gate.Config{
			Node:    c.Node(i),
			Members: c.Members[i],
			Routes:  map[string]gate.Route{"room": gate.To(rpc.To(svc))},
			Public:  []string{"room.Join", "room.Login"},
			Limits:  gate.Limits{GroupRate: 10000, GroupBurst: 10000},
		})
		urls[i], _ = listenTCP(t, g)
	}

	// The first member joins on gateway 0 before anything else uses the
	// directory: gateway 0 creates the group's shard.
	const perGate = 5
	var members []*member
	join := func(gw int) *member {
		m := &member{gate: gw, user: fmt.Sprintf("u%d", len(members)), kick: make(chan error, 1)}
		m.c = dial(t, client.Config{Addr: urls[gw], OnClose: func(err error) { m.kick <- err }})
		m.c.OnPush("room.Msg", func(body []byte) {
			seq, _ := strconv.Atoi(decodeString(body))
			m.mu.Lock()
			m.seqs = append(m.seqs, seq)
			m.mu.Unlock()
		})
		mustCall(t, m.c, "room.Join", "room", "joined")
		members = append(members, m)
		return m
	}
	join(0)
	if pid, err := backend.Lookup(ctx, gate.GroupDirName("room")); err != nil || pid.Node != c.Addrs[0] {
		t.Fatalf("the group's shard is %v (%v), want it on node 0 (%v)", pid, err, c.Addrs[0])
	}
	order := []int{}
	for gw := range 3 {
		for range perGate {
			order = append(order, gw)
		}
	}
	order = order[1:]
	rnd.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	for _, gw := range order {
		join(gw)
	}
	for _, m := range members {
		mustCall(t, m.c, "room.Login", m.user, m.user)
	}
	wantGroupSize(t, c, "room", 3*perGate)

	// The broadcaster: one broadcast every millisecond or two, from the
	// backend, each recorded with its result and how long it took.
	type sent struct {
		seq  int
		err  error
		took time.Duration
	}
	var (
		mu      sync.Mutex
		history []sent
		stop    = make(chan struct{})
		done    = make(chan struct{})
	)
	before := 20 + rnd.IntN(50) // broadcasts everybody gets before the kill
	pause := rand.New(rand.NewPCG(seed, seed>>2))
	go func() {
		defer close(done)
		for seq := 1; ; seq++ {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			err := gate.Broadcast(ctx, backend, "room", "room.Msg", wrapperspb.String(strconv.Itoa(seq)))
			mu.Lock()
			history = append(history, sent{seq: seq, err: err, took: time.Since(start)})
			mu.Unlock()
			time.Sleep(time.Millisecond + time.Duration(pause.IntN(1000))*time.Microsecond)
		}
	}()
	lastSent := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(history)
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-done
	}()

	// Some broadcasts reach everybody, then gateway 0 dies.
	waitFor(t, "the first broadcasts to reach every member", func() bool {
		for _, m := range members {
			if got := m.received(); len(got) < before {
				return false
			}
		}
		return true
	})
	killedAt := lastSent()
	c.Kill(0)
	t.Logf("killed node 0 after broadcast %d", killedAt)

	// The dead gateway's members are dropped once the shard is rebuilt.
	var survivors []*member
	for _, m := range members {
		if m.gate != 0 {
			survivors = append(survivors, m)
		}
	}
	c.WaitFor(t, "the group to count the survivors only", func() bool {
		n, err := gate.GroupSize(ctx, backend, "room")
		return err == nil && n == len(survivors)
	})
	recovered := lastSent() + 1
	t.Logf("the group counted the survivors only before broadcast %d", recovered)
	c.WaitFor(t, "50 broadcasts after the recovery to reach every survivor", func() bool {
		for _, m := range survivors {
			got := m.received()
			if len(got) == 0 || got[len(got)-1] < recovered+50 {
				return false
			}
		}
		return true
	})
	close(stop)
	<-done

	mu.Lock()
	hist := slices.Clone(history)
	mu.Unlock()
	failed := 0
	for _, h := range hist {
		if h.took > time.Second {
			t.Errorf("broadcast %d took %v: it must not wait for the dead gateway", h.seq, h.took)
		}
		if h.err != nil {
			failed++
			if code := rpc.CodeOf(h.err); code != rpc.Unavailable && code != rpc.NotFound {
				t.Errorf("broadcast %d: %v, want nil, Unavailable or NotFound", h.seq, h.err)
			}
		}
	}
	t.Logf("%d broadcasts, %d failed while the shard moved", len(hist), failed)
	for _, m := range members {
		got := m.received()
		for i := 1; i < len(got); i++ {
			if got[i] <= got[i-1] {
				t.Fatalf("member %s (gateway %d) got broadcast %d after %d: a duplicate or out of order", m.user, m.gate, got[i], got[i-1])
			}
		}
		have := make(map[int]bool, len(got))
		for _, s := range got {
			have[s] = true
		}
		for s := 1; s <= killedAt && s <= before; s++ {
			if !have[s] {
				t.Errorf("member %s (gateway %d) missed broadcast %d, sent before the kill", m.user, m.gate, s)
			}
		}
		if m.gate == 0 {
			continue
		}
		last := got[len(got)-1]
		for s := recovered; s <= last; s++ {
			if !have[s] {
				t.Errorf("survivor %s (gateway %d) missed broadcast %d, sent after the recovery", m.user, m.gate, s)
			}
		}
	}

	// The survivors' users are in the directory again, wherever their
	// shards were.
	for _, m := range survivors {
		got := make(chan string, 1)
		m.c.OnPush("room.You", func(body []byte) {
			select {
			case got <- decodeString(body):
			default:
			}
		})
		c.WaitFor(t, "PushUser to "+m.user+" to work again", func() bool {
			return gate.PushUser(ctx, backend, m.user, "room.You", wrapperspb.String(m.user)) == nil
		})
		if v := recv(t, got, "the push to "+m.user); v != m.user {
			t.Fatalf("%s got a push for %q", m.user, v)
		}
		if _, err := gate.UserSession(ctx, backend, members[0].user); rpc.CodeOf(err) != rpc.NotFound {
			t.Errorf("the user of a member of the dead gateway: %v, want NotFound", err)
		}
	}

	// A user logging in again elsewhere still kicks their old session.
	m := survivors[0]
	other := 1 + m.gate%2 // the other surviving gateway
	again := dial(t, client.Config{Addr: urls[other]})
	mustCall(t, again, "room.Login", m.user, m.user)
	select {
	case err := <-m.kick:
		if rpc.CodeOf(err) != rpc.AlreadyExists {
			t.Fatalf("the old session of %s ended with %v, want AlreadyExists", m.user, err)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("the old session of %s was not kicked", m.user)
	}
	if id, err := gate.UserSession(ctx, backend, m.user); err != nil || id != again.SessionID() {
		t.Fatalf("UserSession(%s) = %s, %v; want the new session %s", m.user, id, err, again.SessionID())
	}
}

// TestSessionStateFromAnyNode reads and writes a session's state from a
// node where neither the session nor its services are, finding the
// session by its user.
func TestSessionStateFromAnyNode(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3, Types: []int{1, 2, 2}})
	ctx := testCtx(t)
	svc := serve(t, c.Node(1), chatService("chat"))
	g := newGate(t, gate.Config{
		Node: c.Node(0), Members: c.Members[0],
		Routes: map[string]gate.Route{"chat": gate.To(rpc.To(svc))},
		Public: []string{"chat.Login"},
	})
	url, _ := listenTCP(t, g)
	ana := dial(t, client.Config{Addr: url})
	mustCall(t, ana, "chat.Login", "ana", "ana")
	mustCall(t, ana, "chat.Set", "team=red", "")

	far := c.Node(2)
	id, err := gate.UserSession(ctx, far, "ana")
	if err != nil || id != ana.SessionID() {
		t.Fatalf("UserSession(ana) = %q, %v; want %q", id, err, ana.SessionID())
	}
	st, err := gate.SessionState(ctx, far, id)
	if err != nil || st["team"] != "red" {
		t.Fatalf("SessionState = %v, %v; want team=red", st, err)
	}
	if err := gate.SetSessionState(ctx, far, id, map[string]string{"match": "m7"}, "team"); err != nil {
		t.Fatal(err)
	}
	mustCall(t, ana, "chat.Get", "match", "m7") // the session's next request carries it
	_, err = call(t, ana, "chat.Get", "team")
	wantCode(t, "Get of a key deleted from another node", err, rpc.NotFound)
	if _, err := gate.UserSession(ctx, far, "nobody"); rpc.CodeOf(err) != rpc.NotFound {
		t.Fatalf("UserSession(nobody): %v, want NotFound", err)
	}
	ana.Close()
	waitFor(t, "ana's session to end", func() bool {
		_, err := gate.SessionState(ctx, far, id)
		return rpc.CodeOf(err) == rpc.NotFound
	})
	waitFor(t, "ana to leave the directory", func() bool {
		_, err := gate.UserSession(ctx, far, "ana")
		return rpc.CodeOf(err) == rpc.NotFound
	})
}

// TestLoginsWriteNothingToEtcd: once the directory's shards exist,
// logins, logouts, group joins and broadcasts write nothing to etcd. It
// counts etcd's revision (one per write) around a ramp of logins on two
// gateways: GUILD_LOGIN_RAMP sets its size (default 400).
func TestLoginsWriteNothingToEtcd(t *testing.T) {
	ramp := 400
	if s := os.Getenv("GUILD_LOGIN_RAMP"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			t.Fatalf("GUILD_LOGIN_RAMP=%q: want a count", s)
		}
		ramp = v
	}
	c := clustertest.Start(t, clustertest.Options{Nodes: 3, Types: []int{1, 1, 2}})
	// The ramp outlasts testCtx's 10 s on a loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	svc := serve(t, c.Node(2), roomService())
	var urls []string
	for i := range 2 {
		g := newGate(t, gate.Config{
			Node: c.Node(i), Members: c.Members[i],
			Routes: map[string]gate.Route{"room": gate.To(rpc.To(svc))},
			Public: []string{"room.Join", "room.Login"},
		})
		u, _ := listenTCP(t, g)
		urls = append(urls, u)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Etcd.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	revision := func() int64 {
		t.Helper()
		resp, err := cli.Get(ctx, "guild-test-revision")
		if err != nil {
			t.Fatal(err)
		}
		return resp.Header.Revision
	}
	// Logs in clients [from, to), each joining one of 8 groups, then
	// closes them, batch by batch (a process has 20,000 files).
	wave := func(from, to int) {
		const batch = 500
		for b := from; b < to; b += batch {
			var open []*client.Client
			for i := b; i < min(b+batch, to); i++ {
				cl, err := client.Dial(ctx, client.Config{Addr: urls[i%2]})
				if err != nil {
					t.Fatal(err)
				}
				open = append(open, cl)
				mustCall(t, cl, "room.Login", fmt.Sprint("user", i), fmt.Sprint("user", i))
				mustCall(t, cl, "room.Join", fmt.Sprint("group", i%8), "joined")
			}
			for i := range 8 {
				if err := gate.Broadcast(ctx, c.Node(2), fmt.Sprint("group", i), "room.Msg", wrapperspb.String("hi")); err != nil {
					t.Fatal(err)
				}
			}
			for _, cl := range open {
				_ = cl.Close()
			}
		}
	}
	// The logins start the directory's shards as they need them, with at
	// most one etcd write each; then nothing more is written, however
	// many players come and go.
	start := revision()
	wave(0, ramp)
	await.True(t, time.Minute, "the ramp's users to leave the directory", func() bool {
		_, err := gate.UserSession(ctx, c.Node(2), fmt.Sprint("user", ramp-1))
		return rpc.CodeOf(err) == rpc.NotFound
	})
	writes := revision() - start
	t.Logf("etcd writes during a ramp of %d logins, group joins and logouts on 2 gateways: %d (the directory has %d shards)", ramp, writes, gate.DirShards)
	if writes > gate.DirShards {
		t.Errorf("%d etcd writes during %d logins, want at most one per directory shard (%d)", writes, ramp, gate.DirShards)
	}
}

// crashHub is a message that makes the test's receive interceptor panic
// in whatever actor gets it: here, the gateway's hub.
type crashHub struct{}

// TestHubRestartKeepsDirectory: a panic in the gateway's hub (its state
// lost) is recovered, and the sessions tell the fresh hub their users and
// groups again: broadcasts and PushUser still reach them.
func TestHubRestartKeepsDirectory(t *testing.T) {
	n, err := actor.NewNode(actor.Config{ReceiveInterceptors: []actor.ReceiveInterceptor{
		func(next actor.ReceiveFunc) actor.ReceiveFunc {
			return func(c *actor.Context) {
				if _, ok := c.Message().(crashHub); ok {
					panic("the test crashes the hub")
				}
				next(c)
			}
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	ctx := testCtx(t)
	svc := serve(t, n, roomService())
	g := newGate(t, gate.Config{Node: n, Routes: map[string]gate.Route{"room": gate.To(rpc.To(svc))}, Public: []string{"room.Join", "room.Login"}})
	url, _ := listenTCP(t, g)
	got := make(chan string, 4)
	c := dial(t, client.Config{Addr: url})
	c.OnPush("room.Msg", func(body []byte) { got <- decodeString(body) })
	mustCall(t, c, "room.Login", "ana", "ana")
	mustCall(t, c, "room.Join", "room", "joined")

	hub, err := n.Lookup(ctx, ".gate.hub/"+n.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	restarts := n.Stats().Restarts
	if err := n.Send(hub, crashHub{}); err != nil {
		t.Fatal(err)
	}
	// The crash is a message: wait for the restart it causes, so that the
	// GroupSize below is not answered by the hub from before it.
	waitFor(t, "the hub to restart", func() bool { return n.Stats().Restarts > restarts })
	// The fresh hub knows the session again once GroupSize counts it (the
	// shards, children of the hub, were restarted with it).
	waitFor(t, "the group to count the session again", func() bool {
		n, err := gate.GroupSize(ctx, n, "room")
		return err == nil && n == 1
	})
	if err := gate.Broadcast(ctx, n, "room", "room.Msg", wrapperspb.String("after")); err != nil {
		t.Fatal(err)
	}
	if v := recv(t, got, "the broadcast after the restart"); v != "after" {
		t.Fatalf("got %q", v)
	}
	waitFor(t, "PushUser to work again", func() bool {
		return gate.PushUser(ctx, n, "ana", "room.Msg", wrapperspb.String("direct")) == nil
	})
	if v := recv(t, got, "the push after the restart"); v != "direct" {
		t.Fatalf("got %q", v)
	}
}
