// Package gatekcp is guild's KCP transport (github.com/xtaci/kcp-go): a
// reliable, low-latency protocol over UDP. Listen gives a gateway of
// package gate a KCP listener; Dial opens a client's session (package
// client uses it for kcp:// addresses). Both ends use the same settings
// (docs/PROTOCOL.md): KCP's "fast" mode (no delay, a 10 ms interval, fast
// resend, no congestion window), stream mode, windows of 256 packets, no
// FEC.
//
// It lives in a package of its own so that a game whose gateway uses only
// TCP or WebSocket does not link kcp-go: import it (as gatekcp) where a
// gateway listens on KCP.
//
// # Encryption
//
// With Options.Key set, every datagram is encrypted with AES-256 (kcp-go's
// block encryption: a fresh 16-byte nonce per packet, CFB mode), under a
// key derived from Options.Key by DeriveKey. The gateway and its clients
// must share the secret: a client with another key, or none, gets no
// answer (the gateway drops every packet it cannot decrypt, without a
// word) and its handshake times out. Without a key, KCP is in the clear,
// as TCP without TLS is.
//
// What this gives, and what it does not:
//
//   - Confidentiality against whoever sees the packets without the
//     secret: an on-path observer (a shared Wi-Fi, an ISP) reads nothing
//     but sizes and timing.
//   - No integrity against an attacker: each packet carries a CRC32 of
//     its contents, inside the encryption, which catches corruption and
//     wrong keys, but it is not a MAC. CFB encryption is malleable and
//     CRC32 is linear, so an attacker on the path can change bits of a
//     packet and fix its checksum without the key. There is no replay
//     protection either: a packet captured and sent again is accepted.
//   - No authentication of either end beyond knowing the secret, and no
//     forward secrecy: every client holds the same secret. A secret
//     shipped inside a game client is known to every player who looks for
//     it, who can then read any captured traffic of that gateway.
//
// Where the traffic needs real protection (logins, purchases), use TLS:
// TCP with TLS, or wss. docs/SECURITY.md says the same.
package gatekcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	kcp "github.com/xtaci/kcp-go/v5"
)

// network is the name of KCP listeners in sessions, stats and logs.
const network = "kcp"

// Options configure a KCP listener (Listen) or a client's session (Dial).
// The zero value is valid: no encryption.
type Options struct {
	// Key, optional, is the secret, shared by the gateway and its
	// clients, that encrypts every packet (see "Encryption" above): at
	// least MinKeyLen bytes, random ones (openssl rand -hex 32 makes a
	// good one). Empty: no encryption.
	Key []byte
}

// Server is where Listen serves its listener: *gate.Gateway is one (see
// gate.Gateway.ServeListener).
type Server interface {
	ServeListener(ln net.Listener, network string, closeLast bool) error
}

// Listen accepts clients of g on a UDP address with KCP ("127.0.0.1:0" for
// a random port), encrypted when opts.Key is set, and returns the address
// it listens on. The listener is g's from then on: sessions show
// "kcp" as their listener, and g closes it when Close tears the gateway
// down, after its sessions (one UDP socket carries them all), refusing
// new clients from the moment Shutdown or Close begins.
//
// Listen fails with an error matching ErrShortKey for a key too short,
// with gate.ErrClosed once g's Shutdown or Close has begun, and, when the
// address cannot be used, with an error that names it ("gate: kcp
// listener: 127.0.0.1:7001 is in use") and wraps the system's
// (errors.Is(err, syscall.EADDRINUSE)).
func Listen(g Server, addr string, opts Options) (net.Addr, error) {
	block, err := opts.blockCrypt()
	if err != nil {
		return nil, err
	}
	ln, err := kcp.ListenWithOptions(addr, block, 0, 0)
	if err != nil {
		return nil, &listenError{addr: addr, err: err}
	}
	a := ln.Addr()
	if err := g.ServeListener(listener{ln}, network, true); err != nil {
		return nil, err
	}
	return a, nil
}

