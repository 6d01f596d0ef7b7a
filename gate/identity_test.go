package gate_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/rpc"
)

// TestRolesAuthorizeAndExpiry: an identity's roles open the routes that
// require them, Config.Authorize refuses requests with its own code (a
// panic in it answers Internal), and a login that expires closes its
// session, from a handshake token (Identify) or a handler's
// BindIdentity.
func TestRolesAuthorizeAndExpiry(t *testing.T) {
	n := newNode(t)
	chat := serve(t, n, chatService("chat"))
	staff := gate.NewService("staff")
	gate.Handle(staff, "Roles", func(s *gate.Session, _ *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return wrapperspb.String(strings.Join(s.Roles(), ",")), nil
	})
	gate.Handle(staff, "Login", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		// "user:role" for 2 s: time for a request, even on a busy machine
		user, role, _ := strings.Cut(req.Value, ":")
		s.BindIdentity(gate.Identity{UserID: user, Roles: []string{role}, Expires: time.Now().Add(2 * time.Second)})
		return wrapperspb.String(strings.Join(s.Roles(), ",")), nil
	})
	staffPID := serve(t, n, staff)
	g := newGate(t, gate.Config{
		Node: n,
		Routes: map[string]gate.Route{
			"chat":  gate.To(rpc.To(chat)),
			"staff": gate.To(rpc.To(staffPID)).Require("gm", "admin"),
			"login": gate.To(rpc.To(staffPID)),
		},
		Public: []string{"login.Login"},
		Identify: func(_ context.Context, token string) (gate.Identity, error) {
			switch token {
			case "gm":
				return gate.Identity{UserID: "gina", Roles: []string{"gm"}}, nil
			case "player":
				return gate.Identity{UserID: "pat"}, nil
			case "mallory":
				return gate.Identity{UserID: "mallory"}, nil
			case "short":
				return gate.Identity{UserID: "sam", Expires: time.Now().Add(300 * time.Millisecond)}, nil
			case "stale":
				return gate.Identity{UserID: "sid", Expires: time.Now().Add(-time.Second)}, nil
			}
			return gate.Identity{}, errors.New("unknown token")
		},
		Authorize: func(_ context.Context, s *gate.SessionInfo, route string) error {
			switch {
			case s.UserID == "mallory" && route == "chat.Echo":
				return rpc.Errorf(rpc.FailedPrecondition, "mallory may not echo")
			case s.UserID == "mallory":
				return errors.New("mallory is banned")
			case route == "chat.Panic":
				panic("authorize bug")
			}
			return nil
		},
	})
	url, _ := listenTCP(t, g)

	// Roles: the gm reaches staff, the player gets PermissionDenied
	// naming the roles.
	gm := dial(t, client.Config{Addr: url, Token: "gm"})
	mustCall(t, gm, "staff.Roles", "", "gm")
	player := dial(t, client.Config{Addr: url, Token: "player"})
	_, err := call(t, player, "staff.Roles", "")
	wantCode(t, "a player calling a gm route", err, rpc.PermissionDenied)
	if !strings.Contains(err.Error(), "[gm admin]") {
		t.Errorf("the refusal %q does not name the roles", err)
	}
	mustCall(t, player, "chat.Echo", "x", "echo:x")

	// Authorize: its *rpc.Status's code, else PermissionDenied; a panic
	// answers Internal, and the gateway lives on.
	mallory := dial(t, client.Config{Addr: url, Token: "mallory"})
	_, err = call(t, mallory, "chat.Echo", "x")
	wantCode(t, "Authorize's status", err, rpc.FailedPrecondition)
	_, err = call(t, mallory, "chat.Whoami", "")
	wantCode(t, "Authorize's plain error", err, rpc.PermissionDenied)
	if !strings.Contains(err.Error(), "mallory is banned") {
		t.Errorf("the refusal %q does not carry Authorize's message", err)
	}
	_, err = call(t, player, "chat.Panic", "")
	wantCode(t, "a panic in Authorize", err, rpc.Internal)
	mustCall(t, player, "chat.Echo", "y", "echo:y")

	// A token that has expired already is refused in the handshake; one
	// that expires closes its session then, with Unauthenticated.
	if c, err := client.Dial(testCtx(t), client.Config{Addr: url, Token: "stale"}); err == nil {
		_ = c.Close()
		t.Fatal("an expired token got a session")
	} else {
		wantCode(t, "an expired token", err, rpc.Unauthenticated)
	}
	closed := newCloseRecorder()
	dial(t, client.Config{Addr: url, Token: "short", OnClose: closed.onClose})
	err = closed.wait(t)
	wantCode(t, "the session of an expired token", err, rpc.Unauthenticated)
	if !strings.Contains(err.Error(), "login expired") {
		t.Errorf("the session ended with %q, want login expired", err)
	}

	// BindIdentity from a login route: its roles open staff, and its
	// expiry closes the session.
	closed = newCloseRecorder()
	lee := dial(t, client.Config{Addr: url, OnClose: closed.onClose})
	mustCall(t, lee, "login.Login", "lee:admin", "admin")
	mustCall(t, lee, "staff.Roles", "", "admin")
	wantCode(t, "the session of an expired login", closed.wait(t), rpc.Unauthenticated)
}
