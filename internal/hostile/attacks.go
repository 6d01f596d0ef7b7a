package hostile

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/gate/gatepb"
	"github.com/guildkit/guild/rpc"
)

// Report is what an attack did.
type Report struct {
	// Ops counts the attack's operations, in Unit.
	Ops  int64
	Unit string
	// Held counts the attacker's connections still open when the attack
	// ended (for attacks that hold connections).
	Held int64
	// Answered counts the frames the gateway sent back, and Sessions the
	// sessions the attacker opened (the floods).
	Answered, Sessions int64
	// Refused counts the attacker's requests refused with
	// ResourceExhausted by a budget of the game (chat-flood), or its
	// connections refused by a per-source limit (cross-origin: HTTP 429).
	Refused int64
	// Unread sums the bytes the gateway had sent to the clients still
	// held at the end that they never read (in their kernel receive
	// queue; non-reading, on Linux).
	Unread int64
	// CPU is the CPU time the attacker's own goroutines took, where it is
	// measured (oversized-frames, the floods and reconnect-reset, on
	// Linux): the gateway
	// runs in the same process, on the same cores.
	CPU time.Duration
	// Violations lists what the gateway or the game let through that it
	// should have refused (a hostile name accepted, a cross-origin
	// WebSocket upgraded).
	Violations []string
}

// Attack is one kind of misbehaviour.
type Attack struct {
	// Name names the attack in test names and figures.
	Name string
	// Problem is the item of issue 19 it reproduces.
	Problem int
	// What says what the attacker does.
	What string
	// Short and Full size the attack (connections or workers) in the
	// short run of go test and in the full run.
	Short, Full int
	// Run attacks t with size n until ctx ends.
	Run func(ctx context.Context, t Target, n int) Report
}

// Attacks returns every attack of the suite.
func Attacks() []Attack {
	return []Attack{
		{"garbage-bytes", 0, "connect, send 4 KiB of random bytes, wait for the close; 50 connections/s a worker", 4, 20, GarbageBytes},
		{"oversized-frames", 10, "frames whose length prefix is far over MaxFrame, before and after the handshake; 50 connections/s a worker", 4, 20, OversizedFrames},
		{"slowloris-headers", 2, "HTTP requests whose headers grow by 16 KiB every 50 ms up to 1 MiB and never end", 40, 1000, SlowlorisHeaders},
		{"idle-keepalive", 3, "HTTP keep-alive connections that make one request and then idle", 200, 5000, IdleKeepAlive},
		{"join-flood", 4, "anonymous clients that join the game and stay", 200, 2000, JoinFlood},
		{"reconnect-reset", 5, "reconnect after every burst of 120 requests, to start each with a full rate limit; 100 sessions/s a worker", 4, 20, ReconnectReset},
		{"idle-sessions", 6, "sessions that heartbeat but never log in, holding gateway slots", 300, 9950, IdleSessions},
		{"heartbeat-flood", 7, "heartbeats in batches of 256, 25 600/s a session", 4, 20, HeartbeatFlood},
		{"refused-flood", 7, "requests the gateway refuses, in batches of 256, 25 600/s a session", 4, 20, RefusedFlood},
		{"non-reading", 8, "clients that join and then never read", 100, 2000, NonReading},
		{"chat-flood", 1, "joined sessions each chatting at 45 lines/s, just under the rate limit", 20, 20, ChatFlood},
		{"hostile-input", 9, "names and chat lines with control characters, ANSI escapes, bidi overrides, invisible characters and other players' names", 2, 4, HostileInput},
		{"cross-origin", 9, "WebSocket upgrades from another site's page", 2, 4, CrossOrigin},
	}
}

// pace returns a function that waits until every has passed since its
// last return, or ctx ends (false then): an attacker's worker makes at
// most one operation per period, so that a test on a small machine
// measures what the attack costs the gateway rather than the attacker's
// own CPU.
func pace(ctx context.Context, every time.Duration) func() bool {
	t := time.NewTicker(every)
	return func() bool {
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
			return true
		}
	}
}

// workers runs fn on n goroutines and waits for them.
func workers(n int, fn func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(i)
		}()
	}
	wg.Wait()
}

