package gate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/gate/gatepb"
	"github.com/guildkit/guild/rpc"
)

// ErrBadConfig is returned by New for an invalid Config.
var ErrBadConfig = errors.New("gate: bad config")

// Defaults of Limits.
const (
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultHeartbeat        = 10 * time.Second
	DefaultRequestTimeout   = 10 * time.Second
	DefaultRate             = 50
	DefaultBurst            = 100
	DefaultWriteQueue       = 4096
	DefaultWriteQueueBytes  = 256 << 10
	DefaultSlowClientAfter  = 5 * time.Second
	DefaultSendBuffer       = 64 << 10
	DefaultGroupRate        = 100
	DefaultGroupBurst       = 200
	DefaultMaxConns         = 10000
	DefaultMaxHeaderBytes   = 8 << 10
	DefaultHTTPIdleTimeout  = 30 * time.Second
	DefaultPerSourceConns   = 128
	DefaultConnRate         = 10
	DefaultConnBurst        = 64
	DefaultSourceRate       = 200
	DefaultSourceBurst      = 400
	DefaultLoginTimeout     = 60 * time.Second
	DefaultMaxRefused       = 100
	DefaultResumeBuffer     = 256
	DefaultMaxSubscriptions = 64
)

// Config configures a Gateway.
type Config struct {
	// Node is the actor node the gateway runs on: sessions are actors on
	// it. Required.
	Node *actor.Node
	// Members resolves node-type routes (rpc.AnyOf, ByUser): for a cluster
	// node, its membership.
	Members cluster.Membership
	// Routes maps a service name (the part of a route before its last
	// ".": "chat" for "chat.Send") to where its requests go.
	Routes map[string]Route
	// Public lists the routes a session may call before it is
	// authenticated, such as "auth.Login". Every other route of a service
	// in Routes answers Unauthenticated until then, with a message that
	// names the public routes. A route whose service is not in Routes
	// answers Unimplemented ("no route"), authenticated or not: that is
	// checked first, in the gateway's own table. The gateway knows
	// services, not their methods, so a method a routed service lacks
	// answers Unauthenticated before login (finding out would send an
	// unauthenticated request to the service) and Unimplemented after.
	Public []string
	// Grains, optional, resolves grain targets: needed by UserGrain
	// routes (a grain.System).
	Grains rpc.GrainResolver
	// Auth, optional, checks a handshake's token and returns the user it
	// authenticates; an error refuses the session. Without Auth, a token
	// is refused and sessions start unauthenticated. Package
	// gate/tokenauth has two ready-made ones: a table of tokens read from
	// a file, and HS256 JSON Web Tokens under a shared secret.
	Auth func(ctx context.Context, token string) (userID string, err error)
	// Identify, optional, is Auth with more to say: the token's user, its
	// roles and its expiry (see Identity). Set Auth or Identify, not both.
	// Package gate/tokenauth's JWT has one (its "roles" and "exp").
	Identify func(ctx context.Context, token string) (Identity, error)
	// Authorize, optional, checks each request of a session against the
	// route it calls, after the route table, the login check and the
	// route's roles (Route.Require), before Validate: it gets the session
	// (its user, roles and expiry) and the route. A nil error lets the
	// request go on; an error answers it with PermissionDenied and the
	// error's message, or with the code and message of an *rpc.Status it
	// wraps. A panic is recovered, logged, and answers Internal. It runs
	// in the session's actor (concurrently across sessions), so it must
	// be safe for concurrent use and must not block long; ctx ends after
	// Limits.RequestTimeout.
	Authorize func(ctx context.Context, s *SessionInfo, route string) error
	// OnOpen and OnClose, optional, are called when a session opens (after
	// its handshake) and when it closes, with why (nil for a client's
	// goodbye). They run in the session's actor: they must not block long.
	OnOpen  func(s *SessionInfo)
	OnClose func(s *SessionInfo, reason error)
	// Validate, optional, checks each client request before it is
	// routed: after the route table and the login check, before the
	// request leaves the gateway. It gets the session (its user, once
	// logged in), the route ("arena.Join") and the request's body, the
	// encoded protobuf message: decode it into the route's request type
	// to check fields (lengths, characters, ranges). A nil error routes
	// the request; an error answers it at once with InvalidArgument and
	// the error's message, or with the code and message of an
	// *rpc.Status it wraps. A panic is recovered, logged, and answers
	// Internal. It runs in the session's actor, one request at a time per
	// session and concurrently across sessions, so it must be safe for
	// concurrent use and must not block long; ctx ends after
	// Limits.RequestTimeout. Services should still check what they rely
	// on: this hook is the gateway's first line, for every service at
	// once.
	Validate func(ctx context.Context, s *SessionInfo, route string, body []byte) error
	// Observe, optional, sees every request the gateway routes to a
	// service, once, as it leaves (after the route table, the login check
	// and Validate): it gets the request's route and the metadata it
	// carries (the session's keys, see MetadataSessionID) and returns the
	// metadata to send instead (with trace context added, say) and a
	// function, or nil, that the gateway calls once with the code of the
	// answer its client gets (rpc.OK for a reply; Unavailable for a
	// request that the session's end left unanswered). It is how a tracer
	// (package telemetry/tracing) makes a span of each gateway request. It
	// runs in the session's actor, so it must return at once and be safe
	// for concurrent use; a panic in it is recovered and logged, and the
	// request goes on without it.
	// Several observers (a tracer and metrics) chain with Observers.
	Observe ObserveFunc
	// Origins lists the web pages whose scripts may open a WebSocket
	// (every upgrade of UpgradeHandler and ListenHTTP: package
	// gate/websocket's listeners and handlers, gatemqtt.ListenWebSocket
	// and its handler), as
	// patterns matched against the upgrade's Origin header:
	// "https://game.example.com", "game.example.com" (http or https),
	// "*.example.com" (its subdomains), "*" (any page). Empty: only pages
	// from the gateway's own host (the Host the request names, ports
	// aside), as `guild demo` serves. A request without an Origin (not a
	// browser) is always allowed; a refused one gets 403 Forbidden with
	// the reason. See package gate/origin and docs/SECURITY.md.
	Origins []string
	// ResumeKey, optional, is the secret (at least MinResumeKeyLen bytes)
	// under which the gateway seals each resumable session's record
	// (user, roles, expiry, state, groups) into its resume token, so that
	// the session can be resumed on another gateway after its own died
	// (killed, crashed, partitioned away): its clients resume, with
	// Resync, instead of logging in again. Every gateway of the cluster
	// needs the same key; the cluster file's gateway.resume_key_file
	// sets it. Empty: a session survives the loss of its connection and
	// its gateway's Shutdown, not its gateway's death. It needs
	// Limits.ResumeWindow (New refuses it without). See docs/PROTOCOL.md
	// (resume) and docs/SECURITY.md.
	ResumeKey []byte
	// Limits bound what a client may do; zero fields take their defaults.
	Limits Limits
	// Logger receives the gateway's logs. Default: the node's logger.
	Logger *slog.Logger
}

