// Package amqp is guild's node-to-node transport over RabbitMQ (AMQP 0-9-1,
// with github.com/rabbitmq/amqp091-go). It is an adapter on package
// transport/bus, which keeps the promises package transport states (order,
// bounded queues, fail fast, recovery); this package only connects to the
// broker and moves frames between queues.
//
// # Queues
//
// Every node reads one queue, its inbox, named "<prefix>.<address>", for
// example "guild.1.2.3" (Config.Prefix, default "guild", lets several
// clusters share one broker or virtual host). The queue's name is the
// node's Endpoint, published in its member record; a node sends to a peer
// by publishing frames (package bus's, one envelope each) through the
// default exchange with the peer's queue name as the routing key.
//
// The queue is declared non-durable and auto-delete, with an x-expires of
// a minute as a safety net, and consumed with an exclusive consumer. It is
// not an exclusive queue, on purpose: a peer asks whether anyone reads it
// with a passive declare, which on another connection's exclusive queue
// fails (and closes the asking channel) even when the queue is alive,
// whereas on an auto-delete queue it succeeds and says how many consumers
// it has. The effect is the same as with an exclusive queue: the queue
// goes away with its node's connection (its only consumer), so a dead
// node's queue does not collect frames, and the exclusive consumer makes
// sure that only one node reads it. A node that starts (or reconnects)
// declares its queue, refuses it if another connection still consumes
// from it (a node with the same address is running, or the broker has not
// noticed yet that the previous incarnation died: the first connection
// retries that for a few broker heartbeats, then Start fails), purges it,
// so that a restarted node never reads frames meant for its previous
// incarnation, and consumes from it. What a live but slow node has not
// taken waits in its queue, in the broker; its peers stop sending data
// once it stops answering their pings (Options.DeadAfter).
//
// # Connections
//
// A node opens two connections to the broker: one consumes (and probes),
// the other publishes. RabbitMQ throttles a connection that publishes
// faster than its queues take (flow control) by not reading from it for a
// while; on a shared connection that would hold up the consumer's
// acknowledgements too, and with them the deliveries, so a node busy
// sending would stop hearing its peers and lose them. The two make one
// session: when either is lost, both are closed and reopened.
//
// # Failing fast
//
// Publishing is mandatory: the broker returns a frame for a queue that
// does not exist, and the next Publish to that queue fails, so the peer is
// reported lost. When only control frames (pings, pongs, byes) were
// returned, the next Publish first asks the broker (a passive declare)
// whether the queue is read now, and fails only if it is not: a ping that
// package bus sent while the peer was down must not drop the first
// envelope for the peer's next incarnation. A returned data frame always
// fails it: an envelope was lost. The broker implements bus.Prober with a passive declare
// of the peer's queue, which package bus asks for on every reach and every
// heartbeat: a queue that does not exist, or that nobody consumes,
// answers bus.ErrNoReader, so a node that is not running is reported lost
// at once. A queue found with a consumer is trusted for ten heartbeats
// (Options.HeartbeatInterval), unless the broker returns a frame for it
// meanwhile, so that most heartbeats cost no round trip in the writer
// that publishes the peer's envelopes; a killed node's queue goes with its
// connection, and the next heartbeat's ping is returned, so the node is
// reported lost within about two heartbeats.
//
// # Publisher confirms
//
// The publishing channel is in confirm mode. Publish does not wait for
// each confirm (that would cost a round trip per envelope); it waits only
// for room in a bounded window of unconfirmed publishes (Config.Unacked),
// so a broker that stops confirming (a resource alarm, a partition) stops
// the publishers within the window instead of letting them fill memory. A
// publish the broker nacks makes the next Publish to its queue fail (the
// peer is reported lost). Flush (bus.Flusher, called by the transport's
// Flush and Close) waits until every publish so far is confirmed, so a
// node's last replies have reached the broker's queue before it
// disconnects; it fails if the broker nacked any of them, and returns
// at once, without an error, when the connection is lost (what was not
// confirmed is lost with it, and the peers are reported lost). A broker that keeps the window full for one and a half
// AMQP heartbeat timeouts (see below) makes Publish fail, and so does a
// connection that the broker blocks (connection.blocked).
//
// Publish is called by one writer goroutine per peer, concurrently: one
// mutex serialises the publishing channel and its window.
//
// # Consuming
//
// Deliveries are acknowledged manually, with a prefetch of 256: an
// auto-ack consumer would let the broker push without limit into the
// client's unbounded delivery buffer when the node is slower than its
// senders, whereas the prefetch keeps what waits in the broker's queue.
// Acknowledgements are batched (one for many deliveries, sent when 64 have
// been taken or when the consumer catches up). They do not make the
// transport at-least-once, and cannot deliver anything twice: the queue
// and its unacknowledged messages go away with the connection. One
// goroutine receives the deliveries and calls bus.Receiver.Deliver with
// each body, in order.
//
// # Losing the broker
//
// The connections' AMQP heartbeat timeout is Options.DeadAfter rounded up
// to whole seconds, at least 2s and at most 10s; a connection is lost when
// the broker closes it or one of its channels, when it fails, or when the
// broker has not been heard from for one and a half timeouts. Then every
// peer is reported lost at once (bus.Receiver.Down, once), publishing
// fails at once (the client buffers nothing meanwhile, so nothing sent
// before the loss arrives after requests failed), and the transport
// reconnects, waiting between attempts from Config.ReconnectMin, doubling
// up to Config.ReconnectMax, with jitter, for ever. Once connected it
// declares, purges and consumes its queue again and calls
// bus.Receiver.Up: the peers that were up are reached again. What was in
// the queue when the connection was lost is lost with it (at most once:
// the requests waiting on it failed fast).
//
// amqp091-go's own automatic recovery (Config.Recovery) is not used: it
// would recover the topology but not tell package bus, and would keep a
// queue's old contents.
//
// # Goroutines
//
// Besides amqp091-go's (per connection its reader and heartbeater, and
// the consumer's buffer), a node's broker runs two: the consumer, which
// delivers, reconnects and reports Down and Up, and one watcher per
// session, which drains the connections' notifications (closes, returns,
// blocked); closing a session closes its two connections side by side.
// Close stops reconnecting, closes the connections and waits for every
// one of them.
package amqp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/guildkit/guild/transport"
	"github.com/guildkit/guild/transport/bus"
)

