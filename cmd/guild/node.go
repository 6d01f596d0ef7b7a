package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/cluster/etcd"
	"github.com/guildkit/guild/config"
)

// diagPrefix starts the global name of every node's diagnostic actor:
// "guild.diag/1.2.3" is the one of node 1.2.3.
const diagPrefix = "guild.diag/"

// diagName returns the global name of the diagnostic actor of node a.
func diagName(a actor.Addr) string { return diagPrefix + a.String() }

// nodeAbout is the help text of guild node.
const nodeAbout = `Node starts one cluster node and runs it until SIGINT or SIGTERM, then
leaves the cluster and exits 0.

The node joins an etcd cluster: either one it runs itself (-master, an
embedded one-member etcd for development, the cluster's "master"), or an
existing one (-etcd, e.g. the endpoint a master node printed). Exactly one of
-master and -etcd is required. Its peers reach it over TCP at -listen. An
etcd with TLS (https endpoints) and authentication is reached with the
-etcd-ca, -etcd-cert, -etcd-key and -etcd-server-name flags and the user
-etcd-user, whose password comes from -etcd-password-file or the
GUILD_ETCD_PASSWORD variable (as cluster.etcd does for guild run).

When the node is ready it prints one JSON line to stdout:

	{"event":"ready","addr":"1.2.3","endpoint":"127.0.0.1:40123",
	 "etcd":["http://127.0.0.1:2379"],"pid":12345}

endpoint is the transport's address, etcd the endpoints the node uses (for a
master, those of its own etcd: give them to the other nodes' -etcd). Logs go
to stderr.

Every node hosts a diagnostic actor under the global name "guild.diag/<addr>"
(e.g. guild.diag/1.2.3), to check that the cluster is wired. It answers
requests whose payload is a google.protobuf.StringValue:

	ping                  "pong <addr> <start>", where start is the node
	                      process's start time in Unix nanoseconds (it
	                      changes when the node restarts)
	call <name> <timeout> the diagnostic actor resolves the global name,
	                      sends it "ping" and answers "ok <reply> <µs>" or
	                      "err <error> <µs>", where µs is the time the round
	                      trip took; timeout (e.g. 2s) bounds it

Anything else is answered with an error.

A node restarted after a crash may find its address, or its diagnostic
actor's name, still held by its predecessor until that one's lease expires
(-ttl); it retries for up to -join-wait.`

// nodeOptions are the flags of guild node, checked.
type nodeOptions struct {
	addr     actor.Addr
	listen   string
	master   string
	etcd     []string
	ttl      time.Duration
	data     string
	joinWait time.Duration

	// The etcd client's TLS and user (-etcd only).
	etcdCA, etcdCert, etcdKey, etcdServerName string
	etcdUser, etcdPasswordFile                string
	etcdPassword                              string // from -etcd-password-file or GUILD_ETCD_PASSWORD

	addrText, etcdText string // -addr and -etcd as given
}

// runNodeCmd is guild node: runNode until SIGINT or SIGTERM.
func runNodeCmd(args []string, stdout, stderr io.Writer) int {
	// The binary owns the process's signals; the library never touches them.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runNode(ctx, args, stdout, stderr)
}

// runNode parses the flags of guild node, starts the node and runs it until
// ctx ends, then closes it and returns exitOK.
func runNode(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	opts, ok, code := parseNodeFlags(args, stderr)
	if !ok {
		return code
	}
	log := slog.New(slog.NewTextHandler(stderr, nil)).With("node", opts.addr.String())
	if err := serveNode(ctx, opts, stdout, log); err != nil {
		fmt.Fprintf(stderr, "guild node: %v\n", err)
		return exitError
	}
	return exitOK
}

