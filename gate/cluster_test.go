package gate_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/rpc"
)

// TestCrossNode runs two gateways (nodes 0 and 2) in front of a backend
// (node 1, type 2): pushes to a user on the other gateway, groups that
// span both gateways, session state seen by services on other nodes, and
// a ByUser route.
func TestCrossNode(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3, Types: []int{1, 2, 1}})
	ctx := testCtx(t)

	backend := chatService("chat")
	gate.Handle(backend, "PushTo", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := gate.PushUser(ctx, s.Actor().Node(), req.Value, "chat.From", wrapperspb.String(s.UserID())); err != nil {
			return nil, err
		}
		return wrapperspb.String("sent"), nil
	})
	gate.Handle(backend, "Join", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := gate.JoinGroup(ctx, s.Actor().Node(), req.Value, s.ID()); err != nil {
			return nil, err
		}
		return wrapperspb.String("joined"), nil
	})
	gate.Handle(backend, "Leave", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := gate.LeaveGroup(ctx, s.Actor().Node(), req.Value, s.ID()); err != nil {
			return nil, err
		}
		return wrapperspb.String("left"), nil
	})
	serve(t, c.Node(1), backend)
	// "prof" is served on node 1 too and reached by user; "local" lives on
	// gateway A's node, so that state set on node 1 is read on node 0.
	prof := gate.NewService("prof")
	gate.Handle(prof, "Where", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return wrapperspb.String(s.Actor().Node().Addr().String() + "/" + s.UserID()), nil
	})
	serve(t, c.Node(1), prof)
	local := serve(t, c.Node(0), chatService("local"))

	gates := make([]*gate.Gateway, 3)
	urls := make([]string, 3)
	for _, i := range []int{0, 2} {
		gates[i] = newGate(t, gate.Config{
			Node:    c.Node(i),
			Members: c.Members[i],
			Routes: map[string]gate.Route{
				"chat":  gate.To(rpc.AnyOf(2, cluster.RoundRobin)),
				"prof":  gate.ByUser(2),
				"local": gate.To(rpc.To(local)),
			},
			Public: []string{"chat.Login"},
		})
		urls[i], _ = listenTCP(t, gates[i])
	}

	ana := dial(t, client.Config{Addr: urls[0]}) // on gateway A
	mustCall(t, ana, "chat.Login", "ana", "ana")
	bea := dial(t, client.Config{Addr: urls[2]}) // on gateway B
	mustCall(t, bea, "chat.Login", "bea", "bea")
	if pa, _ := gate.ParseSessionID(ana.SessionID()); pa.Node != c.Addrs[0] {
		t.Fatalf("ana's session %s is not on node 0", ana.SessionID())
	}

	t.Run("PushUser to another gateway", func(t *testing.T) {
		from := make(chan string, 1)
		bea.OnPush("chat.From", func(body []byte) { from <- decodeString(body) })
		mustCall(t, ana, "chat.PushTo", "bea", "sent")
		if got := recv(t, from, "ana's push to bea"); got != "ana" {
			t.Fatalf("bea got a push from %q, want ana", got)
		}
		_, err := call(t, ana, "chat.PushTo", "nobody")
		wantCode(t, "PushUser to a user with no session", err, rpc.NotFound)
	})

	t.Run("state across nodes", func(t *testing.T) {
		mustCall(t, ana, "chat.Set", "team=red", "") // on node 1
		mustCall(t, ana, "local.Get", "team", "red") // on node 0
		mustCall(t, ana, "local.Delete", "team", "")
		_, err := call(t, ana, "chat.Get", "team")
		wantCode(t, "Get after Delete on another node", err, rpc.NotFound)
	})

	t.Run("ByUser", func(t *testing.T) {
		want := c.Addrs[1].String() + "/ana"
		for range 3 {
			mustCall(t, ana, "prof.Where", "", want)
		}
		mustCall(t, bea, "prof.Where", "", c.Addrs[1].String()+"/bea")
	})

	t.Run("PushMany across gateways", func(t *testing.T) {
		got := make(chan string, 4)
		ana.OnPush("chat.Many", func(body []byte) { got <- "ana:" + decodeString(body) })
		bea.OnPush("chat.Many", func(body []byte) { got <- "bea:" + decodeString(body) })
		ids := []string{ana.SessionID(), bea.SessionID()}
		// From the backend, where neither lives; then from gateway A,
		// where ana does.
		for _, from := range []int{1, 0} {
			msg := wrapperspb.String(fmt.Sprint("from ", from))
			if err := gate.PushMany(ctx, c.Node(from), ids, "chat.Many", msg, gate.PushOptions{}); err != nil {
				t.Fatalf("PushMany from node %d: %v", from, err)
			}
			seen := map[string]bool{recv(t, got, "a push"): true, recv(t, got, "a push"): true}
			if !seen["ana:"+msg.Value] || !seen["bea:"+msg.Value] {
				t.Fatalf("PushMany from node %d reached %v, want ana and bea", from, seen)
			}
		}
		if err := gate.PushMany(ctx, c.Node(1), []string{"nonsense"}, "chat.Many", wrapperspb.String("x"), gate.PushOptions{}); rpc.CodeOf(err) != rpc.InvalidArgument {
			t.Fatalf("PushMany to a bad session ID: %v, want InvalidArgument", err)
		}
	})

	t.Run("groups across gateways", func(t *testing.T) {
		room := make(chan string, 2)
		onRoom := func(who string) func([]byte) {
			return func(body []byte) { room <- who + ":" + decodeString(body) }
		}
		ana.OnPush("chat.Room", onRoom("ana"))
		mustCall(t, ana, "chat.Join", "room", "joined")
		// A third client, on gateway B, joins and leaves again.
		cid := dial(t, client.Config{Addr: urls[2]})
		mustCall(t, cid, "chat.Login", "cid", "cid")
		cid.OnPush("chat.Room", onRoom("cid"))
		mustCall(t, cid, "chat.Join", "room", "joined")
		wantGroupSize(t, c, "room", 2)
		mustCall(t, cid, "chat.Leave", "room", "left")
		wantGroupSize(t, c, "room", 1)
		mustCall(t, cid, "chat.Leave", "room", "left") // twice is fine

		if err := gate.Broadcast(ctx, c.Node(1), "room", "chat.Room", wrapperspb.String("hello")); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, room, "the broadcast"); got != "ana:hello" {
			t.Fatalf("broadcast reached %q, want ana only", got)
		}
		bea.OnPush("chat.Room", onRoom("bea"))
		mustCall(t, bea, "chat.Join", "room", "joined")
		wantGroupSize(t, c, "room", 2)
		if err := gate.Broadcast(ctx, c.Node(1), "room", "chat.Room", wrapperspb.String("all")); err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{recv(t, room, "the broadcast"): true, recv(t, room, "the broadcast"): true}
		if !got["ana:all"] || !got["bea:all"] {
			t.Fatalf("broadcast reached %v, want ana and bea", got)
		}
		bea.Close()
		wantGroupSize(t, c, "room", 1)
		if err := gate.Broadcast(ctx, c.Node(1), "room", "chat.Room", wrapperspb.String("left")); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, room, "the broadcast"); got != "ana:left" {
			t.Fatalf("broadcast reached %q, want ana", got)
		}
		select {
		case extra := <-room:
			t.Fatalf("unexpected push %q", extra)
		case <-time.After(50 * time.Millisecond):
		}
		if n, err := gate.GroupSize(ctx, c.Node(1), "nope"); n != 0 || err != nil {
			t.Fatalf("GroupSize of no group: %d, %v; want 0", n, err)
		}
	})
}

// wantGroupSize polls GroupSize from the backend node until it is n.
func wantGroupSize(t *testing.T, c *clustertest.Cluster, group string, n int) {
	t.Helper()
	var last int
	var lastErr error
	deadline := time.Now().Add(waitTimeout)
	for {
		last, lastErr = gate.GroupSize(testCtx(t), c.Node(1), group)
		if lastErr == nil && last == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GroupSize(%q) = %d, %v after %v; want %d", group, last, lastErr, waitTimeout, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func decodeString(body []byte) string {
	var v wrapperspb.StringValue
	if err := proto.Unmarshal(body, &v); err != nil {
		return "undecodable: " + err.Error()
	}
	return v.Value
}
