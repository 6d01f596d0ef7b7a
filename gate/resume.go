package gate

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/gate/gatepb"
	"github.com/guildkit/guild/gate/internal/nodepb"
	"github.com/guildkit/guild/rpc"
)

// Session resume. A session bound to a user gets a resume token,
// "<session ID>.<secret>" (16 random bytes, base64url), when
// Limits.ResumeWindow is set. When its connection is lost (no goodbye, no
// kick) the session detaches instead of ending: it keeps its user, state,
// groups and directory entry, and keeps the pushes it gets (up to
// Limits.ResumeBuffer frames and Limits.WriteQueueBytes bytes; past them
// it drops them and remembers that its client must resync). A handshake
// that presents the token attaches its connection to the session again:
// on the same gateway, the session actor itself (same session ID); on
// another, the old session hands its record over (ResumeTake) and a new
// session, with a new ID, takes it on. A session not resumed within the
// window ends as it would have (OnClose then).

// ErrMoved is the reason OnClose gets for a session that was resumed on
// another gateway: its client goes on there, in a new session.
var ErrMoved = errors.New("gate: the session was resumed on another gateway")

// errNotResumed wraps the reason of a session that was not resumed within
// Limits.ResumeWindow.
var errNotResumed = errors.New("not resumed in time")

// attachment is one connection of a session: a session is attached to
// one at a time, or to none while detached.
type attachment struct {
	conn clientConn
	out  *frameQueue // the writer's queue; closed when the session leaves the connection
	// linger is set by finish, on the writer goroutine, after the session
	// left the connection, and read by serve after the writer is done.
	linger *time.Timer
}

// newAttachment returns the attachment of c, with its write queue.
func (g *Gateway) newAttachment(c clientConn) *attachment {
	a := &attachment{conn: c}
	a.out = newFrameQueue(g.queueLimits(), c.writeFrames, func() { _ = c.close() }, a.finish, g.startWriter)
	return a
}

// finish ends the connection with e after its last frame; the writer
// calls it. Its client gets lingerTimeout to read the last frames and
// close its side before serve closes the connection.
func (a *attachment) finish(e ending) {
	a.linger = time.AfterFunc(lingerTimeout, func() { _ = a.conn.close() })
	if !a.conn.finish(e) {
		_ = a.conn.close()
	}
}

// drop leaves the connection at once: it is dead or replaced. It reports
// whether frames were still waiting (lost with it).
func (a *attachment) drop() bool {
	lost := a.out.waiting() > 0
	a.out.close(clean)
	_ = a.conn.close()
	return lost
}

// Messages of resumption.
type (
	// resumeAttach, a Call from a connection's handshake on this node,
	// asks the session to take the connection on: the answer is the
	// *session, or an error (errOtherGateway: the session belongs to
	// another Gateway on this node).
	resumeAttach struct {
		g      *Gateway
		secret string
		att    *attachment
		remote string
		kind   string
	}
	// resumeExpired: Limits.ResumeWindow has passed since the session
	// detached (gen is its detachment); or, moved, its forwarding ends.
	resumeExpired struct{ gen int }
	// resumeEnd: the gateway closes: a detached session ends now.
	resumeEnd struct{}
)

var errOtherGateway = errors.New("gate: the session belongs to another gateway")

// bufFrame is a push kept for a detached session's client.
type bufFrame struct {
	b         []byte
	key       string
	droppable bool
}

// newSecret returns a fresh resume secret.
func newSecret() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// parseResumeToken splits a resume token into the session's PID and the
// secret.
func parseResumeToken(tok string) (actor.PID, string, bool) {
	i := strings.LastIndexByte(tok, '.')
	if i <= 0 || i == len(tok)-1 {
		return actor.PID{}, "", false
	}
	pid, err := actor.ParsePID(tok[:i])
	if err != nil || pid.IsZero() {
		return actor.PID{}, "", false
	}
	return pid, tok[i+1:], true
}

// resumeToken returns the session's resume token, or "" when it has none:
// "<session ID>.<secret>", then "~" and its sealed record when it has one
// (see seal.go).
func (s *session) resumeToken() string {
	if s.secret == "" {
		return ""
	}
	if s.sealed != "" {
		return s.info.ID + "." + s.secret + tokenSealSep + s.sealed
	}
	return s.info.ID + "." + s.secret
}