// Defaults for the zero fields of a Config.
const (
	// DefaultURL is a RabbitMQ on this machine with its default user.
	DefaultURL = "amqp://guest:guest@127.0.0.1:5672/"
	// DefaultPrefix starts every queue name.
	DefaultPrefix = "guild"
	// DefaultUnacked bounds the publishes waiting for a confirm.
	DefaultUnacked = 1024
	// DefaultReconnectMin is the first wait before reconnecting.
	DefaultReconnectMin = 100 * time.Millisecond
	// DefaultReconnectMax is the longest wait between reconnection
	// attempts.
	DefaultReconnectMax = 2 * time.Second
)

// Tuning that is not configurable.
const (
	prefetch     = 256             // deliveries unacknowledged at once
	ackEvery     = prefetch / 4    // deliveries acknowledged by one ack, at most
	queueExpires = 60_000          // x-expires, milliseconds: a queue nobody consumes goes
	dialTimeout  = 5 * time.Second // TCP, TLS and AMQP handshakes
	closeTimeout = time.Second     // waiting for the broker's close-ok
	maxQueueName = 255             // AMQP's limit on a queue name, in bytes
	consumerTag  = "guild-transport"
)

// ErrBadConfig is returned by Validate and Start for an invalid Config.
var ErrBadConfig = errors.New("amqp: bad config")

// Config starts the AMQP transport; it implements transport.Config. The
// zero Config is valid: it connects to DefaultURL.
type Config struct {
	// URL is the broker, as amqp091-go parses it, with credentials and
	// virtual host ("amqp://user:pass@10.0.0.1:5672/vhost"). Default
	// DefaultURL. When Setup.TLS is set it must use the amqps scheme.
	URL string
	// Prefix starts every queue name ("<prefix>.<address>"): default
	// "guild". Clusters sharing one broker and virtual host need
	// different prefixes. It may not start with "amq." (names the broker
	// reserves).
	Prefix string
	// Options tunes the transport: queues, frame size, heartbeats and
	// timeouts. MaxFrame should stay below the broker's max_message_size
	// (128 MiB by default on RabbitMQ 3.x, 16 MiB on 4.x): the broker
	// closes the channel of a larger message, which costs the connection.
	Options bus.Options
	// Unacked bounds the publishes that wait for the broker's confirm;
	// Publish waits for room beyond it. Default DefaultUnacked.
	Unacked int
	// ReconnectMin and ReconnectMax bound the wait between reconnection
	// attempts, which doubles from the first to the second, with jitter.
	// Defaults DefaultReconnectMin and DefaultReconnectMax.
	ReconnectMin, ReconnectMax time.Duration
}

