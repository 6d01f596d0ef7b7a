package gate_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/guildkit/guild/gate"
	gatemqtt "github.com/guildkit/guild/gate/mqtt"
	gatews "github.com/guildkit/guild/gate/websocket"
)

// TestWebSocketOrigins: a WebSocket upgrade from a page that is neither
// the gateway's own host nor in Config.Origins gets 403 with the reason,
// on both WebSocket listeners; an allowed page, the same host and a
// client without an Origin (not a browser) get a session.
func TestWebSocketOrigins(t *testing.T) {
	gw := startOneNode(t, gate.Config{
		Public:  []string{"chat.Echo"},
		Origins: []string{"https://game.example.com", "*.example.org"},
	})
	ws, err := gatews.Listen(gw.g, "127.0.0.1:0", "/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	mq, err := gatemqtt.ListenWebSocket(gw.g, "127.0.0.1:0", "/mqtt", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []struct{ name, url, proto string }{
		{"ws", "ws://" + ws.String() + "/ws", ""},
		{"mqtt-ws", "ws://" + mq.String() + "/mqtt", "mqtt"},
	} {
		for _, c := range []struct {
			origin string
			ok     bool
		}{
			{"", true},
			{"https://game.example.com", true},
			{"http://a.example.org:8080", true},
			{"http://127.0.0.1:9999", true}, // the gateway's own host
			{"https://evil.example.com", false},
			{"http://game.example.com", false},
			{"null", false},
		} {
			h := http.Header{}
			if c.origin != "" {
				h.Set("Origin", c.origin)
			}
			opts := &websocket.DialOptions{HTTPHeader: h}
			if l.proto != "" {
				opts.Subprotocols = []string{l.proto}
			}
			conn, resp, err := websocket.Dial(testCtx(t), l.url, opts)
			if c.ok {
				if err != nil {
					t.Errorf("%s, Origin %q: %v", l.name, c.origin, err)
					continue
				}
				conn.CloseNow()
				continue
			}
			if err == nil {
				conn.CloseNow()
				t.Errorf("%s, Origin %q: upgraded, want 403", l.name, c.origin)
				continue
			}
			if resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s, Origin %q: %v, want 403", l.name, c.origin, err)
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			if !strings.Contains(string(body), "not allowed") || !strings.Contains(string(body), "ws_origins") {
				t.Errorf("%s, Origin %q: 403 says %q, want the reason and the setting", l.name, c.origin, body)
			}
		}
	}
	waitFor(t, "no connection left", func() bool { return gw.g.Conns() == 0 })
}

// TestBadOrigins: New refuses a bad pattern, naming it.
func TestBadOrigins(t *testing.T) {
	_, err := gate.New(gate.Config{Node: newNode(t), Origins: []string{"https://example.com/path"}})
	if err == nil || !strings.Contains(err.Error(), "example.com/path") {
		t.Fatalf("New = %v, want an error naming the pattern", err)
	}
}
