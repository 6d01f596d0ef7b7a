package app_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/config"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/gate/tokenauth"
	"github.com/guildkit/guild/rpc"
)

// TestRouteRolesFromClusterFile: routes.<service>.roles opens a route to
// the sessions whose JWT carries one of the roles (gateway.auth with a
// jwt_secret), app.WithGatewayAuthorize reaches the gateway, and a
// token's expiry ends its session.
func TestRouteRolesFromClusterFile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const secret = "0123456789abcdef-roles-test"
	rec := &recorder{}
	reg := app.NewRegistry()
	reg.Register("world", func() app.Module { return &echoModule{name: "world", serve: true, rec: rec} })
	cfg, err := config.Load(writeFile(t, `
cluster:
  etcd: {ttl: 2s, prefix: /apptest-roles}
nodes:
  gate1:
    addr: 1.1.1
    master: 127.0.0.1:0
    modules: [world]
    gateway:
      tcp: 127.0.0.1:0
      auth: {jwt_secret: `+secret+`}
      routes:
        echo: {module: world, roles: [gm, admin]}
modules:
  world: {greeting: hello}
`), nil, reg.Names())
	if err != nil {
		t.Fatal(err)
	}
	n, err := app.Start(ctx, cfg, "gate1", reg, app.WithLogger(slog.New(slog.DiscardHandler)),
		app.WithGatewayAuthorize(func(_ context.Context, s *gate.SessionInfo, route string) error {
			if s.UserID == "banned" {
				return rpc.Errorf(rpc.PermissionDenied, "banned by the hook")
			}
			return nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(context.Background())
	j, err := tokenauth.NewJWT([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	say := func(user string, roles []string, ttl time.Duration, closed func(error)) error {
		t.Helper()
		tok, err := j.MintRoles(user, roles, ttl)
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.Dial(ctx, client.Config{Addr: n.Ready().Gateway["tcp"], Token: tok, OnClose: closed})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		var reply wrapperspb.StringValue
		return c.Request(ctx, "echo.Say", wrapperspb.String("hi"), &reply)
	}
	if err := say("gina", []string{"gm"}, time.Hour, nil); err != nil {
		t.Fatalf("a gm: %v", err)
	}
	if err := say("pat", nil, time.Hour, nil); rpc.CodeOf(err) != rpc.PermissionDenied || !strings.Contains(err.Error(), "roles") {
		t.Fatalf("a player: %v, want PermissionDenied naming the roles", err)
	}
	if err := say("banned", []string{"admin"}, time.Hour, nil); rpc.CodeOf(err) != rpc.PermissionDenied || !strings.Contains(err.Error(), "banned by the hook") {
		t.Fatalf("a banned admin: %v, want the hook's refusal", err)
	}
	// JWT expiry is in whole seconds: a token good for 3 s ends its
	// session within 3 s.
	ended := make(chan error, 1)
	if err := say("ada", []string{"admin"}, 3*time.Second, func(err error) { ended <- err }); err != nil {
		t.Fatalf("an admin: %v", err)
	}
	select {
	case err := <-ended:
		if rpc.CodeOf(err) != rpc.Unauthenticated {
			t.Fatalf("the session of an expired token ended with %v, want Unauthenticated", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the session of an expired token is still open")
	}
}
