package chaos_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/grain"
	"github.com/guildkit/guild/store"
	"github.com/guildkit/guild/store/memstore"
	"github.com/guildkit/guild/transport/tcp"
)

// The cluster under test: node 0 is the clients' node and is never
// faulted (so the client side of the history is whole); nodes 1..hosts
// host the grains, an echo actor, a forwarder and a singleton candidate
// each, and take the faults.
const (
	hosts    = 3
	ttl      = 2 * time.Second
	kindName = "acct"
	grains   = 16
	callTime = 2 * time.Second // every client call's deadline
	boss     = "boss"          // the singleton's global name
)

// Environment knobs.
const (
	envDuration = "GUILD_CHAOS"      // how long the schedule runs, e.g. 10m
	envSeed     = "GUILD_CHAOS_SEED" // the seed to replay
)

// shortSchedule is the length of the schedule CI runs.
const shortSchedule = 20 * time.Second

// clientPace is a grain client's pause between two operations: enough
// load to keep every grain busy through the faults, and a history that
// the linearizability checker gets through in seconds.
const clientPace = 5 * time.Millisecond

// acct is a grain's state: the IDs written to it, in order.
type acct struct {
	Writes []string `json:"writes"`
}

// world is the test's cluster and what runs on it.
type world struct {
	t   *testing.T
	c   *clustertest.Cluster
	rec *recorder
	st  *memstore.Store

	uids atomic.Uint64 // activation and holder IDs
	reqs atomic.Uint64 // request IDs

	mu    sync.Mutex
	hosts map[int]*host
}

// host is what the test runs on a host node; it is replaced when the node
// is restarted.
type host struct {
	i    int
	sys  *grain.System
	stop chan struct{} // ends the node's own client and singleton candidate
	wg   sync.WaitGroup
}

func TestChaos(t *testing.T) {
	dur := shortSchedule
	if s := os.Getenv(envDuration); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("%s=%q: %v", envDuration, s, err)
		}
		dur = d
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(envSeed); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", envSeed, s, err)
		}
		seed = n
	}
	t.Logf("chaos: seed %d, schedule %v (replay with %s=%d)", seed, dur, envSeed, seed)
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))

	w := &world{t: t, rec: &recorder{}, st: memstore.New(), hosts: make(map[int]*host)}
	w.c = clustertest.Start(t, clustertest.Options{
		Nodes:  hosts + 1,
		TTL:    ttl,
		Logger: slog.New(slog.DiscardHandler),
		Transport: tcp.Config{
			HeartbeatInterval: 200 * time.Millisecond,
			DeadAfter:         time.Second,
			DialTimeout:       500 * time.Millisecond,
		},
	})
	for i := 1; i <= hosts; i++ {
		w.startHost(i)
	}
	clients := w.startClients(seed)

	faults := w.runSchedule(rng, dur)

	// Lift every fault, let the cluster settle, then stop the load.
	w.c.Heal()
	w.c.EtcdRestore()
	for i := 1; i <= hosts; i++ {
		w.c.Resume(i)
	}
	clients.stop()
	w.stopHosts()

	ops, serves, log := w.rec.snapshot()
	final := w.finalState()
	var v violations
	checkReplies(ops, time.Second, &v)
	acked, unknown := checkWrites(ops, final, &v)
	activations := checkSingle(serves, &v)
	linStart := time.Now()
	lin := checkLinearizable(ops, final, time.Minute, &v)
	linTook := time.Since(linStart)

	counts := make(map[opKind][2]int)
	for _, o := range ops {
		c := counts[o.kind]
		if o.ok {
			c[0]++
		} else {
			c[1]++
		}
		counts[o.kind] = c
	}
	t.Logf("chaos: %d faults injected: %s", len(log), strings.Join(faults, ", "))
	for k := opWrite; k <= opBoss; k++ {
		t.Logf("chaos: %-8s %6d ok, %5d failed", k, counts[k][0], counts[k][1])
	}
	t.Logf("chaos: writes acknowledged %d, outcome unknown %d; %d activations and singleton holders served; linearizability: %v (checked in %v); violations: %d",
		acked, unknown, activations, lin, linTook.Round(time.Millisecond), len(v))
	if acked == 0 || counts[opRead][0] == 0 || counts[opForward][0] == 0 || counts[opBoss][0] == 0 {
		t.Errorf("chaos: some kind of operation never succeeded (%v): the load did not run", counts)
	}
	for _, s := range v {
		t.Errorf("violation: %s", s)
	}
	if len(v) > 0 {
		for _, f := range log {
			t.Log("fault:", f)
		}
		t.Errorf("chaos: replay with %s=%d", envSeed, seed)
	}
}

