// Package config reads a guild cluster file: which nodes make up a
// cluster, where each one listens, which of the game's modules each one
// hosts, which of them are gateways and how they route, and the modules'
// own settings.
//
// A cluster file is YAML, decoded strictly: a key the schema does not know
// is an error that names its path (nodes.gate1.gatway). Every field can be
// overridden by an environment variable GUILD_<PATH> (see Load), and the
// result is validated as a whole before anything starts: Load returns every
// problem it finds, each naming the field, joined with errors.Join.
//
// docs/CONFIG.md is the reference of the file format.
package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster/etcd"
	"github.com/guildkit/guild/gate/tokenauth"
	"github.com/guildkit/guild/report"
	"github.com/guildkit/guild/transport/bus"
	"github.com/guildkit/guild/transport/tcp"
)

// Config is a cluster file: the cluster's shared settings, its nodes by
// name, and the modules' settings. Load returns it validated and with
// defaults filled in.
type Config struct {
	// Cluster holds the settings every node shares.
	Cluster Cluster `yaml:"cluster"`
	// Nodes are the cluster's nodes by name ("gate1", "world-2"). A name
	// is letters, digits, '-' and '_'. One process runs one node:
	// guild run --node NAME.
	Nodes map[string]*Node `yaml:"nodes"`
	// Telemetry says how the nodes are observed: where each serves its
	// metrics, health, readiness and profiles (package telemetry/prom).
	Telemetry Telemetry `yaml:"telemetry"`
	// Report, optional, sends the failures of every node (recovered
	// panics and supervisor escalations) to a webhook and by e-mail
	// (package report).
	Report Report `yaml:"report"`
	// Admin says where nodes serve the admin dashboard (package admin).
	Admin Admin `yaml:"admin"`
	// Tables says where the nodes' data tables are (package table): the
	// directory the modules' table sets are read from, and whether to
	// watch it for changes.
	Tables Tables `yaml:"tables"`
	// Modules holds each module's own settings by module name, free-form:
	// the module decodes its section (app.Env.Settings). The file's
	// sections are kept as decoded YAML (maps, lists, strings, numbers,
	// booleans).
	Modules map[string]any `yaml:"modules"`
}

// Cluster holds the settings that every node of the cluster shares.
type Cluster struct {
	// ID, optional, is the cluster's number: when set, every node's
	// address must carry it as its cluster part. Addresses carry their own
	// cluster number, so it is only a check.
	ID int `yaml:"id"`
	// Etcd is where the nodes meet: the membership and global names.
	Etcd Etcd `yaml:"etcd"`
	// Transport chooses and tunes how the nodes reach each other: the
	// direct TCP mesh (default) or a broker; zero fields take the
	// defaults.
	Transport Transport `yaml:"transport"`
	// Harbors, for a cluster joined to others: where the harbor nodes of
	// every cluster meet. Required when a node is a harbor (address type
	// 255).
	Harbors *Harbors `yaml:"harbors"`
}

// Harbors says where the harbors of every cluster meet: an etcd of their
// own (not any cluster's), which each harbor node joins besides its own
// cluster's (cluster.NodeConfig.Harbors). The harbors reach it with
// cluster.etcd's TLS, user, password, TTL and dial timeout.
type Harbors struct {
	// Endpoints are the client URLs of the harbors' etcd. Required.
	Endpoints []string `yaml:"endpoints"`
	// Prefix is the harbors' key prefix in it. Default /guild-harbors.
	Prefix string `yaml:"prefix"`
}

// DefaultHarborsPrefix is Harbors.Prefix's default.
const DefaultHarborsPrefix = "/guild-harbors"

// HarborsEtcdConfig returns the configuration of a harbor node's client
// of the harbors' etcd: EtcdConfig with cluster.harbors' endpoints and
// prefix. It fails when the file has no cluster.harbors section.
func (c *Config) HarborsEtcdConfig() (etcd.Config, error) {
	h := c.Cluster.Harbors
	if h == nil || len(h.Endpoints) == 0 {
		return etcd.Config{}, errors.New("cluster.harbors.endpoints: required for a harbor node")
	}
	ec, err := c.EtcdConfig()
	if err != nil {
		return etcd.Config{}, err
	}
	ec.Endpoints, ec.Prefix = slices.Clone(h.Endpoints), h.Prefix
	if ec.Prefix == "" {
		ec.Prefix = DefaultHarborsPrefix
	}
	return ec, nil
}

// The transport kinds (Transport.Kind).
const (
	TransportTCP   = "tcp"
	TransportNATS  = "nats"
	TransportAMQP  = "amqp"
	TransportRedis = "redis"
)

