package cluster_test

// Forward across nodes: whoever asks, through whatever chain of forwards,
// every answer reaches the request it answers, and only that one; and a
// forwarding node that leaves or dies before the answer passes does not
// leave its requester hanging.

import (
	"context"
	"errors"
	"fmt"
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
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/transport"
)

// A routed request is a StringValue "id|mode|route": route is the list of
// router actors the request goes through, each forwarding it to the next;
// the last answers "ok|id|its PID". mode "later" makes the last one answer
// from another goroutine, through a Responder, after its Receive returned.
func routed(id int, mode string, route []actor.PID) *wrapperspb.StringValue {
	hops := make([]string, len(route))
	for i, p := range route {
		hops[i] = fmt.Sprintf("%d:%d", p.Node, p.Serial)
	}
	return wrapperspb.String(fmt.Sprintf("%d|%s|%s", id, mode, strings.Join(hops, ",")))
}

func parseRouted(s string) (id, mode string, route []actor.PID, err error) {
	parts := strings.Split(s, "|")
	if len(parts) != 3 {
		return "", "", nil, fmt.Errorf("bad routed request %q", s)
	}
	for _, h := range strings.Split(parts[2], ",") {
		node, serial, ok := strings.Cut(h, ":")
		n, err1 := strconv.ParseUint(node, 10, 32)
		sr, err2 := strconv.ParseUint(serial, 10, 64)
		if !ok || err1 != nil || err2 != nil {
			return "", "", nil, fmt.Errorf("bad hop %q in %q", h, s)
		}
		route = append(route, actor.PID{Node: actor.Addr(n), Serial: sr})
	}
	return parts[0], parts[1], route, nil
}

// answerOf is what the last actor of a route answers to request id.
func answerOf(id int, last actor.PID) string { return fmt.Sprintf("ok|%d|%v", id, last) }

// router forwards a routed request to the hop after itself, or answers it
// when it is the last.
func router(c *actor.Context) {
	m, ok := c.Message().(*wrapperspb.StringValue)
	if !ok || !c.IsRequest() {
		return
	}
	id, mode, route, err := parseRouted(m.GetValue())
	if err != nil {
		c.Respond(err)
		return
	}
	i := -1
	for j, p := range route {
		if p == c.Self() {
			i = j
			break
		}
	}
	switch {
	case i < 0:
		c.Respond(fmt.Errorf("%v is not on the route of %s", c.Self(), id))
	case i < len(route)-1:
		if err := c.Forward(route[i+1]); err != nil {
			c.Respond(err)
		}
	case mode == "later":
		r := c.Responder()
		ans := wrapperspb.String("ok|" + id + "|" + c.Self().String())
		go r.Respond(ans)
	default:
		c.Respond(wrapperspb.String("ok|" + id + "|" + c.Self().String()))
	}
}

func spawnRouter(t testing.TB, n *actor.Node) actor.PID {
	t.Helper()
	pid, err := n.SpawnFunc(router)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// requester kinds.
type reqKind int

const (
	outsideCall reqKind = iota
	outsideRequest
	actorRequest
	actorCall
	numKinds
)

func (k reqKind) String() string {
	return [...]string{"Node.Call", "Node.Request", "Context.Request", "Context.Call"}[k]
}

// fireCmd asks a requester actor to send msg to to and report the result.
type fireCmd struct {
	kind    reqKind
	to      actor.PID
	msg     any
	timeout time.Duration
	done    func(reply any, err error)
}

// requesterActor issues requests on command: with Context.Request (the
// answer comes to its callback) or Context.Call (it blocks). It closes a
// markCmd's channel when it gets there (see mark).
func requesterActor(c *actor.Context) {
	if m, ok := c.Message().(markCmd); ok {
		close(m.done)
		return
	}
	m, ok := c.Message().(fireCmd)
	if !ok {
		return
	}
	if m.kind == actorCall {
		ctx, cancel := context.WithTimeout(context.Background(), m.timeout)
		r, err := c.Call(ctx, m.to, m.msg)
		cancel()
		m.done(r, err)
		return
	}
	if err := c.Request(m.to, m.msg, m.timeout, m.done); err != nil {
		m.done(nil, err)
	}
}

// fire sends msg to to from n with kind, calling done once with the result.
// reqr is a requester actor on n, for the actor kinds.
func fire(n *actor.Node, reqr actor.PID, kind reqKind, to actor.PID, msg any, timeout time.Duration, done func(any, error)) {
	switch kind {
	case outsideCall:
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			done(n.Call(ctx, to, msg))
		}()
	case outsideRequest:
		if err := n.Request(to, msg, timeout, done); err != nil {
			done(nil, err)
		}
	default:
		if err := n.Send(reqr, fireCmd{kind: kind, to: to, msg: msg, timeout: timeout, done: done}); err != nil {
			done(nil, err)
		}
	}
}

