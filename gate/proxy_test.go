package gate_test

import (
	"bufio"
	"github.com/guildkit/guild/rpc"
	"github.com/pires/go-proxyproto"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/gate/gatepb"
	gatews "github.com/guildkit/guild/gate/websocket"
	"github.com/guildkit/guild/internal/await"
)

// TestTrustedProxyForwardedFor: behind a trusted proxy (hostileIP here),
// each WebSocket is counted against the client that X-Forwarded-For names
// (PerSourceConns 1 each), and the session's remote address is the
// client's. From any other address X-Forwarded-For is ignored: the
// connection counts against its own address, whatever it claims.
func TestTrustedProxyForwardedFor(t *testing.T) {
	f, remotes := startBehindProxy(t)
	addr, err := gatews.Listen(f.g, "127.0.0.1:0", "/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	url := "ws://" + addr.String() + "/ws"
	dial := func(from, forwardedFor string) (*websocket.Conn, int) {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		opts := &websocket.DialOptions{
			HTTPClient: &http.Client{Transport: &http.Transport{DialContext: d.DialContext}},
			HTTPHeader: http.Header{},
		}
		if forwardedFor != "" {
			opts.HTTPHeader.Set("X-Forwarded-For", forwardedFor)
		}
		ws, resp, err := websocket.Dial(testCtx(t), url, opts)
		if err != nil {
			if resp == nil {
				t.Fatalf("dial from %s: %v", from, err)
			}
			return nil, resp.StatusCode
		}
		t.Cleanup(func() { _ = ws.CloseNow() })
		return ws, http.StatusSwitchingProtocols
	}
	open := func(ws *websocket.Conn) {
		t.Helper()
		b, err := gatepb.Encode(handshakeFrame(""))
		if err != nil {
			t.Fatal(err)
		}
		if err := ws.Write(testCtx(t), websocket.MessageBinary, b); err != nil {
			t.Fatal(err)
		}
	}

	// Through the proxy: one connection per client.
	a, code := dial(hostileIP, "203.0.113.5")
	if a == nil {
		t.Fatalf("client A through the proxy: HTTP %d, want an upgrade", code)
	}
	if _, code := dial(hostileIP, "198.51.100.1, 203.0.113.5"); code != http.StatusTooManyRequests {
		t.Errorf("a second connection of client A (the rightmost address) through the proxy: HTTP %d, want 429", code)
	}
	if b, code := dial(hostileIP, "203.0.113.6"); b == nil {
		t.Errorf("client B through the proxy: HTTP %d, want an upgrade (its own limit)", code)
	}
	if c, code := dial(hostileIP, "203.0.113.7, "+hostileIP); c == nil {
		t.Errorf("client C through two trusted hops: HTTP %d, want an upgrade", code)
	}
	open(a)
	await.True(t, waitTimeout, "client A's session to open with its own address", func() bool {
		return remotes.any(func(r string) bool { return r == "203.0.113.5" })
	})

	// Not through a trusted proxy: X-Forwarded-For is ignored.
	const direct = "127.0.0.3"
	d, code := dial(direct, "203.0.113.5") // A is full: a lie would be refused
	if d == nil {
		t.Fatalf("a direct client claiming to be A: HTTP %d, want an upgrade (counted as itself)", code)
	}
	// A second one is refused at its accept, before any request (so read
	// raw: Go's HTTP client drops an answer that comes before its request).
	nc := dialFrom(t, addr.String(), direct)
	_ = nc.SetDeadline(time.Now().Add(waitTimeout))
	if resp, err := http.ReadResponse(bufio.NewReader(nc), nil); err != nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("a second direct connection from %s: %v, %v; want 429 (counted as itself)", direct, resp, err)
	}
	open(d)
	await.True(t, waitTimeout, "the direct session to open with its real address", func() bool {
		return remotes.any(func(r string) bool {
			host, _, _ := net.SplitHostPort(r)
			return host == direct
		})
	})
}

