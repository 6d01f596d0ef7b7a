package gate_test

import (
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/internal/await"
)

// TestSlowReadersCutByBytes: 200 clients that open a session and then
// stop reading, flooded with pushes beside 10 clients that read. Each
// slow client is cut off (Close 8, "does not read fast enough") once its
// write queue holds Limits.WriteQueueBytes, well within the stated time;
// the heap grows by no more than the 200 budgets; no reading client is
// cut off, and each gets every push. (The bounded form of issue 19's
// 2,000 clients that join then stop reading; the slow clients' receive
// buffers are made small, so that the kernel does not hold megabytes of
// their pushes before the gateway's queue fills.)
func TestSlowReadersCutByBytes(t *testing.T) {
	const slowN, goodN = 200, 10
	var opened, cutOff, otherEnd atomic.Int64
	var otherReason atomic.Value
	onClose := func(_ *gate.SessionInfo, reason error) {
		if errContains(reason, "does not read fast enough") {
			cutOff.Add(1)
		} else {
			otherEnd.Add(1)
			otherReason.Store(fmt.Sprint(reason))
		}
	}
	onOpen := func(*gate.SessionInfo) { opened.Add(1) }
	// The slow clients never send: a heartbeat deadline longer than any
	// run keeps them from being closed as silent on a busy machine.
	lim := gate.Limits{WriteQueueBytes: 256 << 10, SlowClientAfter: 2 * time.Second, Heartbeat: time.Hour}
	f := startOneNode(t, gate.Config{Public: []string{"chat.Echo"}, OnClose: onClose, OnOpen: onOpen, Limits: lim})

	var good []*client.Client
	var got atomic.Int64
	for range goodN {
		c := dial(t, client.Config{Addr: f.url})
		c.OnPush("flood", func([]byte) { got.Add(1) })
		good = append(good, c)
	}
	slow := make([]string, 0, slowN)
	for range slowN {
		r := rawDial(t, f.addr)
		_ = r.nc.(interface{ SetReadBuffer(int) error }).SetReadBuffer(4 << 10)
		slow = append(slow, r.handshake().GetSessionId()) // and then never reads
	}
	await.True(t, waitTimeout, "every session to open", func() bool { return opened.Load() == goodN+slowN })
	var ms runtime.MemStats
	// The heap is measured live (after a collection): what the queues
	// hold, not garbage a busy collector has yet to reclaim.
	liveHeap := func() uint64 {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	base := liveHeap()
	peak := base

	big := wrapperspb.Bytes(make([]byte, 16<<10))
	start := time.Now()
	round := 0
	for ; cutOff.Load() < slowN && time.Since(start) < 30*time.Second; round++ {
		for _, id := range slow {
			_ = gate.Push(f.n, id, "flood", big) // a copy each: nothing shared
		}
		for _, c := range good {
			if err := gate.Push(f.n, c.SessionID(), "flood", big); err != nil {
				t.Fatalf("a push to a reading client: %v", err)
			}
		}
		if round%10 == 0 {
			peak = max(peak, liveHeap())
		}
		// The reading clients keep up; a round waits for them.
		await.True(t, waitTimeout, "the reading clients to take round "+fmt.Sprint(round), func() bool {
			return got.Load() == int64((round+1)*goodN)
		})
	}
	t.Logf("%d rounds of %d KiB", round, len(big.Value)>>10)
	await.True(t, waitTimeout, "every slow client to be cut off", func() bool { return cutOff.Load() == slowN })
	if n := otherEnd.Load(); n != 0 {
		t.Fatalf("%d sessions ended otherwise than cut off as slow (one: %v)", n, otherReason.Load())
	}
	took := time.Since(start)
	peak = max(peak, liveHeap())
	bound := uint64(slowN*lim.WriteQueueBytes) + 32<<20
	t.Logf("%d slow clients cut off in %v; heap %d MiB at start, peak %d MiB (bound %d MiB)", slowN, took.Round(time.Millisecond), base>>20, peak>>20, (base+bound)>>20)
	if peak > base+bound {
		t.Errorf("heap peaked at %d MiB, %d MiB over its start: more than the slow clients' budgets", peak>>20, (peak-base)>>20)
	}
	// How long it took is logged, not checked: the rounds wait for the
	// reading clients, so on a busy machine they are slow, and the kernel's
	// socket buffers take megabytes before the queue fills.
	for _, c := range good {
		mustCall(t, c, "chat.Echo", "alive", "echo:alive")
	}
	await.True(t, waitTimeout, "only the reading clients to be left", func() bool { return f.g.Conns() == goodN })
}

// worldLike returns a message shaped like a game's world update: n
// entities of a few fields each.
func worldLike(n int) proto.Message {
	l := &structpb.ListValue{}
	for i := range n {
		s, _ := structpb.NewStruct(map[string]any{"id": fmt.Sprintf("player-%04d", i), "name": fmt.Sprintf("name %d", i), "x": float64(i) * 1.5, "y": float64(i) * 2.5, "score": float64(i)})
		l.Values = append(l.Values, structpb.NewStructValue(s))
	}
	return l
}

// BenchmarkPushMany pushes one world-like update (20 entities) to 100
// sessions: with PushMany (encoded once, the frame shared) against 100
// Pushes (each marshalled, and framed by its session). An op is one push
// to all 100, delivered: every 16 ops wait until the clients have read
// them all.
func BenchmarkPushMany(b *testing.B) {
	const sessions, window = 100, 16
	f := startOneNode(b, gate.Config{})
	var got atomic.Int64
	ids := make([]string, 0, sessions)
	for range sessions {
		c := dial(b, client.Config{Addr: f.url})
		c.OnPush("world", func([]byte) { got.Add(1) })
		ids = append(ids, c.SessionID())
	}
	msg := worldLike(20)
	run := func(b *testing.B, push func() error) {
		got.Store(0)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if err := push(); err != nil {
				b.Fatal(err)
			}
			if (i+1)%window == 0 || i == b.N-1 {
				want := int64(i+1) * sessions
				await.True(b, waitTimeout, "the clients to read their pushes", func() bool { return got.Load() == want })
			}
		}
	}
	ctx := testCtx(b)
	b.Run(fmt.Sprintf("PushMany/sessions=%d", sessions), func(b *testing.B) {
		run(b, func() error { return gate.PushMany(ctx, f.n, ids, "world", msg, gate.PushOptions{}) })
	})
	b.Run(fmt.Sprintf("Push×N/sessions=%d", sessions), func(b *testing.B) {
		run(b, func() error {
			for _, id := range ids {
				if err := gate.Push(f.n, id, "world", msg); err != nil {
					return err
				}
			}
			return nil
		})
	})
}