// Validate reports whether c can be used, as an error matching
// ErrBadConfig (or bus.ErrBadOptions) that names the first bad field. A
// nil Config is the zero Config, which is valid.
func (c *Config) Validate() error {
	if c == nil {
		return nil
	}
	d := c.withDefaults()
	if _, err := amqp091.ParseURI(d.URL); err != nil {
		return fmt.Errorf("%w: URL: %w", ErrBadConfig, err)
	}
	switch {
	case strings.HasPrefix(d.Prefix+".", "amq."):
		return fmt.Errorf("%w: Prefix %q: queue names starting with \"amq.\" are the broker's", ErrBadConfig, d.Prefix)
	case len(d.Prefix) > maxQueueName-32:
		return fmt.Errorf("%w: Prefix is %d bytes, longer than %d", ErrBadConfig, len(d.Prefix), maxQueueName-32)
	case d.Unacked < 0:
		return fmt.Errorf("%w: Unacked is negative", ErrBadConfig)
	case d.ReconnectMin < 0 || d.ReconnectMax < 0:
		return fmt.Errorf("%w: ReconnectMin or ReconnectMax is negative", ErrBadConfig)
	case d.ReconnectMin > d.ReconnectMax:
		return fmt.Errorf("%w: ReconnectMin %v is longer than ReconnectMax %v", ErrBadConfig, d.ReconnectMin, d.ReconnectMax)
	}
	return c.Options.Validate()
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.URL == "" {
		c.URL = DefaultURL
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.Unacked == 0 {
		c.Unacked = DefaultUnacked
	}
	if c.ReconnectMin == 0 {
		c.ReconnectMin = min(DefaultReconnectMin, max(c.ReconnectMax, time.Millisecond))
	}
	if c.ReconnectMax == 0 {
		c.ReconnectMax = max(DefaultReconnectMax, c.ReconnectMin)
	}
	return c
}

// QueueName returns the inbox queue of the node with address addr
// (actor.Addr's String) under prefix ("" means DefaultPrefix): the node's
// Endpoint.
func QueueName(prefix, addr string) string {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return prefix + "." + addr
}

// Start implements transport.Config: it connects to the broker, declares
// and consumes the node's queue and starts the transport. s.TLS, when set,
// secures the connection to the broker (the URL must then be amqps://);
// s.Logger receives the connection's logs.
func (c Config) Start(s transport.Setup) (transport.Transport, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c = c.withDefaults()
	uri, _ := amqp091.ParseURI(c.URL) // checked by Validate
	if s.TLS != nil && uri.Scheme != "amqps" {
		return nil, fmt.Errorf("%w: Setup.TLS is set but URL %q is not amqps://", ErrBadConfig, uri.Host)
	}
	connect := func(inbox string, r bus.Receiver) (bus.Broker, error) {
		return dial(c, s, inbox, r) // bus.Start makes r wait until it has the broker
	}
	return bus.Start(s, QueueName(c.Prefix, s.Self.String()), c.Options, connect)
}

// errDown is what Publish, Probe and Flush meet while the connection to
// the broker is lost.
var errDown = errors.New("amqp: not connected to the broker (reconnecting)")

// errInUse is why a node cannot read its queue: another connection
// consumes from it.
var errInUse = errors.New("another connection consumes from the queue")

// broker is a node's connection to RabbitMQ: a bus.Broker, bus.Prober and
// bus.Flusher. The connection itself (a session) is replaced on every
// reconnection.
type broker struct {
	c           Config // defaults applied
	amqpCfg     amqp091.Config
	inbox       string
	r           bus.Receiver
	log         *slog.Logger
	confirmWait time.Duration // longest wait for room in the window

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	cur atomic.Pointer[session] // nil while the connection is lost

	probeTTL time.Duration // how long a probe that found a reader is trusted

	fmu    sync.Mutex
	failed map[string]failure   // queue name: why publishing to it failed
	read   map[string]time.Time // queue name: when a probe last found a reader
}

// session is one pair of connections to the broker, their channels and
// the state of publishing.
type session struct {
	subConn    *amqp091.Connection // consumes, acknowledges and probes
	pubConn    *amqp091.Connection // publishes
	sub        *amqp091.Channel    // declares and consumes the inbox
	pub        *amqp091.Channel    // publishes, in confirm mode
	deliveries <-chan amqp091.Delivery
	watched    chan struct{} // closed when its watcher ends

	lostOnce sync.Once
	lost     chan struct{} // closed when the session is lost (or closed)
	cause    error         // why; written before lost is closed
	blocked  atomic.Bool   // the broker blocks publishing (connection.blocked)

	mu      sync.Mutex // publishing: pub and pending
	pending []unconfirmed

	probeMu sync.Mutex
	probe   *amqp091.Channel // passive declares on subConn; nil until needed or after it closed
}

// unconfirmed is a publish waiting for its confirm.
type unconfirmed struct {
	dc *amqp091.DeferredConfirmation
	to string
}

// fail marks s lost because of err (the first cause wins).
func (s *session) fail(err error) {
	s.lostOnce.Do(func() {
		s.cause = err
		close(s.lost)
	})
}

// isLost reports whether s is lost.
func (s *session) isLost() bool {
	select {
	case <-s.lost:
		return true
	default:
		return false
	}
}

// dial makes the first connection and starts the consumer.
func dial(c Config, s transport.Setup, inbox string, r bus.Receiver) (*broker, error) {
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	o := c.Options
	if o.DeadAfter == 0 {
		o.DeadAfter = bus.DefaultDeadAfter
	}
	hbi := o.HeartbeatInterval
	if hbi == 0 {
		hbi = bus.DefaultHeartbeatInterval
	}
	// AMQP heartbeats count whole seconds.
	hb := min(max((o.DeadAfter+time.Second-1).Truncate(time.Second), 2*time.Second), 10*time.Second)
	b := &broker{
		c:           c,
		inbox:       inbox,
		r:           r,
		log:         log.With("transport", "amqp", "queue", inbox),
		confirmWait: hb * 3 / 2,
		probeTTL:    10 * hbi,
		failed:      map[string]failure{},
		read:        map[string]time.Time{},
	}
	props := amqp091.NewConnectionProperties()
	props["connection_name"] = "guild node " + s.Self.String()
	b.amqpCfg = amqp091.Config{Heartbeat: hb, Properties: props}
	if s.TLS != nil {
		// amqp091 writes ServerName into the config it is given: a copy
		// keeps the caller's, which other transports may share, intact.
		b.amqpCfg.TLSClientConfig = s.TLS.Clone()
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())

	// A node whose previous incarnation died without closing its
	// connection finds the queue still consumed until the broker notices,
	// within two of its heartbeats: wait for that, but no longer.
	deadline := time.Now().Add(2*hb + c.ReconnectMax)
	delay := c.ReconnectMin
	for {
		ss, err := b.open()
		if err == nil {
			b.cur.Store(ss)
			b.wg.Add(1)
			go b.run(ss)
			return b, nil
		}
		if !errors.Is(err, errInUse) || time.Now().Add(delay).After(deadline) {
			b.cancel()
			return nil, fmt.Errorf("amqp: connect to the broker: %w", err)
		}
		time.Sleep(jitter(delay))
		delay = min(2*delay, c.ReconnectMax)
	}
}

// jitter returns a random duration between d/2 and d.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// open connects to the broker, declares, purges and consumes the inbox
// and starts the connections' watcher. It gives up when Close is called.
func (b *broker) open() (*session, error) {
	var rawMu sync.Mutex
	var raws []net.Conn
	dial := func(network, addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: dialTimeout}
		nc, err := d.DialContext(b.ctx, network, addr)
		if err != nil {
			return nil, err
		}
		// Bounds the TLS and AMQP handshakes; amqp091 clears it once open.
		if err := nc.SetDeadline(time.Now().Add(dialTimeout)); err != nil {
			_ = nc.Close()
			return nil, err
		}
		rawMu.Lock()
		raws = append(raws, nc)
		rawMu.Unlock()
		return nc, nil
	}
	// Close interrupts a handshake or a declaration by closing the sockets.
	stop := context.AfterFunc(b.ctx, func() {
		rawMu.Lock()
		defer rawMu.Unlock()
		for _, nc := range raws {
			_ = nc.Close()
		}
	})
	defer stop()

	connect := func(role string) (*amqp091.Connection, error) {
		cfg := b.amqpCfg
		if cfg.TLSClientConfig != nil {
			cfg.TLSClientConfig = cfg.TLSClientConfig.Clone()
		}
		cfg.Properties = maps.Clone(cfg.Properties)
		cfg.Properties["connection_name"] = fmt.Sprintf("%v (%s)", cfg.Properties["connection_name"], role)
		cfg.Dial = dial
		return amqp091.DialConfig(b.c.URL, cfg)
	}
	subConn, err := connect("consume")
	if err != nil {
		return nil, err
	}
	pubConn, err := connect("publish")
	if err != nil {
		_ = subConn.CloseDeadline(time.Now().Add(closeTimeout))
		return nil, err
	}
	s, err := b.setup(subConn, pubConn)
	if err != nil {
		_ = pubConn.CloseDeadline(time.Now().Add(closeTimeout))
		_ = subConn.CloseDeadline(time.Now().Add(closeTimeout))
		return nil, err
	}
	return s, nil
}

