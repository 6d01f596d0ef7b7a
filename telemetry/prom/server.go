package prom

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
)

// Config configures a Server.
type Config struct {
	// Listen is the host:port to serve on (":9100"; port 0 picks a free
	// port, which Server.Addr tells). Required.
	Listen string
	// Metrics is what /metrics serves. Nil: a New one, with the Go
	// runtime's and the process's metrics only.
	Metrics *Metrics
	// Token, when set, is the bearer token that /metrics and
	// /debug/pprof/ require ("Authorization: Bearer <token>"); /healthz and
	// /readyz stay open. Empty: everything is open, so listen on an
	// address only operators reach.
	Token string
	// Ready reports whether the node is ready for work, for /readyz. It is
	// called on every probe, from the probe's goroutine: make it cheap and
	// safe for concurrent use (an atomic load). Nil: always ready.
	Ready func() bool
	// Logger receives the HTTP server's errors. Default slog.Default().
	Logger *slog.Logger
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	if c.Listen == "" {
		return errors.New("prom: Config.Listen is empty: give a host:port such as :9100")
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("prom: Config.Listen %q is not host:port", c.Listen)
	}
	if c.Token != strings.TrimSpace(c.Token) {
		return errors.New("prom: Config.Token has white space around it")
	}
	return nil
}

// Server serves a node's metrics, health, readiness and profiles over
// HTTP (see the package doc). Create it with Serve.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{} // closed when Serve's goroutine returns
}

// Timeouts of the server: a header must arrive within readHeaderTimeout;
// an idle keep-alive connection closes after idleTimeout. There is no
// write timeout: a CPU profile takes as long as it was asked to.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = time.Minute
)

// Serve validates cfg, listens on cfg.Listen and serves in the background
// until Shutdown or Close.
func Serve(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Metrics == nil {
		cfg.Metrics = New()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("prom: %w", err)
	}
	s := &Server{
		srv: &http.Server{
			Handler:           Handler(cfg),
			ReadHeaderTimeout: readHeaderTimeout,
			IdleTimeout:       idleTimeout,
			ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
		},
		ln:   ln,
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Logger.Error("prom: the metrics server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return s, nil
}

// Handler returns the handler that a Server serves for cfg (cfg.Listen is
// not used): mount it on a server of your own instead of calling Serve.
// Its profiler handlers are on its own mux: package prom does not import
// net/http/pprof, whose init registers on http.DefaultServeMux (see
// pprof.go).
func Handler(cfg Config) http.Handler {
	m := cfg.Metrics
	if m == nil {
		m = New()
	}
	ready := cfg.Ready
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if ready != nil && !ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	guard := bearer(cfg.Token)
	mux.Handle("GET /metrics", guard(m.Handler()))
	mux.Handle("GET /debug/pprof/", guard(http.HandlerFunc(pprofIndex)))
	mux.Handle("GET /debug/pprof/cmdline", guard(http.HandlerFunc(pprofCmdline)))
	mux.Handle("GET /debug/pprof/profile", guard(http.HandlerFunc(pprofProfile)))
	mux.Handle("GET /debug/pprof/trace", guard(http.HandlerFunc(pprofTrace)))
	return mux
}

// bearer returns the wrapper that requires "Authorization: Bearer token",
// compared in constant time; with no token it wraps nothing.
func bearer(token string) func(http.Handler) http.Handler {
	if token == "" {
		return func(h http.Handler) http.Handler { return h }
	}
	want := []byte(token)
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="guild"`)
				http.Error(w, "unauthorized: this endpoint needs the bearer token (telemetry.token)", http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
}

// Addr returns the address the server listens on, with the port it got.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URL returns the server's base URL, http://host:port.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Shutdown stops the server gracefully: it stops accepting, lets the
// requests in progress finish, or ctx end (then it closes what is left),
// and waits for the serving goroutine. It is safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	<-s.done // Serve returns at once after Shutdown or Close began
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops the server at once, closing every connection, and waits for
// the serving goroutine. It is safe to call more than once.
func (s *Server) Close() error {
	err := s.srv.Close()
	<-s.done
	return err
}