// Transport chooses the node-to-node transport and tunes it: the direct
// TCP mesh (package transport/tcp) or a broker (transport/nats,
// transport/amqp, transport/redis). The tuning fields apply to every kind
// unless they say otherwise.
type Transport struct {
	// Kind is "tcp" (the default: a direct TCP connection between each
	// pair of nodes), "nats", "amqp" (RabbitMQ) or "redis".
	Kind string `yaml:"kind"`
	// URL is the broker: for nats, nats://host:4222 (a cluster's servers
	// comma-separated; default: the embedded server of the node that sets
	// nats, else nats://127.0.0.1:4222); for amqp,
	// amqp://user:pass@host:5672/vhost (required); for redis,
	// redis://[user:pass@]host:6379/db or host:6379 (required). Not for
	// tcp.
	URL string `yaml:"url"`
	// Prefix starts the cluster's subjects, queues or keys on its broker,
	// so that several clusters can share one. Default "guild". Not for
	// tcp.
	Prefix string `yaml:"prefix"`
	// PendingQueue bounds the envelopes queued per peer (while it is
	// connecting or slow); beyond it sends fail at once. Default 4096.
	PendingQueue int `yaml:"pending_queue"`
	// MaxFrame is the largest envelope sent or accepted, in bytes.
	// Default 16 MiB.
	MaxFrame int `yaml:"max_frame"`
	// Heartbeat is how often an idle connection sends a heartbeat.
	// Default 1s.
	Heartbeat time.Duration `yaml:"heartbeat"`
	// DeadAfter is how long a connection may receive nothing before its
	// peer is declared lost; longer than Heartbeat. Default 3s.
	DeadAfter time.Duration `yaml:"dead_after"`
	// DialTimeout bounds a connection attempt (on a broker: how long a
	// peer has to answer its first ping). Default 2s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// ReconnectMin and ReconnectMax bound the backoff between attempts to
	// reach a peer (tcp) or the broker (amqp). Defaults 50ms and 2s.
	ReconnectMin time.Duration `yaml:"reconnect_min"`
	ReconnectMax time.Duration `yaml:"reconnect_max"`
	// WatchLinkTimeout is how long a peer may stay unreachable, while it
	// is still a member, before watches of its actors end with
	// actor.ReasonLinkLost (cluster.NodeConfig.WatchLinkTimeout). Default
	// 10s.
	WatchLinkTimeout time.Duration `yaml:"watch_link_timeout"`
	// TLS, optional, secures the TCP mesh with mutual TLS: every node
	// presents its certificate and checks its peer's against the CA (see
	// TLS). For kind tcp only; a broker's TLS is set in its url
	// (tls://, amqps://, rediss://).
	TLS *TLS `yaml:"tls"`
}

// Telemetry configures the observation of every node. A node may
// override Metrics (Node.Telemetry), for instance when several nodes
// share a host.
type Telemetry struct {
	// Metrics is the host:port on which every node serves /metrics
	// (Prometheus), /healthz, /readyz and /debug/pprof/, e.g. ":9100".
	// Empty: no node serves them unless its own telemetry.metrics says
	// so.
	Metrics string `yaml:"metrics"`
	// Token, optional, is the bearer token that /metrics and
	// /debug/pprof/ require (at least 16 bytes); /healthz and /readyz stay
	// open. Keep it out of the file with TokenFile or the
	// GUILD_TELEMETRY_TOKEN variable.
	Token string `yaml:"token"`
	// TokenFile is a file holding Token (the white space around it is
	// ignored), read when the node starts (CheckFiles).
	TokenFile string `yaml:"token_file"`
	// Traces sends OpenTelemetry traces of the gateway requests and RPC
	// calls to a collector (package telemetry/tracing).
	Traces Traces `yaml:"traces"`
}

// Traces configures tracing. Traces are on when Endpoint is set, or when
// the standard OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT variable is; the other OTEL_*
// variables of the OTLP exporter and the SDK (headers, TLS, timeouts,
// OTEL_TRACES_SAMPLER) apply as OpenTelemetry documents them, under what
// this section sets.
type Traces struct {
	// Endpoint is the OTLP/gRPC collector, host:port
	// ("otel-collector:4317").
	Endpoint string `yaml:"endpoint"`
	// Insecure sends without TLS: a collector on the same host or a
	// private network.
	Insecure bool `yaml:"insecure"`
	// SampleRatio, 0 to 1, is the share of the traces a node starts (a
	// gateway request, a call from outside any trace) that it records;
	// a call whose caller recorded its trace is recorded whatever this
	// says, so that traces are whole. Unset: OTEL_TRACES_SAMPLER decides,
	// else every trace is recorded.
	SampleRatio *float64 `yaml:"sample_ratio"`
}

// NodeTelemetry is a node's own telemetry settings, over the cluster's.
type NodeTelemetry struct {
	// Metrics is the host:port of this node's metrics listener, in place
	// of telemetry.metrics. Unlike the cluster-wide address (one per
	// machine), it is checked against the other listeners of the file
	// for clashes.
	Metrics string `yaml:"metrics"`
}

// MetricsListen returns the host:port the node named name serves its
// metrics on (its own telemetry.metrics, else the cluster's), or "" for
// none.
func (c *Config) MetricsListen(name string) string {
	if n, ok := c.Nodes[name]; ok && n.Telemetry != nil && n.Telemetry.Metrics != "" {
		return n.Telemetry.Metrics
	}
	return c.Telemetry.Metrics
}

// MetricsToken returns the bearer token of the metrics listeners:
// telemetry.token, or the contents of telemetry.token_file (read now,
// without the white space around it). "" means none.
func (c *Config) MetricsToken() (string, error) {
	return tokenOrFile(c.Telemetry.Token, c.Telemetry.TokenFile)
}