// setup opens the channels of new connections, declares, purges and
// consumes the inbox, and starts the watcher.
func (b *broker) setup(subConn, pubConn *amqp091.Connection) (*session, error) {
	s := &session{subConn: subConn, pubConn: pubConn, lost: make(chan struct{}), watched: make(chan struct{})}
	var err error
	if s.sub, err = subConn.Channel(); err != nil {
		return nil, err
	}
	q, err := s.sub.QueueDeclare(b.inbox, false, true, false, false, amqp091.Table{"x-expires": int32(queueExpires)})
	if err != nil {
		return nil, fmt.Errorf("declare queue %q: %w", b.inbox, err)
	}
	if q.Consumers > 0 {
		return nil, fmt.Errorf("queue %q: %w", b.inbox, errInUse)
	}
	if _, err := s.sub.QueuePurge(b.inbox, false); err != nil {
		return nil, fmt.Errorf("purge queue %q: %w", b.inbox, err)
	}
	if err := s.sub.Qos(prefetch, 0, false); err != nil {
		return nil, err
	}
	s.deliveries, err = s.sub.Consume(b.inbox, consumerTag, false, true, false, false, nil)
	if err != nil {
		var ae *amqp091.Error
		if errors.As(err, &ae) && (ae.Code == amqp091.AccessRefused || ae.Code == amqp091.ResourceLocked) {
			err = fmt.Errorf("%w: %w", errInUse, err)
		}
		return nil, fmt.Errorf("consume queue %q: %w", b.inbox, err)
	}
	if s.pub, err = pubConn.Channel(); err != nil {
		return nil, err
	}
	if err := s.pub.Confirm(false); err != nil {
		return nil, err
	}
	// The notifications are registered last: a connection lost meanwhile
	// closes them at once, which the watcher takes for the loss it is.
	// amqp091 blocks its reader on returns and blocked notices until they
	// are taken, and sends one close error without blocking into a
	// buffered channel.
	n := notices{
		subConn:  subConn.NotifyClose(make(chan *amqp091.Error, 1)),
		pubConn:  pubConn.NotifyClose(make(chan *amqp091.Error, 1)),
		sub:      s.sub.NotifyClose(make(chan *amqp091.Error, 1)),
		pub:      s.pub.NotifyClose(make(chan *amqp091.Error, 1)),
		blocked:  pubConn.NotifyBlocked(make(chan amqp091.Blocking, 1)),
		returned: s.pub.NotifyReturn(make(chan amqp091.Return, 16)),
	}
	b.wg.Add(1)
	go b.watch(s, n)
	return s, nil
}

