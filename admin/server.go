package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/rpc"
)

// Config configures a Server.
type Config struct {
	// Listen is the host:port of the page and its API (":9090"; port 0
	// picks a free port, which Server.Addr tells). Required.
	Listen string
	// Node is the serving node: the dashboard asks the agents through it.
	// Required.
	Node *cluster.Node
	// Members is the cluster's membership: the nodes the page lists.
	// Required.
	Members cluster.Membership
	// Token, when set, is the bearer token every /api/ endpoint requires
	// ("Authorization: Bearer <token>", compared in constant time; 401
	// otherwise), and it enables the actions. Empty: the API is open and
	// read-only (actions answer 403), so listen on an address only
	// operators reach.
	Token string
	// Interval is how often the page's numbers are gathered and pushed
	// while a page is open. Default 1s; at least 100ms.
	Interval time.Duration
	// NodeTimeout bounds the wait for one node's snapshot: a node that
	// has not answered by then shows as unreachable. Default 800ms; less
	// than Interval.
	NodeTimeout time.Duration
	// MaxClients bounds the event streams open at once (open pages);
	// beyond it /api/events answers 503. Default 16.
	MaxClients int
	// ClientBuffer is how many views may wait for one slow page; a page
	// that falls further behind is cut off (it reconnects by itself).
	// Default 4.
	ClientBuffer int
	// Logger receives the server's reports. Default slog.Default().
	Logger *slog.Logger
}

// Defaults of Config.
const (
	DefaultInterval     = time.Second
	DefaultNodeTimeout  = 800 * time.Millisecond
	DefaultMaxClients   = 16
	DefaultClientBuffer = 4
)

// Bounds of the server.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = time.Minute
	writeTimeout      = 10 * time.Second // one event or one response to a page
	maxBody           = 4 << 10          // an action's JSON body
	maxReason         = 200              // a kick's reason, in bytes
)

// Validate reports the first problem with c.
func (c Config) Validate() error {
	switch {
	case c.Listen == "":
		return errors.New("admin: Config.Listen is empty: give a host:port such as :9090")
	case c.Node == nil:
		return errors.New("admin: Config.Node is nil")
	case c.Members == nil:
		return errors.New("admin: Config.Members is nil")
	case c.Token != strings.TrimSpace(c.Token):
		return errors.New("admin: Config.Token has white space around it")
	case c.Interval != 0 && c.Interval < 100*time.Millisecond:
		return fmt.Errorf("admin: Config.Interval %v is below 100ms", c.Interval)
	case c.NodeTimeout < 0 || c.MaxClients < 0 || c.ClientBuffer < 0:
		return errors.New("admin: Config.NodeTimeout, MaxClients and ClientBuffer may not be negative")
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("admin: Config.Listen %q is not host:port", c.Listen)
	}
	iv, nt := c.Interval, c.NodeTimeout
	if iv == 0 {
		iv = DefaultInterval
	}
	if nt == 0 {
		nt = DefaultNodeTimeout
	}
	if nt >= iv {
		return fmt.Errorf("admin: Config.NodeTimeout %v must be shorter than Interval %v", nt, iv)
	}
	return nil
}

// Server serves the dashboard. Create it with Serve.
//
// Goroutines: the HTTP server's (one accepting, one per connection, as
// net/http does; an open page holds one for its event stream), one
// ticker that gathers and pushes a View every Interval while at least one
// page is open, and, during a gathering, one per member waiting for its
// snapshot (each bounded by NodeTimeout).
type Server struct {
	cfg  Config
	srv  *http.Server
	ln   net.Listener
	quit chan struct{}
	wg   sync.WaitGroup // the serving goroutine and the ticker

	gatherMu sync.Mutex // one gathering at a time; never held with mu
	mu       sync.Mutex // guards what follows
	seen     map[actor.Addr]*seenNode
	clients  map[*client]struct{}
	latest   []byte // the latest View, as JSON; nil before the first
	latestAt time.Time
	closed   bool
}

// client is one open event stream.
type client struct {
	views chan []byte   // bounded by Config.ClientBuffer
	gone  chan struct{} // closed when the server drops it
}