// issueSecret gives a session that was just bound to a user a new resume
// secret, when the gateway keeps sessions for resumption and the client
// speaks the framed protocol (an adapter's client has no resume).
func (s *session) issueSecret() {
	if s.g.lim.ResumeWindow <= 0 || s.adapted || s.userID == "" {
		return
	}
	s.secret = newSecret()
}

// resumable reports whether the session detaches, rather than ends, when
// its connection is lost.
func (s *session) resumable() bool {
	return s.secret != "" && s.g.lim.ResumeWindow > 0 && s.movedTo.IsZero() && !s.ending
}

// secretOK compares a presented secret with the session's in constant
// time.
func (s *session) secretOK(secret string) bool {
	return s.secret != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(s.secret)) == 1
}

// detach leaves the session's connection (ended with bye) and keeps the
// session for Limits.ResumeWindow, unless the gateway is closing: then it
// ends. why is the reason OnClose gets if it is not resumed. lost says
// the connection is dead: the frames still waiting for it are lost, and
// its client must resync; otherwise (the gateway going away) they are
// written before bye.
func (s *session) detach(c *actor.Context, why error, bye ending, lost bool) {
	if !s.g.detach(s.self) {
		s.end(c, why, bye)
		return
	}
	s.registered = true
	a := s.att
	s.att = nil
	if lost && a.out.waiting() > 0 {
		s.resync = true // frames the dead connection never took
	}
	a.out.close(bye)
	s.detachErr = why
	s.resumeGen++
	c.After(s.g.lim.ResumeWindow, resumeExpired{gen: s.resumeGen})
}

// end stops the session with reason (for OnClose) and bye (for its
// client).
func (s *session) end(c *actor.Context, reason error, bye ending) {
	s.ending = true
	s.reason = reason
	s.bye = bye
	_ = c.Stop(c.Self())
}

// resumeExpired ends a session left detached for the whole window, or a
// moved session's forwarding.
func (s *session) resumeExpired(c *actor.Context, m resumeExpired) {
	if m.gen != s.resumeGen || s.ending || s.att != nil {
		return
	}
	if !s.movedTo.IsZero() {
		s.end(c, ErrMoved, clean)
		return
	}
	s.end(c, fmt.Errorf("%w: %w within %v", s.detachErr, errNotResumed, s.g.lim.ResumeWindow), clean)
}

// keep keeps a push for the detached session's client: in place of the
// one of the same coalescing key, dropped when droppable past half the
// byte budget, and dropped (the client must resync) past the bounds.
func (s *session) keep(frame []byte, key string, droppable bool) {
	if !s.movedTo.IsZero() {
		return
	}
	size := len(frame) + frameOverhead
	budget := s.g.lim.WriteQueueBytes
	if key != "" {
		for i := range s.buf {
			if f := &s.buf[i]; f.key == key {
				s.bufBytes += len(frame) - len(f.b)
				f.b, f.droppable = frame, droppable
				s.g.pushes.coalesced.Add(1)
				return
			}
		}
	}
	if droppable && s.bufBytes+size > budget/2 {
		s.g.pushes.dropped.Add(1)
		return
	}
	if len(s.buf) >= s.g.lim.ResumeBuffer || s.bufBytes+size > budget {
		s.g.pushes.dropped.Add(1)
		s.resync = true
		return
	}
	s.buf = append(s.buf, bufFrame{b: frame, key: key, droppable: droppable})
	s.bufBytes += size
}

// attach takes on the connection of a handshake that presented the
// session's resume token on this gateway: the old connection, if still
// attached, is dropped; the client gets the HandshakeAck (resumed), then
// the pushes kept for it.
func (s *session) attach(c *actor.Context, m resumeAttach) {
	switch {
	case m.g != s.g:
		c.Respond(errOtherGateway)
		return
	case !s.secretOK(m.secret) || s.ending || !s.movedTo.IsZero() || s.draining:
		c.Respond(rpc.Errorf(rpc.PermissionDenied, "not resumable"))
		return
	}
	if s.att != nil {
		if s.att.drop() {
			s.resync = true
		}
	}
	if s.registered {
		s.registered = false
		s.g.undetach(s.self)
	}
	s.att = m.att
	s.resumeGen++
	s.info.Remote, s.info.Listener = m.remote, m.kind
	s.secret = newSecret()
	s.g.stats.resumes.Add(1)
	s.ack(c, true)
	c.Respond(s)
}

