// Package redis is guild's node-to-node transport over Redis: the broker
// transport of package transport/bus, with one Redis list per node as its
// inbox. It keeps every promise package transport states; what follows is
// how it keeps them on Redis, and what it adds.
//
//	cfg := redis.Config{Addr: "10.0.0.5:6379", Prefix: "mygame"}
//	node, err := cluster.Start(ctx, cluster.NodeConfig{..., Transport: cfg})
//
// It needs one Redis server, 6.2 or later (for BLMOVE); a Redis Cluster
// is not supported: the nodes share the one server their keys live on.
// Keys live under Config.Prefix, so several clusters can share a server.
// Run it with maxmemory-policy noeviction (Redis's default): every key the
// transport writes has a TTL, so a volatile-* policy could evict an inbox
// and lose its frames silently, where noeviction makes a publish fail
// (and the peer be reported lost).
//
// # Inboxes
//
// A node reads the list "<prefix>:inbox:<address>" (its Endpoint, e.g.
// "guild:inbox:1.2.3"). When its transport starts it deletes that list: a
// restarted node must not read frames meant for its previous
// incarnation. One goroutine reads the list on a dedicated connection and
// hands each message to the bus core, in order, from that one goroutine.
//
// A message leaves the list only after it was delivered. Each round trip
// of the reader is one pipeline of two commands. A Lua script removes the
// messages delivered since the last one, if the node's cursor
// ("<prefix>:cursor:<address>", the count of messages ever removed) is
// where the reader left it, so that a removal applies once however often
// it reaches Redis; then it reads up to 128 messages at the head of the
// list, without removing them (LRANGE). Then BLMOVE from the list to its
// own head waits, when the list is empty, for the first message to
// arrive, and returns it without taking it (a wait lasts at most 250ms,
// so that the reader refreshes its keys in time; Close ends it with
// CLIENT UNBLOCK). The reader delivers what the script read, or else what
// BLMOVE returned, at once: a message that arrives at an idle node costs
// one wake-up, as with a blocking pop. So no command lost with a
// connection, nor one that a partition delays until Redis runs it after
// the client gave up, ever takes a message that nobody delivers; and when
// the connection is lost between a delivery and its removal, the cursor
// tells the reader, once back, whether the removal was applied, so
// nothing is delivered twice. The cost: delivered messages stay in the
// list (and count against its bound) until the next round trip.
//
// A peer publishes to the list with a Lua script (EVALSHA) that checks the
// list's length, RPUSHes the whole batch and sets the TTLs, in one atomic
// step and one round trip. Each peer's frames are published by one
// writer goroutine, which waits for each script to answer before the
// next, so one node's frames reach another's list in the order Send
// accepted them. Commands are never retried by the client (MaxRetries -1):
// a publish whose answer was lost is reported as failed, never sent twice,
// so nothing is delivered twice.
//
// # The bound
//
// An inbox holds at most Config.MaxQueued messages (default 65536). A
// batch that would not fit is refused whole: the script pushes nothing
// and Publish returns an error matching ErrInboxFull (and bus.ErrFull), so
// the sender keeps the batch, in order, and publishes it again shortly,
// while what waits for the peer grows to its PendingQueue and Send then
// fails with transport.ErrPendingQueueFull: a slow reader slows its
// senders down, as over TCP, and nothing is lost. The list is never
// trimmed: trimming would drop the oldest frames silently, breaking the
// order and loss promises for frames that were already accepted.
//
// # TTLs: a dead node's inbox disappears
//
// Every publish sets the TTL of the inbox and its cursor to Config.InboxTTL
// (default 30s), and the node that reads them refreshes it, so the keys of
// a node that died (and will not come back to delete them) expire
// InboxTTL after the last frame published to it. InboxTTL is also how
// long a node may stay away from Redis and still find what was queued for
// it.
//
// # Liveness
//
// A list accepts pushes whether or not anyone pops it, so publishing alone
// says nothing about the peer. Each node therefore keeps a liveness key,
// "<prefix>:alive:<address>", set with a TTL of Config.AliveTTL (default
// 1.5s) and refreshed by its reader loop every third of that, on the
// reader's own connection: the key exists while the node reads its inbox
// (a node whose reader is stuck, in a handler that blocks, stops
// refreshing it too). The transport implements bus.Prober with it: a
// sender asks whether the key exists each time it reaches a peer and on
// every heartbeat, and a missing key (bus.ErrNoReader) makes the peer lost at
// once, without waiting for the reach timeout or the heartbeat silence.
// So a killed node is reported lost within about AliveTTL plus one
// heartbeat, a node that never started at once. Close deletes the key
// (and the inbox and its cursor).
//
// # Losing Redis, and coming back
//
// Every command has a deadline (Config.Timeout, default 1s, for dialling,
// reading and writing). When one of the reader's commands, a publish or a
// probe fails for a reason other than an answer from Redis (a reset, a
// timeout, a closed connection, or Redis saying it is loading, read-only
// or without its master), the transport calls the bus's Receiver.Down
// once, with an error matching ErrDown: the core reports every peer lost
// at once. From then on Publish and Probe fail at once (ErrDown), without
// touching the network, while the reader goroutine retries, with a
// jittered backoff from 20ms to 1s: a PING on a connection of its own
// (go-redis's pools then see no failed dial: past a pool's size, failed
// dials make go-redis start a goroutine that outlives Close), then PING
// on both clients, then the refresh of its keys (which also tells it
// where its cursor stands); once all answer it calls Receiver.Up and the
// core reaches again the peers that were up. Nothing needs restarting.
// An answer from Redis (an error such as WRONGTYPE) never counts as a lost
// connection, nor does the end of a context a caller passed.
//
// A node that lost its connection and comes back finds in its list what
// was published for it meanwhile (within MaxQueued and InboxTTL): a peer
// that kept sending while the node was away (it is not lost until its
// liveness key expires or its heartbeats go silent) had its frames
// queued, and the node reads them, in order, when it returns. What the
// peer held but had not yet published when it reported the node lost is
// dropped, as the core drops it for every broker.
//
// Nothing is delivered twice. What can be lost: the batch of a publish
// whose answer the connection lost, which may have been pushed or not; it
// is reported as failed (the sender reports the peer lost) and is not
// retried. And the inbox and its cursor expire together, InboxTTL after
// the last publish or refresh, taking what they held: a node away longer
// than that starts afresh.
//
// # Goroutines and connections
//
// Besides the core's own goroutines, a transport runs one: the reader
// (which is also the connection's supervisor). It uses two go-redis
// clients: the reader's, whose one connection waits, reads and refreshes,
// and a pool for publishing and probing, which the core's writers share.
// Close ends the reader, deletes the node's keys and closes both clients.
package redis

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/guildkit/guild/transport"
	"github.com/guildkit/guild/transport/bus"
)

