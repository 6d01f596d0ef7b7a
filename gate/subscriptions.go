package gate

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/grain/grainpb"
	"github.com/guildkit/guild/propsync/propsyncpb"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/rpc/rpcpb"
)

// A session keeps the property-sync subscriptions its client made
// through the gateway's routes to guild.propsync.Sync (Route.syncs), by
// entity ("kind/key"), for three things a grain cannot do alone:
//
//   - Bound them (Limits.MaxSubscriptions): each keeps its grain active.
//   - End them when the session's user changes (Session.Bind to another
//     user): a grain keys its subscribers by session, and checked the
//     user only at Subscribe. The session sends each grain the Unsubscribe
//     the old user would, pushes its client the end notice, and from then
//     on drops the deltas of that grain (revoked) until the grain has
//     confirmed the Unsubscribe, or its activation ended: so a lost
//     Unsubscribe leaks nothing either.
//   - Tell its client when the grain's activation is gone without an end
//     notice (its node crashed): it watches the activation that answered
//     the Subscribe, and on Terminated pushes the client the end notice
//     the grain could not.
//
// It learns of the grain's own end notices by reading the pushes of the
// deltas' routes (Gateway.deltas). Subscriptions a game's service makes
// with grain.System.Subscribe never pass through it: they are the game's.

// The property-sync methods a session keeps track of (outgoing.sync).
const (
	syncNone = iota
	syncSubscribe
	syncUnsubscribe
)

// syncSub is one entity's subscription, as the session knows it.
type syncSub struct {
	kind, key string
	deltas    string    // the push route of its deltas (Route.deltas)
	user      string    // the user it was made for, while active
	pid       actor.PID // the activation that answered the last Subscribe, watched; zero: none
	active    bool      // the grain holds a subscription of the session's present user
	pending   int       // Subscribes forwarded for the present user, not answered yet
	stale     int       // Subscribes forwarded for an earlier user, not answered yet
	unsubs    int       // Unsubscribes the session sent itself (revoke), not answered yet
	lost      bool      // one of those went unconfirmed: the grain may still push
}

// revoked reports whether the grain may push the session deltas of a
// subscription made for an earlier user: they are dropped.
func (e *syncSub) revoked() bool { return e.stale > 0 || e.unsubs > 0 || e.lost }

// idle reports whether the session has nothing left to know of e.
func (e *syncSub) idle() bool { return !e.active && e.pending == 0 && !e.revoked() }

// syncRequest counts a Subscribe or Unsubscribe of the client's on a route
// that syncs, on its way to the grain of key: a Subscribe of one more
// grain than Limits.MaxSubscriptions allows is refused. ok false: answer
// the request with code and msg.
func (s *session) syncRequest(o *outgoing, r Route, method, key string) (code rpc.Code, msg string, ok bool) {
	entity := r.grainKind + "/" + key
	switch method {
	case "Subscribe":
		e := s.subs[entity]
		if e == nil {
			if max := s.g.lim.MaxSubscriptions; len(s.subs) >= max {
				return rpc.ResourceExhausted, fmt.Sprintf("%s: the session holds %d subscriptions, the most it may (Limits.MaxSubscriptions): unsubscribe one first", o.route, max), false
			}
			if s.subs == nil {
				s.subs = make(map[string]*syncSub)
			}
			e = &syncSub{kind: r.grainKind, key: key, deltas: r.deltas()}
			s.subs[entity] = e
		}
		e.pending++
		o.sync = syncSubscribe
	case "Unsubscribe":
		o.sync = syncUnsubscribe
	default:
		return 0, "", true
	}
	o.entity, o.userGen = entity, s.userGen
	return 0, "", true
}

// syncAnswered keeps track of the answer of a Subscribe or Unsubscribe
// the session forwarded (o.sync), once the client has it: ok says the
// grain took it; pid is the activation that answered.
func (s *session) syncAnswered(c *actor.Context, o *outgoing, pid actor.PID, ok bool) {
	e := s.subs[o.entity]
	if e == nil {
		return
	}
	switch o.sync {
	case syncSubscribe:
		if o.userGen != s.userGen {
			// Made for a user the session no longer has: the grain holds
			// it, and the client got a snapshot. End both.
			e.stale = max(e.stale-1, 0)
			if ok {
				s.revoke(c, o.entity, e, pid, o.md.Get(MetadataUserID))
				s.syncEnded(c, o.entity, e.deltas)
			}
			break
		}
		e.pending = max(e.pending-1, 0)
		if ok {
			// The grain's subscription of the session is the present
			// user's now, whatever an earlier user's was.
			s.watchGrain(c, e, pid)
			e.active, e.user, e.lost = true, s.userID, false
		}
	case syncUnsubscribe:
		if ok {
			e.active, e.lost = false, false
		}
	}
	if e.idle() {
		s.forgetSub(c, o.entity, e)
	}
}