// ack writes the HandshakeAck; resumed, then the pushes kept.
func (s *session) ack(c *actor.Context, resumed bool) {
	s.reseal(time.Now())
	s.write(c, &gatepb.Frame{Body: &gatepb.Frame_HandshakeAck{HandshakeAck: &gatepb.HandshakeAck{
		SessionId:   s.info.ID,
		UserId:      s.userID,
		HeartbeatMs: uint32(s.g.lim.Heartbeat / time.Millisecond),
		Version:     gatepb.Version,
		ResumeToken: s.resumeToken(),
		Resumed:     resumed,
		Resync:      resumed && s.resync,
	}}})
	buf := s.buf
	s.buf, s.bufBytes, s.resync = nil, 0, false
	for _, f := range buf {
		s.push(c, f.b, f.key, f.droppable)
	}
}

// handOver answers a new session on another gateway that presented this
// session's resume token: the record, then this session stops without a
// word to its client, forwarding for a moment the pushes still sent here.
func (s *session) handOver(c *actor.Context, m *nodepb.ResumeTake) {
	if !s.secretOK(m.GetSecret()) || s.ending || !s.movedTo.IsZero() {
		c.Respond(rpc.Errorf(rpc.PermissionDenied, "not resumable"))
		return
	}
	rec := &nodepb.ResumeRecord{
		UserId: s.userID,
		Roles:  s.id.Roles,
		State:  maps.Clone(s.state),
		Groups: slices.Sorted(maps.Keys(s.groups)),
		Resync: s.resync,
	}
	if !s.id.Expires.IsZero() {
		rec.Expires = s.id.Expires.UnixNano()
	}
	// While it forwards, the session is counted as detached, so that the
	// gateway's Shutdown and Close wait for it; an attached one registers
	// before it leaves its connection (whose serve holds the WaitGroup
	// meanwhile).
	linger := true
	if !s.registered {
		s.registered = s.g.detach(s.self)
		linger = s.registered
	}
	if s.att != nil && s.att.drop() {
		rec.Resync = true
	}
	s.att = nil
	for _, f := range s.buf {
		rec.Frames = append(rec.Frames, &nodepb.SessionFrame{Frame: f.b, Coalesce: f.key, Droppable: f.droppable})
	}
	s.buf, s.bufBytes, s.resync = nil, 0, false
	for name := range s.groups {
		_ = c.Send(s.g.hub, hubLeave{group: name, serial: s.self.Serial})
	}
	s.groups = nil
	s.movedTo = actor.PID{Node: actor.Addr(m.GetGate()), Serial: m.GetSerial()}
	s.secret = ""
	c.Respond(rec)
	s.resumeGen++
	if !linger { // the gateway is closing
		s.end(c, ErrMoved, clean)
		return
	}
	c.After(min(s.g.lim.ResumeWindow, movedLinger), resumeExpired{gen: s.resumeGen})
}

// movedLinger bounds how long a session that moved to another gateway
// forwards the pushes still sent to it (by its old ID, or to its user
// before the directory learned of the move).
const movedLinger = time.Second

// forwardPush sends a push frame to the session this one moved to.
func (s *session) forwardPush(c *actor.Context, frame []byte, key string, droppable bool) {
	_ = c.Send(s.movedTo, &nodepb.SessionFrame{Frame: frame, Coalesce: key, Droppable: droppable})
}

// resumePlan is what a handshake's resume token asks of the new session
// it starts: take over a session on another gateway (ResumeTake), or
// start from the token's sealed record (see seal.go), or the first and,
// when the old session's gateway does not answer, the second.
type resumePlan struct {
	from   actor.PID            // the session to take over; zero: none
	secret string               // its secret
	ask    bool                 // ask from first
	sealed *nodepb.ResumeRecord // the token's sealed record, opened; nil: none
}

