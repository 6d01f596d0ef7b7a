package gate_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/rpc"
)

// resumeCluster is a cluster of three nodes: gateways on nodes 0 and 2,
// the chat backend on node 1 (type 2), both gateways keeping sessions for
// resumption, with their hooks logged.
type resumeCluster struct {
	c     *clustertest.Cluster
	gates [3]*gate.Gateway
	urls  [3]string // tcp://host:port
	addrs [3]string // host:port
	hooks [3]*hookLog
}

func startResumeCluster(t *testing.T, window time.Duration) *resumeCluster {
	t.Helper()
	rc := &resumeCluster{c: clustertest.Start(t, clustertest.Options{Nodes: 3, Types: []int{1, 2, 1}})}
	serve(t, rc.c.Node(1), chatService("chat"))
	for _, i := range []int{0, 2} {
		rc.hooks[i] = newHookLog()
		rc.gates[i] = newGate(t, gate.Config{
			Node:    rc.c.Node(i),
			Members: rc.c.Members[i],
			Routes:  map[string]gate.Route{"chat": gate.To(rpc.AnyOf(2, cluster.RoundRobin))},
			Public:  []string{"chat.Login"},
			Limits:  gate.Limits{ResumeWindow: window},
			OnOpen:  rc.hooks[i].onOpen,
			OnClose: rc.hooks[i].onClose,
		})
		rc.urls[i], rc.addrs[i] = listenTCP(t, rc.gates[i])
	}
	return rc
}

// TestResumeOtherGateway: a client logged in on gateway A loses its
// connection and resumes on gateway B, on another node: a new session
// there, with the same user, state and group, which gets the pushes sent
// while it was away, in order, then the new ones; the session on A ends
// with ErrMoved.
func TestResumeOtherGateway(t *testing.T) {
	rc := startResumeCluster(t, waitTimeout)
	ctx := testCtx(t)
	back := rc.c.Node(1)
	r, id, token := rawLogin(t, rc.addrs[0], "ana")
	if resp := r.rawCall(2, "chat.Set", "team=red"); resp.GetCode() != 0 {
		t.Fatal(resp)
	}
	if err := gate.JoinGroup(ctx, back, "room", id); err != nil {
		t.Fatal(err)
	}
	r.cut()
	waitFor(t, "the session to detach", func() bool { return rc.gates[0].Detached() == 1 })

	var want []string
	for i := range 10 {
		v := fmt.Sprintf("p%d", i)
		if i%2 == 0 {
			push(t, back, id, v)
		} else if err := gate.PushUser(ctx, back, "ana", "chat.P", wrapperspb.String(v)); err != nil {
			t.Fatal(err)
		}
		want = append(want, "chat.P:"+v)
	}
	// The pushes are sent from node 1: wait until A has them all, so that
	// the order to check is theirs.
	waitFor(t, "the pushes to reach the detached session", func() bool { return rc.gates[0].Stats().Pushes >= 10 })

	r2, ack := rawResume(t, rc.addrs[2], token)
	newID := ack.GetSessionId()
	if !ack.GetResumed() || ack.GetResync() || ack.GetUserId() != "ana" || newID == id {
		t.Fatalf("resume on B: ack %v; want resumed, user ana, a new session ID", ack)
	}
	if pid, _ := gate.ParseSessionID(newID); pid.Node != rc.c.Addrs[2] {
		t.Fatalf("resumed session %s is not on node 2", newID)
	}
	if !strings.HasPrefix(ack.GetResumeToken(), newID+".") {
		t.Fatalf("token %q is not the new session's", ack.GetResumeToken())
	}
	if got := r2.pushes(len(want)); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("pushes after resuming:\n got %v\nwant %v", got, want)
	}
	if resp := r2.rawCall(3, "chat.Get", "team"); decodeString(resp.GetBody()) != "red" {
		t.Fatalf("state after resuming on B: %v", resp)
	}
	cs := rc.hooks[0].nextClosed(t)
	if cs.info.ID != id || !errors.Is(cs.reason, gate.ErrMoved) {
		t.Fatalf("A's OnClose(%s, %v), want %s, ErrMoved", cs.info.ID, cs.reason, id)
	}
	waitFor(t, "the directory to name the new session", func() bool {
		sid, err := gate.UserSession(ctx, back, "ana")
		return err == nil && sid == newID
	})
	wantGroupSize(t, rc.c, "room", 1)
	if err := gate.Broadcast(ctx, back, "room", "chat.B", wrapperspb.String("b")); err != nil {
		t.Fatal(err)
	}
	if err := gate.PushUser(ctx, back, "ana", "chat.P", wrapperspb.String("live")); err != nil {
		t.Fatal(err)
	}
	got := r2.pushes(2)
	if !(got[0] == "chat.B:b" && got[1] == "chat.P:live" || got[1] == "chat.B:b" && got[0] == "chat.P:live") {
		t.Fatalf("pushes on B: %v", got)
	}
	if rc.gates[0].Detached() != 0 {
		t.Fatalf("A still has %d detached sessions", rc.gates[0].Detached())
	}
	// The old token resumes nothing any more, on either gateway.
	for _, i := range []int{0, 2} {
		f, ack := rawResume(t, rc.addrs[i], token)
		if ack.GetResumed() {
			t.Fatalf("gateway %d resumed a used token: %v", i, ack)
		}
		f.cut()
	}
}