// notices are the notification channels of a session.
type notices struct {
	subConn, pubConn, sub, pub chan *amqp091.Error
	blocked                    chan amqp091.Blocking
	returned                   chan amqp091.Return
}

// watch takes s's notifications until its connections are shut down: it
// marks s lost when a connection or one of their channels closes, tracks
// whether the broker blocks publishing, and marks the queues that
// returned a frame as failed.
func (b *broker) watch(s *session, n notices) {
	defer b.wg.Done()
	defer close(s.watched)
	closed := func(what string, e *amqp091.Error, ok bool) {
		if ok && e != nil {
			s.fail(fmt.Errorf("the %s closed: %w", what, e))
		} else {
			s.fail(fmt.Errorf("the %s closed", what))
		}
	}
	for n.subConn != nil || n.pubConn != nil || n.sub != nil || n.pub != nil || n.blocked != nil || n.returned != nil {
		select {
		case e, ok := <-n.subConn:
			closed("consuming connection", e, ok)
			n.subConn = nil
		case e, ok := <-n.pubConn:
			closed("publishing connection", e, ok)
			n.pubConn = nil
		case e, ok := <-n.sub:
			closed("consuming channel", e, ok)
			n.sub = nil
		case e, ok := <-n.pub:
			closed("publishing channel", e, ok)
			n.pub = nil
		case bl, ok := <-n.blocked:
			if !ok {
				n.blocked = nil
				continue
			}
			s.blocked.Store(bl.Active)
			if bl.Active {
				b.log.Warn("amqp: the broker blocks publishing", "reason", bl.Reason)
			} else {
				b.log.Info("amqp: the broker unblocked publishing")
			}
		case ret, ok := <-n.returned:
			if !ok {
				n.returned = nil
				continue
			}
			b.markFailed(ret.RoutingKey, failure{
				err:   fmt.Errorf("the broker returned a frame for queue %q (%d %s): %w", ret.RoutingKey, ret.ReplyCode, ret.ReplyText, bus.ErrNoReader),
				check: !bus.CarriesData(ret.Body),
			})
		}
	}
}

