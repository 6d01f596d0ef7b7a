package faultnet_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/guildkit/guild/cluster/clustertest/faultnet"
	"github.com/guildkit/guild/internal/await"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Bounds of the tests' waits. quiet is how long a "nothing passes" check
// watches: long enough for a forwarded byte to show up many times over on
// loopback.
const (
	timeout = 5 * time.Second
	quiet   = 300 * time.Millisecond
)

// backend is an echo server that records what each connection sent and
// whether it ended.
type backend struct {
	ln net.Listener
	wg sync.WaitGroup

	mu    sync.Mutex
	conns []*bconn
}

type bconn struct {
	nc   net.Conn
	got  strings.Builder
	eof  bool
	err  error
	done bool
}

func startBackend(t *testing.T) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{ln: ln}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			c := &bconn{nc: nc}
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.mu.Unlock()
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				b.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		for _, c := range b.conns {
			c.nc.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
	})
	return b
}

// serve echoes c, recording its bytes; at EOF it half-closes its side.
func (b *backend) serve(c *bconn) {
	buf := make([]byte, 1024)
	for {
		n, err := c.nc.Read(buf)
		b.mu.Lock()
		c.got.Write(buf[:n])
		if err != nil {
			c.eof, c.err, c.done = errors.Is(err, io.EOF), err, true
		}
		b.mu.Unlock()
		if n > 0 {
			if _, werr := c.nc.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if c.eof {
				_ = c.nc.(*net.TCPConn).CloseWrite()
			}
			return
		}
	}
}

func (b *backend) addr() string { return b.ln.Addr().String() }

// accepted returns the number of connections the backend accepted.
func (b *backend) accepted() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.conns)
}

// conn returns what connection i sent so far, and whether it ended.
func (b *backend) conn(i int) (got string, done, eof bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if i >= len(b.conns) {
		return "", false, false
	}
	c := b.conns[i]
	return c.got.String(), c.done, c.eof
}

// byLine names the peer by the first line the client sends ("alice\n"); a
// line "?" fails the identification.
func byLine(r io.Reader) (string, error) {
	var b [1]byte
	var name []byte
	for {
		if _, err := r.Read(b[:]); err != nil {
			return "", err
		}
		if b[0] == '\n' {
			break
		}
		name = append(name, b[0])
	}
	if string(name) == "?" {
		return "", errors.New("anonymous")
	}
	return string(name), nil
}

