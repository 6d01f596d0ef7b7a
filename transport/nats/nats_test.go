package nats_test

import (
	"crypto/rand"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/guildkit/guild/transport"
	"github.com/guildkit/guild/transport/bus"
	"github.com/guildkit/guild/transport/nats"
	"github.com/guildkit/guild/transport/nats/natsembed"
	"github.com/guildkit/guild/transport/transporttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fast detects a lost peer within a few seconds: soon enough for the
// suite, and not so soon that a starved test machine loses a live one.
var fast = bus.Options{PendingQueue: 64, MaxFrame: 1 << 20, HeartbeatInterval: 100 * time.Millisecond, DeadAfter: 2 * time.Second, ReachTimeout: 2 * time.Second}

// installed is the NATS server the machine runs (scripts/services.sh).
const installed = "nats://127.0.0.1:4222"

// embedded starts an embedded server for one test, closed at its end.
func embedded(t *testing.T) *natsembed.Server {
	t.Helper()
	s, err := natsembed.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// servers maps the URL of each subtest's embedded server to it, so that
// Outage can stop and restart it.
type servers struct {
	mu sync.Mutex
	m  map[string]*natsembed.Server
}

func (ss *servers) start(t *testing.T) string {
	s := embedded(t)
	ss.mu.Lock()
	ss.m[s.URL()] = s
	ss.mu.Unlock()
	return s.URL()
}

// outage stops the server behind url; restore starts a new one on the
// same port: a broker restart, as the nodes see it.
func (ss *servers) outage(t *testing.T, url string) func() {
	ss.mu.Lock()
	s := ss.m[url]
	ss.mu.Unlock()
	addr := s.Addr()
	s.Close()
	t.Logf("NATS server %s stopped", addr)
	return func() {
		var (
			s2  *natsembed.Server
			err error
		)
		for range 50 { // the port may linger a moment
			if s2, err = natsembed.Start(addr); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("restart the NATS server on %s: %v", addr, err)
		}
		t.Cleanup(s2.Close)
		ss.mu.Lock()
		ss.m[url] = s2
		ss.mu.Unlock()
		t.Logf("NATS server %s started again", addr)
	}
}

// raw connects a plain client, closed at the end of the test.
func raw(t *testing.T, url string) *natsgo.Conn {
	t.Helper()
	nc, err := natsgo.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// options returns the suite's options for configs made by newConfig.
func options(newConfig func(t *testing.T) nats.Config) transporttest.Options {
	return transporttest.Options{
		New:          func(t *testing.T) transport.Config { return newConfig(t) },
		PendingQueue: fast.PendingQueue,
		MaxFrame:     fast.MaxFrame,
		Silent: func(t *testing.T, cfg transport.Config) string {
			c := cfg.(nats.Config)
			nc := raw(t, c.URL)
			subject := nats.Subject(c.Prefix, "silent")
			for _, s := range []string{subject, subject + ".alive"} { // read, never answer
				if _, err := nc.Subscribe(s, func(*natsgo.Msg) {}); err != nil {
					t.Fatal(err)
				}
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			return subject
		},
		Inject: func(t *testing.T, cfg transport.Config, endpoint string, b []byte) {
			nc := raw(t, cfg.(nats.Config).URL)
			if err := nc.Publish(endpoint, b); err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
		},
	}
}

// TestConformance runs the conformance suite on an embedded server, which
// the Outage check stops and starts again.
func TestConformance(t *testing.T) {
	ss := &servers{m: map[string]*natsembed.Server{}}
	o := options(func(t *testing.T) nats.Config {
		return nats.Config{URL: ss.start(t), Prefix: "t" + strings.ToLower(rand.Text()[:8]), Options: fast}
	})
	o.Outage = func(t *testing.T, cfg transport.Config) func() { return ss.outage(t, cfg.(nats.Config).URL) }
	transporttest.Run(t, o)
}

// TestConformanceInstalledServer runs the suite on the machine's NATS
// server (not stopped: no Outage check), each subtest under a prefix of
// its own.
func TestConformanceInstalledServer(t *testing.T) {
	reachable(t)
	transporttest.Run(t, options(func(*testing.T) nats.Config {
		return nats.Config{URL: installed, Prefix: "guildtest" + strings.ToLower(rand.Text()[:8]), Options: fast}
	}))
}

// reachable skips the test, or fails it on CI (CI=true), when the
// machine's NATS server does not accept connections.
func reachable(t *testing.T) {
	t.Helper()
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(installed, "nats://"), 2*time.Second)
	if err == nil {
		_ = c.Close()
		return
	}
	msg := "NATS not reachable on " + installed + " (" + err.Error() + "); run `bash scripts/services.sh` (or install and start nats-server) to run this test"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