// take resumes what the session's plan names, and reports whether it
// did: the record handed over by the old session, or, when its gateway
// does not answer (dead, unreachable, or a new process of its node), the
// token's sealed record.
func (s *session) take(c *actor.Context) bool {
	p := s.plan
	s.plan = nil
	if p.ask {
		ctx, cancel := context.WithTimeout(context.Background(), min(s.g.lim.RequestTimeout, s.g.lim.HandshakeTimeout))
		reply, err := c.Call(ctx, p.from, &nodepb.ResumeTake{Secret: p.secret, Gate: uint32(s.self.Node), Serial: s.self.Serial})
		cancel()
		if err == nil {
			rec, ok := reply.(*nodepb.ResumeRecord)
			if !ok || rec.GetUserId() == "" {
				return false
			}
			s.restore(rec)
			return true
		}
		s.g.log.Debug("gate: resume refused", "from", p.from, "err", err)
		if answered(err) && (p.sealed == nil || !s.g.sealerGone(p.from.Node, p.sealed.GetNodeStarted())) {
			// The process that sealed it answered: the session ended, or
			// refuses.
			return false
		}
	}
	if p.sealed == nil {
		return false
	}
	return s.takeSealed(c, p)
}

// answered reports whether err, from a ResumeTake, is the answer of the
// old session's node: it no longer has the session, or the session
// refused. Any other failure (the node unreachable, no answer in time)
// leaves the sealed record to be tried, and so does an answer from a
// later process of the node (see sealerGone).
func answered(err error) bool {
	return errors.Is(err, actor.ErrActorNotFound) || rpc.StatusOf(err).Code == rpc.PermissionDenied
}

// takeSealed starts the session from the sealed record of a session whose
// gateway is gone, unless its login has expired or its user is bound to
// another session since (a replay). The client resyncs: the pushes the
// old gateway held are lost.
func (s *session) takeSealed(c *actor.Context, p *resumePlan) bool {
	rec := p.sealed
	if ns := rec.GetExpires(); ns != 0 && time.Now().UnixNano() >= ns {
		s.g.log.Debug("gate: sealed resume refused: the login has expired", "user", rec.GetUserId())
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(s.g.lim.RequestTimeout, s.g.lim.HandshakeTimeout))
	pid, err := userSession(ctx, s.g.node, rec.GetUserId())
	cancel()
	if err == nil && pid != p.from {
		s.g.log.Info("gate: sealed resume refused: the user has another session", "user", rec.GetUserId(), "session", pid)
		return false
	}
	s.restore(rec)
	s.resync = true
	s.g.stats.sealed.Add(1)
	s.g.log.Info("gate: a session resumed from its sealed record: its gateway is gone", "user", rec.GetUserId(), "from", p.from, "session", s.info.ID)
	return true
}

// restore makes a record handed over, or sealed, this session's.
func (s *session) restore(rec *nodepb.ResumeRecord) {
	s.userID = rec.GetUserId()
	s.id = Identity{UserID: rec.GetUserId(), Roles: rec.GetRoles()}
	if ns := rec.GetExpires(); ns != 0 {
		s.id.Expires = time.Unix(0, ns)
	}
	if len(rec.GetState()) > 0 {
		s.state = rec.GetState()
	}
	for _, f := range rec.GetFrames() {
		s.buf = append(s.buf, bufFrame{b: f.GetFrame(), key: f.GetCoalesce(), droppable: f.GetDroppable()})
	}
	s.resync = rec.GetResync()
	s.rejoin = rec.GetGroups()
}

// detach records a detached session of the gateway, counted in its
// WaitGroup until it ends or is attached again, unless the gateway is
// closing or already keeps Limits.MaxConns detached sessions (each keeps
// pushes, up to WriteQueueBytes): it reports whether it did. The
// detached sessions are bounded apart from the connections, not with
// them, so that after a network blip that cut every client at once the
// clients can connect again to resume. The session's connection, whose
// serve is counted until the session leaves it, holds the WaitGroup
// above zero meanwhile.
func (g *Gateway) detach(pid actor.PID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing || len(g.detached) >= g.lim.MaxConns {
		return false
	}
	g.detached[pid] = struct{}{}
	g.wg.Add(1)
	return true
}

