package gate

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"

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
	ctx, cancel := context.WithTimeout(context.Background(), s.g.lim.RequestTimeout)
	defer cancel()
	err := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				s.g.log.Error("gate: Validate panicked", "route", m.route, "session", s.info.ID, "panic", p)
				s.g.node.Report(actor.Failure{Where: "gate validate", MessageType: m.route, Reason: fmt.Sprint(p), Stack: debug.Stack()})
				err = errValidatePanic
			}
		}()
		return validate(ctx, s.snapshotInfo(), m.route, m.body)
	}()
	switch {
	case err == nil:
		return 0, "", true
	case errors.Is(err, errValidatePanic):
		return rpc.Internal, fmt.Sprintf("%s: the gateway's request check failed", m.route), false
	}
	var st *rpc.Status
	if errors.As(err, &st) {
		return st.Code, st.Message, false
	}
	return rpc.InvalidArgument, err.Error(), false
}

var errValidatePanic = errors.New("gate: Validate panicked")
