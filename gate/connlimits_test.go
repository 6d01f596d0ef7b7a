package gate_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/gate/gatepb"
	gatews "github.com/guildkit/guild/gate/websocket"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/wire"
)

// hostileIP is the source address of the hostile clients of these tests;
// the good ones connect from 127.0.0.1, another source. Tests of the
// per-source limits set Limits.LimitLoopback: loopback is exempt by
// default.
const hostileIP = "127.0.0.2"

// rawDialFrom is rawDial from the address ip.
func rawDialFrom(t testing.TB, addr, ip string) *rawConn {
	t.Helper()
	nc := dialFrom(t, addr, ip)
	return &rawConn{t: t, nc: nc, fr: wire.NewFrameReader(nc, 16*gatepb.DefaultMaxFrame)}
}

// dialFrom opens a TCP connection to addr from the address ip, closed
// when the test ends.
func dialFrom(t testing.TB, addr, ip string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: waitTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return nc
}

// closeReason reads frames until a Close frame and returns it, with the
// end of the connection after it.
func (r *rawConn) closeReason(code rpc.Code, want string) {
	r.t.Helper()
	cl := r.wantClose(code)
	if !strings.Contains(cl.GetReason(), want) {
		r.t.Fatalf("Close %v %q, want a reason with %q", rpc.Code(cl.GetCode()), cl.GetReason(), want)
	}
}

// goodClient dials the gateway with the SDK from 127.0.0.1 and checks
// that it works.
func goodClient(t *testing.T, url string) *client.Client {
	t.Helper()
	c := dial(t, client.Config{Addr: url})
	mustCall(t, c, "chat.Echo", "hi", "echo:hi")
	return c
}

// TestSourceConnectionCap: one address holds at most PerSourceConns
// connections; the next is refused before its handshake with Close{8},
// while another address connects; a slot freed is taken again.
func TestSourceConnectionCap(t *testing.T) {
	f := startOneNode(t, gate.Config{Public: []string{"chat.Echo"}, Limits: gate.Limits{PerSourceConns: 2, LimitLoopback: true}})
	var held []*rawConn
	for range 2 {
		r := rawDialFrom(t, f.addr, hostileIP)
		r.handshake()
		held = append(held, r)
	}
	r := rawDialFrom(t, f.addr, hostileIP)
	r.closeReason(rpc.ResourceExhausted, "too many connections from your address (limit 2)")
	good := goodClient(t, f.url)
	_ = held[0].nc.Close()
	await.True(t, waitTimeout, "a freed slot to be taken again", func() bool {
		r := rawDialFrom(t, f.addr, hostileIP)
		r.send(handshakeFrame(""))
		f, err := r.next()
		_ = r.nc.Close()
		return err == nil && f.GetHandshakeAck() != nil
	})
	mustCall(t, good, "chat.Echo", "still", "echo:still")
}

// TestSourceConnectionRate: one address opens at most ConnBurst
// connections at once, then ConnRate a second; beyond, Close{8} before the
// handshake, while another address connects.
func TestSourceConnectionRate(t *testing.T) {
	f := startOneNode(t, gate.Config{Public: []string{"chat.Echo"}, Limits: gate.Limits{ConnRate: 0.1, ConnBurst: 3, LimitLoopback: true}})
	for range 3 {
		r := rawDialFrom(t, f.addr, hostileIP)
		r.handshake()
		_ = r.nc.Close()
	}
	r := rawDialFrom(t, f.addr, hostileIP)
	r.closeReason(rpc.ResourceExhausted, "your address opens connections too fast (limit 0.1 per second, bursts of 3)")
	goodClient(t, f.url)
}