// Defaults for the zero fields of a Config.
const (
	DefaultAddr      = "127.0.0.1:6379"
	DefaultPrefix    = "guild"
	DefaultMaxQueued = 1 << 16
	DefaultInboxTTL  = 30 * time.Second
	DefaultAliveTTL  = 1500 * time.Millisecond
	DefaultTimeout   = time.Second
)

// takeBatch is the most messages the reader takes from its inbox at once.
const takeBatch = 128

// Backoff between reconnection attempts.
const (
	minBackoff = 20 * time.Millisecond
	maxBackoff = time.Second
)

// maxWait bounds how long one blocking wait for a message lasts, so that
// the reader refreshes its keys in time.
const maxWait = 250 * time.Millisecond

// Errors. Match them with errors.Is.
var (
	// ErrInboxFull is why a publish to a peer's inbox was refused: the
	// inbox holds too many messages for the batch (Config.MaxQueued).
	// Nothing of the batch was pushed. It matches bus.ErrFull: the sender
	// keeps the batch and publishes it again shortly (backpressure, not a
	// lost peer).
	ErrInboxFull = fmt.Errorf("redis: the inbox is full: %w", bus.ErrFull)
	// ErrDown is what publishing and probing fail with, at once, while the
	// connection to Redis is lost and not yet back. The error the bus
	// core's Receiver.Down gets, and so every PeerLost it causes, matches
	// it too.
	ErrDown = errors.New("redis: the connection to Redis is down")
	// ErrBadConfig is returned by Validate and Start for an invalid
	// Config.
	ErrBadConfig = errors.New("redis: bad config")
)

