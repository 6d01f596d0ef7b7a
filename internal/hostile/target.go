package hostile

import (
	"context"
	"net"

	"github.com/guildkit/guild/client"
)

// Target is the gateway under attack and how to play its game.
type Target struct {
	// TCP is the host:port of the gateway's framed-TCP listener.
	TCP string
	// HTTP is the host:port of the HTTP server that serves the
	// WebSocket (and the game's page), and WSPath the WebSocket's path.
	HTTP, WSPath string
	// Join makes c a player named name (the arena's arena.Join).
	Join func(ctx context.Context, c *client.Client, name string) error
	// Step is one request of a playing client (the arena's arena.Move).
	Step func(ctx context.Context, c *client.Client) error
	// Say sends a chat line (the arena's chat.Say).
	Say func(ctx context.Context, c *client.Client, text string) error
	// JoinRequest returns the route and encoded body of a join request as
	// name, for raw attackers.
	JoinRequest func(name string) (route string, body []byte)
	// Refused is a route the gateway refuses for a session that has not
	// logged in (one with no service, say).
	Refused string
	// Dialer, optional, is what the attackers connect with: its LocalAddr
	// gives them a source address of their own (127.0.0.2, say), so that
	// a gateway's per-source limits tell them from the good clients.
	// Default: a zero net.Dialer.
	Dialer *net.Dialer
}

// dialer returns the attackers' dialer.
func (t Target) dialer() *net.Dialer {
	if t.Dialer != nil {
		return t.Dialer
	}
	return &net.Dialer{}
}

// dial connects an attacker's client to the gateway's framed-TCP
// listener.
func (t Target) dial(ctx context.Context) (*client.Client, error) {
	return client.Dial(ctx, client.Config{Addr: "tcp://" + t.TCP, Dialer: t.dialer()})
}