// failure is why publishing to a queue failed.
type failure struct {
	err error
	// check: only control frames (pings, pongs, byes) were lost, which
	// may have been published before the peer came back (a ping of
	// package bus's retries, sent while the peer was down): the next
	// Publish asks the broker whether the queue is read now, and fails
	// only if it is not. Lost data, or a nack, always fails it: the
	// peer must be reported lost.
	check bool
}

// markFailed makes the next Publish to the queue named to fail with f
// (see failure.check), and the next Probe ask the broker.
func (b *broker) markFailed(to string, f failure) {
	b.fmu.Lock()
	if old, ok := b.failed[to]; !ok || (old.check && !f.check) {
		b.failed[to] = f
	}
	delete(b.read, to)
	b.fmu.Unlock()
}

// takeFailed returns and forgets why publishing to the queue named to
// failed, if it did.
func (b *broker) takeFailed(to string) (failure, bool) {
	b.fmu.Lock()
	defer b.fmu.Unlock()
	f, ok := b.failed[to]
	if ok {
		delete(b.failed, to)
	}
	return f, ok
}

// isRead reports whether a probe found a reader of the queue named to
// less than probeTTL ago, and nothing failed since.
func (b *broker) isRead(to string) bool {
	b.fmu.Lock()
	defer b.fmu.Unlock()
	at, ok := b.read[to]
	_, failed := b.failed[to]
	return ok && time.Since(at) < b.probeTTL && !failed
}

// markRead records that a probe found a reader of the queue named to,
// forgetting its failures.
func (b *broker) markRead(to string) {
	now := time.Now()
	b.fmu.Lock()
	defer b.fmu.Unlock()
	delete(b.failed, to)
	if len(b.read) >= 1024 { // queue names come from the peers: bound them
		for q, at := range b.read {
			if now.Sub(at) >= b.probeTTL {
				delete(b.read, q)
			}
		}
	}
	b.read[to] = now
}

// forgetQueues forgets what failed and what was read: on a new connection
// it is all to be found out again.
func (b *broker) forgetQueues() {
	b.fmu.Lock()
	clear(b.failed)
	clear(b.read)
	b.fmu.Unlock()
}

// run is the consumer goroutine: it delivers the inbox, and when the
// connection is lost reports it, reconnects and reports it back, until
// Close.
func (b *broker) run(s *session) {
	defer b.wg.Done()
	for {
		err := b.consume(s)
		b.cur.Store(nil)
		if b.ctx.Err() != nil {
			b.end(s)
			return
		}
		b.log.Debug("amqp: lost the connection to the broker", "err", err) // package bus warns
		b.r.Down(err)
		b.end(s)
		if s = b.reconnect(); s == nil {
			return
		}
		b.forgetQueues()
		b.cur.Store(s)
		b.r.Up()
	}
}

