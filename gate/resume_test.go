package gate_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/gate/gatepb"
	"github.com/guildkit/guild/rpc"
)

// startResumeGate starts a one-node gateway that keeps sessions for
// resumption, with "chat.Login" public and its hooks logged.
func startResumeGate(t *testing.T, lim gate.Limits) (*oneNodeGate, *hookLog) {
	t.Helper()
	h := newHookLog()
	og := startOneNode(t, gate.Config{Public: []string{"chat.Login"}, Limits: lim, OnOpen: h.onOpen, OnClose: h.onClose})
	return og, h
}

// rawLogin opens a raw session on addr and logs it in as user: it
// returns the connection, the session ID and the resume token the
// SessionUpdate frame gave, before the login's answer.
func rawLogin(t *testing.T, addr, user string) (r *rawConn, id, token string) {
	t.Helper()
	r = rawDial(t, addr)
	ack := r.handshake()
	if ack.GetResumeToken() != "" {
		t.Fatalf("a session not logged in got a resume token: %v", ack)
	}
	r.send(requestFrame(1, "chat.Login", user))
	up := r.mustNext().GetSessionUpdate()
	if up.GetUserId() != user || !strings.HasPrefix(up.GetResumeToken(), ack.GetSessionId()+".") {
		t.Fatalf("after login: SessionUpdate %v, want user %q and a token of session %s", up, user, ack.GetSessionId())
	}
	if resp := r.mustNext().GetResponse(); resp.GetId() != 1 || resp.GetCode() != 0 {
		t.Fatalf("login: %v", resp)
	}
	return r, ack.GetSessionId(), up.GetResumeToken()
}

// rawResume opens a raw connection whose handshake presents token, and
// returns it with its ack.
func rawResume(t *testing.T, addr, token string) (*rawConn, *gatepb.HandshakeAck) {
	t.Helper()
	r := rawDial(t, addr)
	r.send(&gatepb.Frame{Body: &gatepb.Frame_Handshake{Handshake: &gatepb.Handshake{Version: gatepb.Version, Resume: token, Client: "raw-test"}}})
	ack := r.mustNext().GetHandshakeAck()
	if ack == nil || ack.GetCode() != 0 {
		t.Fatalf("resume handshake: %v", ack)
	}
	return r, ack
}

// rawCall sends a request and returns its response, skipping pushes and
// heartbeats.
func (r *rawConn) rawCall(id uint64, route, arg string) *gatepb.Response {
	r.t.Helper()
	r.send(requestFrame(id, route, arg))
	for {
		if resp := r.mustNext().GetResponse(); resp != nil {
			if resp.GetId() != id {
				r.t.Fatalf("response to %d, want %d", resp.GetId(), id)
			}
			return resp
		}
	}
}

// pushes reads n push frames (skipping heartbeats) and returns their
// strings, as "route:value".
func (r *rawConn) pushes(n int) []string {
	r.t.Helper()
	var got []string
	for len(got) < n {
		f := r.mustNext()
		if p := f.GetPush(); p != nil {
			got = append(got, p.GetRoute()+":"+decodeString(p.GetBody()))
		} else if f.GetHeartbeat() == nil {
			r.t.Fatalf("a %T frame among the pushes", f.GetBody())
		}
	}
	return got
}

// cut closes the raw connection without a goodbye, as a network loss
// would end it.
func (r *rawConn) cut() { _ = r.nc.Close() }

func push(t *testing.T, n *actor.Node, id, v string) {
	t.Helper()
	if err := gate.Push(n, id, "chat.P", wrapperspb.String(v)); err != nil {
		t.Fatal(err)
	}
}