// TestResumeShutdownHandover: 50 clients with Reconnect and both
// gateways' addresses are on gateway A and receive pushes by user from
// the backend; A shuts down gracefully. Every client moves to B and
// resumes its session there (none starts anew), and every push the
// backend sent arrives once: none is lost across the move, even those
// sent after the GoingAway.
func TestResumeShutdownHandover(t *testing.T) {
	const clients = 50
	rc := startResumeCluster(t, waitTimeout)
	back := rc.c.Node(1)

	type tally struct {
		mu      sync.Mutex
		got     map[int]int // push number → times received
		resumed []bool
	}
	tallies := make([]*tally, clients)
	var cls []*client.Client
	for i := range clients {
		tl := &tally{got: make(map[int]int)}
		tallies[i] = tl
		cl := dial(t, client.Config{
			Addrs:      []string{rc.urls[0], rc.urls[2]},
			Reconnect:  true,
			BackoffMin: 10 * time.Millisecond,
			OnReconnect: func(r client.Reconnection) {
				tl.mu.Lock()
				tl.resumed = append(tl.resumed, r.Resumed)
				tl.mu.Unlock()
			},
		})
		cl.OnPush("chat.N", func(body []byte) {
			n, _ := strconv.Atoi(decodeString(body))
			tl.mu.Lock()
			tl.got[n]++
			tl.mu.Unlock()
		})
		mustCall(t, cl, "chat.Login", fmt.Sprint("u", i), fmt.Sprint("u", i))
		cls = append(cls, cl)
	}

	// The pusher sends push number k to every user, round after round,
	// until told to stop; a push that PushUser refuses (the directory
	// moving) is sent again, so that every number reaches every user.
	stop := make(chan struct{})
	rounds := make(chan int, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
		defer cancel()
		k := 0
		defer func() { rounds <- k }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for i := range clients {
				for ctx.Err() == nil {
					if gate.PushUser(ctx, back, fmt.Sprint("u", i), "chat.N", wrapperspb.String(strconv.Itoa(k))) == nil {
						break
					}
					time.Sleep(time.Millisecond)
				}
			}
			k++
			time.Sleep(2 * time.Millisecond)
		}
	}()
	waitFor(t, "pushes to flow", func() bool {
		tallies[clients-1].mu.Lock()
		defer tallies[clients-1].mu.Unlock()
		return len(tallies[clients-1].got) >= 3
	})

	start := time.Now()
	sctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := rc.gates[0].Shutdown(sctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	took := time.Since(start)
	waitFor(t, "every client to reconnect", func() bool {
		for _, tl := range tallies {
			tl.mu.Lock()
			n := len(tl.resumed)
			tl.mu.Unlock()
			if n == 0 {
				return false
			}
		}
		return true
	})
	for i, cl := range cls {
		if cl.Addr() != rc.urls[2] {
			t.Fatalf("client %d is on %s, want B", i, cl.Addr())
		}
		if pid, _ := gate.ParseSessionID(cl.SessionID()); pid.Node != rc.c.Addrs[2] {
			t.Fatalf("client %d's session %s is not on B", i, cl.SessionID())
		}
	}
	// A few rounds more, all on B.
	waitFor(t, "pushes after the move", func() bool {
		tallies[0].mu.Lock()
		defer tallies[0].mu.Unlock()
		return len(tallies[0].got) >= 20
	})
	close(stop)
	k := recv(t, rounds, "the pusher")
	for i, tl := range tallies {
		waitFor(t, fmt.Sprintf("client %d's pushes", i), func() bool {
			tl.mu.Lock()
			defer tl.mu.Unlock()
			return len(tl.got) >= k || tl.got[k] > 0
		})
		tl.mu.Lock()
		for _, r := range tl.resumed {
			if !r {
				t.Errorf("client %d reconnected without resuming", i)
			}
		}
		for n := range k {
			if c := tl.got[n]; c != 1 {
				t.Errorf("client %d got push %d %d times", i, n, c)
			}
		}
		tl.mu.Unlock()
	}
	t.Logf("%d clients moved; Shutdown took %v; %d rounds of pushes", clients, took, k)
}