// TestRefusalsGoQuiet: a source whose connections keep being refused is
// told why for the first 8 of them in a second (a Close frame with the
// reason), and the rest are closed without a word (no bytes, no linger):
// a connection flood from one address costs an accept and a close each.
func TestRefusalsGoQuiet(t *testing.T) {
	f := startOneNode(t, gate.Config{Public: []string{"chat.Echo"}, Limits: gate.Limits{ConnRate: 1e-6, ConnBurst: 1, LimitLoopback: true}})
	r := rawDialFrom(t, f.addr, hostileIP)
	r.handshake()
	start := time.Now()
	told, silent := 0, 0
	for range 20 {
		nc := dialFrom(t, f.addr, hostileIP)
		_ = nc.SetReadDeadline(time.Now().Add(waitTimeout))
		b, _ := io.ReadAll(nc) // to the end: the gateway closes it either way
		if len(b) == 0 {
			silent++
		} else if bytes.Contains(b, []byte("your address opens connections too fast")) {
			told++
		} else {
			t.Fatalf("a refused connection got %q", b)
		}
	}
	if time.Since(start) < time.Second && (told != 8 || silent != 12) {
		t.Errorf("%d refused connections told why, %d closed silently; want 8 and 12", told, silent)
	}
	if told < 8 || told+silent != 20 {
		t.Errorf("%d refused connections told why, %d closed silently, of 20", told, silent)
	}
	goodClient(t, f.url)
}

// TestWebSocketSourceLimits: on the gateway's HTTP server a connection
// counts toward its source's limit from its accept, before any request:
// one more is answered 429 with the reason; another address upgrades.
func TestWebSocketSourceLimits(t *testing.T) {
	f := startOneNode(t, gate.Config{Public: []string{"chat.Echo"}, Limits: gate.Limits{PerSourceConns: 1, LimitLoopback: true}})
	ws, err := gatews.Listen(f.g, "127.0.0.1:0", "/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	dialFrom(t, ws.String(), hostileIP) // sends nothing: holds its slot
	nc := dialFrom(t, ws.String(), hostileIP)
	_ = nc.SetDeadline(time.Now().Add(waitTimeout))
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), "too many connections from your address (limit 1)") {
		t.Fatalf("got %s %q, want 429 with the reason", resp.Status, body)
	}
	goodClient(t, "ws://"+ws.String()+"/ws")
}

