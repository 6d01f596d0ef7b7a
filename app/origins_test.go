package app_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/config"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/rpc"
)

// TestGatewayWSOriginsFromClusterFile: gateway.ws_origins reaches the
// gateway: a page it lists may open a WebSocket, another site's gets 403,
// on both WebSocket listeners. And app.WithGatewayValidate reaches it:
// its refusal answers the request.
func TestGatewayWSOriginsFromClusterFile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reg := app.NewRegistry()
	reg.Register("who", func() app.Module { return whoModule{} })
	cfg, err := config.Load(writeFile(t, `
cluster:
  etcd: {ttl: 2s, prefix: /apptest-origins}
nodes:
  gate1:
    addr: 1.1.1
    master: 127.0.0.1:0
    modules: [who]
    gateway:
      ws: 127.0.0.1:0
      mqtt_ws: 127.0.0.1:0
      ws_origins: [https://game.example.com]
      public: [who.Am]
      routes:
        who: {module: who}
`), nil, reg.Names())
	if err != nil {
		t.Fatal(err)
	}
	n, err := app.Start(ctx, cfg, "gate1", reg, app.WithLogger(slog.New(slog.DiscardHandler)),
		app.WithGatewayValidate(func(ctx context.Context, s *gate.SessionInfo, route string, body []byte) error {
			return errors.New("checked by the hook")
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(context.Background())
	ready := n.Ready()
	c, err := client.Dial(ctx, client.Config{Addr: ready.Gateway["ws"]})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Request(ctx, "who.Am", &wrapperspb.StringValue{}, &wrapperspb.StringValue{})
	if rpc.CodeOf(err) != rpc.InvalidArgument || !strings.Contains(err.Error(), "checked by the hook") {
		t.Errorf("who.Am = %v, want the hook's refusal", err)
	}
	for _, l := range []struct{ url, proto string }{{ready.Gateway["ws"], ""}, {ready.Gateway["mqtt-ws"], "mqtt"}} {
		for origin, ok := range map[string]bool{"https://game.example.com": true, "https://evil.example": false} {
			opts := &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {origin}}}
			if l.proto != "" {
				opts.Subprotocols = []string{l.proto}
			}
			ws, resp, err := websocket.Dial(ctx, l.url, opts)
			switch {
			case ok && err != nil:
				t.Errorf("%s from %s: %v", l.url, origin, err)
			case !ok && (err == nil || resp == nil || resp.StatusCode != http.StatusForbidden):
				t.Errorf("%s from %s: %v, want 403", l.url, origin, err)
			}
			if err == nil {
				ws.CloseNow()
			}
		}
	}
}
