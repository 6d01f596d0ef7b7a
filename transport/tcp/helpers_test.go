package tcp

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is a transport.Handler that keeps copies of what it receives.
type recorder struct {
	mu    sync.Mutex
	envs  map[actor.Addr][]wire.Envelope
	lost  map[actor.Addr]int
	up    map[actor.Addr]int
	onEnv func(peer actor.Addr, env *wire.Envelope) // optional, called first
}

func newRecorder() *recorder {
	return &recorder{envs: map[actor.Addr][]wire.Envelope{}, lost: map[actor.Addr]int{}, up: map[actor.Addr]int{}}
}

func (r *recorder) HandleEnvelope(peer actor.Addr, env *wire.Envelope) {
	if r.onEnv != nil {
		r.onEnv(peer, env)
		return
	}
	cp := *env
	cp.Payload = bytes.Clone(env.Payload)
	cp.Metadata = bytes.Clone(env.Metadata)
	r.mu.Lock()
	r.envs[peer] = append(r.envs[peer], cp)
	r.mu.Unlock()
}

func (r *recorder) PeerLost(peer actor.Addr, err error) {
	r.mu.Lock()
	r.lost[peer]++
	r.mu.Unlock()
}

func (r *recorder) PeerUp(peer actor.Addr) {
	r.mu.Lock()
	r.up[peer]++
	r.mu.Unlock()
}

func (r *recorder) upCount(peer actor.Addr) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.up[peer]
}

func (r *recorder) count(peer actor.Addr) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.envs[peer])
}

func (r *recorder) lostCount(peer actor.Addr) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lost[peer]
}

func (r *recorder) received(peer actor.Addr) []wire.Envelope {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]wire.Envelope(nil), r.envs[peer]...)
}

// resolver maps addresses to endpoints; tests change it as nodes move.
type resolver struct {
	mu sync.Mutex
	m  map[actor.Addr]string
}

func newResolver() *resolver { return &resolver{m: map[actor.Addr]string{}} }

func (r *resolver) set(a actor.Addr, ep string) {
	r.mu.Lock()
	r.m[a] = ep
	r.mu.Unlock()
}

func (r *resolver) resolve(a actor.Addr) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ep, ok := r.m[a]
	if !ok {
		return "", net.UnknownNetworkError("no endpoint for " + a.String())
	}
	return ep, nil
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) contains(sub string) bool { return strings.Contains(s.String(), sub) }

func testLogger(sink *syncBuffer) *slog.Logger {
	if sink == nil {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(sink, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// fastConfig is a Config with short timings for tests.
func fastConfig(self actor.Addr, res *resolver, h *recorder) Config {
	return Config{
		Self:                self,
		Listen:              "127.0.0.1:0",
		Resolve:             res.resolve,
		Handler:             h,
		HeartbeatInterval:   50 * time.Millisecond,
		DeadAfter:           200 * time.Millisecond,
		DialTimeout:         time.Second,
		ReconnectBackoffMin: 10 * time.Millisecond,
		ReconnectBackoffMax: 100 * time.Millisecond,
		Logger:              slog.New(slog.DiscardHandler),
	}
}

// start creates a Transport, registers it with res and closes it at cleanup.
func start(t testing.TB, cfg Config, res *resolver) *Transport {
	t.Helper()
	tr, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	res.set(cfg.Self, tr.Addr().String())
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// sendRetry sends, retrying while the pending queue is full.
func sendRetry(t testing.TB, tr *Transport, to actor.Addr, env *wire.Envelope) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := tr.Send(to, env)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Send: %v", err)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func seqEnv(from actor.Addr, i uint64) *wire.Envelope {
	return &wire.Envelope{
		Kind:          wire.KindSend,
		Target:        wire.PID{Node: 7, Serial: 1},
		Sender:        wire.PID{Node: uint32(from), Serial: 2},
		CorrelationID: i,
		PayloadType:   wire.RawBytesType,
		Payload:       []byte("payload"),
	}
}

// checkOrder fails unless envs carry correlation IDs 0..n-1 in order.
func checkOrder(t *testing.T, envs []wire.Envelope, n int) {
	t.Helper()
	if len(envs) != n {
		t.Fatalf("received %d envelopes, want %d", len(envs), n)
	}
	for i, e := range envs {
		if e.CorrelationID != uint64(i) {
			t.Fatalf("envelope %d has sequence %d: order lost", i, e.CorrelationID)
		}
	}
}

// peerOf returns the transport's state for addr (nil if none).
func (t *Transport) peerOf(addr actor.Addr) *peer {
	return (*t.peers.Load())[addr]
}