// tokenOrFile returns token, or the contents of file (read now, without
// the white space around it) when file is set.
func tokenOrFile(token, file string) (string, error) {
	if file == "" {
		return token, nil
	}
	b, err := tokenauth.ReadSecret(file)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// Admin configures the admin dashboard (package admin): a web page, served
// by the nodes that have a listener, showing every member live and
// offering actions (mark a node unavailable, drain it, kick a user).
// When any node of the file has a listener, every node runs the small
// admin agent that answers the dashboard over the cluster.
type Admin struct {
	// Listen is the host:port on which every node serves the dashboard,
	// e.g. ":9090". Empty: no node serves it unless its own admin.listen
	// says so.
	Listen string `yaml:"listen"`
	// Token, optional, is the bearer token (at least 16 bytes) that the
	// dashboard's API requires; without one the API is read-only (its
	// actions are refused). Keep it out of the file with TokenFile or the
	// GUILD_ADMIN_TOKEN variable.
	Token string `yaml:"token"`
	// TokenFile is a file holding Token (the white space around it is
	// ignored), read when the node starts (CheckFiles).
	TokenFile string `yaml:"token_file"`
}

// NodeAdmin is a node's own admin settings, over the cluster's.
type NodeAdmin struct {
	// Listen is the host:port of this node's dashboard, in place of
	// admin.listen. It is checked against the other listeners of the file
	// for clashes.
	Listen string `yaml:"listen"`
}

// AdminListen returns the host:port the node named name serves the admin
// dashboard on (its own admin.listen, else the cluster's), or "" for
// none.
func (c *Config) AdminListen(name string) string {
	if n, ok := c.Nodes[name]; ok && n.Admin != nil && n.Admin.Listen != "" {
		return n.Admin.Listen
	}
	return c.Admin.Listen
}

// AdminOn reports whether any node of the file serves the admin
// dashboard: then every node runs the admin agent that the dashboard
// asks for its snapshot and actions.
func (c *Config) AdminOn() bool {
	if c.Admin.Listen != "" {
		return true
	}
	for _, n := range c.Nodes {
		if n.Admin != nil && n.Admin.Listen != "" {
			return true
		}
	}
	return false
}

// AdminToken returns the bearer token of the admin dashboards:
// admin.token, or the contents of admin.token_file (read now, without
// the white space around it). "" means none.
func (c *Config) AdminToken() (string, error) {
	return tokenOrFile(c.Admin.Token, c.Admin.TokenFile)
}

// Etcd says how the nodes reach etcd.
type Etcd struct {
	// Endpoints are the client URLs of an external etcd cluster
	// (production), e.g. http://10.0.0.1:2379, or https://10.0.0.1:2379
	// with TLS. When empty and a node is the master (Node.Master), every
	// node uses the master's embedded etcd at http://<master>.
	Endpoints []string `yaml:"endpoints"`
	// TLS, when set, makes the nodes reach etcd over TLS: the endpoints
	// must be https. An empty section trusts the system's CAs.
	TLS *EtcdTLS `yaml:"tls"`
	// Username is the nodes' etcd user, for an etcd with authentication
	// enabled. Its password comes from PasswordFile or from the
	// GUILD_ETCD_PASSWORD variable, never from the file itself. Without
	// a username, an etcd that requires client certificates takes the
	// user from the certificate's common name.
	Username string `yaml:"username"`
	// PasswordFile is a file holding Username's password (the white
	// space around it is ignored), read when the node starts
	// (CheckFiles).
	PasswordFile string `yaml:"password_file"`
	// Password is Username's password when it comes from the
	// GUILD_ETCD_PASSWORD variable, which Load reads. It is not a key of
	// the file, nor an override (GUILD_CLUSTER_ETCD_PASSWORD is an error).
	Password string `yaml:"-" json:"-"`
	// TTL is how long a crashed node's record and names outlive it.
	// Default 5s, minimum 1s.
	TTL time.Duration `yaml:"ttl"`
	// Prefix is the cluster's etcd key prefix. Default /guild; several
	// clusters may share one etcd with different prefixes.
	Prefix string `yaml:"prefix"`
	// DialTimeout bounds connecting to etcd. Default 5s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
}

// EtcdTLS says how the nodes reach etcd over TLS. Its files are read when
// the node starts (CheckFiles), not after; a relative path is relative to
// the working directory.
type EtcdTLS struct {
	// CAFile is a PEM file of the CA certificates that signed etcd's
	// server certificate (etcd's --trusted-ca-file, often). Empty: the
	// system's CAs.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile, both or neither, are the PEM certificate and
	// key that the nodes present to an etcd that requires client
	// certificates (--client-cert-auth): mutual TLS.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName, optional, is the name to check etcd's certificate
	// against. Default: each endpoint's host.
	ServerName string `yaml:"server_name"`
}

// Node is one node of the cluster.
type Node struct {
	// Name is the node's key in Nodes; Load fills it in (it is not a key
	// of the file).
	Name string `yaml:"-"`
	// Addr is the node's logical address, cluster.type.index, e.g. 1.2.1.
	// Required and unique. Nodes of one type are interchangeable: routes
	// and rpc node-type targets pick among them.
	Addr string `yaml:"addr"`
	// Listen is the host:port of the node-to-node transport. Default
	// 127.0.0.1:0 (a free port; the node publishes what it got).
	Listen string `yaml:"listen"`
	// Master, when set, makes this node run an embedded one-member etcd
	// serving clients on this host:port: development mode. At most one
	// node is the master. Port 0 picks a free port, which only nodes told
	// the endpoint at run time can find (app.WithEtcdEndpoints or the
	// GUILD_CLUSTER_ETCD_ENDPOINTS variable).
	Master string `yaml:"master"`
	// NATS, when set, makes this node run an embedded NATS server
	// listening on this host:port, for cluster.transport.kind nats
	// without a url: development mode, like Master. At most one node
	// embeds NATS; the other nodes connect to nats://<this address>, so
	// its port must not be 0 when there are others.
	NATS string `yaml:"nats"`
	// Data is the embedded etcd's data directory (with Master). Default: a
	// new temporary directory, removed when the node stops.
	Data string `yaml:"data"`
	// JoinWait is how long the node retries joining while its address is
	// still held by a crashed predecessor's lease. Default 30s.
	JoinWait time.Duration `yaml:"join_wait"`
	// Export lets nodes of other clusters pick this node by node type
	// (lookup by type, rpc.AnyOf) through the harbors: clustergo's Export
	// flag (cluster.Member.Export). Default false.
	Export bool `yaml:"export"`
	// Available, when false, keeps the node unavailable once its modules
	// serve: selectors (lookup by type, rpc.AnyOf, grain placement) skip
	// it until it is marked available (cluster.Node.SetAvailable, or the
	// admin dashboard). Default true.
	Available *bool `yaml:"available"`
	// Modules are the names of the game's modules (from its registry)
	// that this node hosts, started in this order and stopped in reverse.
	// Every node hosting a module must be of the same node type.
	Modules []string `yaml:"modules"`
	// Gateway, optional, makes this node a gateway that clients connect
	// to.
	Gateway *Gateway `yaml:"gateway"`
	// Telemetry, optional, overrides the cluster's telemetry settings for
	// this node.
	Telemetry *NodeTelemetry `yaml:"telemetry"`
	// Admin, optional, overrides the cluster's admin settings for this
	// node.
	Admin *NodeAdmin `yaml:"admin"`
	// Streams, optional, runs a stream host on this node (package
	// stream): byte streams to and from the other nodes that run one, and
	// optionally the gateway's stream mode.
	Streams *Streams `yaml:"streams"`
	// Tables, optional, overrides the cluster's tables settings for
	// this node.
	Tables *Tables `yaml:"tables"`
}

// Tables configures the data tables of a node (package table): its
// modules open their table sets (table.Open with app.Env.Tables) from
// Dir, and the node reloads them on a change of their files (with
// Watch), on the admin API's reload action, or on guild reload.
type Tables struct {
	// Dir is the directory of the table files, read by the node on its
	// own machine (a relative path is relative to the node's working
	// directory). Empty: the node has no tables (app.Env.Tables is nil).
	Dir string `yaml:"dir"`
	// Watch, when set (at least 100ms), makes the node poll the files of
	// its table sets at this interval and reload a set once its files
	// changed and then held still for one interval. 0: no watching;
	// reloads come from the admin API and guild reload.
	Watch time.Duration `yaml:"watch"`
}

// TablesOf returns the tables settings of the node named name: its own
// section's fields over the cluster's. A Dir of "" means the node has
// no tables.
func (c *Config) TablesOf(name string) Tables {
	t := c.Tables
	if n, ok := c.Nodes[name]; ok && n.Tables != nil {
		if n.Tables.Dir != "" {
			t.Dir = n.Tables.Dir
		}
		if n.Tables.Watch != 0 {
			t.Watch = n.Tables.Watch
		}
	}
	return t
}

// tablesKey returns the key the node's tables directory comes from.
func (c *Config) tablesKey(name string) string {
	if n, ok := c.Nodes[name]; ok && n.Tables != nil && n.Tables.Dir != "" {
		return "nodes." + name + ".tables.dir"
	}
	return "tables.dir"
}

// Streams configures a node's stream host (package stream). The stream
// connections run the mesh's TLS (cluster.transport.tls) when it is set.
type Streams struct {
	// Listen is the host:port the stream host accepts other nodes'
	// stream connections on. Default 127.0.0.1:0 (a free port; the node
	// publishes what it got in its member record).
	Listen string `yaml:"listen"`
	// Advertise, optional, is the host:port other nodes dial, for a node
	// behind NAT or a proxy. Default: what Listen got.
	Advertise string `yaml:"advertise"`
	// MaxStreamsPerPeer bounds the streams open at once between this node
	// and one peer, each way. Default 1024.
	MaxStreamsPerPeer int `yaml:"max_streams_per_peer"`
	// Window is the bytes each stream buffers for its reader (its flow
	// control window). Default 1 MiB; at least 262144.
	Window int `yaml:"window"`
	// MaxRate caps the bytes per second the node's streams write
	// together, so that bulk streams leave its actors their share of the
	// CPUs and the network. Default 0: no cap.
	MaxRate float64 `yaml:"max_rate"`
	// BusyRate caps the bytes per second the node's streams to one peer
	// write together while actor messages flow between the node and that
	// peer, so that actor traffic goes first. Default 0: 100 MB/s
	// (stream.DefaultBusyRate); negative: no such cap.
	BusyRate float64 `yaml:"busy_rate"`
	// Gateway, optional, is the gateway's stream mode: a listener that
	// pipes each client connection, byte for byte, to a stream on a
	// backend node, for games that keep their own wire protocol.
	Gateway *StreamGateway `yaml:"gateway"`
}

// StreamGateway configures the gateway's stream mode (stream.Gateway).
type StreamGateway struct {
	// Listen is the host:port clients connect to. Required.
	Listen string `yaml:"listen"`
	// Module names the backends: the nodes that host this module (they
	// must run a stream host). Give Module or NodeType.
	Module string `yaml:"module"`
	// NodeType is the backends' node type, instead of Module.
	NodeType int `yaml:"node_type"`
	// Service is the backends' stream handler (stream.Host.Handle).
	// Default "", the default handler.
	Service string `yaml:"service"`
	// Pick chooses a backend per client: random (the default),
	// round-robin, or consistent-hash (by the client's IP address).
	Pick string `yaml:"pick"`
	// MaxConns bounds the clients served at once. Default 10000.
	MaxConns int `yaml:"max_conns"`
	// IdleTimeout closes a client that sends nothing for that long.
	// Default 2m.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
}

// Gateway configures a node's gateway: its client listeners, its routes
// and its limits. At least one listener is required.
type Gateway struct {
	// TCP is the host:port of the framed-TCP listener; empty: none.
	TCP string `yaml:"tcp"`
	// WS is the host:port of the WebSocket listener; empty: none.
	WS string `yaml:"ws"`
	// WSPath is the WebSocket listener's HTTP path. Default /ws.
	WSPath string `yaml:"ws_path"`
	// KCP is the host:port (UDP) of the KCP listener; empty: none.
	KCP string `yaml:"kcp"`
	// KCPKey, optional, is the secret (at least 16 bytes) that encrypts
	// the KCP listener's traffic (package gate/kcp); its clients need the
	// same one (client.Config.KCPKey, guild bot -kcp-key-file). Empty: KCP
	// in the clear. Keep it out of the file: set it from the environment
	// (GUILD_NODES_<NODE>_GATEWAY_KCP_KEY) or use KCPKeyFile.
	KCPKey string `yaml:"kcp_key"`
	// KCPKeyFile is a file holding KCPKey (the white space around it is
	// ignored), read when the node starts. Not with KCPKey.
	KCPKeyFile string `yaml:"kcp_key_file"`
	// ResumeKey, optional, is the secret (at least 16 bytes) under which
	// the gateway seals each session's record into its resume token, so
	// that its clients resume on another gateway after this one died
	// (gate.Config.ResumeKey). Every gateway of the cluster needs the same
	// one; it needs limits.resume_window. Keep it out of the file: set it
	// from the environment (GUILD_NODES_<NODE>_GATEWAY_RESUME_KEY) or use
	// ResumeKeyFile.
	ResumeKey string `yaml:"resume_key"`
	// ResumeKeyFile is a file holding ResumeKey (the white space around it
	// is ignored), read when the node starts. Not with ResumeKey.
	ResumeKeyFile string `yaml:"resume_key_file"`
	// MQTT is the host:port of the MQTT listener; empty: none.
	MQTT string `yaml:"mqtt"`
	// MQTTWS is the host:port of the MQTT-over-WebSocket listener; empty:
	// none.
	MQTTWS string `yaml:"mqtt_ws"`
	// MQTTWSPath is the MQTT-over-WebSocket listener's HTTP path. Default
	// /mqtt.
	MQTTWSPath string `yaml:"mqtt_ws_path"`
	// WSOrigins lists the web pages whose scripts may open a WebSocket to
	// the ws and mqtt_ws listeners (gate.Config.Origins):
	// "https://game.example.com", "game.example.com", "*.example.com",
	// or "*" for any page. Empty: only pages from the gateway's own host.
	// Clients that send no Origin (not browsers) are always allowed.
	WSOrigins []string `yaml:"ws_origins"`
	// Auth, optional, says how the gateway checks the token a client
	// presents in its handshake (over MQTT, its password). Without it a
	// token is refused and sessions start unauthenticated, unless the
	// program sets a hook of its own (app.WithGatewayAuth).
	Auth *Auth `yaml:"auth"`
	// Public lists the routes ("auth.Login") that a session may call
	// before it is authenticated.
	Public []string `yaml:"public"`
	// Routes maps a service name (the part of a route before its last
	// ".", "arena" for "arena.Join") to where its requests go.
	Routes map[string]*Route `yaml:"routes"`
	// Limits bound each client connection; zero fields take the gate
	// package's defaults.
	Limits Limits `yaml:"limits"`
	// TLS, optional, serves the tcp, ws, mqtt and mqtt_ws listeners over
	// TLS (ws becomes wss) with cert_file and key_file; with ca_file,
	// clients must present a certificate it signed. Not for kcp (see
	// kcp's own encryption).
	TLS *TLS `yaml:"tls"`
}

// KCPSecret returns the secret that encrypts the KCP listener: kcp_key,
// or the contents of kcp_key_file (read now, without the white space
// around it). "" means none: KCP in the clear.
func (g *Gateway) KCPSecret() (string, error) {
	return tokenOrFile(g.KCPKey, g.KCPKeyFile)
}

// ResumeSecret returns the secret that seals session records into resume
// tokens: resume_key, or the contents of resume_key_file (read now,
// without the white space around it). "" means none.
func (g *Gateway) ResumeSecret() (string, error) {
	return tokenOrFile(g.ResumeKey, g.ResumeKeyFile)
}

// Auth says how a gateway checks tokens, with package gate/tokenauth.
// Exactly one field is set. Files are read when the node starts
// (Config.CheckFiles, then the gateway), not after: a change takes effect
// at the node's next start. A relative path is relative to the working
// directory.
type Auth struct {
	// TokensFile is a file of "token user" lines (tokenauth.ReadFile): a
	// token in it authenticates its user; any other token is refused.
	TokensFile string `yaml:"tokens_file"`
	// JWTSecret is the secret (at least 16 bytes) that signs the tokens:
	// JSON Web Tokens signed with HS256, whose "sub" is the user and whose
	// "exp", when present, their expiry (guild token mints one).
	JWTSecret string `yaml:"jwt_secret"`
	// JWTSecretFile is a file holding JWTSecret (the white space around it
	// is ignored), to keep the secret out of the cluster file.
	JWTSecretFile string `yaml:"jwt_secret_file"`
}

// Route says where the requests of one service go. Exactly one of Module
// and Name is set.
//
//	{module: world}                   a gate.Service on a node hosting world, round robin
//	{module: world, by_user: true}    the same, each user always on the same node
//	{rpc: pkg.Service, module: world} a generated rpc service on a node hosting world
//	{name: lobby}                     the service registered under a global name
type Route struct {
	// Module routes to the nodes that host this module (their node type),
	// picking one in turn.
	Module string `yaml:"module"`
	// ByUser (with Module) sends each user's requests to the same node,
	// by hashing the user ID.
	ByUser bool `yaml:"by_user"`
	// Name routes to the actor registered under this global name.
	Name string `yaml:"name"`
	// RPC (with Module) is the full name of a generated rpc service
	// ("game.arena.v1.Arena") that the route calls; without it the route
	// reaches a gate.Service.
	RPC string `yaml:"rpc"`
	// Roles, optional, opens the route only to sessions whose identity
	// has one of these roles (gate.Route.Require): from a JWT's "roles"
	// claim (gateway.auth with a JWT secret) or a handler's
	// Session.BindIdentity.
	Roles []string `yaml:"roles"`
}

// Limits bound each client connection of a gateway (see gate.Limits).
// Zero fields take their defaults.
type Limits struct {
	// MaxFrame is the largest frame a client may send, in bytes (64 KiB).
	MaxFrame int `yaml:"max_frame"`
	// HandshakeTimeout bounds the wait for a client's first frame (5s).
	HandshakeTimeout time.Duration `yaml:"handshake_timeout"`
	// Heartbeat is how often a client must send something (10s).
	Heartbeat time.Duration `yaml:"heartbeat"`
	// RequestTimeout bounds a request's wait for its service (10s).
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// Rate is a session's average requests per second (50).
	Rate float64 `yaml:"rate"`
	// Burst is a session's requests at once (100).
	Burst int `yaml:"burst"`
	// WriteQueue bounds the frames waiting to be written to one client (4096).
	WriteQueue int `yaml:"write_queue"`
	// WriteQueueBytes bounds the bytes waiting to be written to one client
	// (256 KiB): the gateway's write memory is at most max_conns times it.
	WriteQueueBytes int `yaml:"write_queue_bytes"`
	// SlowClientAfter cuts off a client whose oldest frame not yet written
	// has waited this long (5s).
	SlowClientAfter time.Duration `yaml:"slow_client_after"`
	// SendBuffer is the kernel's send buffer of each client connection,
	// in bytes (gate.Limits.SendBuffer): default 64 KiB, -1 for the
	// system's.
	SendBuffer int `yaml:"send_buffer"`
	// GroupRate and GroupBurst bound each group's broadcasts a second and
	// at once (100, 200).
	GroupRate  float64 `yaml:"group_rate"`
	GroupBurst int     `yaml:"group_burst"`
	// MaxConns bounds the gateway's connections (10000).
	MaxConns int `yaml:"max_conns"`
	// MaxHeaderBytes bounds an HTTP request's header on the gateway's
	// WebSocket listeners (8 KiB).
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// HTTPIdleTimeout closes an idle HTTP keep-alive connection (30s).
	HTTPIdleTimeout time.Duration `yaml:"http_idle_timeout"`
	// PerSourceConns bounds the connections of one address (128;
	// negative: none).
	PerSourceConns int `yaml:"per_source_conns"`
	// ConnRate and ConnBurst bound the new connections of one address
	// (10 per second, bursts of 64; a negative rate: none).
	ConnRate  float64 `yaml:"conn_rate"`
	ConnBurst int     `yaml:"conn_burst"`
	// SourceRate and SourceBurst bound the requests of one address's
	// sessions not logged in, together (200, 400; a negative rate: none).
	SourceRate  float64 `yaml:"source_rate"`
	SourceBurst int     `yaml:"source_burst"`
	// LimitLoopback applies the per-source limits to loopback addresses.
	LimitLoopback bool `yaml:"limit_loopback"`
	// TrustedProxies are the reverse proxies in front of the gateway, as
	// addresses or prefixes ("10.0.0.0/8", "192.0.2.7"): clients behind
	// them are limited by the address X-Forwarded-For (WebSocket) or the
	// PROXY protocol header (TCP, MQTT) gives (gate.Limits.TrustedProxies).
	TrustedProxies []string `yaml:"trusted_proxies"`
	// LoginTimeout closes a session not logged in this long after its
	// handshake (60s; negative: never).
	LoginTimeout time.Duration `yaml:"login_timeout"`
	// MaxRefused closes a session with more requests refused by the rate
	// limits within 10 s (100; negative: never).
	MaxRefused int `yaml:"max_refused"`
	// ResumeWindow keeps a session bound to a user this long after its
	// connection is lost or its gateway shut down, for its client to
	// resume it (gate.Limits.ResumeWindow; 0: off).
	ResumeWindow time.Duration `yaml:"resume_window"`
	// ResumeBuffer bounds the pushes a detached session keeps, in frames
	// (256; their bytes are bounded by write_queue_bytes).
	ResumeBuffer int `yaml:"resume_buffer"`
}

// Report says where the nodes' failure reports go (package report): the
// panics they recover in user code and their supervisors' escalations.
// Each node sends its own, naming itself. Neither section: only the log.
type Report struct {
	// Webhook POSTs batches of failures as JSON.
	Webhook *ReportWebhook `yaml:"webhook"`
	// SMTP e-mails batches of failures.
	SMTP *ReportSMTP `yaml:"smtp"`
}

// ReportWebhook configures the webhook reporter (report.WebhookConfig).
// Zero fields take the report package's defaults.
type ReportWebhook struct {
	// URL receives the batches: http or https. Required.
	URL string `yaml:"url"`
	// Headers are sent with every request ("Authorization: Bearer ...").
	Headers map[string]string `yaml:"headers"`
	// Queue bounds the failures waiting to be sent (1000).
	Queue int `yaml:"queue"`
	// Batch bounds the failures of one request (100).
	Batch int `yaml:"batch"`
	// Interval is the least time between two requests: the rate limit (1s).
	Interval time.Duration `yaml:"interval"`
	// Timeout bounds one request (10s).
	Timeout time.Duration `yaml:"timeout"`
	// Retries is how many times a request that met a network error or a
	// 5xx is tried again (3; negative: never).
	Retries int `yaml:"retries"`
	// Backoff is the wait before the first retry, doubling (500ms).
	Backoff time.Duration `yaml:"backoff"`
}

// ReportSMTP configures the e-mail reporter (report.SMTPConfig). Zero
// fields take the report package's defaults.
type ReportSMTP struct {
	// Addr is the server's host:port. Required.
	Addr string `yaml:"addr"`
	// From is the sender's address. Required.
	From string `yaml:"from"`
	// To are the recipients. At least one.
	To []string `yaml:"to"`
	// User logs in with AUTH PLAIN, after STARTTLS.
	User string `yaml:"user"`
	// Password is User's password; PasswordFile is a file holding it (the
	// white space around it is ignored), to keep it out of the file.
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// StartTLS, true by default, requires STARTTLS; false sends in the
	// clear, only for a relay on the same host or a trusted network.
	StartTLS *bool `yaml:"starttls"`
	// CAFile is a PEM file of the certificates to trust for STARTTLS
	// instead of the system's (a private relay's own CA).
	CAFile string `yaml:"ca_file"`
	// Queue bounds the failures waiting to be sent (1000).
	Queue int `yaml:"queue"`
	// Batch bounds the failures of one e-mail (50).
	Batch int `yaml:"batch"`
	// Interval is the least time between two e-mails: the rate limit (1m).
	Interval time.Duration `yaml:"interval"`
	// Timeout bounds one e-mail (30s).
	Timeout time.Duration `yaml:"timeout"`
	// Retries is how many times an e-mail that met a network error or a
	// 4xx answer is tried again (3; negative: never).
	Retries int `yaml:"retries"`
	// Backoff is the wait before the first retry, doubling (500ms).
	Backoff time.Duration `yaml:"backoff"`
}

// WebhookConfig returns the settings as a report.WebhookConfig (Source,
// Client and Logger are the node's to fill in).
func (w *ReportWebhook) WebhookConfig() report.WebhookConfig {
	return report.WebhookConfig{
		URL: w.URL, Headers: maps.Clone(w.Headers), Queue: w.Queue, Batch: w.Batch,
		Interval: w.Interval, Timeout: w.Timeout, Retries: w.Retries, Backoff: w.Backoff,
	}
}

// SMTPConfig returns the settings as a report.SMTPConfig, without what
// comes from files (PasswordFile, CAFile: see app) and without Source and
// Logger.
func (m *ReportSMTP) SMTPConfig() report.SMTPConfig {
	return report.SMTPConfig{
		Addr: m.Addr, From: m.From, To: slices.Clone(m.To), User: m.User, Password: m.Password,
		NoStartTLS: m.StartTLS != nil && !*m.StartTLS,
		Queue:      m.Queue, Batch: m.Batch, Interval: m.Interval, Timeout: m.Timeout,
		Retries: m.Retries, Backoff: m.Backoff,
	}
}

// Defaults that Load fills in.
const (
	DefaultListen = "127.0.0.1:0"
	DefaultWSPath = "/ws"
	// DefaultMQTTWSPath is gatemqtt.DefaultWebSocketPath (package gate/mqtt).
	DefaultMQTTWSPath = "/mqtt"
	DefaultJoinWait   = 30 * time.Second
)

// Address returns the node's parsed address. Load has checked it.
func (n *Node) Address() actor.Addr {
	a, _ := actor.ParseAddr(n.Addr)
	return a
}

// Node returns the node named name.
func (c *Config) Node(name string) (*Node, bool) {
	n, ok := c.Nodes[name]
	return n, ok
}

// Master returns the node that runs the embedded etcd, if one does.
func (c *Config) Master() (*Node, bool) {
	for _, name := range c.NodeNames() {
		if n := c.Nodes[name]; n.Master != "" {
			return n, true
		}
	}
	return nil, false
}

// EtcdEndpoints returns the etcd endpoints the nodes use: the configured
// ones, or else the master's embedded etcd at http://<master>. For a
// master on port 0 that address is not known before it starts.
func (c *Config) EtcdEndpoints() []string {
	if len(c.Cluster.Etcd.Endpoints) > 0 {
		return append([]string(nil), c.Cluster.Etcd.Endpoints...)
	}
	if m, ok := c.Master(); ok {
		return []string{"http://" + m.Master}
	}
	return nil
}

// EtcdConfig returns cluster.etcd as the configuration of a node's etcd
// client (package cluster/etcd): EtcdEndpoints, the prefix, TTL and dial
// timeout, the TLS configuration and the user with its password, reading
// the files that the section names now. Its Logger and JoinWait are the
// node's to fill in. An error names the field whose file failed; it never
// holds the password.
func (c *Config) EtcdConfig() (etcd.Config, error) {
	e := c.Cluster.Etcd
	ec := etcd.Config{
		Endpoints: c.EtcdEndpoints(), Prefix: e.Prefix, TTL: e.TTL, DialTimeout: e.DialTimeout,
		Username: e.Username, Password: e.Password,
	}
	var errs []error
	if e.TLS != nil {
		var tlsErrs []error
		ec.TLS, tlsErrs = e.TLS.config()
		errs = append(errs, tlsErrs...)
	}
	if e.PasswordFile != "" {
		pw, err := ReadSecretFile(e.PasswordFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("cluster.etcd.password_file: %w", err))
		}
		ec.Password = pw
	}
	if len(errs) > 0 {
		return etcd.Config{}, errors.Join(errs...)
	}
	return ec, nil
}