// Serve validates cfg, listens on cfg.Listen and serves the dashboard in
// the background until Shutdown or Close.
func Serve(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.NodeTimeout == 0 {
		cfg.NodeTimeout = DefaultNodeTimeout
	}
	if cfg.MaxClients == 0 {
		cfg.MaxClients = DefaultMaxClients
	}
	if cfg.ClientBuffer == 0 {
		cfg.ClientBuffer = DefaultClientBuffer
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	s := &Server{
		cfg:     cfg,
		ln:      ln,
		quit:    make(chan struct{}),
		seen:    make(map[actor.Addr]*seenNode),
		clients: make(map[*client]struct{}),
	}
	s.srv = &http.Server{
		Handler:           s.handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Logger.Error("admin: the dashboard's server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	go s.tick()
	return s, nil
}

// Addr returns the address the server listens on, with the port it got.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URL returns the page's URL, http://host:port/.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() + "/" }

// Shutdown stops the server: it ends the event streams, stops accepting,
// lets the other requests finish or ctx end (then it closes what is
// left), and waits for its goroutines. It is safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stop()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	s.wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops the server at once, closing every connection, and waits
// for its goroutines. It is safe to call more than once.
func (s *Server) Close() error {
	s.stop()
	err := s.srv.Close()
	s.wg.Wait()
	return err
}

func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.quit)
	}
}

// tick gathers and pushes a View every Interval while a page is open.
func (s *Server) tick() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
		}
		s.mu.Lock()
		open := len(s.clients)
		s.mu.Unlock()
		if open == 0 {
			continue
		}
		b, err := s.gather()
		if err != nil {
			s.cfg.Logger.Error("admin: gather the view", "err", err)
			continue
		}
		s.mu.Lock()
		for c := range s.clients {
			select {
			case c.views <- b:
			default: // too slow: cut off (the page reconnects)
				s.dropLocked(c)
			}
		}
		s.mu.Unlock()
	}
}

// dropLocked removes c; the caller holds mu.
func (s *Server) dropLocked(c *client) {
	if _, ok := s.clients[c]; ok {
		delete(s.clients, c)
		close(c.gone)
	}
}

// gather asks every member for its snapshot, at once, each within
// NodeTimeout, and returns the View as JSON. A panic in it is reported
// as an error: it never takes the node down.
func (s *Server) gather() (b []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("admin: panic while gathering: %v\n%s", r, debug.Stack())
		}
	}()
	s.gatherMu.Lock()
	defer s.gatherMu.Unlock()
	members := s.cfg.Members.Members()
	answers := make([]gathered, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		answers[i].member = m
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.NodeTimeout)
			defer cancel()
			var snap Snapshot
			if err := s.ask(ctx, m.Addr, request{Op: "snapshot"}, &snap); err != nil {
				answers[i].err = err
				return
			}
			answers[i].snap = &snap
		})
	}
	wg.Wait()
	now := time.Now()
	s.mu.Lock()
	v := buildView(now, s.cfg.Node.Actor().Addr(), s.cfg.Token != "", answers, s.seen)
	b, err = json.Marshal(v)
	if err == nil {
		s.latest, s.latestAt = b, now
	}
	s.mu.Unlock()
	return b, err
}

// ask sends req to the agent of the node at addr and decodes its JSON
// answer into out.
func (s *Server) ask(ctx context.Context, addr actor.Addr, req request, out any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	n := s.cfg.Node.Actor()
	name := AgentName(addr)
	reply, err := n.CallName(ctx, name, wrapperspb.Bytes(body))
	if errors.Is(err, actor.ErrNoGlobalNames) && addr == n.Addr() {
		reply, err = n.CallName(ctx, "."+name, wrapperspb.Bytes(body))
	}
	if err != nil {
		if errors.Is(err, actor.ErrNameNotFound) {
			return fmt.Errorf("no admin agent on this node (it does not run one): %w", err)
		}
		return agentStatus(err)
	}
	b, ok := reply.(*wrapperspb.BytesValue)
	if !ok {
		return fmt.Errorf("admin: the agent answered a %T", reply)
	}
	if err := json.Unmarshal(b.GetValue(), out); err != nil {
		return fmt.Errorf("admin: the agent's answer: %w", err)
	}
	return nil
}

// agentStatus returns an agent's error answer with its rpc code. An
// agent answers an *rpc.Status; from another node it arrives as its text
// only ("rpc: FailedPrecondition: admin: ..."), which names the code:
// agentStatus turns that back into an *rpc.Status, so that a remote
// node's answer gets the HTTP status a local one does (409, 429). Any
// other error is returned as it is.
func agentStatus(err error) error {
	var st *rpc.Status
	if errors.As(err, &st) {
		return err
	}
	rest, ok := strings.CutPrefix(err.Error(), "rpc: ")
	if !ok {
		return err
	}
	name, msg, _ := strings.Cut(rest, ": ")
	for c := rpc.Canceled; c <= rpc.Unauthenticated; c++ {
		if c.String() == name {
			return rpc.Error(c, msg)
		}
	}
	return err
}