// answer returns the text of a routed answer.
func answer(r any) string {
	if s, ok := r.(*wrapperspb.StringValue); ok {
		return s.GetValue()
	}
	return fmt.Sprintf("%T %v", r, r)
}

func TestForwardChains(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3})
	a, b, cc := c.Node(0), c.Node(1), c.Node(2)
	rA, rA2, rB, rB2, rC := spawnRouter(t, a), spawnRouter(t, a), spawnRouter(t, b), spawnRouter(t, b), spawnRouter(t, cc)
	reqr, err := a.SpawnFunc(requesterActor)
	if err != nil {
		t.Fatal(err)
	}
	chains := []struct {
		name  string
		route []actor.PID
	}{
		{"A→B", []actor.PID{rB}},
		{"A→B→C", []actor.PID{rB, rC}},
		{"A→B→C→A", []actor.PID{rB, rC, rA}},
		{"A→B→B'→C", []actor.PID{rB, rB2, rC}},
		{"A→A'→B→C", []actor.PID{rA2, rB, rC}},
		{"A→B→C→A→B'", []actor.PID{rB, rC, rA, rB2}},
	}
	id := 0
	for kind := range numKinds {
		for _, ch := range chains {
			for _, mode := range []string{"now", "later"} {
				id++
				name := fmt.Sprintf("%v %s %s", kind, ch.name, mode)
				results := make(chan string, 1)
				start := time.Now()
				fire(a, reqr, kind, ch.route[0], routed(id, mode, ch.route), 10*time.Second, func(r any, err error) {
					if err != nil {
						results <- "error: " + err.Error()
						return
					}
					results <- answer(r)
				})
				got := recv(t, results)
				if want := answerOf(id, ch.route[len(ch.route)-1]); got != want {
					t.Errorf("%s: got %q, want %q", name, got, want)
				}
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("%s: answered after %v", name, d)
				}
			}
		}
	}
	// Every node on the paths is done with its relays.
	for i, n := range c.Nodes {
		waitFor(t, 5*time.Second, fmt.Sprintf("node %d to wait for nothing", i), func() bool { return cluster.PendingRequests(n) == 0 })
	}
}

// forwardSeed returns the seed of the interleaving test: GUILD_SEED, or
// the time.
func forwardSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("GUILD_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("GUILD_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (GUILD_SEED=%d replays this mix)", seed, seed)
	return seed
}