// Dial opens a KCP session to a gateway's KCP listener at addr
// (host:port), encrypted when opts.Key is set, with the gateway's
// settings. ctx bounds resolving the host's name; KCP itself has no
// connection to set up: a wrong address or key shows as a handshake that
// gets no answer.
func Dial(ctx context.Context, addr string, opts Options) (*kcp.UDPSession, error) {
	block, err := opts.blockCrypt()
	if err != nil {
		return nil, err
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("gatekcp: dial %s: %w", addr, err)
	}
	if host != "" {
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err == nil && len(ips) == 0 {
			err = fmt.Errorf("no address for %s", host)
		}
		if err != nil {
			return nil, fmt.Errorf("gatekcp: dial %s: %w", addr, err)
		}
		ip := ips[0] // IPv4 first, as net.ResolveUDPAddr does
		for _, a := range ips {
			if a.Unmap().Is4() {
				ip = a.Unmap()
				break
			}
		}
		addr = net.JoinHostPort(ip.String(), port)
	}
	s, err := kcp.DialWithOptions(addr, block, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("gatekcp: dial %s: %w", addr, err)
	}
	tune(s)
	return s, nil
}

// tune sets KCP's "fast" mode: no delay, 10 ms interval, fast resend, no
// congestion window; both ends use it.
func tune(s *kcp.UDPSession) {
	s.SetNoDelay(1, 10, 2, 1)
	// Stream mode: frames are length-prefixed, and message mode fails
	// reads into a buffer smaller than a message (the 4-byte prefix).
	// Deprecated upstream without a replacement in v5.6.40.
	//lint:ignore SA1019 stream mode is what the framing needs
	s.SetStreamMode(true)
	s.SetWindowSize(256, 256)
}

// listener tunes every session it accepts for interactive traffic, and
// gives it the linger the gateway asks of a transport without half close.
type listener struct{ *kcp.Listener }

func (l listener) Accept() (net.Conn, error) {
	s, err := l.AcceptKCP()
	if err != nil {
		return nil, err
	}
	tune(s)
	return session{s}, nil
}

// Close closes the listener, then the sessions it opened that nobody
// accepted: kcp-go leaves them running. Any packet from an address with
// no session opens one (an acknowledgement arriving after a session
// closed, say), so some may be queued as the listener closes.
func (l listener) Close() error {
	err := l.Listener.Close()
	// AcceptKCP picks at random between a queued session and "closed".
	for range 32 {
		if s, err := l.AcceptKCP(); err == nil {
			_ = s.Close()
		}
	}
	return err
}

// session is a KCP session the gateway accepted.
type session struct{ *kcp.UDPSession }

// Linger is how long the gateway leaves the session open after its last
// frames (see gate.Gateway.ServeListener). KCP has no half close, and its
// Close sends what is queued once, with no retransmission, and kcp-go does
// not say when the client has acknowledged everything. Give it time to
// take what was queued, the Close frame last: a client that had stopped
// reading (cut off as slow) must first make room in its window, and on a
// busy machine a few update intervals and a round trip were too little. A
// packet from the client after the close would open a new session on the
// listener, another reason to wait.
func (s session) Linger() time.Duration {
	return min(flushMax, linger+4*time.Duration(s.GetSRTT())*time.Millisecond)
}

// linger is a session's wait for its client to take its last frames, plus
// four round trips, up to flushMax.
const (
	linger   = 250 * time.Millisecond
	flushMax = time.Second
)

// listenError is a listener that could not be opened. Its message names
// the listener and the address once, as package gate's listeners do
// ("gate: kcp listener: 127.0.0.1:7001 is in use"); it wraps the cause.
type listenError struct {
	addr string
	err  error
}

func (e *listenError) Error() string {
	if errors.Is(e.err, syscall.EADDRINUSE) {
		return fmt.Sprintf("gate: kcp listener: %s is in use", e.addr)
	}
	cause := e.err
	var op *net.OpError
	if errors.As(cause, &op) && op.Err != nil {
		cause = op.Err
	}
	return fmt.Sprintf("gate: kcp listener on %s: %v", e.addr, cause)
}

func (e *listenError) Unwrap() error { return e.err }