// config builds the TLS configuration, reading the files, or returns
// every problem with them, each naming its field.
func (t *EtcdTLS) config() (*tls.Config, []error) {
	cfg := &tls.Config{ServerName: t.ServerName, MinVersion: tls.VersionTLS12}
	var errs []error
	if t.CAFile != "" {
		pool, err := ReadCAFile(t.CAFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("cluster.etcd.tls.ca_file: %w", err))
		}
		cfg.RootCAs = pool
	}
	if t.CertFile == "" || t.KeyFile == "" {
		return cfg, errs
	}
	certPEM, err := os.ReadFile(t.CertFile)
	if err != nil {
		errs = append(errs, fmt.Errorf("cluster.etcd.tls.cert_file: %w", err))
	}
	keyPEM, kerr := os.ReadFile(t.KeyFile)
	if kerr != nil {
		errs = append(errs, fmt.Errorf("cluster.etcd.tls.key_file: %w", kerr))
	}
	if err != nil || kerr != nil {
		return cfg, errs
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return cfg, append(errs, fmt.Errorf("cluster.etcd.tls: cert_file %s and key_file %s: %w", t.CertFile, t.KeyFile, err))
	}
	cfg.Certificates = []tls.Certificate{cert}
	return cfg, errs
}

// NodeType returns the node type of the nodes that host module.
func (c *Config) NodeType(module string) (int, bool) {
	for _, name := range c.NodeNames() {
		n := c.Nodes[name]
		for _, m := range n.Modules {
			if m == module {
				return n.Address().Type(), true
			}
		}
	}
	return 0, false
}