// Limits bound each connection. A client that breaks one gets a clear
// error reply (rate limit) or a Close frame with the reason, then the
// connection is closed; the gateway itself is never stalled.
type Limits struct {
	// MaxFrame is the largest frame a client may send, in bytes.
	// Default gatepb.DefaultMaxFrame (64 KiB).
	MaxFrame int
	// HandshakeTimeout bounds the wait for the first frame. Default 5s.
	HandshakeTimeout time.Duration
	// Heartbeat is how often a client must send something; a connection
	// silent for three times as long is closed. Default 10s.
	Heartbeat time.Duration
	// RequestTimeout bounds a request's wait for its service. Default 10s.
	RequestTimeout time.Duration
	// Rate and Burst bound a session's requests: Rate per second on
	// average, Burst at once. Requests beyond get ResourceExhausted.
	// Defaults 50 and 100.
	Rate  float64
	Burst int
	// WriteQueue bounds the frames waiting to be written to one client
	// (those being written count until they are written); a client too
	// slow to take them is cut off. It is a backstop: WriteQueueBytes and
	// SlowClientAfter are what judge a slow client. Default 4096.
	WriteQueue int
	// WriteQueueBytes bounds the bytes waiting to be written to one client,
	// counting each frame's bytes plus 64 for its entry, and frames being
	// written until they are written. A push that would take a client's
	// queue past it cuts the client off as too slow (Close 8). Pushes
	// marked droppable (PushOptions.Droppable) are dropped instead once the
	// queue holds half of it, and a push with a coalescing key
	// (PushOptions.Coalesce) replaces the one of the same key still
	// waiting. A frame encoded once for many sessions (Broadcast, PushMany)
	// is charged to each queue, though its bytes are shared. This is the
	// per-connection bound of the gateway's write memory: at most MaxConns
	// × WriteQueueBytes in all. Default 256 KiB.
	WriteQueueBytes int
	// SlowClientAfter bounds how long a frame may wait to be written to a
	// client: the next push to a client whose oldest frame not yet written
	// has waited longer cuts it off as too slow (Close 8), however little
	// its queue holds. Default 5s.
	SlowClientAfter time.Duration
	// SendBuffer is the kernel's send buffer (SO_SNDBUF) of every client
	// TCP connection (framed, MQTT, and under WebSocket), in bytes: what a
	// client that stops reading can take before frames wait in the
	// gateway's queue, where WriteQueueBytes and SlowClientAfter judge it.
	// Linux doubles the value for its own bookkeeping, and without it
	// grows a loopback or LAN socket's buffer to megabytes, so a client
	// that reads nothing could take minutes of small pushes before it was
	// noticed. It also bounds the kernel memory of each connection.
	// Default 64 KiB (128 KiB counted by Linux); -1 keeps the system's.
	SendBuffer int
	// GroupRate and GroupBurst bound the broadcasts of each group whose
	// directory shard first heard of it from this gateway (a session here
	// joined it first, or first since the shard was rebuilt): GroupRate a
	// second on average, GroupBurst at once. A broadcast beyond them is
	// dropped and counted in the PushStats.Throttled of the gateway that
	// runs the group's shard: a flood of broadcasts, such as chat lines,
	// cannot overwhelm the members. Defaults 100 and 200.
	GroupRate  float64
	GroupBurst int
	// MaxConns bounds the gateway's connections; beyond it new ones are
	// refused with a Close frame. Default 10000. It counts HTTP
	// connections of the gateway's own servers (ListenHTTP, so
	// gatews.Listen and gatemqtt.ListenWebSocket, and HTTPServer) from
	// their accept: one still
	// sending its request's header holds a slot. It bounds the detached
	// sessions too (kept for their clients to resume, ResumeWindow), apart
	// from the connections: each keeps pushes, up to WriteQueueBytes, and
	// a session that would be one too many ends instead of detaching.
	MaxConns int

	// MaxHeaderBytes bounds an HTTP request's header on the gateway's HTTP
	// servers (larger: 431). Default 8 KiB.
	MaxHeaderBytes int
	// HTTPIdleTimeout closes an HTTP keep-alive connection of the
	// gateway's HTTP servers that is idle between requests (before any
	// upgrade) this long. Default 30s. Their header deadline is
	// HandshakeTimeout.
	HTTPIdleTimeout time.Duration

	// PerSourceConns bounds the connections open at once from one source
	// address: an IPv4 address, or an IPv6 /64. Default 128: players
	// behind one NAT (a household, an internet café, a carrier-grade NAT)
	// share an address, and 128 lets a large venue play while one address
	// holds at most 1.3% of the default MaxConns. Negative: no limit.
	PerSourceConns int
	// ConnRate and ConnBurst bound how fast one source may open
	// connections (a token bucket): ConnRate per second on average,
	// ConnBurst at once. Defaults 10 and 64 (a venue's players
	// reconnecting at once after a gateway restart). A negative ConnRate:
	// no limit.
	ConnRate  float64
	ConnBurst int
	// SourceRate and SourceBurst bound the requests of all the sessions of
	// one source that are not logged in (bound to a user), together, on
	// top of each session's own Rate and Burst. Once a session is bound
	// to a user, its requests count against the user's own bucket (Rate,
	// Burst), kept across reconnects. Defaults 200 and 400. A negative
	// SourceRate: no limit.
	SourceRate  float64
	SourceBurst int
	// LoginTimeout closes a session not bound to a user this long after
	// its handshake, with Close{16}. Default 60s; negative: never.
	LoginTimeout time.Duration
	// LimitLoopback applies the per-source limits (PerSourceConns,
	// ConnRate, SourceRate) to loopback addresses (127.0.0.0/8, ::1) too.
	// By default they are exempt: behind a reverse proxy on the same host
	// every client comes from 127.0.0.1, and so does a load test run on
	// the gateway's machine (guild bot). The per-user and per-session
	// limits apply to every address.
	LimitLoopback bool
	// TrustedProxies are the reverse proxies and load balancers in front
	// of the gateway, as address prefixes ("10.0.0.0/8",
	// "192.0.2.7/32"). A connection from one of them is not counted
	// against its own address's limits. Each WebSocket request (framed or
	// MQTT) that one forwards is counted, and limited, as coming from the
	// client it names in X-Forwarded-For: the rightmost address there
	// that is not itself a trusted proxy; that address is also the
	// session's remote address (SessionInfo.Remote). X-Forwarded-For from
	// any other address is ignored. On the TCP and MQTT listeners, a
	// connection from a trusted proxy may start with a PROXY protocol
	// header (v1 or v2; github.com/pires/go-proxyproto), whose client
	// address then counts and is the session's; from any other address a
	// PROXY header is not read. KCP (over UDP) has no such header: its
	// clients behind a trusted proxy are not limited per source. Default
	// none.
	TrustedProxies []netip.Prefix
	// MaxRefused closes a session that has more than this many requests
	// (or heartbeats) refused by the rate limits within 10 seconds, with
	// Close{8}. Default 100; negative: never.
	MaxRefused int
	// ResumeWindow, when set, keeps a session bound to a user for this
	// long after its connection is lost (reset, closed without a goodbye,
	// heartbeat lost) or after its gateway's Shutdown said GoingAway, for
	// its client to resume it with the resume token it was given
	// (HandshakeAck.resume_token; docs/PROTOCOL.md): on this gateway, the
	// same session; on another, a new session with the same user, state
	// and groups. Meanwhile the session keeps the pushes it gets (see
	// ResumeBuffer). A session not resumed in time ends (OnClose then). A
	// client's goodbye, a kick, a login expiry, a login elsewhere and the
	// LoginTimeout still end a session at once. Default 0: sessions end
	// with their connection, and no resume token is given. Go clients
	// built with package client from before resume close the connection
	// on the SessionUpdate frame a login route then brings: update them
	// first.
	ResumeWindow time.Duration
	// ResumeBuffer bounds the pushes a detached session keeps, in frames;
	// their bytes are bounded by WriteQueueBytes. Pushes past the bounds
	// are dropped and the resumed client is told to resync
	// (HandshakeAck.resync); a droppable push is dropped past half the
	// bytes, without a resync, and a push with a coalescing key replaces
	// the one kept with the same key. Default 256.
	ResumeBuffer int
	// MaxSubscriptions bounds the property-sync subscriptions (package
	// propsync) that one session holds at a time through the gateway's
	// routes to guild.propsync.Sync (SyncGrain, and UserGrain(kind,
	// propsync.Service)): each keeps its grain active (a grain with
	// subscribers is not deactivated for idleness). A Subscribe of one
	// more grain gets ResourceExhausted; a Subscribe of a grain the
	// session holds already takes no slot. The answer of an Unsubscribe,
	// or the grain's end notice, frees a slot. Subscriptions a game's own
	// service makes (grain.System.Subscribe) are not counted. Default 64.
	MaxSubscriptions int
}