// runSchedule injects faults, one at a time, until dur has passed, from
// the test goroutine (Restart must run there). It returns a summary of
// each fault.
func (w *world) runSchedule(rng *rand.Rand, dur time.Duration) []string {
	var done []string
	end := time.Now().Add(dur)
	pick := func() int { return 1 + rng.IntN(hosts) }
	jitter := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo))) }
	for time.Now().Before(end) {
		time.Sleep(jitter(300*time.Millisecond, 1200*time.Millisecond)) // calm between faults: the schedule's pace, not a wait for a condition
		var f string
		switch rng.IntN(7) {
		case 0: // a crash, and the node comes back
			i := pick()
			w.c.Kill(i)
			w.dropHost(i)
			time.Sleep(jitter(0, ttl))
			w.c.Restart(w.t, i)
			w.startHost(i)
			f = fmt.Sprintf("kill+restart %d", i)
		case 1: // frozen past its lease
			i := pick()
			w.c.Pause(i)
			time.Sleep(jitter(ttl+ttl/2, 2*ttl+ttl/2))
			w.c.Resume(i)
			f = fmt.Sprintf("pause %d", i)
		case 2: // a node cut off from the others (not from etcd)
			i := pick()
			w.c.Partition([]int{i})
			time.Sleep(jitter(ttl/2, 2*ttl))
			w.c.Heal()
			f = fmt.Sprintf("isolate %d", i)
		case 3: // the clients' node and one host against the rest
			i := pick()
			w.c.Partition([]int{0, i})
			time.Sleep(jitter(ttl/2, 2*ttl))
			w.c.Heal()
			f = fmt.Sprintf("split {0,%d}", i)
		case 4: // etcd briefly away: no lease is lost, fences may lapse
			w.c.EtcdOutage()
			time.Sleep(jitter(ttl/4, ttl/2))
			w.c.EtcdRestore()
			f = "short etcd outage"
		case 5: // etcd away past the TTL: every lease is lost
			w.c.EtcdOutage()
			time.Sleep(jitter(ttl+ttl/4, 2*ttl))
			w.c.EtcdRestore()
			f = "long etcd outage"
		case 6: // the singleton's node frozen past its lease
			i := w.bossNode()
			if i == 0 {
				continue
			}
			w.c.Pause(i)
			time.Sleep(jitter(ttl+ttl/2, 2*ttl+ttl/2))
			w.c.Resume(i)
			f = fmt.Sprintf("pause %d (the singleton's)", i)
		}
		w.rec.addFault(time.Now().Format("15:04:05.000 ") + f)
		done = append(done, f)
	}
	return done
}

// grainKind is the grain of host node i: a write appends its ID and is
// acknowledged only once flushed (rolled back if the flush fails), so an
// acknowledged write is in the store and a read sees only stored writes.
//
//	"w|req|id"  append id → "w|req|ok"
//	"r|req"     → "r|req|id1,id2,..."
func (w *world) grainKind(i int) grain.Kind {
	return grain.Kind{
		Name:        kindName,
		IdleTimeout: time.Hour,
		FlushEvery:  -1,
		State:       func() any { return new(acct) },
		New: func(id grain.Identity) grain.Actor {
			uid := w.uids.Add(1)
			return grain.ActorFunc(func(c *grain.Context) {
				m, ok := c.Message().(*wrapperspb.StringValue)
				if !ok {
					return
				}
				w.rec.addServe(serve{what: id.Key, holder: uid, node: i, at: time.Now()})
				st := c.State().(*acct)
				parts := strings.Split(m.Value, "|")
				switch parts[0] {
				case "w":
					st.Writes = append(st.Writes, parts[2])
					c.MarkDirty()
					if err := c.Flush(context.Background()); err != nil {
						st.Writes = st.Writes[:len(st.Writes)-1]
						c.Respond(fmt.Errorf("rolled back: %w", err))
						return
					}
					c.Respond(wrapperspb.String("w|" + parts[1] + "|ok"))
				case "r":
					c.Respond(wrapperspb.String("r|" + parts[1] + "|" + strings.Join(st.Writes, ",")))
				}
			})
		},
	}
}

