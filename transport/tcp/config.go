package tcp

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/transport"
	"github.com/guildkit/guild/wire"
)

// Defaults for the zero fields of a Config.
const (
	DefaultPendingQueue        = 4096
	DefaultHeartbeatInterval   = time.Second
	DefaultDeadAfter           = 3 * time.Second
	DefaultDialTimeout         = 2 * time.Second
	DefaultReconnectBackoffMin = 50 * time.Millisecond
	DefaultReconnectBackoffMax = 2 * time.Second
)

// ErrBadConfig is returned by Config.Validate and New for an invalid Config.
var ErrBadConfig = errors.New("tcp: bad config")

// Config configures a Transport. A zero duration or size means its default.
type Config struct {
	// Self is this node's logical address, sent to peers in the hello.
	Self actor.Addr
	// Listen is the TCP address to listen on, for example "127.0.0.1:7000"
	// or "127.0.0.1:0" for a random port (see Transport.Addr). Required.
	Listen string
	// Resolve turns a peer's logical address into the TCP endpoint
	// ("host:port") to dial. It is called from the dialling goroutine,
	// before every connection attempt, so it may change over time.
	// Required.
	Resolve func(actor.Addr) (string, error)
	// Handler receives envelopes and lost-peer notices. Required.
	Handler transport.Handler
	// TLS, when set, secures every connection: the listener runs TLS
	// servers with it and dials run TLS clients with it (its ServerName,
	// when empty, is the dialled host). For mutual TLS set Certificates,
	// RootCAs, ClientCAs and ClientAuth = tls.RequireAndVerifyClientCert.
	TLS *tls.Config
	// PendingQueue bounds the envelopes queued per peer, waiting for a
	// connection or for the writer: default DefaultPendingQueue.
	PendingQueue int
	// MaxFrame is the largest frame body read or sent, in bytes: default
	// wire.DefaultMaxFrame.
	MaxFrame int
	// HeartbeatInterval is how long a connection may stay without writing
	// before a heartbeat (an empty frame) is sent: default 1s.
	HeartbeatInterval time.Duration
	// DeadAfter is how long a connection may stay without receiving a byte
	// before the peer is declared dead and the connection closed; it is
	// also the limit for a batch of writes to make progress. It must be
	// longer than HeartbeatInterval: default 3s.
	DeadAfter time.Duration
	// DialTimeout bounds a connection attempt, including the TLS handshake
	// and the hello exchange, on both sides: default 2s.
	DialTimeout time.Duration
	// ReconnectBackoffMin and ReconnectBackoffMax bound the wait between
	// connection attempts to one peer; it doubles after each failure, with
	// jitter: defaults 50ms and 2s.
	ReconnectBackoffMin time.Duration
	ReconnectBackoffMax time.Duration
	// QueuedWrites turns direct writes off: every frame then goes
	// through the connection's writer goroutine. By default (false) a
	// sender that finds the connection quiet writes its frames itself,
	// with one non-blocking system call (over plain TCP on Unix; not over
	// TLS), instead of waking the writer; what the socket does not take at
	// once is left to the writer. That saves a goroutine hand-off on each
	// side of a request's round trip (p50 27 → 24 µs in bench/). Direct
	// writes were opt-in while they soaked: two bugs found then are fixed
	// (a direct write failed with the timeout of a write deadline the
	// writer had left on the socket; a heartbeat could be written inside a
	// frame a direct write had left half written), and with them fixed the
	// cluster, RPC, grain, gateway, arena and chaos suites passed with
	// direct writes on, twice plainly and once beside a CPU hog
	// (GUILD_TEST_TRANSPORT=tcp-direct), before they became the default.
	QueuedWrites bool
	// Logger receives the transport's logs: default slog.Default().
	Logger *slog.Logger
}

// Start implements transport.Config: it takes Self, Listen, Resolve and
// Handler from s, and TLS and Logger too unless c sets them, and starts
// the Transport (New).
func (c Config) Start(s transport.Setup) (transport.Transport, error) {
	c.Self = s.Self
	c.Listen = s.Listen
	c.Resolve = s.Resolve
	c.Handler = s.Handler
	if c.TLS == nil {
		c.TLS = s.TLS
	}
	if c.Logger == nil {
		c.Logger = s.Logger
	}
	return New(c)
}

// Validate reports whether the Config can be used, as an error matching
// ErrBadConfig that names the first bad field.
func (c Config) Validate() error {
	d := c.withDefaults()
	switch {
	case d.Listen == "":
		return fmt.Errorf("%w: Listen is empty", ErrBadConfig)
	case d.Resolve == nil:
		return fmt.Errorf("%w: Resolve is nil", ErrBadConfig)
	case d.Handler == nil:
		return fmt.Errorf("%w: Handler is nil", ErrBadConfig)
	case d.PendingQueue < 0:
		return fmt.Errorf("%w: PendingQueue %d is negative", ErrBadConfig, c.PendingQueue)
	case d.MaxFrame < 0:
		return fmt.Errorf("%w: MaxFrame %d is negative", ErrBadConfig, c.MaxFrame)
	case d.HeartbeatInterval < 0, d.DeadAfter < 0, d.DialTimeout < 0, d.ReconnectBackoffMin < 0, d.ReconnectBackoffMax < 0:
		return fmt.Errorf("%w: a duration is negative", ErrBadConfig)
	case d.DeadAfter <= d.HeartbeatInterval:
		return fmt.Errorf("%w: DeadAfter %v must be longer than HeartbeatInterval %v", ErrBadConfig, d.DeadAfter, d.HeartbeatInterval)
	case d.ReconnectBackoffMin > d.ReconnectBackoffMax:
		return fmt.Errorf("%w: ReconnectBackoffMin %v is above ReconnectBackoffMax %v", ErrBadConfig, d.ReconnectBackoffMin, d.ReconnectBackoffMax)
	}
	return nil
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.PendingQueue == 0 {
		c.PendingQueue = DefaultPendingQueue
	}
	if c.MaxFrame == 0 {
		c.MaxFrame = wire.DefaultMaxFrame
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.DeadAfter == 0 {
		c.DeadAfter = DefaultDeadAfter
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.ReconnectBackoffMin == 0 {
		c.ReconnectBackoffMin = DefaultReconnectBackoffMin
	}
	if c.ReconnectBackoffMax == 0 {
		c.ReconnectBackoffMax = DefaultReconnectBackoffMax
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