// publishScript pushes a batch to an inbox if it fits, and sets the TTL of
// the inbox and its cursor. KEYS[1]: the inbox; KEYS[2]: its cursor;
// ARGV[1]: the bound; ARGV[2]: the TTL in milliseconds; ARGV[3...]: the
// messages, in order. It returns the new length, or -1-n when the batch
// does not fit in a list of length n (nothing pushed). RPUSH takes the
// messages 1000 at a time, below the limit on unpack's results.
var publishScript = goredis.NewScript(`
local n = redis.call('LLEN', KEYS[1])
local k = #ARGV - 2
if n + k > tonumber(ARGV[1]) then return -1 - n end
for i = 3, #ARGV, 1000 do
  redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return n + k
`)

// takeScript acknowledges the messages the reader delivered and reads the
// next ones, without removing them. KEYS[1]: the inbox; KEYS[2]: its
// cursor, the number of messages ever removed from it; ARGV[1]: the
// cursor the reader last saw; ARGV[2]: how many messages it delivered
// since, which are at the head of the list; ARGV[3]: how many to read;
// ARGV[4]: the cursor's TTL in milliseconds. The delivered messages are
// removed only if the cursor is the one the reader saw, so that an
// acknowledgement that arrives twice (one that a partition held, and its
// retry) removes them once. It returns {1 if it removed them (or there
// were none) else 0, the cursor after, the messages read}.
var takeScript = goredis.NewScript(`
local c = tonumber(redis.call('GET', KEYS[2]) or '0')
local k = tonumber(ARGV[2])
local ok = 1
if k > 0 then
  if c == tonumber(ARGV[1]) then
    redis.call('LTRIM', KEYS[1], k, -1)
    c = redis.call('INCRBY', KEYS[2], k)
    redis.call('PEXPIRE', KEYS[2], ARGV[4])
  else
    ok = 0
  end
end
return {ok, c, redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)}
`)

// refreshScript sets a node's liveness key and refreshes the TTLs of its
// inbox and cursor: in the reader's pipeline, every AliveTTL/3, and when
// the reader reconnects, which needs the cursor it returns. KEYS[1]: the
// liveness key; KEYS[2]: the inbox; KEYS[3]: the cursor; ARGV[1],
// ARGV[2]: the TTLs in milliseconds of the first and the other two. It
// returns the cursor (0 when there is none).
var refreshScript = goredis.NewScript(`
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
return tonumber(redis.call('GET', KEYS[3]) or '0')
`)

// startScript empties a starting node's inbox, zeroes its cursor and
// sets its liveness key. KEYS as refreshScript's; ARGV[1], ARGV[2]: the
// TTLs.
var startScript = goredis.NewScript(`
redis.call('DEL', KEYS[2])
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
redis.call('SET', KEYS[3], 0, 'PX', ARGV[2])
return 1
`)