// GarbageBytes: n workers connect, send 4 KiB of random bytes, wait for
// the gateway to close, and repeat.
func GarbageBytes(ctx context.Context, t Target, n int) Report {
	var ops atomic.Int64
	workers(n, func(int) {
		buf := make([]byte, 4096)
		for next := pace(ctx, 20*time.Millisecond); next(); {
			r, err := dialRaw(ctx, t)
			if err != nil {
				continue
			}
			for i := range buf {
				buf[i] = byte(rand.Uint32())
			}
			_ = r.write(buf)
			r.untilClosed(2 * time.Second)
			r.close()
			ops.Add(1)
		}
	})
	return Report{Ops: ops.Load(), Unit: "connections"}
}

// OversizedFrames: n workers send a frame whose length prefix claims 2
// GiB before the handshake, or 1 MiB after it, then wait for the close.
func OversizedFrames(ctx context.Context, t Target, n int) Report {
	var ops, cpu atomic.Int64
	workers(n, func(w int) {
		cpu.Add(int64(threadCPU(func() {
			next := pace(ctx, 20*time.Millisecond)
			for i := 0; next(); i++ {
				r, err := dialRaw(ctx, t)
				if err != nil {
					continue
				}
				size := uint32(1 << 31)
				if (w+i)%2 == 1 {
					if r.handshake() != nil {
						r.close()
						continue
					}
					size = 1 << 20
				}
				b := binary.BigEndian.AppendUint32(nil, size)
				_ = r.write(append(b, make([]byte, 8192)...))
				r.untilClosed(2 * time.Second)
				r.close()
				ops.Add(1)
			}
		})))
	})
	return Report{Ops: ops.Load(), Unit: "connections", CPU: time.Duration(cpu.Load())}
}

// PreHandshakeOversize sends one frame over MaxFrame before the handshake
// and returns the Close frame the gateway answers with (nil: it closed
// without one).
func PreHandshakeOversize(ctx context.Context, t Target) (*gatepb.Close, error) {
	r, err := dialRaw(ctx, t)
	if err != nil {
		return nil, err
	}
	defer r.close()
	if err := r.write(binary.BigEndian.AppendUint32(nil, 1<<31)); err != nil {
		return nil, err
	}
	return r.untilClosed(10 * time.Second), nil
}