// parseNodeFlags parses and checks the flags of guild node. When ok is false
// the command should exit with code.
func parseNodeFlags(args []string, stderr io.Writer) (opts nodeOptions, ok bool, code int) {
	fs := nodeFlags(&opts, stderr)
	if ok, code := parse(fs, args); !ok {
		return opts, false, code
	}
	usageErr := func(format string, a ...any) (nodeOptions, bool, int) {
		fmt.Fprintf(stderr, "guild node: "+format+"\n\n", a...)
		fs.Usage()
		return opts, false, exitUsage
	}
	if opts.addrText == "" {
		return usageErr("-addr is required")
	}
	a, err := actor.ParseAddr(opts.addrText)
	if err != nil {
		return usageErr("-addr: %v", err)
	}
	if a == 0 {
		return usageErr("-addr: 0.0.0 is not a node address")
	}
	opts.addr = a
	if _, _, err := net.SplitHostPort(opts.listen); err != nil {
		return usageErr("-listen: %v", err)
	}
	if opts.etcdText != "" {
		for e := range strings.SplitSeq(opts.etcdText, ",") {
			if e = strings.TrimSpace(e); e == "" {
				return usageErr("-etcd: empty endpoint in %q", opts.etcdText)
			}
			opts.etcd = append(opts.etcd, e)
		}
	}
	switch {
	case opts.master == "" && opts.etcd == nil:
		return usageErr("one of -master and -etcd is required")
	case opts.master != "" && opts.etcd != nil:
		return usageErr("-master and -etcd exclude each other: give one of them")
	}
	if opts.master != "" {
		if _, _, err := net.SplitHostPort(opts.master); err != nil {
			return usageErr("-master: %v", err)
		}
	}
	if opts.data != "" && opts.master == "" {
		return usageErr("-data is the embedded etcd's directory: it needs -master")
	}
	if opts.ttl < time.Second {
		return usageErr("-ttl %v is below the minimum 1s", opts.ttl)
	}
	if opts.joinWait < 0 {
		return usageErr("-join-wait %v is negative", opts.joinWait)
	}
	tlsSet := opts.etcdCA != "" || opts.etcdCert != "" || opts.etcdKey != "" || opts.etcdServerName != ""
	switch {
	case (tlsSet || opts.etcdUser != "" || opts.etcdPasswordFile != "") && opts.etcd == nil:
		return usageErr("the -etcd-* flags configure the client of an existing etcd: they need -etcd")
	case (opts.etcdCert == "") != (opts.etcdKey == ""):
		return usageErr("-etcd-cert and -etcd-key go together: give both or neither")
	case opts.etcdPasswordFile != "" && opts.etcdUser == "":
		return usageErr("-etcd-password-file needs -etcd-user")
	}
	if tlsSet {
		for _, e := range opts.etcd {
			if !strings.HasPrefix(e, "https://") {
				return usageErr("-etcd %s: the -etcd TLS flags need https endpoints", e)
			}
		}
	}
	if opts.etcdUser != "" {
		opts.etcdPassword = os.Getenv(config.EtcdPasswordEnv)
		if opts.etcdPasswordFile != "" {
			pw, err := config.ReadSecretFile(opts.etcdPasswordFile)
			if err != nil {
				return usageErr("-etcd-password-file: %v", err)
			}
			opts.etcdPassword = pw
		}
	}
	return opts, true, exitOK
}

