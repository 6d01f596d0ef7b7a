package clustertest_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/transport/tcp"
)

// atkFinal answers "r:"+payload after a random delay (so that answers
// are in flight across a restart).
func atkFinal(maxDelay time.Duration) func(*actor.Context) {
	return func(c *actor.Context) {
		m, ok := c.Message().(*wrapperspb.StringValue)
		if !ok || !c.IsRequest() {
			return
		}
		r := c.Responder()
		d := time.Duration(rand.Int64N(int64(maxDelay)))
		time.AfterFunc(d, func() { r.Respond(wrapperspb.String("r:" + m.Value)) })
	}
}

// atkForwarder forwards every request to the PID *to holds.
func atkForwarder(to *atomic.Pointer[actor.PID]) func(*actor.Context) {
	return func(c *actor.Context) {
		if _, ok := c.Message().(*wrapperspb.StringValue); !ok || !c.IsRequest() {
			return
		}
		if err := c.Forward(*to.Load()); err != nil {
			c.Respond(err)
		}
	}
}

type atkRecord struct {
	id      string
	start   time.Time
	end     time.Time
	timeout time.Duration
	got     string
	err     error
	kind    string
}

// TestForwardUnderRestarts: requesters on node 0 (from outside and
// from inside actors) ask forwarders on node 1, which Forward to finals on
// node 2, which answer after a random delay; node 1 (the forwarders'
// node) and then node 2 are killed and restarted mid-stream. Also node 1
// itself calls the finals directly (so that its new incarnation has
// pending requests of its own). Every answer must be the request's own;
// no call may last past its deadline (plus slack).
func TestForwardUnderRestarts(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3, TTL: 2 * time.Second,
		Transport: tcp.Config{HeartbeatInterval: heartbeat, DeadAfter: deadAfter}})
	var finalPID, fwdPID atomic.Pointer[actor.PID]
	spawnFinal := func() {
		p, err := c.Node(2).SpawnFunc(atkFinal(4 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		finalPID.Store(&p)
	}
	spawnFwd := func() {
		p, err := c.Node(1).SpawnFunc(atkForwarder(&finalPID))
		if err != nil {
			t.Fatal(err)
		}
		fwdPID.Store(&p)
	}
	spawnFinal()
	spawnFwd()

	var (
		mu   sync.Mutex
		recs []atkRecord
		seq  atomic.Int64
	)
	add := func(r atkRecord) {
		mu.Lock()
		recs = append(recs, r)
		mu.Unlock()
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup

	// outside requesters on node 0 via the forwarder
	outside := func(node int, kind string, target *atomic.Pointer[actor.PID]) {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			id := fmt.Sprintf("%s-%d", kind, seq.Add(1))
			to := 8 * time.Second
			ctx, cancel := context.WithTimeout(context.Background(), to)
			start := time.Now()
			r, err := c.Node(node).Call(ctx, *target.Load(), wrapperspb.String(id))
			cancel()
			rec := atkRecord{id: id, start: start, end: time.Now(), timeout: to, err: err, kind: kind}
			if err == nil {
				rec.got = r.(*wrapperspb.StringValue).GetValue()
			} else {
				time.Sleep(20 * time.Millisecond) // do not spin on a down peer
			}
			add(rec)
		}
	}
	for range 30 {
		wg.Add(1)
		go outside(0, "out0", &fwdPID)
	}

	// requesters inside actors on node 0: each actor keeps 5 requests in flight.
	type kick struct{}
	var inFlight atomic.Int64
	for a := range 3 {
		starts := make(map[string]time.Time)
		pid, err := c.Node(0).SpawnFunc(func(ctx *actor.Context) {
			if _, ok := ctx.Message().(kick); !ok {
				return
			}
			select {
			case <-stop:
				return
			default:
			}
			id := fmt.Sprintf("in0.%d-%d", a, seq.Add(1))
			starts[id] = time.Now()
			self := ctx.Self()
			to := 8 * time.Second
			inFlight.Add(1)
			err := ctx.Request(*fwdPID.Load(), wrapperspb.String(id), to, func(reply any, err error) {
				inFlight.Add(-1)
				rec := atkRecord{id: id, start: starts[id], end: time.Now(), timeout: to, err: err, kind: "in0"}
				delete(starts, id)
				if err == nil {
					rec.got = reply.(*wrapperspb.StringValue).GetValue()
				}
				add(rec)
				if err != nil {
					time.AfterFunc(20*time.Millisecond, func() { _ = c.Node(0).Send(self, kick{}) })
				} else {
					_ = ctx.Send(self, kick{})
				}
			})
			if err != nil {
				inFlight.Add(-1)
				delete(starts, id)
				add(atkRecord{id: id, start: time.Now(), end: time.Now(), timeout: to, err: err, kind: "in0-send"})
				time.AfterFunc(20*time.Millisecond, func() { _ = c.Node(0).Send(self, kick{}) })
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			_ = c.Node(0).Send(pid, kick{})
		}
	}

	// node 1's own direct requests to node 2 (run against whichever node 1 is current)
	var n1 atomic.Pointer[actor.Node]
	n1.Store(c.Node(1))
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("n1-%d", seq.Add(1))
				to := 8 * time.Second
				ctx, cancel := context.WithTimeout(context.Background(), to)
				start := time.Now()
				r, err := n1.Load().Call(ctx, *finalPID.Load(), wrapperspb.String(id))
				cancel()
				rec := atkRecord{id: id, start: start, end: time.Now(), timeout: to, err: err, kind: "n1"}
				if err == nil {
					rec.got = r.(*wrapperspb.StringValue).GetValue()
				} else {
					time.Sleep(20 * time.Millisecond)
				}
				add(rec)
			}
		}()
	}

	time.Sleep(1500 * time.Millisecond) // load runs
	phases := []time.Time{time.Now()}
	c.Kill(1)
	c.Restart(t, 1)
	n1.Store(c.Node(1))
	spawnFwd()
	phases = append(phases, time.Now())
	time.Sleep(3 * time.Second) // load runs on the new node 1
	phases = append(phases, time.Now())
	c.Kill(2)
	c.Restart(t, 2)
	spawnFinal()
	phases = append(phases, time.Now())
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()
	time.Sleep(9 * time.Second) // let the actors' last requests end (each has an 8s deadline)

	mu.Lock()
	defer mu.Unlock()
	var bad []string
	ok, failed := 0, 0
	errs := map[string]int{}
	for _, r := range recs {
		if d := r.end.Sub(r.start); d > r.timeout+time.Second {
			bad = append(bad, fmt.Sprintf("%s took %v past its %v deadline (err %v)", r.id, d, r.timeout, r.err))
		}
		if r.err != nil {
			failed++
			e := r.err.Error()
			if i := strings.Index(e, ":"); i > 0 && len(e) > 60 {
				e = e[:60]
			}
			errs[e]++
			continue
		}
		ok++
		if r.got != "r:"+r.id {
			bad = append(bad, fmt.Sprintf("%s (%s) got %q", r.id, r.kind, r.got))
		}
	}
	phase := func(tm time.Time) int {
		i := 0
		for i < len(phases) && tm.After(phases[i]) {
			i++
		}
		return i
	}
	okBy := map[string]int{}
	errBy := map[string]string{}
	for _, r := range recs {
		k := fmt.Sprintf("phase%d/%s", phase(r.start), r.kind)
		if r.err == nil {
			okBy[k]++
		} else {
			okBy[k+"/err"]++
			errBy[k] = r.err.Error()
		}
	}
	t.Logf("phases (0 before kill 1, 1 node 1 down, 2 new node 1, 3 node 2 down, 4 new node 2): %v", okBy)
	for k, e := range errBy {
		t.Logf("last error %s: %s", k, e)
	}
	t.Logf("%d calls: %d ok, %d failed; in flight at the end %d; errors %v", len(recs), ok, failed, inFlight.Load(), errs)
	if len(bad) > 0 {
		if len(bad) > 30 {
			bad = bad[:30]
		}
		t.Fatalf("broken promises:\n%s", strings.Join(bad, "\n"))
	}
}