// startHost starts what runs on host node i: its grain System, an echo
// actor and a forwarder under global names, a singleton candidate, and a
// client of its own (so that a node cut off from the others still gets
// requests for the grains it owns).
func (w *world) startHost(i int) {
	t := w.t
	n := w.c.Node(i)
	ctx, cancel := context.WithTimeout(context.Background(), clustertest.WaitTimeout)
	defer cancel()
	sys, err := grain.Start(ctx, grain.Config{
		Node:         n,
		Membership:   w.c.Membership(i),
		Kinds:        []grain.Kind{w.grainKind(i)},
		Store:        w.st,
		ClaimTimeout: 3 * ttl,
	})
	if err != nil {
		t.Fatalf("node %d: grain.Start: %v", i, err)
	}
	h := &host{i: i, sys: sys, stop: make(chan struct{})}

	echo, err := n.SpawnFunc(func(c *actor.Context) {
		if m, ok := c.Message().(*wrapperspb.StringValue); ok {
			c.Respond(wrapperspb.String(m.Value + "|echo" + strconv.Itoa(i)))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	// The forwarder passes each request to the echo actor of the next
	// host: the reply comes back through it.
	next := fmt.Sprintf("echo/%d", i%hosts+1)
	fwd, err := n.SpawnFunc(func(c *actor.Context) {
		if _, ok := c.Message().(*wrapperspb.StringValue); !ok {
			return
		}
		lctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		to, err := c.Node().Lookup(lctx, next)
		cancel()
		if err == nil {
			err = c.Forward(to)
		}
		if err != nil {
			c.Respond(err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	// The singleton's tenures: the same actor may hold the name, lose it
	// (its lease lapsed and another took it) and win it again later, so
	// a holder is the actor in one tenure. The candidate starts a tenure
	// before each registration.
	var tenure atomic.Uint64
	tenure.Store(w.uids.Add(1) << 20)
	bossPID, err := n.SpawnFunc(func(c *actor.Context) {
		m, ok := c.Message().(*wrapperspb.StringValue)
		if !ok {
			return
		}
		// A singleton acts only while it surely holds its name.
		if _, held := c.Node().HeldName(boss); !held {
			c.Respond(errors.New("not the boss"))
			return
		}
		w.rec.addServe(serve{what: boss, holder: tenure.Load(), node: i, at: time.Now()})
		c.Respond(wrapperspb.String(m.Value + "|boss" + strconv.Itoa(i)))
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, pid := range map[string]actor.PID{fmt.Sprintf("echo/%d", i): echo, fmt.Sprintf("fwd/%d", i): fwd} {
		rctx, cancel := context.WithTimeout(context.Background(), clustertest.WaitTimeout)
		err := n.Register(rctx, name, pid)
		cancel()
		if err != nil {
			t.Fatalf("node %d: register %s: %v", i, name, err)
		}
	}
	// The candidate takes the singleton's name whenever nobody holds it.
	h.wg.Add(3)
	go func() {
		defer h.wg.Done()
		for {
			select {
			case <-h.stop:
				return
			case <-time.After(100 * time.Millisecond): // the candidate's polling period
			}
			lctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			if _, err := n.Lookup(lctx, boss); errors.Is(err, actor.ErrNameNotFound) {
				tenure.Add(1)
				_ = n.Register(lctx, boss, bossPID)
			}
			cancel()
		}
	}()
	go func() {
		defer h.wg.Done()
		w.grainClient(fmt.Sprintf("node%d", i), sys, rand.New(rand.NewPCG(uint64(i), w.uids.Add(1))), h.stop)
	}()
	// The node calls the singleton too: when the node is cut off, it is
	// its own last client, which a stale holder must refuse.
	go func() {
		defer h.wg.Done()
		w.nameClient(fmt.Sprintf("node%d", i), n, nil, h.stop)
	}()
	w.mu.Lock()
	w.hosts[i] = h
	w.mu.Unlock()
}

// dropHost stops what ran on host node i, which was killed.
func (w *world) dropHost(i int) {
	w.mu.Lock()
	h := w.hosts[i]
	delete(w.hosts, i)
	w.mu.Unlock()
	if h == nil {
		return
	}
	close(h.stop)
	h.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_ = h.sys.Close(ctx) // the node is gone: this only ends the System's goroutines
	cancel()
}

// stopHosts stops every host gracefully, at the end.
func (w *world) stopHosts() {
	w.mu.Lock()
	hs := make([]*host, 0, len(w.hosts))
	for _, h := range w.hosts {
		hs = append(hs, h)
	}
	w.hosts = make(map[int]*host)
	w.mu.Unlock()
	for _, h := range hs {
		close(h.stop)
		h.wg.Wait()
	}
	for _, h := range hs {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := h.sys.Close(ctx); err != nil {
			w.t.Logf("node %d: grain.System.Close: %v", h.i, err)
		}
		cancel()
	}
}

// finalState reads every grain's list from the store.
func (w *world) finalState() map[string][]string {
	out := make(map[string][]string)
	for g := range grains {
		key := grainKey(g)
		data, _, err := w.st.Load(context.Background(), kindName, key)
		if errors.Is(err, store.ErrNotFound) {
			out[key] = nil
			continue
		}
		if err != nil {
			w.t.Fatalf("load %s: %v", key, err)
		}
		var st acct
		if err := json.Unmarshal(data, &st); err != nil {
			w.t.Fatalf("decode %s: %v", key, err)
		}
		out[key] = st.Writes
	}
	return out
}

func grainKey(g int) string { return "g" + strconv.Itoa(g) }

// nextReq returns a new request ID.
func (w *world) nextReq(prefix string) string {
	return prefix + strconv.FormatUint(w.reqs.Add(1), 10)
}

// grainClient writes to and reads from random grains through sys until
// stop is closed.
func (w *world) grainClient(name string, sys *grain.System, rng *rand.Rand, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		key := grainKey(rng.IntN(grains))
		req := w.nextReq("q")
		o := op{client: name, key: key, req: req, start: time.Now()}
		o.deadline = o.start.Add(callTime)
		msg := "r|" + req
		if rng.IntN(3) > 0 {
			o.kind, o.write = opWrite, w.nextReq(name+"-w")
			msg = "w|" + req + "|" + o.write
		} else {
			o.kind = opRead
		}
		ctx, cancel := context.WithDeadline(context.Background(), o.deadline)
		reply, err := sys.Call(ctx, grain.Identity{Kind: kindName, Key: key}, wrapperspb.String(msg))
		cancel()
		o.end, o.err = time.Now(), err
		if err == nil {
			o.reply = reply.(*wrapperspb.StringValue).GetValue()
			o.ok = true
			if o.kind == opRead {
				if list := o.reply[strings.LastIndex(o.reply, "|")+1:]; list != "" {
					o.result = strings.Split(list, ",")
				}
			}
		} else {
			// Refused before any handler ran it, or rolled back: it
			// certainly took no effect.
			o.refused = errors.Is(err, grain.ErrUnavailable) || errors.Is(err, actor.ErrActorNotFound) ||
				errors.Is(err, actor.ErrNodeClosed) || strings.Contains(err.Error(), "rolled back")
		}
		w.rec.addOp(o)
		pause := clientPace
		if err != nil {
			pause = 10 * time.Millisecond
		}
		time.Sleep(pause) // the client's pace, not a wait for a condition
	}
}

// clients are the load of node 0.
type clients struct {
	stopCh chan struct{}
	wg     sync.WaitGroup
	actors []actor.PID
	node   *actor.Node
}

func (cl *clients) stop() {
	close(cl.stopCh)
	for _, pid := range cl.actors {
		_ = cl.node.Stop(pid)
	}
	cl.wg.Wait()
}

// startClients starts node 0's clients: grain writers and readers, and
// requests to forwarders and to the singleton from outside any actor
// (Call by name) and from inside actors (Request by name, Call).
func (w *world) startClients(seed uint64) *clients {
	t := w.t
	n := w.c.Node(0)
	ctx, cancel := context.WithTimeout(context.Background(), clustertest.WaitTimeout)
	defer cancel()
	sys, err := grain.Start(ctx, grain.Config{Node: n, Membership: w.c.Membership(0)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = sys.Close(ctx)
	})
	cl := &clients{stopCh: make(chan struct{}), node: n}
	for k := range 4 {
		cl.wg.Add(1)
		go func() {
			defer cl.wg.Done()
			w.grainClient(fmt.Sprintf("client%d", k), sys, rand.New(rand.NewPCG(seed, uint64(k))), cl.stopCh)
		}()
	}
	// Outside any actor: CallName to a forwarder or to the singleton.
	for k := range 2 {
		cl.wg.Add(1)
		go func() {
			defer cl.wg.Done()
			w.nameClient(fmt.Sprintf("caller%d", k), n, rand.New(rand.NewPCG(seed, uint64(100+k))), cl.stopCh)
		}()
	}
	// Inside actors: each requester keeps one request in flight, by
	// RequestName, and records the answer in its callback.
	for k := range 2 {
		var issue func(c *actor.Context)
		rng := rand.New(rand.NewPCG(seed, uint64(200+k)))
		issue = func(c *actor.Context) {
			select {
			case <-cl.stopCh:
				return
			default:
			}
			o := op{client: fmt.Sprintf("actor%d", k), kind: opForward, req: w.nextReq("a"), start: time.Now()}
			o.deadline = o.start.Add(callTime)
			name := fmt.Sprintf("fwd/%d", 1+rng.IntN(hosts))
			if rng.IntN(3) == 0 {
				o.kind, name = opBoss, boss
			}
			err := c.RequestName(name, wrapperspb.String("x|"+o.req+"|"), callTime, func(reply any, err error) {
				w.finishReq(&o, reply, err)
				if err != nil {
					c.After(10*time.Millisecond, "again")
					return
				}
				issue(c)
			})
			if err != nil {
				w.finishReq(&o, nil, err)
				c.After(10*time.Millisecond, "again")
			}
		}
		pid, err := n.SpawnFunc(func(c *actor.Context) {
			switch c.Message().(type) {
			case actor.Started, string:
				issue(c)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		cl.actors = append(cl.actors, pid)
	}
	return cl
}

// finishReq records a forwarded or singleton request.
func (w *world) finishReq(o *op, reply any, err error) {
	o.end, o.err = time.Now(), err
	if err == nil {
		if s, ok := reply.(*wrapperspb.StringValue); ok {
			o.reply, o.ok = s.GetValue(), true
		}
	}
	w.rec.addOp(*o)
}

// nameClient calls, from outside any actor on node n, the singleton (and,
// with rng, a forwarder two times in three) by name until stop is closed.
func (w *world) nameClient(name string, n *actor.Node, rng *rand.Rand, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		o := op{client: name, kind: opBoss, req: w.nextReq("f"), start: time.Now()}
		o.deadline = o.start.Add(callTime)
		to := boss
		if rng != nil && rng.IntN(3) > 0 {
			o.kind, to = opForward, fmt.Sprintf("fwd/%d", 1+rng.IntN(hosts))
		}
		ctx, cancel := context.WithDeadline(context.Background(), o.deadline)
		reply, err := n.CallName(ctx, to, wrapperspb.String("x|"+o.req+"|"))
		cancel()
		w.finishReq(&o, reply, err)
		pause := clientPace
		if err != nil {
			pause = 10 * time.Millisecond
		}
		time.Sleep(pause) // the client's pace, not a wait for a condition
	}
}

// bossNode returns the host that holds the singleton's name, as node 0
// sees it, or 0 when none does.
func (w *world) bossNode() int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	pid, err := w.c.Node(0).Lookup(ctx, boss)
	if err != nil {
		return 0
	}
	for i, a := range w.c.Addrs {
		if a == pid.Node {
			return i
		}
	}
	return 0
}