// syncOK reports whether a grain's reply to a Subscribe or Unsubscribe
// (through rpcReply) is not an error. A grainpb.Refused is one: the
// activation did not handle the request (it could not prove its lease,
// say) and keeps what it held.
func syncOK(reply any) bool {
	switch r := reply.(type) {
	case *rpcpb.Status:
		return rpc.Code(r.GetCode()) == rpc.OK
	case *grainpb.Refused:
		return false
	}
	return true
}

// syncUnknown handles a Subscribe forwarded to the grain o.syncPID that
// ended with an error leaving its outcome unknown (a timeout, a lost
// link): the grain may take it yet, and then push the session deltas for
// the user it was made for, while its client was told the Subscribe
// failed. So the session undoes it as it undoes a former user's (see
// revoke): the grain gets an Unsubscribe (which it takes after the
// Subscribe: one sender, one mailbox), the grain's deltas are dropped
// until it confirms, and the entry keeps its slot meanwhile.
func (s *session) syncUnknown(c *actor.Context, o *outgoing) {
	e := s.subs[o.entity]
	if e == nil {
		return
	}
	if o.userGen != s.userGen {
		e.stale = max(e.stale-1, 0)
	} else {
		e.pending = max(e.pending-1, 0)
	}
	s.revoke(c, o.entity, e, o.syncPID, o.md.Get(MetadataUserID))
	if e.idle() {
		s.forgetSub(c, o.entity, e)
	}
}

// syncUserChanged ends the subscriptions of the session's user, which is
// no longer its user: each grain subscribed gets the Unsubscribe that
// user would send, and the client the end notice (its replica then
// subscribes again, as the new user). The Subscribes still on their way
// are ended when they are answered (see syncAnswered). Until each grain
// has confirmed, its pushes are dropped.
func (s *session) syncUserChanged(c *actor.Context) {
	s.userGen++
	for entity, e := range s.subs {
		e.stale += e.pending
		e.pending = 0
		if e.active {
			e.active = false
			s.revoke(c, entity, e, e.pid, e.user)
			s.syncEnded(c, entity, e.deltas)
		}
		if e.idle() {
			s.forgetSub(c, entity, e)
		}
	}
}

// revokeTries is how many times the session sends a grain the
// Unsubscribe of revoke while each ends with its outcome unknown (a
// timeout: the grain may be busy, or behind a slow Subscribe).
const revokeTries = 3

// revoke sends the activation pid of e's grain an Unsubscribe of the
// session, as user would. A reply, or an activation gone (not found, or
// no longer the one watched), confirms that it pushes no more; a timeout
// or a lost link sends it again, up to revokeTries in all; anything else,
// or the last try's timeout, leaves e lost: its pushes are dropped (and
// its slot kept) until its activation ends or the present user
// subscribes again.
func (s *session) revoke(c *actor.Context, entity string, e *syncSub, pid actor.PID, user string) {
	s.revokeTry(c, entity, e, pid, user, 1)
}

// revokeTry is try number try of revoke.
func (s *session) revokeTry(c *actor.Context, entity string, e *syncSub, pid actor.PID, user string, try int) {
	if e.pid.IsZero() {
		s.watchGrain(c, e, pid)
	}
	e.unsubs++
	done := func(reply any, err error) {
		if s.subs[entity] != e {
			return
		}
		e.unsubs = max(e.unsubs-1, 0)
		if err != nil && outcomeUnknown(err) && try < revokeTries && !s.ending && e.pid == pid {
			s.revokeTry(c, entity, e, pid, user, try+1)
			return
		}
		if !(err == nil && syncOK(reply) || errors.Is(err, actor.ErrActorNotFound) || e.pid != pid) {
			e.lost = true
			s.g.log.Debug("gate: a grain did not confirm the end of a subscription of the session's former user; its pushes are dropped", "session", s.info.ID, "entity", entity, "err", err)
		}
		if e.active {
			// A Subscribe of the present user reached the grain before
			// this Unsubscribe, or may have: the client subscribes again.
			e.active = false
			s.syncEnded(c, entity, e.deltas)
		}
		if e.idle() {
			s.forgetSub(c, entity, e)
		}
	}
	body, err := proto.Marshal(&propsyncpb.Unsubscribe{Entity: entity})
	if err != nil {
		done(nil, err)
		return
	}
	md := actor.NewMetadata(MetadataSessionID, s.self.String(), MetadataUserID, user)
	call := &rpcpb.Call{Method: rpc.FullMethodName(syncService, "Unsubscribe"), Body: body}
	if err := c.Request(pid, actor.WithMetadata(call, md), s.g.lim.RequestTimeout, done); err != nil {
		done(nil, err)
	}
}

// watchGrain makes pid the activation e's grain is watched at.
func (s *session) watchGrain(c *actor.Context, e *syncSub, pid actor.PID) {
	if pid == e.pid || pid.IsZero() {
		return
	}
	if !e.pid.IsZero() {
		c.Unwatch(e.pid)
	}
	e.pid = pid
	c.Watch(pid)
}