// SlowlorisHeaders: n connections to the HTTP server each send a request
// whose header grows by 16 KiB every 50 ms, up to 1 MiB, and never ends
// it. Held is how many the server had not closed when the attack ended.
func SlowlorisHeaders(ctx context.Context, t Target, n int) Report {
	var sent, held atomic.Int64
	workers(n, func(int) {
		nc, err := t.dialer().DialContext(ctx, "tcp", t.HTTP)
		if err != nil {
			return
		}
		defer nc.Close()
		closed := make(chan struct{})
		go func() { // the server's answer or its close
			_, _ = nc.Read(make([]byte, 1))
			close(closed)
		}()
		_, _ = fmt.Fprintf(nc, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nX-Pad: ", t.WSPath, t.HTTP)
		chunk := []byte(strings.Repeat("a", 16<<10))
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for total := 0; ; {
			select {
			case <-ctx.Done():
				held.Add(1)
				return
			case <-closed:
				return
			case <-tick.C:
			}
			if total < 1<<20 {
				_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
				if _, err := nc.Write(chunk); err != nil {
					return
				}
				total += len(chunk)
				sent.Add(int64(len(chunk)))
			}
		}
	})
	return Report{Ops: sent.Load() >> 10, Unit: "KiB of headers", Held: held.Load()}
}

// IdleKeepAlive: n connections to the HTTP server each make one request
// (the page) and then keep the connection idle. Held is how many the
// server had not closed when the attack ended.
func IdleKeepAlive(ctx context.Context, t Target, n int) Report {
	var ops, held atomic.Int64
	workers(n, func(int) {
		nc, err := t.dialer().DialContext(ctx, "tcp", t.HTTP)
		if err != nil {
			return
		}
		defer nc.Close()
		_, _ = fmt.Fprintf(nc, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", t.HTTP)
		_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(nc)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return
		}
		_, _ = br.Discard(int(max(resp.ContentLength, 0)))
		resp.Body.Close()
		ops.Add(1)
		closed := make(chan struct{})
		go func() {
			_ = nc.SetReadDeadline(time.Time{})
			_, _ = br.ReadByte()
			close(closed)
		}()
		select {
		case <-ctx.Done():
			held.Add(1)
		case <-closed:
		}
	})
	return Report{Ops: ops.Load(), Unit: "requests", Held: held.Load()}
}

// JoinFlood: n anonymous clients join the game, 20 at a time, and stay
// until the attack ends. Held is how many joined.
func JoinFlood(ctx context.Context, t Target, n int) Report {
	var joined atomic.Int64
	var mu sync.Mutex
	var clients []*client.Client
	sem := make(chan struct{}, 20)
	workers(n, func(i int) {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		c, err := t.dial(ctx)
		if err == nil {
			mu.Lock()
			clients = append(clients, c)
			mu.Unlock()
			if t.Join(ctx, c, fmt.Sprintf("flood%d", i)) == nil {
				joined.Add(1)
			}
		}
		<-sem
	})
	<-ctx.Done()
	for _, c := range clients {
		_ = c.Close()
	}
	return Report{Ops: joined.Load(), Unit: "joins", Held: joined.Load()}
}

// ReconnectReset: n workers each open a session, send 120 requests at
// once (over the default burst of 100), close, and repeat. Ops counts the
// requests the gateway did not refuse as rate limited: with a rate kept
// per source across reconnections, it stays near the rate limit times the
// time; reset on every reconnection, it grows with the reconnections.
func ReconnectReset(ctx context.Context, t Target, n int) Report {
	var accepted, sessions, cpu atomic.Int64
	workers(n, func(int) {
		cpu.Add(int64(threadCPU(func() {
			frames := make([]*gatepb.Frame, 120)
			for i := range frames {
				frames[i] = requestFrame(uint64(i+1), t.Refused, nil)
			}
			for next := pace(ctx, 10*time.Millisecond); next(); {
				r, err := dialRaw(ctx, t)
				if err != nil {
					continue
				}
				if r.handshake() != nil {
					r.close()
					continue
				}
				sessions.Add(1)
				if r.send(frames...) != nil {
					r.close()
					continue
				}
				for range frames {
					f, err := r.next(5 * time.Second)
					if err != nil {
						break
					}
					if resp := f.GetResponse(); resp != nil && rpc.Code(resp.GetCode()) != rpc.ResourceExhausted {
						accepted.Add(1)
					}
				}
				r.close()
			}
		})))
	})
	return Report{Ops: accepted.Load(), Unit: "requests not rate limited", Sessions: sessions.Load(), CPU: time.Duration(cpu.Load())}
}

// IdleSessions: n connections open a session, 50 at a time, never log
// in, and heartbeat every 5 s to stay open. Sessions is how many were
// opened, Held how many were still open when the attack ended.
func IdleSessions(ctx context.Context, t Target, n int) Report {
	var held, sessions atomic.Int64
	sem := make(chan struct{}, 50)
	workers(n, func(int) {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		r, err := dialRaw(ctx, t)
		if err == nil && r.handshake() != nil {
			r.close()
			err = errClosed
		}
		<-sem
		if err != nil {
			return
		}
		sessions.Add(1)
		defer r.close()
		closed := make(chan struct{})
		go func() { r.drain(); close(closed) }()
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				held.Add(1)
				return
			case <-closed:
				return
			case <-tick.C:
				_ = r.send(heartbeatFrame())
			}
		}
	})
	return Report{Ops: sessions.Load(), Unit: "sessions opened", Held: held.Load(), Sessions: sessions.Load()}
}

var errClosed = fmt.Errorf("hostile: closed")

