package gate_test

import (
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/rpc"
)

// startSealCluster is startResumeCluster with a ResumeKey shared by both
// gateways (nodes 0 and 2; the chat backend on node 1).
func startSealCluster(t *testing.T) *resumeCluster {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	rc := &resumeCluster{c: clustertest.Start(t, clustertest.Options{Nodes: 3, Types: []int{1, 2, 1}})}
	serve(t, rc.c.Node(1), chatService("chat"))
	for _, i := range []int{0, 2} {
		rc.hooks[i] = newHookLog()
		rc.gates[i] = newGate(t, gate.Config{
			Node:      rc.c.Node(i),
			Members:   rc.c.Members[i],
			Routes:    map[string]gate.Route{"chat": gate.To(rpc.AnyOf(2, cluster.RoundRobin))},
			Public:    []string{"chat.Login"},
			Limits:    gate.Limits{ResumeWindow: waitTimeout},
			ResumeKey: key,
			OnOpen:    rc.hooks[i].onOpen,
			OnClose:   rc.hooks[i].onClose,
		})
		rc.urls[i], rc.addrs[i] = listenTCP(t, rc.gates[i])
	}
	return rc
}

// nextToken reads frames up to the next SessionUpdate, skipping pushes
// and heartbeats, and returns its resume token.
func (r *rawConn) nextToken() string {
	r.t.Helper()
	for {
		f := r.mustNext()
		if up := f.GetSessionUpdate(); up != nil {
			return up.GetResumeToken()
		}
		if f.GetPush() == nil && f.GetHeartbeat() == nil {
			r.t.Fatalf("a %T frame while waiting for a SessionUpdate", f.GetBody())
		}
	}
}

// TestResumeAfterGatewayKill: a client logged in on gateway A, with state
// and a group, whose gateway is killed outright (its node's connections
// reset, its lease left to expire) resumes on gateway B from the record
// sealed into its token: same user, state and group, a new session,
// told to resync; pushes and broadcasts reach it there. The same token
// presented again is refused (the user has a session), and so is a
// tampered one.
func TestResumeAfterGatewayKill(t *testing.T) {
	rc := startSealCluster(t)
	ctx := testCtx(t)
	back := rc.c.Node(1)
	r, id, token := rawLogin(t, rc.addrs[0], "ana")
	if !strings.Contains(token, "~") {
		t.Fatalf("login token %q has no sealed record", token)
	}
	if resp := r.rawCall(2, "chat.Set", "team=red"); resp.GetCode() != 0 {
		t.Fatal(resp)
	}
	if tok := r.nextToken(); tok == token || !strings.HasPrefix(tok, id+".") {
		t.Fatalf("after a state change: token %q, was %q", tok, token)
	} else {
		token = tok
	}
	if err := gate.JoinGroup(ctx, back, "room", id); err != nil {
		t.Fatal(err)
	}
	token = r.nextToken()

	rc.c.Kill(0)
	r.cut()

	t0 := time.Now()
	r2, ack := rawResume(t, rc.addrs[2], token)
	t.Logf("resumed in %v", time.Since(t0))
	newID := ack.GetSessionId()
	if !ack.GetResumed() || !ack.GetResync() || ack.GetUserId() != "ana" || newID == id {
		t.Fatalf("resume on B after A's death: ack %v; want resumed, resync, user ana, a new session", ack)
	}
	if pid, _ := gate.ParseSessionID(newID); pid.Node != rc.c.Addrs[2] {
		t.Fatalf("resumed session %s is not on node 2", newID)
	}
	if resp := r2.rawCall(3, "chat.Get", "team"); decodeString(resp.GetBody()) != "red" {
		t.Fatalf("state after the sealed resume: %v", resp)
	}
	if st := rc.gates[2].Stats(); st.SealedResumes != 1 || st.Resumes != 1 {
		t.Fatalf("B's stats: %d resumes, %d sealed; want 1, 1", st.Resumes, st.SealedResumes)
	}
	waitFor(t, "the directory to name the new session", func() bool {
		sid, err := gate.UserSession(ctx, back, "ana")
		return err == nil && sid == newID
	})
	waitFor(t, "the group to count the resumed member", func() bool {
		n, err := gate.GroupSize(ctx, back, "room")
		return err == nil && n == 1
	})
	if err := gate.Broadcast(ctx, back, "room", "chat.B", wrapperspb.String("b")); err != nil {
		t.Fatal(err)
	}
	if err := gate.PushUser(ctx, back, "ana", "chat.P", wrapperspb.String("live")); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r2.pushes(2), " "); got != "chat.B:b chat.P:live" && got != "chat.P:live chat.B:b" {
		t.Fatalf("pushes after the sealed resume: %s", got)
	}

	// A replay of the old token while the user is on: a new session, not
	// logged in.
	_, ack = rawResume(t, rc.addrs[2], token)
	if ack.GetResumed() || ack.GetUserId() != "" {
		t.Fatalf("a replayed token: ack %v; want a new session without a user", ack)
	}
	// A tampered sealed record: the same.
	i := strings.Index(token, "~") + 5
	bad := token[:i] + string('A'+(token[i]-'A'+1)%26) + token[i+1:]
	_, ack = rawResume(t, rc.addrs[2], bad)
	if ack.GetResumed() || ack.GetUserId() != "" {
		t.Fatalf("a tampered token: ack %v; want a new session without a user", ack)
	}
	if st := rc.gates[2].Stats(); st.SealedResumes != 1 {
		t.Fatalf("B resumed %d sessions from sealed records, want 1", st.SealedResumes)
	}
}

// TestSealedTokenOfEndedSession: the token of a session that ended on a
// live gateway (kicked, here) resumes nothing, though its sealed record
// opens: its gateway answers that the session is gone.
func TestSealedTokenOfEndedSession(t *testing.T) {
	rc := startSealCluster(t)
	ctx := testCtx(t)
	back := rc.c.Node(1)
	r, _, token := rawLogin(t, rc.addrs[2], "bob")
	if err := gate.KickUser(ctx, back, "bob", "banned"); err != nil {
		t.Fatal(err)
	}
	for {
		if f := r.mustNext(); f.GetClose() != nil {
			break
		}
	}
	for _, i := range []int{2, 0} { // the same gateway, and the other
		_, ack := rawResume(t, rc.addrs[i], token)
		if ack.GetResumed() || ack.GetUserId() != "" {
			t.Fatalf("gateway %d: the token of a kicked session: ack %v; want a new session without a user", i, ack)
		}
	}
	if st := rc.gates[0].Stats(); st.Resumes != 0 {
		t.Fatalf("gateway 0 resumed %d sessions", st.Resumes)
	}
}
