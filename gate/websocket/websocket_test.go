package gatews_test

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/gate"
	gatews "github.com/guildkit/guild/gate/websocket"
)

// newGateway returns a gateway with no routes, closed with the test.
func newGateway(t *testing.T) *gate.Gateway {
	t.Helper()
	n, err := actor.NewNode(actor.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	g, err := gate.New(gate.Config{Node: n, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return g
}

// noConn is an adapter's NewConn for connections that never come.
func noConn(gate.Stream) gate.Conn { return nil }

// TestListenErrors: an address in use is named, and wraps the system's
// error; a bad adapter network is refused before listening; Listen after
// Close is gate.ErrClosed.
func TestListenErrors(t *testing.T) {
	g := newGateway(t)
	a, err := gatews.Listen(g, "127.0.0.1:0", gatews.DefaultPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = gatews.Listen(g, a.String(), gatews.DefaultPath, nil)
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "gate: ws listener: "+a.String()+" is in use") {
		t.Errorf("an address in use: %v", err)
	}
	for _, network := range []string{"", "tcp", "ws", "kcp"} {
		if _, err := gatews.ListenConns(g, network, "127.0.0.1:0", "/x", "x", nil, noConn); err == nil {
			t.Errorf("ListenConns with network %q: no error", network)
		}
	}
	if _, err := gatews.ListenConns(g, "x-ws", "127.0.0.1:0", "/x", "x", nil, nil); err == nil {
		t.Error("ListenConns with no newConn: no error")
	}
	_ = g.Close()
	if _, err := gatews.Listen(g, "127.0.0.1:0", gatews.DefaultPath, nil); !errors.Is(err, gate.ErrClosed) {
		t.Errorf("Listen after Close: %v, want gate.ErrClosed", err)
	}
}

// TestHandlerRefusals: a request that is no WebSocket upgrade gets
// WebSocket's own answer (a 4xx), one from a page not allowed gets 403
// before any upgrade, and ConnHandler with a bad network answers 500.
func TestHandlerRefusals(t *testing.T) {
	g := newGateway(t)
	srv := httptest.NewServer(gatews.Handler(g))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 400 || resp.StatusCode >= 500 {
		t.Errorf("a plain GET: %s, want a 4xx", resp.Status)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("another site's page: %s, want 403", resp.Status)
	}
	bad := httptest.NewServer(gatews.ConnHandler(g, "ws", "x", noConn))
	defer bad.Close()
	resp, err = http.Get(bad.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("ConnHandler with network ws: %s, want 500", resp.Status)
	}
}