func TestForwardInterleaved(t *testing.T) {
	// Thousands of direct and forwarded requests, from every kind of
	// requester on every node, through random chains of up to four hops
	// over three nodes, all at once. Each carries its own id and each
	// answer echoes it: every answer must come back to its own request,
	// from the route's last actor, before the request's deadline.
	const (
		total      = 6000
		perNode    = 4 // routers, and requester actors, per node
		inFlight   = 48
		reqTimeout = 20 * time.Second
	)
	seed := forwardSeed(t)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	c := clustertest.Start(t, clustertest.Options{Nodes: 3})
	var routers []actor.PID
	reqrs := make([][]actor.PID, len(c.Nodes))
	for i := range c.Nodes {
		for range perNode {
			routers = append(routers, spawnRouter(t, c.Node(i)))
			p, err := c.Node(i).SpawnFunc(requesterActor)
			if err != nil {
				t.Fatal(err)
			}
			reqrs[i] = append(reqrs[i], p)
		}
	}

	type spec struct {
		id    int
		from  int
		reqr  actor.PID
		kind  reqKind
		mode  string
		route []actor.PID
	}
	specs := make([]spec, total)
	for i := range specs {
		hops := 1 + rng.IntN(4) // one hop is a direct request
		perm := rng.Perm(len(routers))[:hops]
		route := make([]actor.PID, hops)
		for j, k := range perm {
			route[j] = routers[k]
		}
		from := rng.IntN(len(c.Nodes))
		mode := "now"
		if rng.IntN(4) == 0 {
			mode = "later"
		}
		specs[i] = spec{id: i + 1, from: from, reqr: reqrs[from][rng.IntN(perNode)], kind: reqKind(rng.IntN(int(numKinds))), mode: mode, route: route}
	}

	type outcome struct {
		answer string
		err    error
		took   time.Duration
		calls  int
	}
	var mu sync.Mutex
	outcomes := make(map[int]*outcome, total)
	var wg sync.WaitGroup
	sem := make(chan struct{}, inFlight)
	var done atomic.Int64
	start := time.Now()
	giveUp := time.After(reqTimeout + 10*time.Second) // every request has answered or timed out by then
	timedOut := false
issue:
	for _, s := range specs {
		select {
		case sem <- struct{}{}:
		case <-giveUp:
			timedOut = true
			break issue
		}
		wg.Add(1)
		issued := time.Now()
		fire(c.Node(s.from), s.reqr, s.kind, s.route[0], routed(s.id, s.mode, s.route), reqTimeout, func(r any, err error) {
			took := time.Since(issued)
			mu.Lock()
			o := outcomes[s.id]
			if o == nil {
				o = &outcome{answer: answer(r), err: err, took: took}
				outcomes[s.id] = o
			}
			o.calls++
			mu.Unlock()
			if o.calls == 1 {
				done.Add(1)
				<-sem
				wg.Done()
			}
		})
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	if !timedOut {
		select {
		case <-finished:
		case <-giveUp:
			timedOut = true
		}
	}
	if timedOut {
		t.Errorf("only %d of %d requests were answered in %v", done.Load(), total, time.Since(start))
	} else {
		t.Logf("%d requests in %v", total, time.Since(start))
	}

	mu.Lock()
	defer mu.Unlock()
	failures := 0
	byKind := map[reqKind]int{}
	hops := map[int]int{}
	for _, s := range specs {
		o := outcomes[s.id]
		want := answerOf(s.id, s.route[len(s.route)-1])
		switch {
		case o == nil:
			t.Errorf("request %d (%v from node %d, route %v): never answered", s.id, s.kind, s.from, s.route)
		case o.err != nil:
			t.Errorf("request %d (%v from node %d, route %v): %v after %v", s.id, s.kind, s.from, s.route, o.err, o.took)
		case o.answer != want:
			t.Errorf("request %d (%v from node %d, route %v): answered %q, want %q", s.id, s.kind, s.from, s.route, o.answer, want)
		case o.took > reqTimeout:
			t.Errorf("request %d: answered after %v, past its deadline", s.id, o.took)
		default:
			byKind[s.kind]++
			hops[len(s.route)]++
			continue
		}
		if failures++; failures > 20 {
			t.Fatal("too many failures")
		}
	}
	for id, o := range outcomes {
		if o.calls != 1 {
			t.Errorf("request %d answered %d times", id, o.calls)
		}
	}
	t.Logf("answered by requester kind %v, by route length %v", byKind, hops)
	for i, n := range c.Nodes {
		waitFor(t, 5*time.Second, fmt.Sprintf("node %d to wait for nothing", i), func() bool { return cluster.PendingRequests(n) == 0 })
	}
}

// heldReq is a request a holder took the Responder of.
type heldReq struct {
	id string
	r  actor.Responder
}

// spawnHolder starts an actor that takes the Responder of every routed
// request and hands it to the test, which answers when it wants to.
func spawnHolder(t *testing.T, n *actor.Node) (actor.PID, chan heldReq) {
	t.Helper()
	held := make(chan heldReq, 16)
	pid, err := n.SpawnFunc(func(c *actor.Context) {
		if m, ok := c.Message().(*wrapperspb.StringValue); ok && c.IsRequest() {
			id, _, _, _ := parseRouted(m.GetValue())
			held <- heldReq{id, c.Responder()}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return pid, held
}

// holdAll receives n held requests, by id.
func holdAll(t *testing.T, held chan heldReq, n int) map[string]actor.Responder {
	t.Helper()
	out := make(map[string]actor.Responder)
	for range n {
		h := recv(t, held)
		out[h.id] = h.r
	}
	return out
}

// result is what a requester got.
type result struct {
	id    int
	reply string
	err   error
	at    time.Time
}

// collect returns a done function for fire that reports on ch.
func collect(id int, ch chan result) func(any, error) {
	return func(r any, err error) { ch <- result{id: id, reply: answer(r), err: err, at: time.Now()} }
}

func TestForwarderShutsDownBeforeTheAnswer(t *testing.T) {
	// B forwarded A's requests to C, which answers only when the test says
	// so. B shuts down gracefully meanwhile: it drains and leaves, but
	// only after the answers it relays have passed, so the requesters on
	// A get C's answers.
	fc := startFaultCluster(t, 3, nodeOpts{})
	a, b, cc := fc.node(0), fc.node(1), fc.node(2)
	rB := spawnRouter(t, b)
	hold, held := spawnHolder(t, cc)
	reqr, err := a.SpawnFunc(requesterActor)
	if err != nil {
		t.Fatal(err)
	}
	route := []actor.PID{rB, hold}
	results := make(chan result, 4)
	kinds := []reqKind{outsideCall, outsideRequest, actorRequest, actorCall}
	for i, k := range kinds {
		fire(a, reqr, k, rB, routed(i+1, "now", route), 20*time.Second, collect(i+1, results))
	}
	responders := holdAll(t, held, len(kinds))

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		shut <- fc.nodes[1].Shutdown(ctx)
	}()
	// B has drained (its router is gone) and is still waiting on C.
	waitFor(t, 10*time.Second, "B's actors to stop", func() bool { return b.Stats().Actors == 0 })
	if cluster.PendingRequests(fc.nodes[1].Node) != len(kinds) {
		t.Fatalf("B waits for %d answers, want %d", cluster.PendingRequests(fc.nodes[1].Node), len(kinds))
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) before the answers it relays", err)
	case r := <-results:
		t.Fatalf("a requester was answered before C answered: %+v", r)
	default:
	}
	for id, r := range responders {
		n, _ := strconv.Atoi(id)
		r.Respond(wrapperspb.String(answerOf(n, hold)))
	}
	for range kinds {
		r := recv(t, results)
		if r.err != nil || r.reply != answerOf(r.id, hold) {
			t.Errorf("request %d (%v): %q, %v; want C's answer", r.id, kinds[r.id-1], r.reply, r.err)
		}
	}
	if err := recv(t, shut); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	waitFor(t, 10*time.Second, "B to leave A's view", func() bool { return !sees(fc.nodes[0].m, fc.nodes[1].addr) })
	// A request to B now fails at once.
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = a.Call(ctx, rB, routed(99, "now", route))
	if err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("Call to a node that left: %v after %v, want a fast failure", err, time.Since(start))
	}
	t.Logf("Call to a node that left: %v", err)
}

func TestForwarderDiesBeforeTheAnswer(t *testing.T) {
	// B forwarded A's requests to C and dies before C answers: A's
	// requests fail at once with transport.ErrPeerLost, and C's late
	// answers (which go back to B) reach nothing on A, not even A's other
	// requests waiting on C.
	fc := startFaultCluster(t, 3, nodeOpts{})
	a, b, cc := fc.node(0), fc.node(1), fc.node(2)
	rB := spawnRouter(t, b)
	hold, held := spawnHolder(t, cc)
	echoC, _ := spawnServer(t, fc.nodes[2].Node)
	reqr, err := a.SpawnFunc(requesterActor)
	if err != nil {
		t.Fatal(err)
	}
	const deadline = 15 * time.Second
	forwarded := make(chan result, 4)
	kinds := []reqKind{outsideCall, outsideRequest, actorRequest, actorCall}
	for i, k := range kinds {
		fire(a, reqr, k, rB, routed(i+1, "now", []actor.PID{rB, hold}), deadline, collect(i+1, forwarded))
	}
	late := holdAll(t, held, len(kinds))
	// A's own requests straight to C, waiting too (from another requester
	// actor: the first is blocked in its Call).
	reqr2, err := a.SpawnFunc(requesterActor)
	if err != nil {
		t.Fatal(err)
	}
	direct := make(chan result, 4)
	for i, k := range kinds[:3] { // not actorCall: it would block reqr2
		id := 11 + i
		fire(a, reqr2, k, hold, routed(id, "now", []actor.PID{hold}), deadline, collect(id, direct))
	}
	directHeld := holdAll(t, held, 3)

	killed := time.Now()
	fc.nodes[1].kill()
	for range kinds {
		r := recv(t, forwarded)
		took := r.at.Sub(killed)
		if !errors.Is(r.err, transport.ErrPeerLost) {
			t.Errorf("request %d (%v) through the dead node: %q, %v; want an error matching transport.ErrPeerLost", r.id, kinds[r.id-1], r.reply, r.err)
		}
		if took > 3*time.Second {
			t.Errorf("request %d (%v) failed %v after the kill, want at once", r.id, kinds[r.id-1], took)
		}
	}
	_ = b

	// C answers the forwarded requests late, with B's correlations; they
	// must not reach A. A round trip from A to C then carries a reply that
	// leaves C after anything C could have sent A meanwhile.
	for id, r := range late {
		n, _ := strconv.Atoi(id)
		r.Respond(wrapperspb.String(answerOf(n, hold)))
	}
	roundTrip(t, a, echoC)
	mark(t, a, reqr) // the requester actors have handled anything that reached them
	mark(t, a, reqr2)
	select {
	case r := <-direct:
		t.Fatalf("a late answer of C reached another request of A: %+v", r)
	case r := <-forwarded:
		t.Fatalf("a failed request was answered again: %+v", r)
	default:
	}
	// A's own requests get their own answers.
	for id, r := range directHeld {
		n, _ := strconv.Atoi(id)
		r.Respond(wrapperspb.String(answerOf(n, hold)))
	}
	for range 3 {
		r := recv(t, direct)
		if r.err != nil || r.reply != answerOf(r.id, hold) {
			t.Errorf("direct request %d: %q, %v; want its own answer", r.id, r.reply, r.err)
		}
	}
	waitFor(t, 5*time.Second, "A to wait for nothing", func() bool { return cluster.PendingRequests(fc.nodes[0].Node) == 0 })
}