// undetach forgets a detached session: it ended or was attached again.
func (g *Gateway) undetach(pid actor.PID) {
	g.mu.Lock()
	delete(g.detached, pid)
	g.checkDrainedLocked()
	g.mu.Unlock()
	g.wg.Done()
}

// Detached returns the number of the gateway's sessions kept without a
// connection, for their clients to resume (see Limits.ResumeWindow).
func (g *Gateway) Detached() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.detached)
}

// tryResume attaches c to the session its handshake's resume token names
// on this gateway, and returns it and its attachment when it did.
// Otherwise it returns what the new session is to resume (nil:
// nothing): take over the session on another gateway (or another
// Gateway of this node), or start from the token's sealed record when
// the process that sealed it is gone.
func (g *Gateway) tryResume(c clientConn, tok string) (*session, *attachment, actor.PID, *resumePlan) {
	part, sealedText := splitSealed(tok)
	pid, secret, ok := parseResumeToken(part)
	if !ok {
		return nil, nil, actor.PID{}, nil
	}
	var sealed *nodepb.ResumeRecord
	if sealedText != "" {
		rec, err := g.openRecord(sealedText, part, time.Now())
		if err != nil {
			g.log.Debug("gate: a resume token's sealed record is refused", "session", pid, "err", err)
		}
		sealed = rec
	}
	plan := &resumePlan{from: pid, secret: secret, ask: true, sealed: sealed}
	if sealed != nil && !g.isMember(pid.Node) {
		plan.ask = false // nobody to ask: its node is gone
		return nil, nil, actor.PID{}, plan
	}
	if pid.Node != g.node.Addr() {
		return nil, nil, actor.PID{}, plan
	}
	att := g.newAttachment(c)
	ctx, cancel := context.WithTimeout(g.ctx, g.lim.RequestTimeout)
	defer cancel()
	reply, err := g.node.Call(ctx, pid, resumeAttach{g: g, secret: secret, att: att, remote: c.remoteAddr(), kind: c.kind()})
	if errors.Is(err, errOtherGateway) {
		return nil, nil, actor.PID{}, plan
	}
	if s, _ := reply.(*session); err == nil && s != nil {
		return s, att, pid, nil
	}
	// This node has no such session: ended here, or sealed by an earlier
	// process of this node.
	if sealed != nil && g.sealerGone(pid.Node, sealed.GetNodeStarted()) {
		plan.ask = false
		return nil, nil, actor.PID{}, plan
	}
	return nil, nil, actor.PID{}, nil
}

// sealerGone reports whether the process of node addr that sealed a
// record, when its membership record said it started at started (Unix
// nanoseconds; 0: unknown), is gone: the node is not a member, or a
// later process of it is. Without a membership, or with started
// unknown, it cannot tell: false.
func (g *Gateway) sealerGone(addr actor.Addr, started int64) bool {
	if g.cfg.Members == nil || started == 0 {
		return false
	}
	m, ok := g.member(addr)
	return !ok || m.Started.UnixNano() != started
}

// isMember reports whether node addr is in the membership (true without
// one: it may be, and is asked).
func (g *Gateway) isMember(addr actor.Addr) bool {
	if g.cfg.Members == nil {
		return true
	}
	_, ok := g.member(addr)
	return ok
}

// member returns node addr's membership record, if the gateway has a
// membership and addr is in it.
func (g *Gateway) member(addr actor.Addr) (cluster.Member, bool) {
	if g.cfg.Members == nil {
		return cluster.Member{}, false
	}
	for _, m := range g.cfg.Members.Members() {
		if m.Addr == addr {
			return m, true
		}
	}
	return cluster.Member{}, false
}

// nodeStarted returns when this gateway's node joined the membership
// (Unix nanoseconds), or 0 while unknown (no membership, not joined
// yet). It is sealed into records so that a later process of the same
// node knows them for another's.
func (g *Gateway) nodeStarted() int64 {
	if v := g.started.Load(); v != 0 {
		return v
	}
	if g.cfg.Members == nil {
		return 0
	}
	m, ok := g.member(g.node.Addr())
	if !ok {
		return 0
	}
	g.started.Store(m.Started.UnixNano())
	return m.Started.UnixNano()
}
