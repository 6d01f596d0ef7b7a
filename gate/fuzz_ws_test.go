package gate_test

import (
	"context"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/gate/gatepb"
	gatews "github.com/guildkit/guild/gate/websocket"
)

// FuzzWebSocketMessages: whatever binary or text messages a WebSocket
// client sends after its handshake, the gateway answers or closes that
// connection, never crashes or stalls, and serves a fresh client after.
func FuzzWebSocketMessages(f *testing.F) {
	gw := startOneNode(f, gate.Config{
		Public: []string{"chat.Echo", "chat.PushMe", "chat.Panic", "chat.Kick"},
		Limits: gate.Limits{MaxFrame: 4096, HandshakeTimeout: time.Second},
	})
	addr, err := gatews.Listen(gw.g, "127.0.0.1:0", "/ws", nil)
	if err != nil {
		f.Fatal(err)
	}
	url := "ws://" + addr.String() + "/ws"
	for _, fr := range seedFrames() {
		f.Add(mustEncode(f, fr), false)
	}
	f.Add([]byte("not protobuf"), true)
	f.Add(make([]byte, 5000), false) // over MaxFrame
	f.Add([]byte{}, false)
	f.Fuzz(func(t *testing.T, msg []byte, text bool) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ws, _, err := websocket.Dial(ctx, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		if err := ws.Write(ctx, websocket.MessageBinary, mustEncode(t, handshakeFrame(""))); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ws.Read(ctx); err != nil { // the HandshakeAck
			t.Fatal(err)
		}
		typ := websocket.MessageBinary
		if text {
			typ = websocket.MessageText
		}
		_ = ws.Write(ctx, typ, msg)
		// Read until the gateway answers or closes; it must do one or the
		// other well before the deadline.
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
		for {
			_, b, err := ws.Read(rctx)
			if err != nil {
				break // closed, or nothing more to say: both fine
			}
			var fr gatepb.Frame
			if gatepb.Decode(b, &fr) != nil {
				t.Fatalf("the gateway sent a frame that does not decode: %x", b)
			}
		}
		rcancel()
		ws.CloseNow()
		// A fresh client is served.
		c, err := client.Dial(ctx, client.Config{Addr: url})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got, err := call(t, c, "chat.Echo", "ok"); err != nil || got == "" {
			t.Fatalf("a fresh client: %q, %v", got, err)
		}
	})
}