// TestGroupBroadcastBudget: a group sends at most its gateway's
// GroupBurst broadcasts at once and GroupRate a second; those beyond are
// dropped and counted, and the group sends again once its budget refills.
func TestGroupBroadcastBudget(t *testing.T) {
	f := startOneNode(t, gate.Config{Limits: gate.Limits{GroupRate: 2, GroupBurst: 3}})
	c := dial(t, client.Config{Addr: f.url})
	var got atomic.Int64
	c.OnPush("room", func([]byte) { got.Add(1) })
	ctx := testCtx(t)
	if err := gate.JoinGroup(ctx, f.n, "room", c.SessionID()); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if err := gate.Broadcast(ctx, f.n, "room", "room", wrapperspb.String("flood")); err != nil {
			t.Fatal(err)
		}
	}
	await.True(t, waitTimeout, "the burst's broadcasts to arrive", func() bool { return got.Load() >= 3 })
	if n := got.Load(); n > 4 { // a token may refill meanwhile
		t.Fatalf("%d of 10 broadcasts at once arrived, want the burst of 3", n)
	}
	await.True(t, waitTimeout, "the dropped broadcasts to be counted", func() bool { return f.g.PushStats().Throttled+uint64(got.Load()) == 10 })
	before := got.Load()
	await.True(t, waitTimeout, "a broadcast to pass once the budget refills", func() bool {
		_ = gate.Broadcast(ctx, f.n, "room", "room", wrapperspb.String("later"))
		return got.Load() > before
	})
}