// TestForwarderGracefulShutdownUnderLoad: "A forwarder that shuts
// down gracefully still delivers the answer". Requesters on node 0 ask
// forwarders on node 1, which Forward to a final on node 2 that answers
// after a random delay; node 1 shuts down (cluster.Node.Shutdown) under
// that load. Every request that the final received (so node 1 forwarded
// it) must get its own answer; requests node 1 refused may fail; none
// lasts past its deadline.
func TestForwarderGracefulShutdownUnderLoad(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3, TTL: 2 * time.Second,
		Transport: tcp.Config{HeartbeatInterval: heartbeat, DeadAfter: deadAfter}})
	var seen sync.Map // ids the final received
	final, err := c.Node(2).SpawnFunc(func(ctx *actor.Context) {
		m, ok := ctx.Message().(*wrapperspb.StringValue)
		if !ok || !ctx.IsRequest() {
			return
		}
		seen.Store(m.Value, true)
		r := ctx.Responder()
		time.AfterFunc(time.Duration(rand.Int64N(int64(time.Second))), func() { r.Respond(wrapperspb.String("r:" + m.Value)) })
	})
	if err != nil {
		t.Fatal(err)
	}
	var fp atomic.Pointer[actor.PID]
	fp.Store(&final)
	fwd, err := c.Node(1).SpawnFunc(atkForwarder(&fp))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		recs []atkRecord
		seq  atomic.Int64
		wg   sync.WaitGroup
	)
	stop := make(chan struct{})
	for range 30 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("g-%d", seq.Add(1))
				to := 5 * time.Second
				ctx, cancel := context.WithTimeout(context.Background(), to)
				start := time.Now()
				r, err := c.Node(0).Call(ctx, fwd, wrapperspb.String(id))
				cancel()
				rec := atkRecord{id: id, start: start, end: time.Now(), timeout: to, err: err}
				if err == nil {
					rec.got = r.(*wrapperspb.StringValue).GetValue()
				} else {
					time.Sleep(20 * time.Millisecond)
				}
				mu.Lock()
				recs = append(recs, rec)
				mu.Unlock()
			}
		})
	}
	time.Sleep(time.Second) // load runs
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	began := time.Now()
	if err := c.Nodes[1].Shutdown(sctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	t.Logf("node 1 shut down in %v", time.Since(began))
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	var bad []string
	okN, refused := 0, 0
	for _, r := range recs {
		if d := r.end.Sub(r.start); d > r.timeout+time.Second {
			bad = append(bad, fmt.Sprintf("%s took %v (err %v)", r.id, d, r.err))
		}
		_, reached := seen.Load(r.id)
		switch {
		case r.err == nil && r.got != "r:"+r.id:
			bad = append(bad, fmt.Sprintf("%s got %q", r.id, r.got))
		case r.err == nil:
			okN++
		case reached:
			bad = append(bad, fmt.Sprintf("%s was forwarded to the final but failed: %v (after %v, shutdown began %v after it)", r.id, r.err, r.end.Sub(r.start), began.Sub(r.start)))
		default:
			refused++
		}
	}
	t.Logf("%d calls: %d ok, %d failed without reaching the final", len(recs), okN, refused)
	if len(bad) > 0 {
		if len(bad) > 20 {
			bad = bad[:20]
		}
		t.Fatalf("broken promises:\n%s", strings.Join(bad, "\n"))
	}
}