// etcdTLS returns the etcd client's TLS configuration from the -etcd-*
// flags, reading their files, or nil when none is set and the endpoints
// are http.
func (opts nodeOptions) etcdTLS() (*tls.Config, error) {
	if opts.etcdCA == "" && opts.etcdCert == "" && opts.etcdServerName == "" {
		return nil, nil
	}
	cfg := &tls.Config{ServerName: opts.etcdServerName, MinVersion: tls.VersionTLS12}
	if opts.etcdCA != "" {
		pool, err := config.ReadCAFile(opts.etcdCA)
		if err != nil {
			return nil, fmt.Errorf("-etcd-ca: %w", err)
		}
		cfg.RootCAs = pool
	}
	if opts.etcdCert != "" {
		cert, err := tls.LoadX509KeyPair(opts.etcdCert, opts.etcdKey)
		if err != nil {
			return nil, fmt.Errorf("-etcd-cert, -etcd-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// nodeFlags defines the flags of guild node into opts.
func nodeFlags(opts *nodeOptions, stderr io.Writer) *flag.FlagSet {
	fs := newFlagSet("node", "node -addr c.t.i (-master host:port | -etcd url[,url...]) [flags]", nodeAbout, stderr)
	fs.StringVar(&opts.addrText, "addr", "", "the node's logical `address` cluster.type.index, e.g. 1.2.3 (required)")
	fs.StringVar(&opts.listen, "listen", "127.0.0.1:0", "`host:port` of the node-to-node TCP transport; port 0 picks a free one")
	fs.StringVar(&opts.master, "master", "", "run an embedded etcd in this process, serving clients on `host:port` (port 0 picks a free one)")
	fs.StringVar(&opts.etcdText, "etcd", "", "comma-separated etcd client `urls` to join, e.g. http://127.0.0.1:2379")
	fs.DurationVar(&opts.ttl, "ttl", etcd.DefaultTTL, "etcd lease TTL: how long a crashed node's record and names outlive it (at least 1s)")
	fs.StringVar(&opts.data, "data", "", "`dir`ectory of the embedded etcd's data with -master; default a temporary one, removed on exit")
	fs.DurationVar(&opts.joinWait, "join-wait", 30*time.Second, "how long to retry while the address or the diagnostic name is still held by a crashed predecessor")
	fs.StringVar(&opts.etcdCA, "etcd-ca", "", "PEM `file` of the CAs that signed etcd's server certificate (with https -etcd endpoints); default the system's")
	fs.StringVar(&opts.etcdCert, "etcd-cert", "", "PEM certificate `file` to present to an etcd that requires client certificates (with -etcd-key)")
	fs.StringVar(&opts.etcdKey, "etcd-key", "", "PEM key `file` of -etcd-cert")
	fs.StringVar(&opts.etcdServerName, "etcd-server-name", "", "the `name` to check etcd's certificate against; default each endpoint's host")
	fs.StringVar(&opts.etcdUser, "etcd-user", "", "the etcd `user`, for an etcd with authentication; its password comes from -etcd-password-file or "+config.EtcdPasswordEnv)
	fs.StringVar(&opts.etcdPasswordFile, "etcd-password-file", "", "`file` holding the -etcd-user's password")
	return fs
}

// readyEvent is the line guild node prints when it is ready.
type readyEvent struct {
	Event    string   `json:"event"`
	Addr     string   `json:"addr"`
	Endpoint string   `json:"endpoint"`
	Etcd     []string `json:"etcd"`
	PID      int      `json:"pid"`
}

// serveNode starts the node that opts describe, prints the ready line to
// stdout, and runs until ctx ends. It then closes the node, its membership
// and its embedded etcd, in that order.
func serveNode(ctx context.Context, opts nodeOptions, stdout io.Writer, log *slog.Logger) (err error) {
	started := time.Now()
	endpoints := opts.etcd
	if opts.master != "" {
		e, err := etcd.StartEmbeddedConfig(etcd.EmbeddedConfig{Dir: opts.data, Listen: opts.master})
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("%w (change it with -master)", err)
		}
		if err != nil {
			return err
		}
		defer func() {
			if cerr := e.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("close etcd: %w", cerr))
			}
		}()
		endpoints = e.Endpoints()
		log.Info("embedded etcd started", "endpoints", strings.Join(endpoints, ","))
	}
	etcdTLS, err := opts.etcdTLS()
	if err != nil {
		return err
	}
	m, err := etcd.New(etcd.Config{
		Endpoints: endpoints, TTL: opts.ttl, JoinWait: opts.joinWait, Logger: log,
		TLS: etcdTLS, Username: opts.etcdUser, Password: opts.etcdPassword,
	})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := m.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close membership: %w", cerr))
		}
	}()
	node, err := cluster.Start(ctx, cluster.NodeConfig{
		Actor:      actor.Config{Addr: opts.addr, Logger: log},
		Listen:     opts.listen,
		Membership: m, // its Join waits out a crashed predecessor's record (JoinWait)
		Names:      m.Names(),
		Logger:     log,
	})
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%w (change it with -listen)", err)
	}
	if err != nil {
		return err
	}
	defer func() {
		if cerr := node.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close node: %w", cerr))
		}
	}()
	if err := startDiag(ctx, node.Actor(), started, opts.joinWait, log); err != nil {
		return err
	}
	if err := printJSONLine(stdout, readyEvent{
		Event: "ready", Addr: opts.addr.String(), Endpoint: node.Endpoint(),
		Etcd: endpoints, PID: os.Getpid(),
	}); err != nil {
		return err
	}
	log.Info("node ready", "endpoint", node.Endpoint(), "diag", diagName(opts.addr))
	<-ctx.Done()
	log.Info("stopping: draining, then leaving")
	sctx, cancel := context.WithTimeout(context.Background(), nodeDrainTimeout)
	defer cancel()
	if err := node.Shutdown(sctx); err != nil {
		log.Warn("drain incomplete", "err", err)
	}
	return nil
}