// Config starts the Redis transport; it implements transport.Config. Its
// zero value connects to Redis on 127.0.0.1:6379 with the defaults.
type Config struct {
	// Addr is Redis's "host:port": default DefaultAddr.
	Addr string
	// Username and Password authenticate to Redis (AUTH), when set.
	Username, Password string
	// DB is the Redis database number: default 0.
	DB int
	// Prefix starts every key the transport uses: default DefaultPrefix.
	// Every node of one cluster must use the same prefix.
	Prefix string
	// Options tunes the core (queues, heartbeats, timeouts).
	Options bus.Options
	// MaxQueued bounds a node's inbox list: a batch that would take it
	// past the bound is refused (ErrInboxFull) and the sender publishes it
	// again shortly (see The bound). The bound counts the messages a node delivered and removes
	// with its next read (up to 128). Default DefaultMaxQueued; it may not
	// be below twice Options.PendingQueue (with its default applied), room
	// for one full batch while another waits to be read.
	MaxQueued int
	// InboxTTL is how long an inbox list nobody reads lives after the last
	// publish to it: default DefaultInboxTTL; at least AliveTTL, since the
	// reader refreshes it with its liveness key. It bounds how long a node
	// may be away from Redis and still find what was queued for it.
	InboxTTL time.Duration
	// AliveTTL is the TTL of a node's liveness key, which its reader
	// refreshes every AliveTTL/3: a node whose key is missing is reported
	// lost by its peers at once (see bus.Prober). Default DefaultAliveTTL;
	// at least 30ms.
	AliveTTL time.Duration
	// Timeout bounds each command to Redis (dial, write, read; the
	// reader's wait for a message lasts up to 250ms more): past it the
	// connection is considered lost. Default DefaultTimeout.
	Timeout time.Duration
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.MaxQueued == 0 {
		c.MaxQueued = DefaultMaxQueued
	}
	if c.InboxTTL == 0 {
		c.InboxTTL = DefaultInboxTTL
	}
	if c.AliveTTL == 0 {
		c.AliveTTL = DefaultAliveTTL
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	return c
}

// Validate reports whether c can be used: nil, an error matching
// ErrBadConfig that names the first bad field, or the error of
// bus.Options.Validate.
func (c Config) Validate() error {
	if err := c.Options.Validate(); err != nil {
		return err
	}
	d := c.withDefaults()
	pending := c.Options.PendingQueue
	if pending == 0 {
		pending = bus.DefaultPendingQueue
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.DB < 0:
		return bad("DB %d is negative", c.DB)
	case d.MaxQueued < 2*pending:
		return bad("MaxQueued %d is below twice Options.PendingQueue (%d)", d.MaxQueued, pending)
	case d.AliveTTL < 30*time.Millisecond:
		return bad("AliveTTL %v is below 30ms", d.AliveTTL)
	case d.InboxTTL < d.AliveTTL:
		return bad("InboxTTL %v is below AliveTTL (%v)", d.InboxTTL, d.AliveTTL)
	case d.Timeout < time.Millisecond:
		return bad("Timeout %v is below a millisecond", d.Timeout)
	}
	return nil
}

// Start implements transport.Config: it connects to Redis, empties the
// node's inbox "<prefix>:inbox:<address>", sets its liveness key and
// starts the bus core on it. It fails when Redis does not answer.
func (c Config) Start(s transport.Setup) (transport.Transport, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c = c.withDefaults()
	inbox := c.Prefix + ":inbox:" + s.Self.String()
	return bus.Start(s, inbox, c.Options, func(inbox string, r bus.Receiver) (bus.Broker, error) {
		return connect(c, s, inbox, r)
	})
}

// broker is one node's connection to Redis: a bus.Broker and bus.Prober.
type broker struct {
	c       Config
	inbox   string
	alive   string // the liveness key
	cursor  string // how many messages were ever removed from the inbox
	r       bus.Receiver
	tls     *tls.Config
	log     *slog.Logger
	pub     *goredis.Client // publishing and probing, shared by the writers
	sub     *goredis.Client // the reader's: waits, takes and key refreshes
	refresh time.Duration   // how often the reader refreshes its keys
	quit    chan struct{}   // closed by Close
	done    chan struct{}   // closed when the reader ends

	idMu  sync.Mutex
	subID []int64 // the Redis client ids of the reader's latest connections

	down atomic.Bool   // the connection is lost: Publish and Probe fail at once
	gen  atomic.Uint64 // counts recoveries: a failure seen before the last one is stale

	mu     sync.Mutex // orders Down, Up and Close
	closed bool
}

var (
	_ bus.Broker = (*broker)(nil)
	_ bus.Prober = (*broker)(nil)
)

// connect dials Redis, empties inbox, sets the liveness key and starts the
// reader.
func connect(c Config, s transport.Setup, inbox string, r bus.Receiver) (*broker, error) {
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	b := &broker{
		c:       c,
		inbox:   inbox,
		alive:   keyOf(inbox, "alive"),
		cursor:  keyOf(inbox, "cursor"),
		r:       r,
		tls:     s.TLS,
		log:     log.With("redis", c.Addr),
		refresh: c.AliveTTL / 3,
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	opts := func(name string, poolSize int, readTimeout time.Duration) *goredis.Options {
		return &goredis.Options{
			Addr:            c.Addr,
			ClientName:      "guild-" + s.Self.String() + "-" + name,
			Username:        c.Username,
			Password:        c.Password,
			DB:              c.DB,
			TLSConfig:       s.TLS,
			MaxRetries:      -1, // a retried publish could be pushed twice
			DialTimeout:     c.Timeout,
			DialerRetries:   1, // the reader retries, with its own backoff
			ReadTimeout:     readTimeout,
			WriteTimeout:    c.Timeout,
			PoolSize:        poolSize,
			DisableIdentity: true,
			MaintNotificationsConfig: &maintnotifications.Config{
				Mode: maintnotifications.ModeDisabled,
			},
		}
	}
	b.pub = goredis.NewClient(opts("pub", 0, c.Timeout))
	subOpts := opts("sub", 4, c.Timeout+maxWait)
	subOpts.OnConnect = func(ctx context.Context, cn *goredis.Conn) error {
		// Close unblocks the reader's wait by its connection's id (CLIENT
		// UNBLOCK). The reader's client has a connection in each of
		// go-redis's pools, the main one and the pipelines'.
		if id, err := cn.ClientID(ctx).Result(); err == nil {
			b.idMu.Lock()
			b.subID = append(b.subID, id)
			if len(b.subID) > 4 {
				b.subID = b.subID[1:]
			}
			b.idMu.Unlock()
		}
		return nil
	}
	b.sub = goredis.NewClient(subOpts)
	ctx := context.Background()
	err := b.reachable()
	if err == nil {
		err = b.pub.Ping(ctx).Err()
	}
	if err == nil {
		err = startScript.Run(ctx, b.sub, []string{b.alive, b.inbox, b.cursor}, c.AliveTTL.Milliseconds(), c.InboxTTL.Milliseconds()).Err()
	}
	if err == nil {
		err = b.loadScripts()
	}
	if err != nil {
		_ = b.pub.Close()
		_ = b.sub.Close()
		return nil, fmt.Errorf("redis: connect to %s: %w", c.Addr, err)
	}
	go b.read()
	return b, nil
}

// keyOf returns the key named kind of the node that reads inbox:
// "<prefix>:<kind>:<address>" for "<prefix>:inbox:<address>", or "" when
// inbox is not named that way.
func keyOf(inbox, kind string) string {
	i := strings.LastIndex(inbox, ":inbox:")
	if i < 0 {
		return ""
	}
	return inbox[:i] + ":" + kind + ":" + inbox[i+len(":inbox:"):]
}

// Publish implements bus.Broker: one script pushes msgs to the inbox named
// to, all or none.
func (b *broker) Publish(to string, msgs [][]byte) error {
	if len(msgs) == 0 {
		return nil
	}
	if b.down.Load() {
		return ErrDown
	}
	gen := b.gen.Load()
	args := make([]any, 0, 2+len(msgs))
	args = append(args, b.c.MaxQueued, b.c.InboxTTL.Milliseconds())
	for _, m := range msgs {
		args = append(args, m)
	}
	n, err := publishScript.Run(context.Background(), b.pub, []string{to, keyOf(to, "cursor")}, args...).Int64()
	if err != nil {
		b.failed(gen, err)
		return fmt.Errorf("redis: publish %d messages to %q: %w", len(msgs), to, err)
	}
	if n < 0 {
		return fmt.Errorf("%w: %q holds %d messages, %d more would pass MaxQueued (%d)", ErrInboxFull, to, -1-n, len(msgs), b.c.MaxQueued)
	}
	return nil
}

// Probe implements bus.Prober: whether the liveness key of the node that
// reads the inbox named to exists.
func (b *broker) Probe(ctx context.Context, to string) error {
	key := keyOf(to, "alive")
	if key == "" {
		return fmt.Errorf("redis: %q is not an inbox name", to)
	}
	if b.down.Load() {
		return ErrDown
	}
	gen := b.gen.Load()
	n, err := b.pub.Exists(ctx, key).Result()
	if err != nil {
		b.failed(gen, err)
		return fmt.Errorf("redis: probe %q: %w", key, err)
	}
	if n == 0 {
		return bus.ErrNoReader
	}
	return nil
}

// Close implements bus.Broker: it stops the reader, deletes the node's
// liveness key and inbox, and closes both clients.
func (b *broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	close(b.quit)
	// End the reader's wait (a wait ends by itself within maxWait): CLIENT
	// UNBLOCK, then, if the reader is still busy (Redis does not answer),
	// closing its client, which go-redis logs when a command was running.
	b.idMu.Lock()
	ids := append([]int64(nil), b.subID...)
	b.idMu.Unlock()
	for _, id := range ids {
		if b.down.Load() {
			break
		}
		_ = b.pub.ClientUnblock(context.Background(), id).Err()
	}
	t := time.NewTimer(maxWait + 50*time.Millisecond)
	select {
	case <-b.done:
	case <-t.C:
	}
	t.Stop()
	_ = b.sub.Close()
	<-b.done
	if !b.down.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), b.c.Timeout)
		if err := b.pub.Del(ctx, b.alive, b.inbox, b.cursor).Err(); err != nil {
			b.log.Debug("redis: could not delete the node's keys on close", "err", err)
		}
		cancel()
	}
	_ = b.pub.Close()
	return nil
}