// forgetSub stops keeping track of e.
func (s *session) forgetSub(c *actor.Context, entity string, e *syncSub) {
	delete(s.subs, entity)
	if !e.pid.IsZero() {
		c.Unwatch(e.pid)
	}
}

// grainGone: the activation pid, watched, has ended. Its subscriptions
// ended with it; one the client still counted on gets the end notice
// here, as the activation may have had no chance to send it (its node
// crashed, or was cut off from this one).
func (s *session) grainGone(c *actor.Context, pid actor.PID) {
	for entity, e := range s.subs {
		if e.pid != pid {
			continue
		}
		e.pid = actor.PID{} // no Unwatch: it is over
		if e.active && !e.revoked() {
			s.syncEnded(c, entity, e.deltas)
		}
		e.active, e.lost = false, false
		if e.idle() {
			s.forgetSub(c, entity, e)
		}
	}
}

// grainUnreachable: the watch of the activation pid ended with
// actor.ReasonLinkLost. Its node stayed a member and could not be reached
// for a while: the activation may live on and keep the session's
// subscriptions (a grain keeps a subscriber whose watch ends so, and
// pushes it again once the link is back). So nothing is forgotten: the
// session watches it again, and that watch ends when its node answers
// (at once if the activation is gone by then) or leaves the cluster.
func (s *session) grainUnreachable(c *actor.Context, pid actor.PID) {
	for _, e := range s.subs {
		if e.pid == pid {
			c.Watch(pid)
			return
		}
	}
}

// syncPush reads a push on a route of deltas, of body, and reports
// whether to drop it: a delta of a subscription the session revoked. An
// end notice ends the subscription it names, and always reaches the
// client: it carries nothing of the state, and the client may hold a
// subscription of its present user to that grain, which it ends (an end
// notice of the former user's is one more gap, which is harmless).
func (s *session) syncPush(c *actor.Context, route string, body []byte) (drop bool) {
	entity, ended, ok := deltaHead(body)
	if !ok {
		return false
	}
	e := s.subs[entity]
	if e == nil || e.deltas != route {
		return false
	}
	drop = e.revoked() && !ended
	if ended {
		// The activation that pushed it holds no subscription any more.
		e.active, e.lost = false, false
		if e.idle() {
			s.forgetSub(c, entity, e)
		}
	}
	return drop
}

// syncEnded pushes the client the end notice of entity's subscription on
// route, as its grain would (propsync.Tracker.Ended): a Delta with the
// entity only, which a replica takes for a gap.
func (s *session) syncEnded(c *actor.Context, entity, route string) {
	body, err := proto.Marshal(&propsyncpb.Delta{Entity: entity})
	if err == nil {
		var frame []byte
		if frame, err = pushFrameOf(route, body); err == nil {
			s.g.stats.pushes.Add(1)
			s.push(c, frame, "", false)
			return
		}
	}
	s.g.log.Error("gate: cannot encode an end notice", "session", s.info.ID, "entity", entity, "err", err)
}

// The fields of a propsyncpb.Delta that deltaHead reads.
const (
	deltaEntity     = 1
	deltaVersion    = 2
	deltaBase       = 3
	deltaOps        = 4
	deltaSnapshot   = 5
	deltaIsSnapshot = 6
)

// deltaHead reads an encoded propsyncpb.Delta without decoding its ops:
// its entity, and whether it is an end notice (no version, base, ops nor
// snapshot). ok is false when body is not protobuf's wire format. For a
// body that proto.Unmarshal takes, it agrees with it (see the fuzz test).
func deltaHead(body []byte) (entity string, ended, ok bool) {
	var version, base, isSnapshot uint64
	var ops, snapshot int
	for len(body) > 0 {
		num, typ, n := protowire.ConsumeTag(body)
		if n < 0 {
			return "", false, false
		}
		body = body[n:]
		switch {
		case typ == protowire.BytesType && (num == deltaEntity || num == deltaOps || num == deltaSnapshot):
			v, n := protowire.ConsumeBytes(body)
			if n < 0 {
				return "", false, false
			}
			body = body[n:]
			switch num {
			case deltaEntity:
				entity = string(v)
			case deltaOps:
				ops++
			default:
				snapshot = len(v)
			}
			continue
		case typ == protowire.VarintType && (num == deltaVersion || num == deltaBase || num == deltaIsSnapshot):
			v, n := protowire.ConsumeVarint(body)
			if n < 0 {
				return "", false, false
			}
			body = body[n:]
			switch num {
			case deltaVersion:
				version = v
			case deltaBase:
				base = v
			default:
				isSnapshot = v
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, body)
		if n < 0 {
			return "", false, false
		}
		body = body[n:]
	}
	return entity, version == 0 && base == 0 && ops == 0 && snapshot == 0 && isSnapshot == 0, true
}
