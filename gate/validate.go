package gate

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/rpc"
)

// check runs Config.Validate on a request, if it is set, and answers the
// request itself when the hook refuses it (or panics): it returns false
// then. The hook runs in the session's actor, with a context bounded by
// RequestTimeout.
func (s *session) check(m *clientRequest) (code rpc.Code, msg string, ok bool) {
	validate := s.g.cfg.Validate
	if validate == nil {
		return 0, "", true
	}
	return s.runHook(m.route, "Validate", "the gateway's request check", rpc.InvalidArgument, func(ctx context.Context) error {
		return validate(ctx, s.snapshotInfo(), m.route, m.body)
	})
}

// runHook runs a request hook of the game (Validate, Authorize) named
// name, with a context bounded by RequestTimeout, and says how to answer
// the request: ok, or the code and message of the *rpc.Status its error
// wraps, or def and its error's message. A panic in the hook is recovered,
// logged and reported, and answers Internal, saying that what failed.
func (s *session) runHook(route, name, what string, def rpc.Code, hook func(ctx context.Context) error) (code rpc.Code, msg string, ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), s.g.lim.RequestTimeout)
	defer cancel()
	panicked := false
	err := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				s.g.log.Error("gate: "+name+" panicked", "route", route, "session", s.info.ID, "panic", p)
				s.g.node.Report(actor.Failure{Where: "gate " + strings.ToLower(name), MessageType: route, Reason: fmt.Sprint(p), Stack: debug.Stack()})
				panicked = true
			}
		}()
		return hook(ctx)
	}()
	switch {
	case panicked:
		return rpc.Internal, fmt.Sprintf("%s: %s failed", route, what), false
	case err == nil:
		return 0, "", true
	}
	var st *rpc.Status
	if errors.As(err, &st) {
		return st.Code, st.Message, false
	}
	return def, err.Error(), false
}