// NodeNames returns the nodes' names, sorted.
func (c *Config) NodeNames() []string {
	return slices.Sorted(maps.Keys(c.Nodes))
}

// NATSURL returns the URL of the NATS servers for kind nats: URL when
// set, else the embedded server of the node that sets nats, else
// nats://127.0.0.1:4222.
func (c *Config) NATSURL() string {
	if c.Cluster.Transport.URL != "" {
		return c.Cluster.Transport.URL
	}
	for _, name := range c.NodeNames() {
		if n := c.Nodes[name]; n.NATS != "" {
			return "nats://" + n.NATS
		}
	}
	return "nats://127.0.0.1:4222"
}

// Bus returns the settings as the options of a broker transport
// (package transport/bus): DialTimeout is its ReachTimeout.
func (t Transport) Bus() bus.Options {
	return bus.Options{
		PendingQueue:      t.PendingQueue,
		MaxFrame:          t.MaxFrame,
		HeartbeatInterval: t.Heartbeat,
		DeadAfter:         t.DeadAfter,
		ReachTimeout:      t.DialTimeout,
	}
}

// TCP returns the settings as a transport/tcp configuration (its Self,
// Listen, Resolve, Handler, TLS and Logger are the node's to fill in).
func (t Transport) TCP() tcp.Config {
	return tcp.Config{
		PendingQueue:        t.PendingQueue,
		MaxFrame:            t.MaxFrame,
		HeartbeatInterval:   t.Heartbeat,
		DeadAfter:           t.DeadAfter,
		DialTimeout:         t.DialTimeout,
		ReconnectBackoffMin: t.ReconnectMin,
		ReconnectBackoffMax: t.ReconnectMax,
	}
}

// Proxies returns TrustedProxies as prefixes: a bare address is its own
// prefix (/32, /128).
func (l Limits) Proxies() ([]netip.Prefix, error) {
	var ps []netip.Prefix
	for _, s := range l.TrustedProxies {
		if p, err := netip.ParsePrefix(s); err == nil {
			ps = append(ps, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a prefix (10.0.0.0/8)", s)
		}
		a = a.Unmap()
		ps = append(ps, netip.PrefixFrom(a, a.BitLen()))
	}
	return ps, nil
}