// TestForwardUnderPause: requesters on node 0 call through a
// forwarder on node 1 to a final on node 2 while node 1 is paused past the
// TTL (blackholed: what it wrote arrives late) and resumed. Every answer
// must be the request's own; none lasts past its deadline.
func TestForwardUnderPause(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3, TTL: 2 * time.Second,
		Transport: tcp.Config{HeartbeatInterval: heartbeat, DeadAfter: deadAfter}})
	final, err := c.Node(2).SpawnFunc(atkFinal(500 * time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	var fp atomic.Pointer[actor.PID]
	fp.Store(&final)
	fwd, err := c.Node(1).SpawnFunc(atkForwarder(&fp))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		recs []atkRecord
		seq  atomic.Int64
		wg   sync.WaitGroup
	)
	stop := make(chan struct{})
	for k := range 20 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("p-%d", seq.Add(1))
				to := time.Duration(1+k%4) * time.Second
				ctx, cancel := context.WithTimeout(context.Background(), to)
				start := time.Now()
				var r any
				var err error
				if k%2 == 0 {
					r, err = c.Node(0).Call(ctx, fwd, wrapperspb.String(id))
				} else {
					r, err = c.Node(2).Call(ctx, fwd, wrapperspb.String(id)) // the final's own node asks node 1
				}
				cancel()
				rec := atkRecord{id: id, start: start, end: time.Now(), timeout: to, err: err}
				if err == nil {
					rec.got = r.(*wrapperspb.StringValue).GetValue()
				} else {
					time.Sleep(20 * time.Millisecond)
				}
				mu.Lock()
				recs = append(recs, rec)
				mu.Unlock()
			}
		})
	}
	time.Sleep(time.Second) // load runs
	c.Pause(1)
	time.Sleep(3 * time.Second) // past the TTL
	c.Resume(1)
	c.WaitMembers(t, 3)
	time.Sleep(3 * time.Second) // load runs after the resume
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	var bad []string
	okN, failed := 0, 0
	for _, r := range recs {
		if d := r.end.Sub(r.start); d > r.timeout+500*time.Millisecond {
			bad = append(bad, fmt.Sprintf("%s took %v past its %v deadline (err %v)", r.id, d, r.timeout, r.err))
		}
		if r.err != nil {
			failed++
			continue
		}
		okN++
		if r.got != "r:"+r.id {
			bad = append(bad, fmt.Sprintf("%s got %q", r.id, r.got))
		}
	}
	t.Logf("%d calls: %d ok, %d failed", len(recs), okN, failed)
	if len(bad) > 0 {
		if len(bad) > 20 {
			bad = bad[:20]
		}
		t.Fatalf("broken promises:\n%s", strings.Join(bad, "\n"))
	}
}