func startProxy(t *testing.T, target string) *faultnet.Proxy {
	t.Helper()
	p, err := faultnet.Listen(faultnet.Config{Name: "test", Target: target, Identify: byLine, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

// client is a connection to a proxy, with its echoes read in the
// background.
type client struct {
	nc net.Conn

	mu   sync.Mutex
	got  strings.Builder
	err  error // the read error that ended the reader
	done bool
}

// dial connects to p as peer, sending "peer\n" first.
func dial(t *testing.T, p *faultnet.Proxy, peer string) *client {
	t.Helper()
	nc, err := net.DialTimeout("tcp", p.Addr(), timeout)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{nc: nc}
	var wg sync.WaitGroup
	wg.Go(func() {
		r := bufio.NewReader(nc)
		buf := make([]byte, 1024)
		for {
			n, err := r.Read(buf)
			c.mu.Lock()
			c.got.Write(buf[:n])
			if err != nil {
				c.err, c.done = err, true
			}
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	})
	t.Cleanup(func() {
		nc.Close()
		wg.Wait()
	})
	c.write(t, peer+"\n")
	return c
}

func (c *client) write(t *testing.T, s string) {
	t.Helper()
	if _, err := c.nc.Write([]byte(s)); err != nil {
		t.Fatalf("write %q: %v", s, err)
	}
}

func (c *client) state() (got string, done bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got.String(), c.done, c.err
}

func (c *client) received() string { g, _, _ := c.state(); return g }

// TestPass: bytes go both ways, the identification line included, and a
// half close is passed on in each direction.
func TestPass(t *testing.T) {
	b := startBackend(t)
	p := startProxy(t, b.addr())
	c := dial(t, p, "alice")
	c.write(t, "hello")
	await.True(t, timeout, "the echo of the name and hello", func() bool { return c.received() == "alice\nhello" })
	if got, _, _ := b.conn(0); got != "alice\nhello" {
		t.Fatalf("backend got %q", got)
	}
	if n := p.Conns("alice"); n != 1 {
		t.Fatalf("Conns(alice) = %d, want 1", n)
	}
	// Half close: the backend sees EOF and closes its side in turn.
	if err := c.nc.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	await.True(t, timeout, "the backend to see EOF", func() bool { _, done, eof := b.conn(0); return done && eof })
	await.True(t, timeout, "the client to see EOF", func() bool {
		_, done, err := c.state()
		return done && errors.Is(err, io.EOF)
	})
	await.True(t, timeout, "the proxy to forget the connection", func() bool { return p.Conns("alice") == 0 })
}

// TestBlackholeHoldsBytesAndCloses: a blackholed connection stays open but
// passes no byte, in either direction, and no close, until its mode is
// Pass again; then everything it held arrives in order. Another peer's
// connection is not affected.
func TestBlackholeHoldsBytesAndCloses(t *testing.T) {
	b := startBackend(t)
	p := startProxy(t, b.addr())
	alice, bob := dial(t, p, "alice"), dial(t, p, "bob")
	await.True(t, timeout, "both echoes", func() bool { return alice.received() == "alice\n" && bob.received() == "bob\n" })
	aliceConn := 0
	if got, _, _ := b.conn(0); got != "alice\n" {
		aliceConn = 1
	}

	p.Set("alice", faultnet.Blackhole)
	if m := p.Mode("alice"); m != faultnet.Blackhole {
		t.Fatalf("Mode(alice) = %v", m)
	}
	alice.write(t, "one")
	alice.write(t, "two")
	bob.write(t, "ok")
	await.True(t, timeout, "bob's echo", func() bool { return bob.received() == "bob\nok" })
	await.Always(t, quiet, "alice's bytes to be held", func() bool {
		got, done, _ := b.conn(aliceConn)
		return got == "alice\n" && !done && alice.received() == "alice\n"
	})
	// A close is held too.
	if err := alice.nc.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	await.Always(t, quiet, "alice's close to be held", func() bool { _, done, _ := b.conn(aliceConn); return !done })

	p.Set("alice", faultnet.Pass)
	await.True(t, timeout, "the held bytes, then EOF, at the backend", func() bool {
		got, done, eof := b.conn(aliceConn)
		return got == "alice\nonetwo" && done && eof
	})
	await.True(t, timeout, "the echo of the held bytes", func() bool { return alice.received() == "alice\nonetwo" })
}

// TestBlackholeNewConnections: a connection made while its peer is
// blackholed is accepted but never reaches the target if the client gives
// up first; one still open when the mode returns to Pass is forwarded,
// with what it sent meanwhile.
func TestBlackholeNewConnections(t *testing.T) {
	b := startBackend(t)
	p := startProxy(t, b.addr())
	p.Set("alice", faultnet.Blackhole)

	gone := dial(t, p, "alice") // its connect succeeds
	gone.write(t, "lost")
	await.True(t, timeout, "the proxy to hold the connection", func() bool { return p.Conns("alice") == 1 })
	if err := gone.nc.Close(); err != nil {
		t.Fatal(err)
	}
	await.True(t, timeout, "the proxy to drop the abandoned connection", func() bool { return p.Conns("alice") == 0 })

	kept := dial(t, p, "alice")
	kept.write(t, "kept")
	await.Always(t, quiet, "the target not to be dialled", func() bool { return b.accepted() == 0 })
	p.Set("alice", faultnet.Pass)
	await.True(t, timeout, "the kept connection's bytes at the backend", func() bool {
		got, _, _ := b.conn(0)
		return got == "alice\nkept"
	})
	await.True(t, timeout, "the kept connection's echo", func() bool { return kept.received() == "alice\nkept" })
	await.Always(t, quiet, "the abandoned connection never to reach the backend", func() bool { return b.accepted() == 1 })
}

// isReset reports whether err is a connection reset.
func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

// TestReset: Reset resets a peer's connections at once on both sides, and
// every new one, until the mode changes; other peers are not affected.
func TestReset(t *testing.T) {
	b := startBackend(t)
	p := startProxy(t, b.addr())
	alice, bob := dial(t, p, "alice"), dial(t, p, "bob")
	await.True(t, timeout, "both echoes", func() bool { return alice.received() == "alice\n" && bob.received() == "bob\n" })

	p.Set("alice", faultnet.Reset)
	await.True(t, timeout, "alice's connection to be reset", func() bool { _, done, err := alice.state(); return done && isReset(err) })
	await.True(t, timeout, "the backend's side to be reset", func() bool {
		for i := range 2 {
			if got, done, eof := b.conn(i); got == "alice\n" {
				return done && !eof
			}
		}
		return false
	})
	bob.write(t, "still")
	await.True(t, timeout, "bob's echo", func() bool { return bob.received() == "bob\nstill" })

	again := dial(t, p, "alice")
	await.True(t, timeout, "a new connection of alice to be reset", func() bool { _, done, err := again.state(); return done && isReset(err) })
	if n := b.accepted(); n != 2 {
		t.Fatalf("backend accepted %d connections, want 2 (the reset one never dialled)", n)
	}

	p.Set("alice", faultnet.Pass)
	back := dial(t, p, "alice")
	back.write(t, "back")
	await.True(t, timeout, "alice's echo after Pass", func() bool { return back.received() == "alice\nback" })
}

// TestDefaultMode: SetDefault applies to unidentified peers and to peers
// without a mode of their own.
func TestDefaultMode(t *testing.T) {
	b := startBackend(t)
	p := startProxy(t, b.addr())
	p.Set("bob", faultnet.Pass)
	p.SetDefault(faultnet.Reset)
	anon, alice, bob := dial(t, p, "?"), dial(t, p, "alice"), dial(t, p, "bob")
	for name, c := range map[string]*client{"anonymous": anon, "alice": alice} {
		await.True(t, timeout, name+"'s connection to be reset", func() bool { _, done, err := c.state(); return done && isReset(err) })
	}
	await.True(t, timeout, "bob's echo", func() bool { return bob.received() == "bob\n" })
	if m := p.Mode(""); m != faultnet.Reset {
		t.Fatalf("Mode(\"\") = %v, want reset", m)
	}
}

// TestTarget: without a target new connections wait for one; a target
// that refuses makes the proxy reset the client; a new target serves new
// connections while old ones keep theirs.
func TestTarget(t *testing.T) {
	b1, b2 := startBackend(t), startBackend(t)
	p := startProxy(t, "")
	waiting := dial(t, p, "alice")
	waiting.write(t, "early")
	await.Always(t, quiet, "nothing to be forwarded without a target", func() bool { return waiting.received() == "" })
	p.SetTarget(b1.addr())
	await.True(t, timeout, "the echo from the first target", func() bool { return waiting.received() == "alice\nearly" })

	// A target that refuses: a listener closed at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	p.SetTarget(dead)
	refused := dial(t, p, "alice")
	await.True(t, timeout, "the client of a refusing target to be reset", func() bool { _, done, err := refused.state(); return done && isReset(err) })

	p.SetTarget(b2.addr())
	if p.Target() != b2.addr() {
		t.Fatalf("Target() = %q", p.Target())
	}
	fresh := dial(t, p, "bob")
	await.True(t, timeout, "the echo from the second target", func() bool { return fresh.received() == "bob\n" })
	waiting.write(t, "+old")
	await.True(t, timeout, "the old connection to keep its target", func() bool { return waiting.received() == "alice\nearly+old" })
	if b1.accepted() != 1 || b2.accepted() != 1 {
		t.Fatalf("accepted %d and %d, want 1 each", b1.accepted(), b2.accepted())
	}
}

// TestClose: Close ends held and open connections and every goroutine
// (goleak checks the latter in TestMain).
func TestClose(t *testing.T) {
	b := startBackend(t)
	p, err := faultnet.Listen(faultnet.Config{Target: b.addr(), Identify: byLine})
	if err != nil {
		t.Fatal(err)
	}
	open := dial(t, p, "alice")
	await.True(t, timeout, "the echo", func() bool { return open.received() == "alice\n" })
	p.Set("bob", faultnet.Blackhole)
	held := dial(t, p, "bob")
	await.True(t, timeout, "bob's connection to be held", func() bool { return p.Conns("bob") == 1 })
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for name, c := range map[string]*client{"open": open, "held": held} {
		await.True(t, timeout, "the "+name+" connection to end", func() bool { _, done, _ := c.state(); return done })
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), timeout); err == nil {
		t.Fatal("dial after Close succeeded")
	}
}