// flood opens n sessions that each write a batch of 256 frames every
// 10 ms (25 600 frames/s a session) until the attack ends, reading (and
// discarding) what comes back.
func flood(ctx context.Context, t Target, n int, frame func(i uint64) *gatepb.Frame) Report {
	var sent, answered, sessions, cpu atomic.Int64
	workers(n, func(int) {
		cpu.Add(int64(threadCPU(func() {
			for ctx.Err() == nil {
				r, err := dialRaw(ctx, t)
				if err != nil {
					continue
				}
				if r.handshake() != nil {
					r.close()
					continue
				}
				sessions.Add(1)
				ended := make(chan struct{})
				go func() { // count what the gateway answers, until it closes
					defer close(ended)
					cpu.Add(int64(threadCPU(func() {
						for {
							if _, err := r.next(time.Hour); err != nil {
								return
							}
							answered.Add(1)
						}
					})))
				}()
				var id uint64
				for next := pace(ctx, 10*time.Millisecond); next(); {
					var b []byte
					for range 256 {
						id++
						b, _ = gatepb.AppendStream(b, frame(id))
					}
					if r.write(b) != nil {
						break
					}
					sent.Add(256)
				}
				r.close()
				<-ended
			}
		})))
	})
	return Report{Ops: sent.Load(), Unit: "frames", Answered: answered.Load(), Sessions: sessions.Load(), CPU: time.Duration(cpu.Load())}
}

// HeartbeatFlood: n sessions send heartbeats, 25 600/s each.
func HeartbeatFlood(ctx context.Context, t Target, n int) Report {
	hb := heartbeatFrame()
	return flood(ctx, t, n, func(uint64) *gatepb.Frame { return hb })
}

// RefusedFlood: n sessions send requests the gateway refuses (a route
// with no service, or rate limited), 25 600/s each.
func RefusedFlood(ctx context.Context, t Target, n int) Report {
	return flood(ctx, t, n, func(id uint64) *gatepb.Frame { return requestFrame(id, t.Refused, nil) })
}

// NonReading: n clients join the game (10 at a time) with a small
// receive buffer and never read again, so every push to them piles up in
// the gateway. Held is how many the gateway had not cut off when the
// attack ended.
func NonReading(ctx context.Context, t Target, n int) Report {
	var held, joined, pending atomic.Int64
	sem := make(chan struct{}, 10)
	workers(n, func(i int) {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		r, err := dialRaw(ctx, t)
		if err == nil {
			if tc, ok := r.nc.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(4096)
			}
			route, body := t.JoinRequest(fmt.Sprintf("deaf%d", i))
			if r.handshake() != nil || r.send(requestFrame(1, route, body)) != nil {
				r.close()
				err = errClosed
			}
		}
		<-sem
		if err != nil {
			return
		}
		defer r.close()
		joined.Add(1)
		// Never read: only notice the end, by a write failing.
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				held.Add(1)
				if u := unread(r.nc); u >= 0 {
					pending.Add(int64(u))
				}
				return
			case <-tick.C:
			}
			_ = r.nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			if _, err := r.nc.Write(nil); err != nil {
				return
			}
		}
	})
	return Report{Ops: joined.Load(), Unit: "clients joined", Held: held.Load(), Unread: pending.Load()}
}

// ChatFlood: n clients join and each sends 45 chat lines a second, just
// under the gateway's default rate limit (50/s), so that every line
// passes the gateway and reaches the game's chat budget: Refused counts
// the lines it refused.
func ChatFlood(ctx context.Context, t Target, n int) Report {
	var said, refused atomic.Int64
	workers(n, func(i int) {
		c, err := t.dial(ctx)
		if err != nil {
			return
		}
		defer c.Close()
		if t.Join(ctx, c, fmt.Sprintf("chatty%d", i)) != nil {
			return
		}
		tick := time.NewTicker(time.Second / 45)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			switch err := t.Say(ctx, c, fmt.Sprintf("spam %d from %d", said.Load(), i)); {
			case err == nil:
				said.Add(1)
			case rpc.CodeOf(err) == rpc.ResourceExhausted:
				refused.Add(1)
			}
		}
	})
	return Report{Ops: said.Load(), Unit: "chat lines", Refused: refused.Load()}
}

// HostileNames are names a game must refuse: control characters, ANSI
// escapes, bidi overrides, invisible and blank characters, overlong.
var HostileNames = []string{
	"", " ", "\u200B", "\u200B\u200C\u200D", "\u3164", "\u2800",
	"\x1b[31mred", "bell\x07", "tab\tname", "line\nbreak",
	"evil\u202Egnp.exe", "\u2066iso\u2069", "a\u00ADb",
	strings.Repeat("x", 100), strings.Repeat("\u0301", 10),
	"\xff\xfe",
}

