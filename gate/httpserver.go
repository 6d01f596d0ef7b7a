package gate

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/pires/go-proxyproto"
)

// HTTPServer returns an http.Server for handler with the gateway's HTTP
// limits, the server ListenHTTP uses (gatews.Listen, say); serve the
// game's page and UpgradeHandler (gatews.Handler) on it to give them the
// same:
//
//   - a request header of at most Limits.MaxHeaderBytes (8 KiB; larger
//     gets 431), within Limits.HandshakeTimeout (ReadHeaderTimeout) and
//     a whole request within 10 s (ReadTimeout);
//   - a response within 10 s (WriteTimeout; not for a connection once it
//     is upgraded to WebSocket);
//   - keep-alive connections closed after Limits.HTTPIdleTimeout idle;
//   - every connection, from its accept, counts toward Limits.MaxConns
//     and toward its source's PerSourceConns and ConnRate: one still
//     sending its header holds a slot. A connection over a limit is
//     answered 503 (gateway full) or 429 (its source) and closed at
//     once, before any request is read. An upgraded connection keeps its
//     slot as the gateway's session.
//
// The caller sets TLSConfig, ErrorLog and so on, and runs it (Serve,
// Shutdown) as any http.Server; the gateway does not close it.
func (g *Gateway) HTTPServer(handler http.Handler) *http.Server {
	return &http.Server{
		Handler:           handler,
		MaxHeaderBytes:    g.lim.MaxHeaderBytes,
		ReadHeaderTimeout: g.lim.HandshakeTimeout,
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       g.lim.HTTPIdleTimeout,
		ConnState:         g.httpConnState,
		ConnContext: func(ctx context.Context, nc net.Conn) context.Context {
			return context.WithValue(ctx, httpConnKey{g}, nc)
		},
	}
}

// httpReadTimeout bounds the reading of a whole request (header and body)
// on the gateway's HTTP servers.
const httpReadTimeout = 10 * time.Second

// httpConnKey is the context key under which a gateway's HTTP server
// keeps each request's connection.
type httpConnKey struct{ g *Gateway }

// httpConnState counts the connections of the gateway's HTTP servers (see
// HTTPServer). It runs on the server's accept loop (StateNew) and its
// connections' goroutines; it takes g.mu and the limit table's lock, one
// after the other, and writes a refusal, bounded by a short deadline,
// with no lock held.
func (g *Gateway) httpConnState(nc net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		src, e, ok := g.limits.open(nc.RemoteAddr().String(), time.Now())
		status := http.StatusTooManyRequests
		if ok {
			g.mu.Lock()
			full := len(g.conns)+len(g.httpConns) >= g.lim.MaxConns
			if !full {
				g.httpConns[nc] = src
			}
			g.mu.Unlock()
			if !full {
				g.tuneSocket(nc)
				return
			}
			g.limits.close(src)
			e, status = gatewayFull(g.lim.MaxConns), http.StatusServiceUnavailable
		}
		if e.silent {
			_ = nc.Close()
			return
		}
		refuseHTTP(nc, status, e.reason)
	case http.StateHijacked, http.StateClosed:
		g.mu.Lock()
		src, ok := g.httpConns[nc]
		delete(g.httpConns, nc)
		g.checkDrainedLocked()
		g.mu.Unlock()
		if ok {
			g.limits.close(src)
		}
	}
}

// tuneSocket sets the kernel's send buffer of a client's TCP connection
// (Limits.SendBuffer), under TLS too.
func (g *Gateway) tuneSocket(nc net.Conn) {
	if g.lim.SendBuffer <= 0 {
		return
	}
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	if pc, ok := nc.(*proxyproto.Conn); ok {
		nc = pc.Raw()
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(g.lim.SendBuffer)
	}
}

// refuseHTTP answers a connection refused at its accept with status and
// reason, as best it can within refuseWriteTimeout (nothing over TLS,
// whose handshake could take longer), and closes it.
func refuseHTTP(nc net.Conn, status int, reason string) {
	if _, isTLS := nc.(*tls.Conn); !isTLS {
		body := reason + "\n"
		_ = nc.SetWriteDeadline(time.Now().Add(refuseWriteTimeout))
		_, _ = fmt.Fprintf(nc, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s",
			status, http.StatusText(status), len(body), body)
	}
	_ = nc.Close()
}

// refuseWriteTimeout bounds the write of a refusal at accept: a new
// connection's send buffer takes it at once.
const refuseWriteTimeout = 100 * time.Millisecond

// httpSource returns the source entry of a request about to be
// upgraded, to be passed to upgraded, and the client's address. On one of
// the gateway's HTTP servers the connection was counted at its accept:
// its entry moves to the session. On a server of the caller's own, the
// source's limits are checked now. A request forwarded by a trusted proxy
// (Limits.TrustedProxies) is checked now, as coming from the client that
// X-Forwarded-For names. A request over its source's limits is answered
// 429 (ok false).
func (g *Gateway) httpSource(w http.ResponseWriter, r *http.Request) (src *limitEntry, remote string, ok bool) {
	remote = r.RemoteAddr
	var counted bool
	if nc, own := r.Context().Value(httpConnKey{g}).(net.Conn); own {
		g.mu.Lock()
		src = g.httpConns[nc]
		if src != nil {
			g.httpConns[nc] = nil // the upgrade holds it now
		}
		g.mu.Unlock()
		counted = true
	}
	if g.limits.trusted(remote) {
		client := g.limits.forwardedClient(r)
		if client == "" {
			return src, remote, true // the proxy's own request: exempt
		}
		remote, counted = client, false
		// A proxy's connection holds no entry of its own; one left by a
		// failed upgrade of an earlier request (see upgraded) is that
		// client's, given back now.
		g.limits.close(src)
		src = nil
	}
	if counted {
		return src, remote, true
	}
	src, e, ok := g.limits.open(remote, time.Now())
	if !ok {
		w.Header().Set("Retry-After", "1")
		http.Error(w, e.reason, http.StatusTooManyRequests)
		return nil, "", false
	}
	return src, remote, true
}

// upgraded settles the source entry of request r after its upgrade: done
// (ok), the session holds it; otherwise (the upgrade refused the request)
// it goes back to the connection, which may live on as an HTTP one, when
// it is one of the gateway's servers', or to the table.
func (g *Gateway) upgraded(src *limitEntry, ok bool, r *http.Request) *limitEntry {
	if ok {
		return src
	}
	if own, ok := r.Context().Value(httpConnKey{g}).(net.Conn); ok {
		g.mu.Lock()
		_, open := g.httpConns[own]
		if open {
			g.httpConns[own] = src
		}
		g.mu.Unlock()
		if open {
			return nil
		}
	}
	g.limits.close(src)
	return nil
}