func (l Limits) withDefaults() Limits {
	if l.MaxFrame == 0 {
		l.MaxFrame = gatepb.DefaultMaxFrame
	}
	if l.HandshakeTimeout == 0 {
		l.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if l.Heartbeat == 0 {
		l.Heartbeat = DefaultHeartbeat
	}
	if l.RequestTimeout == 0 {
		l.RequestTimeout = DefaultRequestTimeout
	}
	if l.Rate == 0 {
		l.Rate = DefaultRate
	}
	if l.Burst == 0 {
		l.Burst = DefaultBurst
	}
	if l.WriteQueue == 0 {
		l.WriteQueue = DefaultWriteQueue
	}
	if l.MaxConns == 0 {
		l.MaxConns = DefaultMaxConns
	}
	if l.MaxHeaderBytes == 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.HTTPIdleTimeout == 0 {
		l.HTTPIdleTimeout = DefaultHTTPIdleTimeout
	}
	if l.PerSourceConns == 0 {
		l.PerSourceConns = DefaultPerSourceConns
	}
	if l.ConnRate == 0 {
		l.ConnRate = DefaultConnRate
	}
	if l.ConnBurst == 0 {
		l.ConnBurst = DefaultConnBurst
	}
	if l.SourceRate == 0 {
		l.SourceRate = DefaultSourceRate
	}
	if l.SourceBurst == 0 {
		l.SourceBurst = DefaultSourceBurst
	}
	if l.LoginTimeout == 0 {
		l.LoginTimeout = DefaultLoginTimeout
	}
	if l.MaxRefused == 0 {
		l.MaxRefused = DefaultMaxRefused
	}
	if l.WriteQueueBytes == 0 {
		l.WriteQueueBytes = DefaultWriteQueueBytes
	}
	if l.SlowClientAfter == 0 {
		l.SlowClientAfter = DefaultSlowClientAfter
	}
	if l.SendBuffer == 0 {
		l.SendBuffer = DefaultSendBuffer
	}
	if l.GroupRate == 0 {
		l.GroupRate = DefaultGroupRate
	}
	if l.GroupBurst == 0 {
		l.GroupBurst = DefaultGroupBurst
	}
	if l.ResumeBuffer == 0 {
		l.ResumeBuffer = DefaultResumeBuffer
	}
	if l.MaxSubscriptions == 0 {
		l.MaxSubscriptions = DefaultMaxSubscriptions
	}
	return l
}

func (l Limits) validate() error {
	switch {
	case l.MaxFrame < 0, l.Burst < 0, l.WriteQueue < 0, l.MaxConns < 0, l.Rate < 0,
		l.MaxHeaderBytes < 0, l.ConnBurst < 0, l.SourceBurst < 0:
		return fmt.Errorf("%w: a limit is negative", ErrBadConfig)
	case l.WriteQueueBytes < 0:
		return fmt.Errorf("%w: WriteQueueBytes is negative", ErrBadConfig)
	case l.SlowClientAfter < 0:
		return fmt.Errorf("%w: SlowClientAfter is negative", ErrBadConfig)
	case slices.ContainsFunc(l.TrustedProxies, func(p netip.Prefix) bool { return !p.IsValid() }):
		return fmt.Errorf("%w: TrustedProxies holds an invalid prefix", ErrBadConfig)
	case l.SendBuffer < -1:
		return fmt.Errorf("%w: SendBuffer %d (bytes, or -1 for the system's)", ErrBadConfig, l.SendBuffer)
	case l.GroupRate < 0, l.GroupBurst < 0:
		return fmt.Errorf("%w: GroupRate or GroupBurst is negative", ErrBadConfig)
	case l.ResumeWindow < 0, l.ResumeBuffer < 0:
		return fmt.Errorf("%w: ResumeWindow or ResumeBuffer is negative", ErrBadConfig)
	case l.MaxSubscriptions < 0:
		return fmt.Errorf("%w: MaxSubscriptions %d is negative", ErrBadConfig, l.MaxSubscriptions)
	case l.HandshakeTimeout < 0, l.Heartbeat < 0, l.RequestTimeout < 0, l.HTTPIdleTimeout < 0:
		return fmt.Errorf("%w: a duration is negative", ErrBadConfig)
	}
	return nil
}

// Route says where the requests of one service go.
type Route struct {
	roles      []string // set: a session needs one of them (Require)
	target     rpc.Target
	userType   int                           // >0: by the session's user, on this node type
	rpcService string                        // set: a generated RPC service, by its full name
	grainKind  string                        // set: the service is served by the user's grain of this kind
	byEntity   bool                          // with grainKind: the grain the request's entity names (SyncGrain)
	mayWatch   func(userID, key string) bool // SyncGrain: checked before routing (WatchedBy)
	pushRoute  string                        // a route to guild.propsync.Sync: its deltas' push route, if not syncPushRoute (DeltasOn)
}

// UserGrain routes to a generated RPC service (by its full name, such as
// "game.player.v1.Player") served by the grain of kind whose key is the
// session's user ID: each player's requests reach their own player grain
// (package grain), wherever it is active, activating it if needed. Only
// authenticated sessions can use it. The gateway needs Config.Grains. A
// grain that refuses a request (its activation could not load its state
// or prove its lease) answers the client with an error of the refusal's
// code; when the refusal says the request was not handled, the gateway
// routes it again first (see the package doc's Routing).
func UserGrain(kind, service string) Route {
	return Route{rpcService: service, grainKind: kind}
}

// syncService is propsync.Service, the service SyncGrain routes (gate
// does not import package propsync).
const syncService = "guild.propsync.Sync"

// SyncGrain routes property sync's service (package propsync:
// Subscribe and Unsubscribe) to the synced grain of kind that each
// request names: the client sends a propsyncpb.Subscribe (or
// Unsubscribe) whose entity is "kind/key", such as "player/bob" to watch
// another player, on the route's methods ("watch.Subscribe" for a route
// named "watch"). The grain's grain.SyncOptions.MaySubscribe decides
// whether the session's user may subscribe (by default only the user
// whose ID is the key may); the deltas are pushed to the session as for
// UserGrain. A request whose entity is not of kind, or that does not
// decode, gets InvalidArgument without reaching a grain. Only
// authenticated sessions can use it; the gateway needs Config.Grains.
//
// The grain's MaySubscribe runs in the grain, so a Subscribe activates
// the grain it names (loading its state) before it is refused: give the
// route the same check with WatchedBy, so that the gateway refuses what
// the grain would, without activating anything.
func SyncGrain(kind string) Route {
	return Route{rpcService: syncService, grainKind: kind, byEntity: true}
}

// WatchedBy returns the SyncGrain route r that the gateway opens to a
// session only for the grains of the keys may allows its user to watch
// (may(userID, key)); others get PermissionDenied before any grain is
// activated. Give it the same rule as the kind's
// grain.SyncOptions.MaySubscribe, which stays the grain's own check. It
// holds for Unsubscribe too (which would activate the grain as well): a
// user the rule no longer allows stops getting deltas when its session
// ends or the grain's activation does. Other methods than Subscribe and
// Unsubscribe get Unimplemented on a SyncGrain route.
// gate.New refuses it on a route that is not a SyncGrain.
func (r Route) WatchedBy(may func(userID, key string) bool) Route {
	r.mayWatch = may
	return r
}

// syncPushRoute is propsync.DefaultRoute, the push route of deltas unless
// a kind's grain.SyncOptions.Route says otherwise.
const syncPushRoute = "propsync"

// DeltasOn returns the route r to a synced kind (SyncGrain, or
// UserGrain(kind, propsync.Service)) whose deltas come on push route
// route: the kind's grain.SyncOptions.Route, when it is not the default
// propsync.DefaultRoute ("propsync"). The gateway reads the pushes of that
// route to keep the session's subscriptions in step (see
// Limits.MaxSubscriptions, and the package doc's Property sync), and pushes
// its own end notices on it. gate.New refuses it on another route.
func (r Route) DeltasOn(route string) Route {
	r.pushRoute = route
	return r
}

// syncs reports whether r is a route to guild.propsync.Sync in a grain.
func (r Route) syncs() bool { return r.rpcService == syncService && r.grainKind != "" }

// deltas returns the push route of the deltas of a route that syncs.
func (r Route) deltas() string {
	if r.pushRoute != "" {
		return r.pushRoute
	}
	return syncPushRoute
}

// Require returns r opened only to sessions whose identity has one of
// roles (see Identity); others get PermissionDenied, naming the roles.
// Public routes of the service are no exception: a session needs a role,
// so it must be logged in.
func (r Route) Require(roles ...string) Route {
	r.roles = slices.Clone(roles)
	return r
}

// To routes to target: a PID, a name, or a node type with a pick (see
// package rpc's Target).
func To(target rpc.Target) Route { return Route{target: target} }

// ByUser routes each session's requests to the member of nodeType that
// its user ID hashes to, so that a player's requests always reach the
// same node while the members stay the same. Before a session is bound to
// a user, its session ID is hashed instead.
func ByUser(nodeType int) Route { return Route{userType: nodeType} }

// RPC routes to a service generated from .proto (package rpc), by its full
// name ("game.chat.v1.Chat"), hosted at target: the route "chat.Say"
// calls its method Say with the request body as the method's request
// message, and the client gets the method's reply. The handler sees the
// session's ID as its rpc.Context's Caller (a PID; its String is the
// session ID, for gate.Push), but not the session's state: use a
// gate.Service for handlers that need it.
func RPC(service string, target rpc.Target) Route {
	return Route{target: target, rpcService: service}
}

// resolve returns where the request o of the session s goes.
func (r Route) resolve(s *session, o *outgoing) rpc.Target {
	if r.byEntity {
		return rpc.Grain(r.grainKind, o.key)
	}
	if r.grainKind != "" {
		return rpc.Grain(r.grainKind, s.userID)
	}
	if r.userType > 0 {
		key := s.userID
		if key == "" {
			key = s.info.ID
		}
		return rpc.ByKey(r.userType, key)
	}
	return r.target
}