// TestResumeSameGateway: a logged-in client's connection is cut; pushes
// sent to its session (by ID and by user) while it is away are kept; its
// new connection resumes the same session (ID, user, state, group), gets
// every push once, in order, before a new one, and the token is rotated.
func TestResumeSameGateway(t *testing.T) {
	og, h := startResumeGate(t, gate.Limits{ResumeWindow: waitTimeout})
	ctx := testCtx(t)
	r, id, token := rawLogin(t, og.addr, "ana")
	h.nextOpened(t)
	if resp := r.rawCall(2, "chat.Set", "team=red"); resp.GetCode() != 0 {
		t.Fatal(resp)
	}
	if err := gate.JoinGroup(ctx, og.n, "room", id); err != nil {
		t.Fatal(err)
	}
	r.cut()
	waitFor(t, "the session to detach", func() bool { return og.g.Detached() == 1 && og.g.Conns() == 0 })

	var want []string
	for i := range 20 {
		v := fmt.Sprintf("p%d", i)
		if i%2 == 0 {
			push(t, og.n, id, v)
		} else if err := gate.PushUser(ctx, og.n, "ana", "chat.P", wrapperspb.String(v)); err != nil {
			t.Fatal(err)
		}
		want = append(want, "chat.P:"+v)
	}
	if err := gate.Broadcast(ctx, og.n, "room", "chat.B", wrapperspb.String("b")); err != nil {
		t.Fatal(err)
	}
	want = append(want, "chat.B:b")
	select {
	case cs := <-h.closed:
		t.Fatalf("OnClose ran for a detached session: %v", cs.reason)
	default:
	}

	r2, ack := rawResume(t, og.addr, token)
	if !ack.GetResumed() || ack.GetResync() || ack.GetSessionId() != id || ack.GetUserId() != "ana" {
		t.Fatalf("resume ack %v: want resumed, no resync, session %s, user ana", ack, id)
	}
	if tok := ack.GetResumeToken(); tok == "" || tok == token || !strings.HasPrefix(tok, id+".") {
		t.Fatalf("resume token after resuming %q (was %q): want a new one of the same session", tok, token)
	}
	if got := r2.pushes(len(want)); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("pushes after resuming:\n got %v\nwant %v", got, want)
	}
	push(t, og.n, id, "live")
	if got := r2.pushes(1); got[0] != "chat.P:live" {
		t.Fatalf("a push after resuming: %v", got)
	}
	if resp := r2.rawCall(3, "chat.Get", "team"); resp.GetCode() != 0 || decodeString(resp.GetBody()) != "red" {
		t.Fatalf("state after resuming: %v", resp)
	}
	if n, err := gate.GroupSize(ctx, og.n, "room"); err != nil || n != 1 {
		t.Fatalf("GroupSize after resuming = %d, %v; want 1", n, err)
	}
	if og.g.Detached() != 0 {
		t.Fatalf("Detached = %d after resuming", og.g.Detached())
	}

	// The first token was rotated: it resumes nothing now, and the
	// handshake goes on as a new session.
	r3, ack3 := rawResume(t, og.addr, token)
	if ack3.GetResumed() || ack3.GetSessionId() == id || ack3.GetUserId() != "" {
		t.Fatalf("a used token: ack %v, want a new session not logged in", ack3)
	}
	r3.cut()
	h.nextOpened(t) // the new session's
	// The resumed session is still the user's.
	if sid, err := gate.UserSession(ctx, og.n, "ana"); err != nil || sid != id {
		t.Fatalf("UserSession = %q, %v; want %s", sid, err, id)
	}
}

// TestResumeReplacesLiveConnection: a client that reconnects before the
// gateway noticed its old connection is dead resumes the session; the old
// connection is closed.
func TestResumeReplacesLiveConnection(t *testing.T) {
	og, _ := startResumeGate(t, gate.Limits{ResumeWindow: waitTimeout})
	r, id, token := rawLogin(t, og.addr, "ana")
	r2, ack := rawResume(t, og.addr, token)
	if !ack.GetResumed() || ack.GetSessionId() != id {
		t.Fatalf("resume ack %v: want session %s resumed", ack, id)
	}
	r.wantEnd()
	push(t, og.n, id, "x")
	if got := r2.pushes(1); got[0] != "chat.P:x" {
		t.Fatal(got)
	}
	if resp := r2.rawCall(2, "chat.Whoami", ""); decodeString(resp.GetBody()) != "ana" {
		t.Fatal(resp)
	}
}