// handler is the server's HTTP handler.
func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	page, err := fs.Sub(dist, "web/dist")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	mux.Handle("GET /", http.FileServerFS(page))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	api := func(pattern string, action bool, h http.HandlerFunc) {
		mux.Handle(pattern, s.guard(action, h))
	}
	api("GET /api/view", false, s.serveView)
	api("GET /api/events", false, s.serveEvents)
	api("POST /api/nodes/{addr}/available", true, s.serveAvailable)
	api("POST /api/nodes/{addr}/drain", true, s.serveDrain)
	api("POST /api/users/{user}/kick", true, s.serveKick)
	api("GET /api/nodes/{addr}/tables", false, s.serveTables)
	api("POST /api/nodes/{addr}/reload", true, s.serveReload)
	return s.recoverPanics(mux)
}

// recoverPanics answers 500 for a handler that panicked, and logs it
// with its stack: a bug in the dashboard never takes the node down.
func (s *Server) recoverPanics(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.cfg.Logger.Error("admin: handler panicked", "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
				http.Error(w, "internal error", http.StatusInternalServerError)
			}
		}()
		h.ServeHTTP(w, r)
	})
}

// guard checks the bearer token (when one is set) and, for an action,
// that actions are enabled.
func (s *Server) guard(action bool, h http.HandlerFunc) http.Handler {
	want := []byte(s.cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(want) > 0 {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="guild admin"`)
				httpError(w, http.StatusUnauthorized, "this needs the admin token (Authorization: Bearer <admin.token>)")
				return
			}
		} else if action {
			httpError(w, http.StatusForbidden, "actions are disabled: this dashboard has no token (set admin.token)")
			return
		}
		h(w, r)
	})
}

// httpError answers a JSON error {"error": msg}.
func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}

// current returns the latest View if it is fresh, else gathers one.
func (s *Server) current() ([]byte, error) {
	s.mu.Lock()
	b, at := s.latest, s.latestAt
	s.mu.Unlock()
	if b != nil && time.Since(at) < s.cfg.Interval {
		return b, nil
	}
	return s.gather()
}

func (s *Server) serveView(w http.ResponseWriter, _ *http.Request) {
	b, err := s.current()
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}

// serveEvents streams a View every Interval as Server-Sent Events
// ("event: view"), starting with the latest.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	c := &client{views: make(chan []byte, s.cfg.ClientBuffer), gone: make(chan struct{})}
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		httpError(w, http.StatusServiceUnavailable, "the dashboard is stopping")
		return
	case len(s.clients) >= s.cfg.MaxClients:
		s.mu.Unlock()
		httpError(w, http.StatusServiceUnavailable, fmt.Sprintf("too many pages open (%d, admin.Config.MaxClients)", s.cfg.MaxClients))
		return
	}
	s.clients[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.dropLocked(c)
		s.mu.Unlock()
	}()

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(b []byte) error {
		_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := fmt.Fprintf(w, "event: view\ndata: %s\n\n", b); err != nil {
			return err
		}
		return rc.Flush()
	}
	if b, err := s.current(); err == nil {
		if send(b) != nil {
			return
		}
	}
	for {
		select {
		case b := <-c.views:
			if send(b) != nil {
				return
			}
		case <-c.gone:
			return
		case <-s.quit:
			return
		case <-r.Context().Done():
			return
		}
	}
}

// nodeOf returns the member the request's {addr} names, or answers an
// error and returns false.
func (s *Server) nodeOf(w http.ResponseWriter, r *http.Request) (actor.Addr, bool) {
	addr, err := actor.ParseAddr(r.PathValue("addr"))
	if err != nil || addr == 0 {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("%q is not a node address (cluster.type.index)", r.PathValue("addr")))
		return 0, false
	}
	for _, m := range s.cfg.Members.Members() {
		if m.Addr == addr {
			return addr, true
		}
	}
	httpError(w, http.StatusNotFound, fmt.Sprintf("node %s is not a member", addr))
	return 0, false
}

// decode reads the request's JSON body strictly into v; an empty body
// leaves v as it is.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		httpError(w, http.StatusBadRequest, "bad JSON body: "+err.Error())
		return false
	}
	return true
}

// actionError answers the error of an action.
func actionError(w http.ResponseWriter, what string, err error) {
	code := http.StatusBadGateway
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, actor.ErrTimeout):
		code = http.StatusGatewayTimeout
	case rpc.CodeOf(err) == rpc.NotFound:
		code = http.StatusNotFound
	case rpc.CodeOf(err) == rpc.InvalidArgument:
		code = http.StatusBadRequest
	case rpc.CodeOf(err) == rpc.FailedPrecondition:
		code = http.StatusConflict
	case rpc.CodeOf(err) == rpc.ResourceExhausted:
		code = http.StatusTooManyRequests
	}
	httpError(w, code, what+": "+err.Error())
}

func (s *Server) serveAvailable(w http.ResponseWriter, r *http.Request) {
	addr, ok := s.nodeOf(w, r)
	if !ok {
		return
	}
	var body struct {
		Available *bool `json:"available"`
	}
	if !decode(w, r, &body) {
		return
	}
	if body.Available == nil {
		httpError(w, http.StatusBadRequest, `the body needs {"available": true|false}`)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), actionTimeout+time.Second)
	defer cancel()
	var reply actionReply
	if err := s.ask(ctx, addr, request{Op: "available", Available: *body.Available}, &reply); err != nil {
		actionError(w, "mark "+addr.String(), err)
		return
	}
	s.cfg.Logger.Info("admin: node marked", "node", addr.String(), "available", *body.Available, "from", r.RemoteAddr)
	writeJSON(w, map[string]any{"node": addr.String(), "available": *body.Available})
}

func (s *Server) serveDrain(w http.ResponseWriter, r *http.Request) {
	addr, ok := s.nodeOf(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), actionTimeout+time.Second)
	defer cancel()
	var reply actionReply
	if err := s.ask(ctx, addr, request{Op: "drain"}, &reply); err != nil {
		actionError(w, "drain "+addr.String(), err)
		return
	}
	s.cfg.Logger.Info("admin: node drained", "node", addr.String(), "draining", reply.Draining, "from", r.RemoteAddr)
	writeJSON(w, map[string]any{"node": addr.String(), "available": false, "draining": reply.Draining})
}

func (s *Server) serveKick(w http.ResponseWriter, r *http.Request) {
	user := r.PathValue("user")
	if user == "" || len(user) > 256 {
		httpError(w, http.StatusBadRequest, "a user ID is 1 to 256 bytes")
		return
	}
	var body struct {
		Reason string `json:"reason"`
	}
	if !decode(w, r, &body) {
		return
	}
	if len(body.Reason) > maxReason {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("the reason is longer than %d bytes", maxReason))
		return
	}
	if body.Reason == "" {
		body.Reason = "kicked by an operator"
	}
	ctx, cancel := context.WithTimeout(r.Context(), actionTimeout)
	defer cancel()
	if err := gate.KickUser(ctx, s.cfg.Node.Actor(), user, body.Reason); err != nil {
		actionError(w, "kick "+user, err)
		return
	}
	s.cfg.Logger.Info("admin: user kicked", "user", user, "reason", body.Reason, "from", r.RemoteAddr)
	writeJSON(w, map[string]any{"user": user, "kicked": true})
}

// serveTables answers the node's table sets with the version each
// serves, and its reloaders' items with theirs.
func (s *Server) serveTables(w http.ResponseWriter, r *http.Request) {
	addr, ok := s.nodeOf(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), actionTimeout)
	defer cancel()
	var reply TablesReply
	if err := s.ask(ctx, addr, request{Op: "tables"}, &reply); err != nil {
		actionError(w, "tables of "+addr.String(), err)
		return
	}
	writeJSON(w, reply)
}

// serveReload reloads the node's tables and its reloaders (hot-fix
// modules): 200 when every set and item loaded (or was unchanged), 422
// when one failed (it keeps its old version), with the results either
// way; 409 when the node has nothing to reload.
func (s *Server) serveReload(w http.ResponseWriter, r *http.Request) {
	addr, ok := s.nodeOf(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), ReloadTimeout+2*time.Second)
	defer cancel()
	var reply TablesReply
	if err := s.ask(ctx, addr, request{Op: "reload"}, &reply); err != nil {
		actionError(w, "reload "+addr.String(), err)
		return
	}
	s.cfg.Logger.Info("admin: node reloaded", "node", addr.String(), "ok", reply.OK, "from", r.RemoteAddr)
	if !reply.OK {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusUnprocessableEntity)
		_ = json.NewEncoder(w).Encode(reply)
		return
	}
	writeJSON(w, reply)
}
