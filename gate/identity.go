package gate

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/rpc"
)

// Identity is who a session is, as its login says: the user, the roles
// the game gave them ("admin", "gm", "vip"), and when the login stops
// being good. Config.Identify returns one from a handshake's token, and a
// handler's Session.BindIdentity sets one at login.
type Identity struct {
	UserID string
	// Roles open the routes that require them (Route.Require) and are
	// what Config.Authorize sees.
	Roles []string
	// Expires, when set, is when the login ends: the session is then
	// closed with Close{16} (Unauthenticated, "login expired"), and its
	// client must log in again (a fresh token). A handshake whose token
	// has expired already is refused.
	Expires time.Time
}

// HasRole reports whether the identity has role.
func (id Identity) HasRole(role string) bool { return slices.Contains(id.Roles, role) }

// loginExpired: the session's Identity.Expires has come. gen is the bind
// it belongs to: a later bind makes it stale.
type loginExpired struct{ gen int }

// identify checks a handshake's token with Config.Identify, or
// Config.Auth, with a panic in either turned into an error.
func (g *Gateway) identify(ctx context.Context, token string) (id Identity, err error) {
	defer func() {
		if p := recover(); p != nil {
			g.log.Error("gate: the Auth hook panicked", "panic", p)
			g.node.Report(actor.Failure{Where: "gate auth", Reason: fmt.Sprint(p), Stack: debug.Stack()})
			err = fmt.Errorf("authentication failed")
		}
	}()
	if g.cfg.Identify != nil {
		id, err = g.cfg.Identify(ctx, token)
	} else {
		id.UserID, err = g.cfg.Auth(ctx, token)
	}
	switch {
	case err != nil:
	case id.UserID == "":
		err = errors.New("the token names no user")
	case !id.Expires.IsZero() && !time.Now().Before(id.Expires):
		err = errors.New("the token has expired")
	}
	return id, err
}

// authorize checks a request against its route's roles (Route.Require)
// and Config.Authorize, and returns the refusal's code and message when it
// may not go on. A panic in Authorize is recovered and refuses with
// Internal.
func (s *session) authorize(m *clientRequest, r Route) (code rpc.Code, msg string, ok bool) {
	if len(r.roles) > 0 && !slices.ContainsFunc(r.roles, s.id.HasRole) {
		return rpc.PermissionDenied, fmt.Sprintf("%s: needs one of the roles %v", m.route, r.roles), false
	}
	authorize := s.g.cfg.Authorize
	if authorize == nil {
		return 0, "", true
	}
	return s.runHook(m.route, "Authorize", "the gateway's authorization check", rpc.PermissionDenied, func(ctx context.Context) error {
		return authorize(ctx, s.snapshotInfo(), m.route)
	})
}

// setIdentity makes id the session's identity: its user (bound, see
// bind), its roles, and its expiry, timed.
func (s *session) setIdentity(c *actor.Context, id Identity) {
	s.id.Roles = slices.Clone(id.Roles)
	s.id.Expires = id.Expires
	s.idGen++
	s.recordChanged = true
	if !id.Expires.IsZero() {
		c.After(max(time.Until(id.Expires), 0), loginExpired{gen: s.idGen})
	}
	s.bind(c, id.UserID)
}

// expire closes the session whose login has expired.
func (s *session) expire(c *actor.Context, m loginExpired) {
	if m.gen != s.idGen || s.ending {
		return
	}
	s.ending = true
	s.reason = errLoginExpired
	s.bye = endingOf(rpc.Unauthenticated, "login expired")
	_ = c.Stop(c.Self())
}

// errLoginExpired is the close reason of a session whose
// Identity.Expires came.
var errLoginExpired = errors.New("gate: login expired")