// nodeDrainTimeout bounds the drain of "guild node" on SIGINT or SIGTERM.
const nodeDrainTimeout = 10 * time.Second

// startDiag spawns the diagnostic actor and registers its global name,
// retrying while a crashed predecessor's lease still holds the name.
func startDiag(ctx context.Context, n *actor.Node, started time.Time, wait time.Duration, log *slog.Logger) error {
	pid, err := n.Spawn(func() actor.Actor { return newDiag(n.Addr(), started) })
	if err != nil {
		return fmt.Errorf("spawn the diagnostic actor: %w", err)
	}
	name := diagName(n.Addr())
	return retryWhile(ctx, wait, actor.ErrNameTaken, log, "diagnostic name still held, waiting for the old lease to expire", func() error {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := n.Register(rctx, name, pid); err != nil {
			return fmt.Errorf("register %q: %w", name, err)
		}
		return nil
	})
}

// retryWhile calls f until it returns nil or an error that does not match
// target, or until wait has passed or ctx ends, sleeping between attempts.
func retryWhile(ctx context.Context, wait time.Duration, target error, log *slog.Logger, msg string, f func() error) error {
	deadline := time.Now().Add(wait)
	for {
		err := f()
		if err == nil || !errors.Is(err, target) || time.Now().After(deadline) {
			return err
		}
		log.Warn(msg, "err", err)
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		}
	}
}

// diag is the diagnostic actor of guild node; see nodeAbout for its
// protocol. Its answers are wrapperspb.StringValue; a request it does not
// understand is answered with an error value.
type diag struct {
	self  string // the node's address
	start int64  // the process's start, Unix nanoseconds
}

func newDiag(self actor.Addr, started time.Time) *diag {
	return &diag{self: self.String(), start: started.UnixNano()}
}

// errBadDiagRequest answers a request the diagnostic actor does not know.
var errBadDiagRequest = errors.New("guild.diag: bad request")

// Receive implements actor.Actor.
func (d *diag) Receive(c *actor.Context) {
	s, ok := c.Message().(*wrapperspb.StringValue)
	if !ok {
		if c.IsRequest() {
			c.Respond(fmt.Errorf("%w: payload %T, want google.protobuf.StringValue", errBadDiagRequest, c.Message()))
		}
		return
	}
	fields := strings.Fields(s.GetValue())
	switch {
	case len(fields) == 1 && fields[0] == "ping":
		c.Respond(wrapperspb.String(fmt.Sprintf("pong %s %d", d.self, d.start)))
	case len(fields) == 3 && fields[0] == "call":
		d.call(c, fields[1], fields[2])
	default:
		c.Respond(fmt.Errorf("%w: %q; want \"ping\" or \"call <name> <timeout>\"", errBadDiagRequest, s.GetValue()))
	}
}

// call pings the actor registered as name on the requester's behalf, without
// blocking this actor: the answer goes out from the Request callback. Only
// the name lookup runs in Receive (from the registry's cache, normally),
// bounded by the timeout.
func (d *diag) call(c *actor.Context, name, timeoutText string) {
	timeout, err := time.ParseDuration(timeoutText)
	if err != nil || timeout <= 0 {
		c.Respond(fmt.Errorf("%w: timeout %q is not a positive duration", errBadDiagRequest, timeoutText))
		return
	}
	begin := time.Now()
	answer := func(r actor.Responder, reply any, err error) {
		us := strconv.FormatInt(time.Since(begin).Microseconds(), 10)
		if err == nil {
			if s, ok := reply.(*wrapperspb.StringValue); ok {
				r.Respond(wrapperspb.String("ok " + s.GetValue() + " " + us))
				return
			}
			err = fmt.Errorf("reply of type %T", reply)
		}
		r.Respond(wrapperspb.String("err " + err.Error() + " " + us))
	}
	r := c.Responder()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	pid, err := c.Node().Lookup(ctx, name)
	cancel()
	if err != nil {
		answer(r, nil, err)
		return
	}
	if pid == c.Self() {
		answer(r, wrapperspb.String(fmt.Sprintf("pong %s %d", d.self, d.start)), nil)
		return
	}
	left := timeout - time.Since(begin)
	if left <= 0 {
		answer(r, nil, actor.ErrTimeout)
		return
	}
	if err := c.Request(pid, wrapperspb.String("ping"), left, func(reply any, err error) { answer(r, reply, err) }); err != nil {
		answer(r, nil, err)
	}
}
