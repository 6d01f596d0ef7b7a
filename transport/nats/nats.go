// Package nats is guild's node-to-node transport over NATS
// (github.com/nats-io/nats.go), the broker gonet and mqant run their
// clusters on. It is an adapter on package transport/bus, which keeps the
// promises package transport states; this package only moves frames.
//
// # Subjects
//
// Every node subscribes to one subject, its inbox: "<prefix>.node.<address>",
// for example "guild.node.1.2.3" (Config.Prefix, default "guild", lets
// several clusters share one NATS). The subject is the node's Endpoint,
// published in its member record; a node sends to a peer by publishing
// frames (package bus's, one envelope each) to the peer's subject. NATS
// keeps the order of one connection's messages to one subscriber, and
// delivers each message once (core NATS, no JetStream): what is lost with
// a broker stays lost, and the requests waiting on it fail fast.
//
// # Failing fast
//
// A second subscription, to "<inbox>.alive", answers NATS requests with an
// empty reply: package bus probes a peer with a request to it on every reach
// and every heartbeat, and NATS answers "no responders" at once when no
// node subscribes to it, so a killed node is reported lost within one
// heartbeat (Options.HeartbeatInterval), and a node that is not running
// at once. A node that is not a member of the cluster is reported lost
// without a message (the membership resolves its subject).
//
// The connection to NATS pings the server every DeadAfter (at least
// bus.DefaultDeadAfter: a busy client must not take a slow pong for a
// dead server) and gives up after two unanswered pings, or at once when
// the server closes it; then every peer is reported lost
// (bus.Receiver.Down), publishing fails at once (the client buffers
// nothing while reconnecting, so nothing sent before the loss arrives
// after requests failed), and the client reconnects every 250 ms, for
// ever; once it is back the peers are reached again.
//
// # Goroutines
//
// nats.go runs its own (reader, flusher, ping timer, the subscription's
// delivery goroutine and its callback dispatcher); Close closes the
// connection and waits for its closed callback. The subscription delivers
// one message at a time, in order, to package bus.
package nats

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/guildkit/guild/transport"
	"github.com/guildkit/guild/transport/bus"
)

// DefaultURL is Config.URL's default: a NATS server on this machine.
const DefaultURL = "nats://127.0.0.1:4222"

// DefaultPrefix is Config.Prefix's default.
const DefaultPrefix = "guild"

// Config starts the NATS transport; it implements transport.Config.
type Config struct {
	// URL is the NATS server, or a comma-separated list of a cluster's
	// servers, with credentials if any
	// ("nats://user:pass@10.0.0.1:4222,nats://10.0.0.2:4222"). Default
	// DefaultURL.
	URL string
	// Prefix starts every subject the transport uses. Default "guild";
	// clusters sharing one NATS need different prefixes.
	Prefix string
	// Options tunes the transport: queues, frame size, heartbeats and
	// timeouts. MaxFrame should not exceed the server's max_payload
	// (1 MiB by default): a larger envelope is refused by the server.
	Options bus.Options
}

// Validate reports whether c can be used.
func (c Config) Validate() error {
	if strings.ContainsAny(c.Prefix, " \t\r\n*>") || strings.HasPrefix(c.Prefix, ".") || strings.HasSuffix(c.Prefix, ".") {
		return fmt.Errorf("nats: prefix %q is not a subject prefix (no spaces, wildcards or leading or trailing dots)", c.Prefix)
	}
	return c.Options.Validate()
}

// Subject returns the inbox subject of the node with address addr
// (actor.Addr's String) under prefix ("" means DefaultPrefix).
func Subject(prefix, addr string) string {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return prefix + ".node." + addr
}

// Start implements transport.Config: it connects to NATS, subscribes to
// the node's subject and starts the transport. s.TLS, when set, secures
// the connection to NATS.
func (c Config) Start(s transport.Setup) (transport.Transport, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	url := c.URL
	if url == "" {
		url = DefaultURL
	}
	o := c.Options
	ping := max(o.DeadAfter, bus.DefaultDeadAfter)
	connect := func(inbox string, r bus.Receiver) (bus.Broker, error) {
		return dial(url, inbox, ping, s, r)
	}
	return bus.Start(s, Subject(c.Prefix, s.Self.String()), o, connect)
}

// conn is a connection to NATS reading one inbox: a bus.Broker.
type conn struct {
	nc     *nats.Conn
	sub    *nats.Subscription
	alive  *nats.Subscription // answers probes
	closed chan struct{}      // closed by nats.go's closed callback
}

// dial connects and subscribes to inbox.
func dial(url, inbox string, ping time.Duration, s transport.Setup, r bus.Receiver) (*conn, error) {
	c := &conn{closed: make(chan struct{})}
	opts := []nats.Option{
		nats.Name("guild node " + s.Self.String()),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.ReconnectBufSize(-1), // fail publishes while disconnected: see the package doc
		nats.PingInterval(ping),
		nats.MaxPingsOutstanding(2),
		nats.Timeout(2 * time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err == nil {
				err = errors.New("disconnected")
			}
			r.Down(err)
		}),
		nats.ReconnectHandler(func(*nats.Conn) { r.Up() }),
		nats.ClosedHandler(func(*nats.Conn) { close(c.closed) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if s.Logger != nil {
				s.Logger.Warn("nats: asynchronous error", "err", err)
			}
		}),
	}
	if s.TLS != nil {
		opts = append(opts, nats.Secure(s.TLS))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats: connect to %s: %w", url, err)
	}
	c.nc = nc
	sub, err := nc.Subscribe(inbox, func(m *nats.Msg) { r.Deliver(m.Data) })
	if err == nil {
		// Probes have a subscription of their own, so that an inbox
		// with a backlog still answers at once.
		c.alive, err = nc.Subscribe(inbox+aliveSuffix, func(m *nats.Msg) { _ = m.Respond(nil) })
	}
	if err == nil {
		err = nc.Flush() // the subscriptions are known to the server before Start returns
	}
	if err != nil {
		nc.Close()
		<-c.closed
		return nil, fmt.Errorf("nats: subscribe to %s: %w", inbox, err)
	}
	c.sub = sub
	return c, nil
}

// Publish implements bus.Broker.
func (c *conn) Publish(to string, msgs [][]byte) error {
	for _, m := range msgs {
		if err := c.nc.Publish(to, m); err != nil {
			return err
		}
	}
	return nil
}

// aliveSuffix ends the subject a node answers probes on.
const aliveSuffix = ".alive"

// Buffered implements bus.Buffered: nats.go's Publish appends to the
// connection's buffer, which its flusher goroutine writes out.
func (c *conn) Buffered() bool { return true }

// Probe implements bus.Prober with a request to the inbox's probe
// subject: NATS answers "no responders" at once when nobody subscribes to
// it.
func (c *conn) Probe(ctx context.Context, to string) error {
	_, err := c.nc.RequestWithContext(ctx, to+aliveSuffix, nil)
	if errors.Is(err, nats.ErrNoResponders) {
		return bus.ErrNoReader
	}
	return err
}

// Flush implements bus.Flusher: it returns once the server has everything
// published so far.
func (c *conn) Flush(ctx context.Context) error { return c.nc.FlushWithContext(ctx) }

// Close implements bus.Broker: it unsubscribes, closes the connection and
// waits for nats.go's closed callback.
func (c *conn) Close() error {
	_ = c.sub.Unsubscribe()
	_ = c.alive.Unsubscribe()
	c.nc.Close()
	<-c.closed
	return nil
}

// Packs implements bus.Packing: the broker's cost is per message, so the
// writers pack envelopes.
func (c *conn) Packs() bool { return true }