// TestHTTPUnfinishedHeaders: 200 connections each sending 1 MB of an
// unfinished request header (the attack that took 1,000 of them to 4.2 GB
// with Go's 1 MB default) cost the gateway a few KiB each: each is cut
// at MaxHeaderBytes (431) and the heap grows by less than 64 KiB per
// connection.
func TestHTTPUnfinishedHeaders(t *testing.T) {
	f := startOneNode(t, gate.Config{Public: []string{"chat.Echo"}, Limits: gate.Limits{PerSourceConns: -1, ConnRate: -1, MaxConns: 1000}})
	ws, err := gatews.Listen(f.g, "127.0.0.1:0", "/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	const conns = 200
	const perConnBudget = 64 << 10
	pad := append([]byte("GET /ws HTTP/1.1\r\nHost: x\r\nX-Pad: "), make([]byte, 1<<20)...)
	for i := 35; i < len(pad); i++ {
		pad[i] = 'a'
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	rssBefore := rss()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var peakHeap uint64
	var cut int
	for range conns {
		nc := dialFrom(t, ws.String(), hostileIP)
		wg.Go(func() {
			_ = nc.SetDeadline(time.Now().Add(waitTimeout))
			_, werr := nc.Write(pad)
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			resp, rerr := http.ReadResponse(bufio.NewReader(nc), nil)
			mu.Lock()
			defer mu.Unlock()
			peakHeap = max(peakHeap, m.HeapInuse)
			if werr != nil || rerr == nil && resp.StatusCode == http.StatusRequestHeaderFieldsTooLarge {
				cut++
			}
		})
	}
	wg.Wait()
	grown := int64(peakHeap) - int64(before.HeapInuse)
	t.Logf("%d connections × 1 MB unfinished header: heap in use grew by at most %d KiB (%d B per connection), RSS %d → %d KiB; %d cut",
		conns, grown>>10, grown/conns, rssBefore>>10, rss()>>10, cut)
	if grown > conns*perConnBudget {
		t.Errorf("heap in use grew by %d KiB, want less than %d KiB", grown>>10, conns*perConnBudget>>10)
	}
	if cut != conns {
		t.Errorf("%d of %d connections were cut at the header limit", cut, conns)
	}
	goodClient(t, "ws://"+ws.String()+"/ws")
}

// rss returns the process's resident set, in bytes, or 0 where /proc is
// not there.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// TestHTTPSlowHeadersHoldSlots: connections that never finish their
// header count toward MaxConns (a WebSocket client is refused, 503, while
// they hold every slot) and are closed after HandshakeTimeout; then the
// client connects.
func TestHTTPSlowHeadersHoldSlots(t *testing.T) {
	const hs = 2 * time.Second
	f := startOneNode(t, gate.Config{Public: []string{"chat.Echo"}, Limits: gate.Limits{MaxConns: 5, HandshakeTimeout: hs}})
	ws, err := gatews.Listen(f.g, "127.0.0.1:0", "/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var slow []net.Conn
	for range 5 {
		nc := dialFrom(t, ws.String(), hostileIP)
		if _, err := nc.Write([]byte("GET /ws HTTP/1.1\r\nHost: x\r\n")); err != nil {
			t.Fatal(err)
		}
		slow = append(slow, nc)
	}
	url := "ws://" + ws.String() + "/ws"
	// The accept of the last one may not be counted yet: a sixth
	// connection, from the good address, must see them all.
	await.True(t, waitTimeout, "a connection to be refused while the slow ones hold every slot", func() bool {
		nc, err := net.DialTimeout("tcp", ws.String(), waitTimeout)
		if err != nil {
			return false
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(waitTimeout))
		resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
		return err == nil && resp.StatusCode == http.StatusServiceUnavailable
	})
	for _, nc := range slow {
		_ = nc.SetReadDeadline(time.Now().Add(waitTimeout))
		if _, err := io.Copy(io.Discard, nc); err != nil {
			t.Fatalf("a slow header was not closed: %v", err)
		}
	}
	if d := time.Since(start); d < hs {
		t.Fatalf("the slow headers were closed after %v, before the header timeout %v", d, hs)
	}
	goodClient(t, url)
}

// TestHTTPIdleKeepAlive: an HTTP keep-alive connection idle past
// HTTPIdleTimeout is closed.
func TestHTTPIdleKeepAlive(t *testing.T) {
	const idle = 300 * time.Millisecond
	f := startOneNode(t, gate.Config{Limits: gate.Limits{HTTPIdleTimeout: idle}})
	ws, err := gatews.Listen(f.g, "127.0.0.1:0", "/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	nc := dialFrom(t, ws.String(), "127.0.0.1")
	if _, err := nc.Write([]byte("GET /page HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(waitTimeout))
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	answered := time.Now()
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("an idle keep-alive connection: %v, want it closed", err)
	}
	if d := time.Since(answered); d < idle*2/3 {
		t.Fatalf("closed %v after the response, before the idle timeout %v", d, idle)
	}
}

// TestLoginTimeout: a session not logged in within LoginTimeout is closed
// with Close{16}; public routes work until then, and a session that logs
// in stays.
func TestLoginTimeout(t *testing.T) {
	f := startOneNode(t, gate.Config{Public: []string{"chat.Echo", "chat.Login"}, Limits: gate.Limits{LoginTimeout: time.Second}})
	anon := rawDialFrom(t, f.addr, hostileIP)
	anon.handshake()
	user := rawDial(t, f.addr)
	user.handshake()
	user.send(requestFrame(1, "chat.Login", "bob"))
	if r := user.mustNext().GetResponse(); r.GetCode() != 0 {
		t.Fatalf("login: %v", r)
	}
	anon.send(requestFrame(1, "chat.Echo", "x"))
	if r := anon.mustNext().GetResponse(); r.GetCode() != 0 {
		t.Fatalf("a public route before the deadline: %v", r)
	}
	anon.closeReason(rpc.Unauthenticated, "not logged in within 1s")
	user.send(requestFrame(2, "chat.Whoami", ""))
	if r := user.mustNext().GetResponse(); r.GetCode() != 0 {
		t.Fatalf("the logged-in session after the deadline: %v", r)
	}
}

// floodReconnecting connects again and again for d with handshake token
// from ip, sending bursts of requests to route, and returns the requests
// answered OK and the connections made.
func floodReconnecting(t *testing.T, addr, ip, token, route string, d time.Duration) (ok, conns int) {
	t.Helper()
	const burst = 30
	var frames []byte
	for i := range burst {
		var err error
		if frames, err = gatepb.AppendStream(frames, requestFrame(uint64(i+1), route, "x")); err != nil {
			t.Fatal(err)
		}
	}
	for end := time.Now().Add(d); time.Now().Before(end); {
		r := rawDialFrom(t, addr, ip)
		r.send(handshakeFrame(token))
		if ack := r.mustNext().GetHandshakeAck(); ack.GetCode() != 0 {
			t.Fatalf("handshake: %v", ack)
		}
		conns++
		r.write(frames)
		for range burst {
			if resp := r.mustNext().GetResponse(); resp.GetCode() == 0 {
				ok++
			}
		}
		r.send(&gatepb.Frame{Body: &gatepb.Frame_Close{Close: &gatepb.Close{}}})
		r.wantEnd()
		_ = r.nc.Close()
	}
	return ok, conns
}

// TestRateLimitKeptAcrossReconnects: a user who reconnects after every
// burst gets no more than Rate overall (their bucket is kept by user ID),
// and so do the sessions of one address before login (SourceRate); a good
// client from another address is not held back.
func TestRateLimitKeptAcrossReconnects(t *testing.T) {
	const d = 1500 * time.Millisecond
	f := startOneNode(t, gate.Config{
		Public: []string{"chat.Echo"},
		Auth:   func(_ context.Context, token string) (string, error) { return token, nil },
		Limits: gate.Limits{Rate: 20, Burst: 10, SourceRate: 20, SourceBurst: 10, ConnRate: -1, LimitLoopback: true},
	})
	good := goodClient(t, f.url)
	start := time.Now()
	ok, conns := floodReconnecting(t, f.addr, hostileIP, "carol", "chat.Whoami", d)
	bound := 10 + int(20*time.Since(start).Seconds()) + 2
	t.Logf("a user reconnecting: %d accepted in %v over %d connections (bound %d)", ok, time.Since(start).Round(time.Millisecond), conns, bound)
	if ok > bound || conns < 3 {
		t.Errorf("a user reconnecting: %d requests accepted over %d connections, want at most %d over more than 2", ok, conns, bound)
	}
	mustCall(t, good, "chat.Echo", "a", "echo:a")
	start = time.Now()
	ok, conns = floodReconnecting(t, f.addr, hostileIP, "", "chat.Echo", d)
	bound = 10 + int(20*time.Since(start).Seconds()) + 2
	t.Logf("an address reconnecting before login: %d accepted in %v over %d connections (bound %d)", ok, time.Since(start).Round(time.Millisecond), conns, bound)
	if ok > bound || conns < 3 {
		t.Errorf("an address reconnecting before login: %d requests accepted over %d connections, want at most %d over more than 2", ok, conns, bound)
	}
	mustCall(t, good, "chat.Echo", "b", "echo:b")
}

// TestRefusalsCloseTheSession: heartbeats have their own bucket (a flood
// of them is mostly unanswered), requests over the rate get a short
// refusal, and a session refused more than MaxRefused times is closed with
// Close{8}; a good client beside keeps working.
func TestRefusalsCloseTheSession(t *testing.T) {
	f := startOneNode(t, gate.Config{Public: []string{"chat.Echo"}, Limits: gate.Limits{Rate: 5, Burst: 5, MaxRefused: 20}})
	good := goodClient(t, f.url)

	beats := rawDialFrom(t, f.addr, hostileIP)
	beats.handshake()
	var b []byte
	for range 50 {
		b, _ = gatepb.AppendStream(b, &gatepb.Frame{Body: &gatepb.Frame_Heartbeat{Heartbeat: &gatepb.Heartbeat{}}})
	}
	beats.write(b)
	echoes := 0
	for {
		fr := beats.mustNext()
		if fr.GetHeartbeat() != nil {
			echoes++
			continue
		}
		if cl := fr.GetClose(); cl == nil || rpc.Code(cl.GetCode()) != rpc.ResourceExhausted || !strings.Contains(cl.GetReason(), "too many requests refused by the rate limit (more than 20 within 10s)") {
			t.Fatalf("after %d heartbeat echoes: %v, want Close{8} for too many refusals", echoes, fr)
		}
		break
	}
	if echoes > 11 {
		t.Errorf("50 heartbeats at once: %d echoed, want at most 11", echoes)
	}

	reqs := rawDialFrom(t, f.addr, hostileIP)
	reqs.handshake()
	b = nil
	for i := range 40 {
		b, _ = gatepb.AppendStream(b, requestFrame(uint64(i+1), "chat.Echo", "x"))
	}
	reqs.write(b)
	answered, refused := 0, 0
	for {
		fr := reqs.mustNext()
		if r := fr.GetResponse(); r != nil {
			switch {
			case r.GetCode() == 0:
				answered++
			case r.GetCode() == uint32(rpc.ResourceExhausted) && r.GetMessage() == "rate limited: 5 requests per second, bursts of 5":
				refused++
			default:
				t.Fatalf("a response %v", r)
			}
			continue
		}
		if cl := fr.GetClose(); cl == nil || rpc.Code(cl.GetCode()) != rpc.ResourceExhausted {
			t.Fatalf("after %d answers and %d refusals: %v, want Close{8}", answered, refused, fr)
		}
		break
	}
	if answered > 6 || refused != 21 {
		t.Errorf("40 requests at once: %d answered, %d refused before the Close, want at most 6 and 21", answered, refused)
	}
	mustCall(t, good, "chat.Echo", "fine", "echo:fine")
}

// TestCloseReasonsOfFrames: a frame too large before the handshake gets
// Close{8}; a frame begun and not finished within the read deadline gets
// a reason that says so, not "nothing received".
func TestCloseReasonsOfFrames(t *testing.T) {
	f := startOneNode(t, gate.Config{Public: []string{"chat.Echo"}, Limits: gate.Limits{Heartbeat: 300 * time.Millisecond}})
	big := rawDialFrom(t, f.addr, hostileIP)
	big.write(binary.BigEndian.AppendUint32(nil, 1<<20))
	big.closeReason(rpc.ResourceExhausted, fmt.Sprintf("frame too large (limit %d bytes)", gatepb.DefaultMaxFrame))

	slow := rawDialFrom(t, f.addr, hostileIP)
	slow.handshake()
	slow.write(append(binary.BigEndian.AppendUint32(nil, 100), 1, 2, 3))
	slow.closeReason(rpc.DeadlineExceeded, "a frame did not arrive whole in time (7 of 104 bytes): a frame must arrive whole within the read deadline, 900ms")
}

// TestSourceLimitEveryListener: a source over its connection limit is
// refused before its handshake on every stream listener, each in its own
// terms: Close{8} on TCP and KCP, CONNACK 0x97 (Quota exceeded) on MQTT.
func TestSourceLimitEveryListener(t *testing.T) {
	env := startEndEnv(t, gate.Limits{PerSourceConns: 1, LimitLoopback: true})
	dialFramed(t, env, "tcp", "first")
	env.session(t, "first")
	const reason = "too many connections from your address (limit 1)"
	for kind, code := range map[string]int{"tcp": int(rpc.ResourceExhausted), "kcp": int(rpc.ResourceExhausted), "mqtt": 0x97} {
		got := connectEnd(t, env, kind, true, "u:late")
		if got.code != code || !strings.Contains(got.reason, reason) {
			t.Errorf("%s: got %v, want code %d with %q", kind, got, code, reason)
		}
	}
}

// BenchmarkRefusedRequest: the gateway's cost of a request refused by the
// rate limit, end to end on one connection (requests pipelined in batches
// of 100), against BenchmarkAcceptedRequest's the same way.
func BenchmarkRefusedRequest(b *testing.B) {
	benchRequests(b, gate.Limits{Rate: 1e-9, Burst: 1, MaxRefused: -1}, rpc.ResourceExhausted)
}

// BenchmarkAcceptedRequest: see BenchmarkRefusedRequest.
func BenchmarkAcceptedRequest(b *testing.B) {
	benchRequests(b, gate.Limits{Rate: 1e9, Burst: 1 << 30}, rpc.OK)
}

func benchRequests(b *testing.B, lim gate.Limits, want rpc.Code) {
	f := startOneNode(b, gate.Config{Public: []string{"chat.Echo"}, Limits: lim})
	r := rawDial(b, f.addr)
	r.handshake()
	if want != rpc.OK { // spend the burst
		r.send(requestFrame(1, "chat.Echo", "x"))
		r.mustNext()
	}
	var batch []byte
	for i := range 100 {
		batch, _ = gatepb.AppendStream(batch, requestFrame(uint64(i+2), "chat.Echo", "x"))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n += 100 {
		r.write(batch)
		for range 100 {
			if c := rpc.Code(r.mustNext().GetResponse().GetCode()); c != want {
				b.Fatalf("code %v, want %v", c, want)
			}
		}
	}
}

// TestWebSocketHandlerOwnServer: the WebSocket handler mounted on a server
// of the caller's own checks its source's limits at the request: over
// them, 429 with the reason, before the upgrade.
func TestWebSocketHandlerOwnServer(t *testing.T) {
	f := startOneNode(t, gate.Config{Public: []string{"chat.Echo"}, Limits: gate.Limits{PerSourceConns: 1, LimitLoopback: true}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", gatews.Handler(f.g))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: waitTimeout}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		<-served
	})
	url := "ws://" + ln.Addr().String() + "/ws"
	goodClient(t, url)
	_, resp, err := websocket.Dial(testCtx(t), url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a second WebSocket from the address: %v, %v; want 429", resp, err)
	}
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "too many connections from your address (limit 1)") {
		t.Fatalf("429 %q, want the reason", body)
	}
}

// TestWebSocketFailedUpgradeKeepsCount: a connection whose upgrade
// request fails (not a WebSocket handshake) still counts toward its
// source's limit on the gateway's HTTP server: its next request, a real
// upgrade, does not escape it.
func TestWebSocketFailedUpgradeKeepsCount(t *testing.T) {
	f := startOneNode(t, gate.Config{Public: []string{"chat.Echo"}, Limits: gate.Limits{PerSourceConns: 1, LimitLoopback: true}})
	ws, err := gatews.Listen(f.g, "127.0.0.1:0", "/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	nc := dialFrom(t, ws.String(), hostileIP)
	_ = nc.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := nc.Write([]byte("GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		t.Fatal("a plain GET was upgraded")
	}
	// The first connection, alive (keep-alive), still holds the slot.
	nc2 := dialFrom(t, ws.String(), hostileIP)
	_ = nc2.SetDeadline(time.Now().Add(waitTimeout))
	resp, err = http.ReadResponse(bufio.NewReader(nc2), nil)
	if err != nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a second connection from the address: %v %v, want 429", resp, err)
	}
}
