// Package gate is guild's client gateway: where players connect.
//
// A Gateway listens on TCP (ListenTCP; optional TLS), on WebSocket with
// package gate/websocket (gatews.Listen, gatews.Handler; optional TLS),
// on KCP with package gate/kcp (gatekcp.Listen, optionally encrypted), and
// on MQTT, over TCP or WebSocket, with package gate/mqtt (gatemqtt.Listen,
// gatemqtt.ListenWebSocket), any number at once. WebSocket, KCP and MQTT
// live in those leaf packages so that a gateway without them does not
// link coder/websocket, kcp-go or mochi-mqtt: KCP hands its listener to
// ServeListener, which serves any stream listener opened outside the
// gateway; WebSocket is a Transport, made by an Upgrader from an HTTP
// request that the gateway admitted (UpgradeHandler, ListenHTTP); MQTT is
// an adapter (Conn, served by ListenConns, and over WebSocket by
// gatews.ListenConns and gatews.ConnHandler), which translates its
// protocol to frames and back. Every client but an
// adapter's speaks the framed protocol of package gatepb (docs/PROTOCOL.md):
// a handshake with a version and an optional auth token, heartbeats,
// requests to routes such as "chat.Send", responses with codes, pushes,
// and a Close with a reason. Package client is the Go SDK.
//
// # Sessions
//
// Each connection is a session, and each session is an actor on the
// gateway's node, whose PID (its String: "1.1.1/3", or "1.1.1/3.1" for a
// later session in the same actor slot) is the session ID. The session
// has a user ID once authenticated (by the handshake's token through
// Config.Auth, or by a handler calling Session.Bind from a public route
// such as "auth.Login"), and key/value state. A user has one session at a time: binding a user
// kicks their session elsewhere.
//
// # Routing
//
// A request's route names a service and a method. Config.Routes maps the
// service to where it runs: a PID, a name or a node type with a pick
// (To with an rpc.Target), or the member of a node type that the session's
// user hashes to (ByUser). There a gate.Service, hosted with Serve, runs the
// method's handler (Handle) with the request decoded and a *Session: the
// handler replies, pushes, changes the session's state (which travels back
// with the reply, so the next request sees it wherever it goes), binds the
// session to a user, or kicks it. A generated RPC service can be routed
// to a target (RPC) or to the session's user's own grain (UserGrain);
// property sync's subscriptions to any grain of a kind go by the grain
// the request names (SyncGrain).
//
// # Property sync
//
// A session keeps the property-sync subscriptions (package propsync) its
// client makes through the routes to guild.propsync.Sync (SyncGrain,
// UserGrain(kind, propsync.Service)), by entity, reading the pushes of
// the deltas' route (propsync.DefaultRoute, or Route.DeltasOn) as they
// pass. It holds at most Limits.MaxSubscriptions of them (each keeps its
// grain active). When its user changes (Session.Bind to another user), it
// ends them: each grain gets the Unsubscribe, the client the end notice
// (before the login's reply), and the session drops those grains' deltas
// until each grain has confirmed, so that a lost Unsubscribe leaks
// nothing to the new user either. A Subscribe that times out (the grain
// may take it later) is undone the same way. It watches the activation
// that answered each Subscribe, and pushes the client the end notice
// itself when that activation ends without one (its node crashed; a
// watch ended by a lost link is made again, as the grain keeps its
// subscriber then). The
// subscriptions a game's service makes with grain.System.Subscribe do not
// pass through the gateway: they are not counted, ended nor watched.
//
// A route is resolved for each request. When a request certainly did not
// reach its service (the name the route resolved is held by nobody any
// more, the service's actor was gone or stopped before taking it, its
// node was closed, or a grain refused it saying so: see UserGrain), the
// gateway resolves the route again and resends it, after a short pause
// that doubles, for about a second at most and within RequestTimeout: a
// backend that shuts down or restarts, while the gateway's view still
// shows it, fails none of its clients' requests. A timeout or a lost
// connection leaves the outcome unknown and is not retried, nor is an
// error the handler returned.
//
// Every request the gateway routes carries the session's ID and, once it
// is logged in, its user's, as metadata (MetadataSessionID,
// MetadataUserID; see actor.Metadata): a generated RPC service reads them
// with rpc.IncomingMetadata, a grain or an actor with its Context's
// Metadata.
//
// A session's Identity is its user, its roles and when its login ends:
// from the handshake's token (Config.Identify, or Config.Auth for the user
// alone) or from a handler's Session.BindIdentity. A route that Requires
// roles answers PermissionDenied to a session without one of them;
// Config.Authorize, optional, checks every request against its route (a
// ban list, a per-route rule of the game); a login that expires closes its
// session with Unauthenticated ("login expired").
//
// Config.Validate, optional, checks every request before it leaves the
// gateway (after the route table and the login check): the game's first
// line against hostile input, for every service at once. Its refusal
// answers InvalidArgument with its message; a panic in it is recovered
// and answers Internal.
//
// # Push and groups
//
// From any node: Push to a session ID, PushUser to a user, Kick,
// KickUser, SessionState and SetSessionState (read and change a
// session's state), UserSession (a user's session ID). Groups
// (JoinGroup, LeaveGroup, Broadcast, GroupSize) are named sets of
// sessions that span gateways; a broadcast sends each gateway with
// members one message for all of them, and the gateway encodes the push
// frame once.
//
// # The directory
//
// Which session each user is bound to, and which gateways have members of
// each group, is kept in the gateways' directory: DirShards shards, by a
// hash of the user ID or group name, each an actor on a gateway node (the
// first gateway that needs a shard starts it) under one global name. A
// login, a lookup, a group join or a broadcast is a message to a shard,
// never an etcd write: etcd holds one key per shard, however many players
// come and go.
//
// A group belongs to no node: each gateway keeps its own members (in its
// hub, one actor per gateway), and the group's shard knows only which
// gateways have some. A shard holds nothing that cannot be rebuilt: each
// hub watches the shards it told something, and when one ends (its
// gateway shut down, died or left the cluster) the hubs start a new one
// and tell it again what they know; a shard watches the hubs, and drops
// the users and group members of a gateway that ended. While a dead
// gateway's lease lasts (the cluster's TTL), the shards it ran cannot be
// replaced: broadcasts and user lookups that need them fail with
// Unavailable, never wait; after a graceful shutdown they move within
// milliseconds. A user bound on two gateways while a shard was being
// rebuilt keeps the session the shard learned first; the other is kicked
// ("logged in elsewhere").
//
// # Limits
//
// Limits bound each connection: frame size, handshake deadline, heartbeat
// loss, a per-session rate limit, a per-session write queue bounded in
// bytes and in time (a client too slow to read is cut off, never waited
// for) and a connection count. A client that breaks one gets an error
// reply or a Close frame with the reason. Panics in handlers and hooks
// are recovered.
//
// # Fan-out
//
// PushMany pushes one message to any set of sessions (the players near
// an area of the world, say), encoding it once and sharing the frame's
// bytes between the sessions of each gateway. PushOptions say what a
// slow client's queue may do with a push before the client is cut off:
// Coalesce (latest wins: world state) or Droppable (chat lines). Each
// group's broadcasts have a budget (Limits.GroupRate and GroupBurst).
// Gateway.PushStats counts what was dropped, coalesced and throttled.
//
// Some limits outlive a connection, in a bounded table: per source
// address (an IPv4 address, or an IPv6 /64) the connections open and the
// rate of new ones, and the request rate of its sessions not logged in;
// per user the request rate, so that reconnecting does not refill it
// (loopback addresses are exempt from the per-source limits unless
// Limits.LimitLoopback is set).
// Heartbeats have a bucket of their own; a refused request costs the
// gateway one small frame, and a session refused too often is closed. A
// session that does not log in within LoginTimeout is closed. The
// gateway's HTTP servers (HTTPServer, which ListenHTTP uses) bound
// header size and time, idle keep-alive and write time, and count their
// connections toward MaxConns from their accept. docs/PROTOCOL.md
// (section 5) lists every limit, its default and what a client gets when
// it breaks it.
//
// A WebSocket upgrade from a web page that is neither the gateway's own
// host nor in Config.Origins is refused with 403 (package gate/origin).
// docs/SECURITY.md lists every limit, its default and the attack it stops.
//
// # Resume
//
// With Limits.ResumeWindow set, a session bound to a user gets a resume
// token ("<session ID>.<secret>", 16 random bytes): in its HandshakeAck
// when its handshake's token logged it in, or in a SessionUpdate frame
// when a handler bound it. When its connection is lost (reset, closed
// without a goodbye, heartbeats lost) the session detaches instead of
// ending: it keeps its user, state, groups and directory entry, and keeps
// the pushes it gets, in order (Limits.ResumeBuffer frames and
// WriteQueueBytes bytes, coalescing keys and droppable pushes honoured;
// past them it drops them and its client is told to resync). A handshake
// that presents the token (Handshake.resume) gets the session back: on
// the same gateway the same session actor takes the new connection (same
// session ID; an old connection still attached is closed); on another
// gateway the new session asks the old one, across nodes, to hand itself
// over, and carries on its user, roles, expiry, state, groups and kept
// pushes under a new session ID (the old one ends with ErrMoved, and
// forwards for a second the pushes still sent to it). Either way the
// client's HandshakeAck says resumed, and the kept pushes follow it. A bad
// or used token, or one past its window, is ignored: the handshake goes
// on as a new session. A session not resumed within the window ends, with
// OnClose. A goodbye, a kick, a login expiry, a login elsewhere and
// LoginTimeout end a session at once, as without resume. A session lives
// in its gateway's memory, so a gateway killed outright takes it along,
// unless the gateways share a Config.ResumeKey: then its record (user,
// roles, expiry, state, groups) is also sealed into its client's token
// (kept fresh with SessionUpdate frames), and another gateway starts the
// session from it when the old one does not answer, with resync (see
// seal.go for when it refuses). A group broadcast sent during the instant
// of a handover to another gateway may be missed.
//
// # Shutting down
//
// Shutdown stops a gateway gracefully: the listeners stop at once, every
// session refuses new requests (rpc.Unavailable, marked not forwarded:
// send it to another gateway), delivers the answers to the requests it
// forwarded already, then tells its client it is going away: a Close
// frame with code GoingAway (rpc.Unavailable, 14) and reason
// GoingAwayReason, or for MQTT 5 (package gate/mqtt) a DISCONNECT 0x8B
// (Server shutting down).
// A request unanswered at that Close went to no service, so the client
// can send it to another gateway; package client does so by itself
// (client.Config.Addrs). When Shutdown's ctx ends first it falls back to
// Close, which answers the requests in flight at once (rpc.Unavailable,
// outcome unknown) and sends the same Close frame, giving slow clients
// about a second before cutting them off. docs/PROTOCOL.md (section 3.7)
// has the details for client authors. With Limits.ResumeWindow a session
// bound to a user detaches at its GoingAway instead of ending, so that
// its client, which moves to another gateway, takes it over there;
// Shutdown waits for those handovers, each at most for the window.
//
// # Goroutines
//
// Per connection: one reader goroutine (the handshake, limits, decoding),
// which hands frames to the session actor, and one writer goroutine, which
// alone writes to the socket, taking frames from the session's bounded
// queue in order. The session actor alone puts frames in that queue. Per
// listener: one accept loop (an HTTP server for WebSocket: ListenHTTP). Per gateway:
// one hub actor (multi-session pushes, its side of the directory), and the
// directory shards it started, as its children. Shutdown and Close stop the
// listeners, end every session and wait for all of them. After a
// session's last frame the writer half-closes a TCP connection, and the
// connection is closed once the client has closed its side (the reader
// sees the end), or after two seconds: the client reads every frame.
package gate