// HostileChat are chat lines whose control characters, ANSI escapes and
// bidi overrides a game must strip.
var HostileChat = []string{
	"\x1b[2J\x1b[Hcleared your screen", "\x1b]0;pwned\x07title", "right\u202Eto left",
	"\u2067isolate\u2069", "null\x00byte", "bell\x07\x07\x07",
}

// HostileInput: n workers repeatedly try every one of HostileNames and
// the name of a player online in other letters (impersonate), which must
// all be refused, then join under a fair name and say every one of
// HostileChat. Violations lists the names that were accepted.
func HostileInput(ctx context.Context, t Target, n int) Report {
	var ops atomic.Int64
	var mu sync.Mutex
	var bad []string
	workers(n, func(w int) {
		next := pace(ctx, 10*time.Millisecond)
		for round := 0; ctx.Err() == nil; round++ {
			c, err := t.dial(ctx)
			if err != nil {
				continue
			}
			self := fmt.Sprintf("Mallory%d", w)
			names := append(append([]string(nil), HostileNames...), impersonations(self)...)
			if t.Join(ctx, c, self) != nil {
				_ = c.Close()
				continue
			}
			// A second session under the same name, in other letters.
			c2, err := t.dial(ctx)
			if err == nil {
				for _, name := range names {
					if !next() {
						break
					}
					if err := t.Join(ctx, c2, name); err == nil {
						mu.Lock()
						if len(bad) < 20 {
							bad = append(bad, fmt.Sprintf("name %q accepted", name))
						}
						mu.Unlock()
						break // c2 is a player now
					}
					ops.Add(1)
				}
				_ = c2.Close()
			}
			for _, line := range HostileChat {
				if !next() {
					break
				}
				_ = t.Say(ctx, c, line)
				ops.Add(1)
			}
			_ = c.Close()
		}
	})
	return Report{Ops: ops.Load(), Unit: "hostile names and lines", Violations: bad}
}

// impersonations returns name written so that it looks the same: in
// other case, full width, and with Cyrillic lookalikes.
func impersonations(name string) []string {
	full := strings.Map(func(r rune) rune {
		if r > ' ' && r < 0x7F {
			return r - 0x21 + 0xFF01
		}
		return r
	}, name)
	cyr := strings.NewReplacer("a", "а", "o", "о", "e", "е", "M", "М").Replace(name)
	return []string{strings.ToUpper(name), full, cyr, name + "\u200B", " " + name + " "}
}

// CrossOrigin: n workers repeatedly try a WebSocket upgrade from another
// site's page (Origin: https://evil.example), which must get 403.
// Ops counts the upgrades refused with 403, Refused those a per-source
// limit refused first (429). Violations lists upgrades that succeeded.
func CrossOrigin(ctx context.Context, t Target, n int) Report {
	var ops, limited atomic.Int64
	var mu sync.Mutex
	var bad []string
	workers(n, func(int) {
		h := http.Header{"Origin": {"https://evil.example"}}
		// A connection for each upgrade, as a browser's page reloaded
		// would: a gateway that refuses a connection at accept (429 from
		// a per-source limit) answers before any request, which a pooled
		// idle connection would take as unsolicited.
		hc := &http.Client{Transport: &http.Transport{DialContext: t.dialer().DialContext, DisableKeepAlives: true}}
		for next := pace(ctx, 10*time.Millisecond); next(); {
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			ws, resp, err := websocket.Dial(dctx, "ws://"+t.HTTP+t.WSPath, &websocket.DialOptions{HTTPHeader: h, HTTPClient: hc})
			cancel()
			switch {
			case err == nil:
				ws.CloseNow()
				mu.Lock()
				bad = append(bad, "a WebSocket from https://evil.example was upgraded")
				mu.Unlock()
			case resp != nil && resp.StatusCode == http.StatusForbidden:
				ops.Add(1)
			case resp != nil && resp.StatusCode == http.StatusTooManyRequests:
				limited.Add(1)
			}
		}
	})
	if len(bad) > 3 {
		bad = append(bad[:3], fmt.Sprintf("and %d more", len(bad)-3))
	}
	return Report{Ops: ops.Load(), Unit: "upgrades refused", Refused: limited.Load(), Violations: bad}
}