// consume delivers s's messages until s is lost (it returns why) or Close.
func (b *broker) consume(s *session) error {
	var last uint64 // delivery tag of the last message not acknowledged yet
	unacked := 0
	for {
		var d amqp091.Delivery
		var ok bool
		select {
		case d, ok = <-s.deliveries:
		case <-s.lost:
			return s.cause
		case <-b.ctx.Done():
			return nil
		default:
			// Caught up: acknowledge what was delivered, then wait.
			if unacked > 0 {
				_ = s.sub.Ack(last, true) // a lost channel is noticed by the watcher
				unacked = 0
			}
			select {
			case d, ok = <-s.deliveries:
			case <-s.lost:
				return s.cause
			case <-b.ctx.Done():
				return nil
			}
		}
		if !ok {
			// The channel or connection closed, which the watcher is
			// told with the cause, or the broker cancelled the consumer
			// (the queue was deleted).
			t := time.NewTimer(100 * time.Millisecond)
			select {
			case <-s.lost:
			case <-t.C:
			}
			t.Stop()
			s.fail(fmt.Errorf("the broker stopped delivering queue %q", b.inbox))
			return s.cause
		}
		b.r.Deliver(d.Body)
		last = d.DeliveryTag
		if unacked++; unacked >= ackEvery {
			_ = s.sub.Ack(last, true)
			unacked = 0
		}
	}
}

// end closes s's connections, both at once (each waits up to
// closeTimeout for a broker that does not answer), and waits for its
// watcher.
func (b *broker) end(s *session) {
	s.fail(errors.New("closed"))
	deadline := time.Now().Add(closeTimeout)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.pubConn.CloseDeadline(deadline)
	}()
	_ = s.subConn.CloseDeadline(deadline)
	<-done
	<-s.watched
}