// TestResumeBufferOverflow: a detached session keeps ResumeBuffer pushes
// (one per coalescing key); past them it drops pushes, and the resumed
// client is told to resync; later pushes arrive.
func TestResumeBufferOverflow(t *testing.T) {
	og, _ := startResumeGate(t, gate.Limits{ResumeWindow: waitTimeout, ResumeBuffer: 5})
	r, id, token := rawLogin(t, og.addr, "ana")
	r.cut()
	waitFor(t, "the session to detach", func() bool { return og.g.Detached() == 1 })
	for i := range 3 {
		if err := gate.PushWith(og.n, id, "chat.C", wrapperspb.String(fmt.Sprint(i)), gate.PushOptions{Coalesce: "pos"}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 6 {
		push(t, og.n, id, fmt.Sprintf("p%d", i))
	}
	r2, ack := rawResume(t, og.addr, token)
	if !ack.GetResumed() || !ack.GetResync() {
		t.Fatalf("resume ack %v: want resumed and resync", ack)
	}
	want := "chat.C:2 chat.P:p0 chat.P:p1 chat.P:p2 chat.P:p3"
	if got := strings.Join(r2.pushes(5), " "); got != want {
		t.Fatalf("pushes kept:\n got %s\nwant %s", got, want)
	}
	push(t, og.n, id, "later")
	if got := r2.pushes(1); got[0] != "chat.P:later" {
		t.Fatalf("after the kept pushes: %v", got)
	}
	if st := og.g.PushStats(); st.Dropped < 2 || st.Coalesced < 2 {
		t.Fatalf("PushStats %+v: want at least 2 dropped and 2 coalesced", st)
	}
}

// TestResumeWindowExpires: a session not resumed within the window ends
// (OnClose, its user unbound), and its token then opens a new session.
func TestResumeWindowExpires(t *testing.T) {
	og, h := startResumeGate(t, gate.Limits{ResumeWindow: 200 * time.Millisecond})
	r, id, token := rawLogin(t, og.addr, "ana")
	h.nextOpened(t)
	r.cut()
	cs := h.nextClosed(t)
	if cs.info.ID != id || cs.info.UserID != "ana" || !errContains(cs.reason, "not resumed in time") {
		t.Fatalf("OnClose(%+v, %v): want session %s of ana, not resumed", cs.info, cs.reason, id)
	}
	waitFor(t, "no session detached", func() bool { return og.g.Detached() == 0 })
	waitFor(t, "the directory to drop ana", func() bool {
		_, err := gate.UserSession(testCtx(t), og.n, "ana")
		return rpc.CodeOf(err) == rpc.NotFound
	})
	_, ack := rawResume(t, og.addr, token)
	if ack.GetResumed() || ack.GetSessionId() == id {
		t.Fatalf("an expired token: ack %v, want a new session", ack)
	}
}

// TestResumeEndsAtOnce: a goodbye, a kick and a session not logged in do
// not detach: they end at once, as without resumption.
func TestResumeEndsAtOnce(t *testing.T) {
	og, h := startResumeGate(t, gate.Limits{ResumeWindow: waitTimeout})
	r, id, _ := rawLogin(t, og.addr, "ana")
	h.nextOpened(t)
	r.send(&gatepb.Frame{Body: &gatepb.Frame_Close{Close: &gatepb.Close{Reason: "bye"}}})
	if cs := h.nextClosed(t); cs.info.ID != id || cs.reason != nil {
		t.Fatalf("goodbye: OnClose(%s, %v), want %s, nil", cs.info.ID, cs.reason, id)
	}

	r, id, _ = rawLogin(t, og.addr, "bea")
	h.nextOpened(t)
	if err := gate.Kick(og.n, id, "out"); err != nil {
		t.Fatal(err)
	}
	r.wantClose(rpc.PermissionDenied)
	if cs := h.nextClosed(t); cs.info.ID != id || !errContains(cs.reason, "kicked") {
		t.Fatalf("kick: OnClose(%s, %v)", cs.info.ID, cs.reason)
	}

	r = rawDial(t, og.addr)
	ack := r.handshake()
	h.nextOpened(t)
	r.cut()
	if cs := h.nextClosed(t); cs.info.ID != ack.GetSessionId() {
		t.Fatalf("a session not logged in: OnClose(%s)", cs.info.ID)
	}
	if og.g.Detached() != 0 {
		t.Fatalf("Detached = %d", og.g.Detached())
	}
}

// TestResumeForgedToken: a token with a wrong secret, or that is no
// token, resumes nothing: the handshake opens a new session, and the
// detached session is left as it was, for its real token.
func TestResumeForgedToken(t *testing.T) {
	og, _ := startResumeGate(t, gate.Limits{ResumeWindow: waitTimeout})
	r, id, token := rawLogin(t, og.addr, "ana")
	r.cut()
	waitFor(t, "the session to detach", func() bool { return og.g.Detached() == 1 })
	secret := token[strings.LastIndexByte(token, '.')+1:]
	forged := []string{
		id + ".AAAAAAAAAAAAAAAAAAAAAA",
		id + "." + secret[:len(secret)-1],
		id + ".",
		"nonsense",
		"1.2.3/4." + secret, // another node's session
		token + "x",
	}
	for _, tok := range forged {
		f, ack := rawResume(t, og.addr, tok)
		if ack.GetResumed() || ack.GetSessionId() == id || ack.GetUserId() != "" {
			t.Fatalf("token %q: ack %v, want a new session not logged in", tok, ack)
		}
		f.cut()
	}
	if og.g.Detached() != 1 {
		t.Fatalf("Detached = %d after forged tokens, want 1", og.g.Detached())
	}
	_, ack := rawResume(t, og.addr, token)
	if !ack.GetResumed() || ack.GetSessionId() != id {
		t.Fatalf("the real token after forged ones: %v", ack)
	}
}

// TestResumeOffByDefault: without ResumeWindow no token is given and a
// lost connection ends its session at once.
func TestResumeOffByDefault(t *testing.T) {
	h := newHookLog()
	og := startOneNode(t, gate.Config{Public: []string{"chat.Login"}, OnClose: h.onClose})
	r := rawDial(t, og.addr)
	if ack := r.handshake(); ack.GetResumeToken() != "" {
		t.Fatal(ack)
	}
	resp := r.rawCall(1, "chat.Login", "ana")
	if resp.GetCode() != 0 {
		t.Fatal(resp)
	}
	r.cut()
	if cs := h.nextClosed(t); cs.info.UserID != "ana" || errors.Is(cs.reason, gate.ErrMoved) {
		t.Fatalf("OnClose(%+v, %v)", cs.info, cs.reason)
	}
}

// TestResumeAgainAndAgain: a session resumed on the same gateway detaches
// again when its new connection is lost, and resumes again, each time
// with the latest token and the pushes of its absence.
func TestResumeAgainAndAgain(t *testing.T) {
	og, _ := startResumeGate(t, gate.Limits{ResumeWindow: waitTimeout})
	r, id, token := rawLogin(t, og.addr, "ana")
	for round := range 3 {
		r.cut()
		waitFor(t, "the session to detach", func() bool { return og.g.Detached() == 1 })
		v := fmt.Sprint("round", round)
		push(t, og.n, id, v)
		var ack *gatepb.HandshakeAck
		r, ack = rawResume(t, og.addr, token)
		if !ack.GetResumed() || ack.GetSessionId() != id {
			t.Fatalf("round %d: ack %v", round, ack)
		}
		token = ack.GetResumeToken()
		if got := r.pushes(1); got[0] != "chat.P:"+v {
			t.Fatalf("round %d: %v", round, got)
		}
	}
}

// TestResumeAfterHeartbeatLoss: a client silent past the heartbeat
// deadline is told so, and its session detaches: it can resume.
func TestResumeAfterHeartbeatLoss(t *testing.T) {
	og, h := startResumeGate(t, gate.Limits{ResumeWindow: waitTimeout, Heartbeat: 50 * time.Millisecond})
	r, id, token := rawLogin(t, og.addr, "ana")
	h.nextOpened(t)
	r.wantClose(rpc.DeadlineExceeded)
	waitFor(t, "the session to detach", func() bool { return og.g.Detached() == 1 })
	push(t, og.n, id, "missed")
	r2, ack := rawResume(t, og.addr, token)
	if !ack.GetResumed() || ack.GetSessionId() != id {
		t.Fatalf("ack %v", ack)
	}
	if got := r2.pushes(1); got[0] != "chat.P:missed" {
		t.Fatal(got)
	}
	select {
	case cs := <-h.closed:
		t.Fatalf("OnClose(%s, %v) for a session that detached", cs.info.ID, cs.reason)
	default:
	}
}