// failed handles the error of a command sent in generation gen: when it
// says the connection is lost (and no recovery happened since), the
// connection is down.
func (b *broker) failed(gen uint64, err error) {
	if !connLost(err) {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.down.Load() || b.gen.Load() != gen {
		return
	}
	b.down.Store(true)
	b.r.Down(fmt.Errorf("%w: %s: %w", ErrDown, b.c.Addr, err))
}

// connLost reports whether err says the connection to Redis is lost or
// unusable, rather than being Redis's answer to one command.
func connLost(err error) bool {
	if err == nil || errors.Is(err, goredis.Nil) {
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		// A context ended: the caller's (a probe's), not the connection.
		return false
	}
	if goredis.IsLoadingError(err) || goredis.IsReadOnlyError(err) || goredis.IsMasterDownError(err) {
		return true
	}
	var answer goredis.Error
	return !errors.As(err, &answer)
}

// reader is the state of the reader goroutine.
type reader struct {
	acked   int64 // the inbox's cursor, as last confirmed
	pending int64 // messages delivered since, still at the head of the list
}

// read is the reader goroutine: it takes messages from the inbox and
// delivers them, refreshes the node's keys, and reconnects when the
// connection is lost.
func (b *broker) read() {
	defer close(b.done)
	var rd reader
	refreshed := time.Now() // by connect
	pause := time.Duration(0)
	for {
		select {
		case <-b.quit:
			return
		default:
		}
		if b.down.Load() {
			if !b.recover(&rd) {
				return
			}
			refreshed = time.Now()
			continue
		}
		gen := b.gen.Load()
		now := time.Now()
		refresh := now.Sub(refreshed) >= b.refresh
		wait := maxWait
		if !refresh {
			wait = min(b.refresh-now.Sub(refreshed), maxWait)
		}
		msgs, err := b.cycle(&rd, refresh, max(wait, time.Millisecond))
		if err != nil {
			if !b.readFailed(gen, err, &pause) {
				return
			}
			continue
		}
		if refresh {
			refreshed = now
		}
		pause = 0
		for _, m := range msgs {
			b.r.Deliver([]byte(m))
		}
		rd.pending += int64(len(msgs))
	}
}

// cycle is one round trip of the reader, a pipeline of: the refresh of
// the node's keys (when refresh is set); a take, which removes the
// messages rd delivered and reads up to takeBatch more, leaving them in
// the list; and a wait of up to d for a message, BLMOVE from the list to
// its own head, which returns the first message without taking it (at
// once when the take found some). It returns what the take read, or else
// what the wait found.
//
// A message leaves the list only once it was delivered, and its removal
// compares the inbox's cursor first. So no command lost with a
// connection, nor one a partition delays until Redis runs it after the
// client gave up, takes a message nobody delivers; and when the
// connection is lost after a delivery, the cursor tells the reader, once
// back, whether the removal was applied (resync), so nothing is
// delivered twice.
func (b *broker) cycle(rd *reader, refresh bool, d time.Duration) ([]string, error) {
	ctx := context.Background()
	var ref, take *goredis.Cmd
	wait := goredis.NewStringCmd(ctx, "blmove", b.inbox, b.inbox, "left", "left", strconv.FormatFloat(d.Seconds(), 'f', 3, 64))
	// Each command's error is looked at below; the pipeline's is the first
	// of them (redis.Nil when the wait found nothing).
	_, _ = b.sub.Pipelined(ctx, func(p goredis.Pipeliner) error {
		if refresh {
			ref = refreshScript.EvalSha(ctx, p, []string{b.alive, b.inbox, b.cursor}, b.c.AliveTTL.Milliseconds(), b.c.InboxTTL.Milliseconds())
		}
		take = takeScript.EvalSha(ctx, p, []string{b.inbox, b.cursor}, rd.acked, rd.pending, takeBatch, b.c.InboxTTL.Milliseconds())
		_ = p.Process(ctx, wait)
		return nil
	})
	if ref != nil && ref.Err() != nil {
		return nil, b.noScript(ref.Err())
	}
	res, err := take.Slice()
	if err != nil {
		return nil, b.noScript(err)
	}
	if len(res) != 3 {
		return nil, fmt.Errorf("redis: the take script answered %v", res)
	}
	ok, _ := res[0].(int64)
	cursor, _ := res[1].(int64)
	items, _ := res[2].([]any)
	if ok == 1 {
		rd.acked, rd.pending = cursor, 0
	} else {
		b.resync(rd, cursor)
	}
	if len(items) > 0 {
		msgs := make([]string, 0, len(items))
		for _, it := range items {
			m, _ := it.(string)
			msgs = append(msgs, m)
		}
		return msgs, nil
	}
	msg, err := wait.Result()
	switch {
	case errors.Is(err, goredis.Nil):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return []string{msg}, nil
}

// errReloaded says the reader's scripts were loaded again: the cycle did
// nothing, and the reader runs it again at once.
var errReloaded = errors.New("redis: the reader's scripts were loaded again")

// noScript loads the reader's scripts when err says Redis does not know
// one (it restarted, or its scripts were flushed) and returns
// errReloaded then: the script did not run. It returns other errors as
// they are.
func (b *broker) noScript(err error) error {
	if !goredis.HasErrorPrefix(err, "NOSCRIPT") {
		return err
	}
	if err := b.loadScripts(); err != nil {
		return err
	}
	return errReloaded
}

// loadScripts loads the scripts the reader runs with EVALSHA in its
// pipelines, where go-redis cannot fall back to EVAL.
func (b *broker) loadScripts() error {
	ctx := context.Background()
	if err := refreshScript.Load(ctx, b.sub).Err(); err != nil {
		return err
	}
	return takeScript.Load(ctx, b.sub).Err()
}

// readFailed handles an error of the reader's command: a lost connection
// goes down (and read reconnects), another error is logged and waited
// out. It reports false when the transport is closing.
func (b *broker) readFailed(gen uint64, err error, pause *time.Duration) bool {
	select {
	case <-b.quit:
		return false
	default:
	}
	if errors.Is(err, errReloaded) {
		return true
	}
	if connLost(err) {
		b.failed(gen, err)
		return true
	}
	*pause = min(max(2**pause, minBackoff), maxBackoff)
	b.log.Warn("redis: reading the inbox failed", "inbox", b.inbox, "err", err, "retry_in", *pause)
	return b.sleep(*pause)
}

// resync brings rd in line with the inbox's cursor, after the reader lost
// track of whether its last acknowledgement was applied.
func (b *broker) resync(rd *reader, cursor int64) {
	switch cursor {
	case rd.acked + rd.pending: // applied
		rd.acked, rd.pending = cursor, 0
	case rd.acked: // not applied: the next take applies it
	default:
		// The cursor expired with the inbox (the node stayed away longer
		// than InboxTTL), or Redis lost them: what the reader had
		// delivered is gone from the list too.
		b.log.Info("redis: the inbox's cursor is not where the reader left it; starting afresh", "inbox", b.inbox, "cursor", cursor, "acked", rd.acked, "pending", rd.pending)
		rd.acked, rd.pending = cursor, 0
	}
}

// refreshKeys sets the liveness key and refreshes the TTLs of the inbox
// and its cursor, on the reader's connection, and returns the cursor.
func (b *broker) refreshKeys() (int64, error) {
	return refreshScript.Run(context.Background(), b.sub, []string{b.alive, b.inbox, b.cursor}, b.c.AliveTTL.Milliseconds(), b.c.InboxTTL.Milliseconds()).Int64()
}

// recover waits until Redis answers again on both connections, with
// backoff, refreshes the node's keys, resyncs the reader with the
// inbox's cursor and reports the connection up. It reports false when the
// transport closed first.
func (b *broker) recover(rd *reader) bool {
	delay := minBackoff
	for {
		// A jitter of ±20% keeps the nodes of a cluster from reconnecting
		// in step.
		if !b.sleep(time.Duration(float64(delay) * (0.8 + 0.4*rand.Float64()))) {
			return false
		}
		delay = min(2*delay, maxBackoff)
		if err := b.reachable(); err != nil {
			continue
		}
		ctx := context.Background()
		if b.sub.Ping(ctx).Err() != nil || b.pub.Ping(ctx).Err() != nil {
			continue
		}
		cursor, err := b.refreshKeys()
		if err != nil || b.loadScripts() != nil {
			continue
		}
		b.resync(rd, cursor)
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return false
		}
		b.gen.Add(1)
		b.down.Store(false)
		b.r.Up()
		b.mu.Unlock()
		return true
	}
}

// reachable checks that a Redis server answers a PING on a connection
// of its own before the clients dial: go-redis counts failed dials and,
// past its pool size, starts a goroutine of its own that outlives Close
// by up to a second, and answers every command with the last dial error
// until that goroutine dials successfully. Any answer will do (before
// AUTH, Redis may answer -NOAUTH): it proves a server is there.
func (b *broker) reachable() error {
	ctx, cancel := context.WithTimeout(context.Background(), b.c.Timeout)
	defer cancel()
	var nc net.Conn
	var err error
	if b.tls != nil {
		nc, err = (&tls.Dialer{Config: b.tls}).DialContext(ctx, "tcp", b.c.Addr)
	} else {
		nc, err = (&net.Dialer{}).DialContext(ctx, "tcp", b.c.Addr)
	}
	if err != nil {
		return err
	}
	defer nc.Close()
	deadline, _ := ctx.Deadline()
	_ = nc.SetDeadline(deadline)
	if _, err := nc.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(nc).ReadString('\n')
	if err != nil {
		return err
	}
	if line[0] != '+' && line[0] != '-' {
		return fmt.Errorf("redis: %s answered a PING with %q", b.c.Addr, line)
	}
	return nil
}

// sleep waits for d, and reports false if Close came first.
func (b *broker) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-b.quit:
		return false
	case <-t.C:
		return true
	}
}

// KeepsInbox implements bus.Keeping: a node's list keeps what is pushed
// to it while the node is away from Redis (up to InboxTTL and MaxQueued),
// so its peers need not fail their requests to it after an outage.
func (b *broker) KeepsInbox() bool { return true }