// TestPushPoliciesSpareASlowReader: a client that stops reading is sent
// far more than its write queue's byte budget, in pushes marked
// latest-wins or droppable: it is not cut off (its queue holds one
// waiting world update and at most half its budget of droppable pushes),
// the gateway counts what it coalesced and dropped, and once the client
// reads again the last world update it gets is the latest.
func TestPushPoliciesSpareASlowReader(t *testing.T) {
	const pushes = 1000
	lim := gate.Limits{WriteQueueBytes: 256 << 10, SlowClientAfter: time.Minute}
	f := startOneNode(t, gate.Config{Limits: lim})
	r := rawDial(t, f.addr)
	id := r.handshake().GetSessionId()
	pad := strings.Repeat("x", 16<<10)
	for i := range pushes { // 16 MB each kind: 64 times the budget, 4 times what the kernel's buffers hold
		if err := gate.PushWith(f.n, id, "world", wrapperspb.String(fmt.Sprint(i, pad)), gate.PushOptions{Coalesce: "world"}); err != nil {
			t.Fatal(err)
		}
		if err := gate.PushWith(f.n, id, "fx", wrapperspb.String(pad), gate.PushOptions{Droppable: true}); err != nil {
			t.Fatal(err)
		}
	}
	await.True(t, waitTimeout, "pushes to be coalesced and dropped", func() bool {
		st := f.g.PushStats()
		return st.Coalesced > 0 && st.Dropped > 0
	})
	last := fmt.Sprint(pushes-1, pad)
	for {
		fr, err := r.next()
		if err != nil {
			t.Fatalf("the slow reader, reading again: %v (stats %+v)", err, f.g.PushStats())
		}
		if p := fr.GetPush(); p != nil && p.GetRoute() == "world" && decodeString(p.GetBody()) == last {
			break
		}
		if fr.GetClose() != nil {
			t.Fatalf("the slow reader was cut off: %v", fr.GetClose())
		}
	}
	st := f.g.PushStats()
	t.Logf("%d world updates and %d droppable pushes of 16 KiB: %d coalesced, %d dropped", pushes, pushes, st.Coalesced, st.Dropped)
}

// TestSendBufferBoundsTheKernel pushes 1 KiB every 10 ms to a client that
// never reads (its receive buffer is 4 KiB). With the kernel's send buffer
// bounded (Limits.SendBuffer, 64 KiB by default) it fills within about
// two seconds, frames then wait in the gateway's queue, and
// SlowClientAfter cuts the client off: well within 15 s. With the
// system's autotuned buffer (SendBuffer -1: up to tcp_wmem's 4 MiB on
// Linux) the same client was still connected after 15 s.
func TestSendBufferBoundsTheKernel(t *testing.T) {
	cut := make(chan time.Time, 1)
	onClose := func(_ *gate.SessionInfo, reason error) {
		if errContains(reason, "does not read fast enough") {
			cut <- time.Now()
		}
	}
	lim := gate.Limits{SlowClientAfter: time.Second, Heartbeat: time.Hour}
	f := startOneNode(t, gate.Config{Public: []string{"chat.Echo"}, OnClose: onClose, Limits: lim})
	r := rawDial(t, f.addr)
	_ = r.nc.(*net.TCPConn).SetReadBuffer(4 << 10)
	id := r.handshake().GetSessionId() // and then never reads

	push := wrapperspb.Bytes(make([]byte, 1<<10))
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case at := <-cut:
			t.Logf("a client that never reads was cut off %v after the first push", at.Sub(start).Round(time.Millisecond))
			return
		case <-tick.C:
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Fatalf("a client that never reads is still connected after %v of 1 KiB pushes every 10 ms", d.Round(time.Second))
		}
		_ = gate.Push(f.n, id, "flood", push)
	}
}