// TestProxyProtocolTCP: behind a trusted proxy (hostileIP), a framed TCP
// connection that starts with a PROXY header (v1 or v2) is counted as the
// client the header names, PerSourceConns 1 each, and its session's remote
// address is the client's; the proxy's own connection without a header
// keeps the proxy's address. A PROXY header from any other address is not
// read: it is bytes the framed protocol refuses.
func TestProxyProtocolTCP(t *testing.T) {
	f, remotes := startBehindProxy(t)
	gw, err := net.ResolveTCPAddr("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	viaProxy := func(version byte, client string) *rawConn {
		t.Helper()
		r := rawDialFrom(t, f.addr, hostileIP)
		src := net.TCPAddrFromAddrPort(netip.MustParseAddrPort(client))
		if _, err := proxyproto.HeaderProxyFromAddrs(version, src, gw).WriteTo(r.nc); err != nil {
			t.Fatal(err)
		}
		return r
	}
	viaProxy(1, "203.0.113.5:5555").handshake()
	viaProxy(2, "203.0.113.6:6666").handshake()
	viaProxy(2, "203.0.113.5:5556").closeReason(rpc.ResourceExhausted, "too many connections from your address (limit 1)")
	rawDialFrom(t, f.addr, hostileIP).handshake() // the proxy itself: exempt
	await.True(t, waitTimeout, "the sessions to open with the clients' addresses", func() bool {
		return remotes.any(func(r string) bool { return r == "203.0.113.5:5555" }) &&
			remotes.any(func(r string) bool { return r == "203.0.113.6:6666" })
	})

	// Not a trusted proxy: the header is not read, and is no frame.
	r := rawDialFrom(t, f.addr, "127.0.0.3")
	src := net.TCPAddrFromAddrPort(netip.MustParseAddrPort("203.0.113.7:7777"))
	hdr, err := proxyproto.HeaderProxyFromAddrs(1, src, gw).Format()
	if err != nil {
		t.Fatal(err)
	}
	// Header and handshake in one write: the gateway may close the
	// connection as soon as it has read the header's first bytes.
	b, err := gatepb.AppendStream(hdr, handshakeFrame(""))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = r.nc.Write(b)
	_ = r.nc.SetReadDeadline(time.Now().Add(waitTimeout))
	if fr, err := r.next(); err == nil && fr.GetClose() == nil {
		t.Fatalf("a PROXY header from an untrusted address: got %v, want a Close frame", fr)
	}
	if remotes.any(func(r string) bool { return strings.HasPrefix(r, "203.0.113.7:") || strings.HasPrefix(r, "127.0.0.3:") }) {
		t.Fatal("a connection from an untrusted address that sent a PROXY header has a session")
	}
}

// sessionRemotes records the remote address (SessionInfo.Remote) of
// every session that opens.
type sessionRemotes struct {
	mu   sync.Mutex
	seen []string
}

func (r *sessionRemotes) onOpen(si *gate.SessionInfo) {
	r.mu.Lock()
	r.seen = append(r.seen, si.Remote)
	r.mu.Unlock()
}

// any reports whether a session opened with a remote address that match
// accepts.
func (r *sessionRemotes) any(match func(remote string) bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.ContainsFunc(r.seen, match)
}

// startBehindProxy starts a gateway that trusts hostileIP as its reverse
// proxy and allows one connection per source, recording its sessions'
// remote addresses.
func startBehindProxy(t *testing.T) (*oneNodeGate, *sessionRemotes) {
	t.Helper()
	remotes := &sessionRemotes{}
	lim := gate.Limits{PerSourceConns: 1, LimitLoopback: true, TrustedProxies: []netip.Prefix{netip.MustParsePrefix(hostileIP + "/32")}}
	return startOneNode(t, gate.Config{Public: []string{"chat.Echo"}, OnOpen: remotes.onOpen, Limits: lim}), remotes
}