// reconnect connects again, waiting longer after each failed attempt. It
// returns nil when Close is called first.
func (b *broker) reconnect() *session {
	delay := b.c.ReconnectMin
	for attempt := 1; ; attempt++ {
		t := time.NewTimer(jitter(delay))
		select {
		case <-b.ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		s, err := b.open()
		if err == nil {
			b.log.Info("amqp: reconnected to the broker", "attempts", attempt)
			return s
		}
		if b.ctx.Err() != nil {
			return nil
		}
		if attempt == 1 || attempt%10 == 0 {
			b.log.Warn("amqp: reconnecting to the broker", "attempt", attempt, "err", err)
		} else {
			b.log.Debug("amqp: reconnecting to the broker", "attempt", attempt, "err", err)
		}
		delay = min(2*delay, b.c.ReconnectMax)
	}
}

// Publish implements bus.Broker: it publishes msgs in order to the queue
// named to, each once there is room in the window of unconfirmed
// publishes. It fails at once while the connection is lost, and when a
// previous frame for the queue was returned or nacked (when only control
// frames were returned, after asking the broker whether the queue is read
// now: see failure.check).
func (b *broker) Publish(to string, msgs [][]byte) error {
	s := b.cur.Load()
	if s == nil {
		return errDown
	}
	if f, ok := b.takeFailed(to); ok {
		if !f.check {
			return f.err
		}
		if err := b.Probe(b.ctx, to); err != nil {
			return fmt.Errorf("%w; asked again: %w", f.err, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range msgs {
		if err := b.room(s); err != nil {
			return err
		}
		dc, err := s.pub.PublishWithDeferredConfirm("", to, true, false, amqp091.Publishing{Body: m})
		if err != nil {
			return fmt.Errorf("amqp: publish to queue %q: %w", to, err)
		}
		s.pending = append(s.pending, unconfirmed{dc: dc, to: to})
	}
	return nil
}

// room waits until s's window of unconfirmed publishes has room, s is
// lost, Close is called or confirmWait passes. s.mu is held.
func (b *broker) room(s *session) error {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		b.prune(s)
		switch {
		case s.isLost():
			return errDown
		case b.ctx.Err() != nil:
			return transport.ErrClosed
		case s.blocked.Load():
			return errors.New("amqp: the broker blocks publishing (a resource alarm)")
		case len(s.pending) < b.c.Unacked:
			return nil
		}
		if timer == nil {
			timer = time.NewTimer(b.confirmWait)
		}
		select {
		case <-s.pending[0].dc.Done():
		case <-s.lost:
		case <-b.ctx.Done():
		case <-timer.C:
			return fmt.Errorf("amqp: %d publishes unconfirmed for %v", len(s.pending), b.confirmWait)
		}
	}
}

// prune drops the confirmed publishes at the head of s's window, marking
// the queues of those the broker nacked as failed. s.mu is held.
func (b *broker) prune(s *session) {
	i := 0
	for ; i < len(s.pending); i++ {
		u := s.pending[i]
		select {
		case <-u.dc.Done():
		default:
			goto done
		}
		if s.nacked(u) {
			b.markFailed(u.to, failure{err: fmt.Errorf("amqp: the broker nacked a frame for queue %q", u.to)})
		}
	}
done:
	if i > 0 {
		n := copy(s.pending, s.pending[i:])
		clear(s.pending[n:])
		s.pending = s.pending[:n]
	}
}

// nacked reports whether the broker nacked u, which is confirmed. A
// channel that closes nacks what it had not confirmed, after it is marked
// closed: that is the loss of the connection, reported as such (Down),
// not a failure of each queue.
func (s *session) nacked(u unconfirmed) bool {
	return !u.dc.Acked() && !s.pub.IsClosed()
}

// Flush implements bus.Flusher: it waits until every publish so far is
// confirmed, or ctx ends, or the connection is lost (what it had not
// confirmed is lost with it, and reported by Down). It returns an error
// if the broker nacked any of them.
func (b *broker) Flush(ctx context.Context) error {
	s := b.cur.Load()
	if s == nil {
		return nil
	}
	s.mu.Lock()
	waits := make([]unconfirmed, len(s.pending))
	copy(waits, s.pending)
	s.mu.Unlock()
	nacked := 0
	for _, u := range waits {
		select {
		case <-u.dc.Done():
			if s.nacked(u) {
				nacked++
			}
		case <-s.lost:
			return nil
		case <-b.ctx.Done():
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if nacked > 0 {
		return fmt.Errorf("amqp: the broker nacked %d frames", nacked)
	}
	return nil
}

// Probe implements bus.Prober with a passive declare of the queue named
// to: it returns bus.ErrNoReader when the queue does not exist or nobody
// consumes from it. A queue found read is trusted for probeTTL, unless the
// broker returns a frame for it meanwhile, so that most heartbeats cost
// no round trip (package bus probes before each ping, in the writer that
// publishes the peer's envelopes). The round trip does not heed ctx: it
// ends when the broker answers or the connection is lost.
func (b *broker) Probe(ctx context.Context, to string) error {
	s := b.cur.Load()
	if s == nil {
		return errDown
	}
	if b.isRead(to) {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.probeMu.Lock()
	defer s.probeMu.Unlock()
	if s.probe == nil || s.probe.IsClosed() {
		ch, err := s.subConn.Channel()
		if err != nil {
			return err
		}
		s.probe = ch
	}
	q, err := s.probe.QueueDeclarePassive(to, false, false, false, false, nil)
	var ae *amqp091.Error
	switch {
	case err == nil && q.Consumers == 0:
		return fmt.Errorf("queue %q has no consumer: %w", to, bus.ErrNoReader)
	case err == nil:
		b.markRead(to)
		return nil
	case errors.As(err, &ae) && ae.Code == amqp091.NotFound:
		s.probe = nil // the broker closed the channel
		return fmt.Errorf("queue %q does not exist: %w", to, bus.ErrNoReader)
	case errors.As(err, &ae) && ae.Code == amqp091.ResourceLocked:
		// Another connection's exclusive queue: its owner is connected.
		s.probe = nil
		b.markRead(to)
		return nil
	}
	s.probe = nil
	return err
}

// Close implements bus.Broker: it stops reconnecting, closes the
// connection and waits for the goroutines the broker started.
func (b *broker) Close() error {
	b.cancel()
	b.wg.Wait()
	return nil
}

// Packs implements bus.Packing: the broker's cost is per message, so the
// writers pack envelopes.
func (b *broker) Packs() bool { return true }
