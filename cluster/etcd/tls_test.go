package etcd

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/internal/etcdtest"
	"github.com/guildkit/guild/internal/testpki"
)

// TestTLSAndAuth runs against an etcd as production runs one: TLS only,
// client certificates required, authentication enabled.
func TestTLSAndAuth(t *testing.T) {
	s := etcdtest.Start(t)
	ep := s.Endpoints[0]

	// With the CA, the client certificate and a user's password, a node
	// joins, sees itself, and registers and finds a global name.
	t.Run("password", func(t *testing.T) {
		joinAndUse(t, Config{
			Endpoints: s.Endpoints, TLS: s.PKI.ClientTLS(),
			Username: etcdtest.User, Password: etcdtest.Password,
		})
	})
	// Without a user, etcd takes the user from the client certificate's
	// common name: no password at all.
	t.Run("certificate user", func(t *testing.T) {
		joinAndUse(t, Config{Endpoints: s.Endpoints, TLS: s.PKI.ClientTLS()})
	})

	// Without the client certificate, New fails within its DialTimeout
	// (and the short look that says why), naming the endpoint, the user
	// and the refusal.
	t.Run("no client certificate", func(t *testing.T) {
		err := newFails(t, Config{
			Endpoints: s.Endpoints, TLS: s.PKI.ServerOnlyTLS(),
			Username: etcdtest.User, Password: etcdtest.Password, DialTimeout: time.Second,
		})
		for _, want := range []string{"cluster/etcd: connect to [" + ep + "] as user \"guild\"", "tls: certificate required"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
	})
	// A CA that did not sign etcd's certificate: the error says so.
	t.Run("wrong CA", func(t *testing.T) {
		other := testpki.New(t, "other")
		cfg := s.PKI.ClientTLS()
		cfg.RootCAs = other.Pool
		err := newFails(t, Config{Endpoints: s.Endpoints, TLS: cfg, DialTimeout: time.Second})
		if !strings.Contains(err.Error(), "certificate signed by unknown authority") {
			t.Errorf("error %q does not name the unknown authority", err)
		}
	})
	// A wrong password fails at once: the error says that authentication
	// failed and holds no password.
	t.Run("wrong password", func(t *testing.T) {
		const wrong = "not-the-password-42"
		err := newFails(t, Config{
			Endpoints: s.Endpoints, TLS: s.PKI.ClientTLS(),
			Username: etcdtest.User, Password: wrong, DialTimeout: 5 * time.Second,
		})
		if !strings.Contains(err.Error(), "authentication failed") {
			t.Errorf("error %q does not say authentication failed", err)
		}
		if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), etcdtest.Password) {
			t.Errorf("error %q holds a password", err)
		}
	})
	// An http endpoint with TLS set would go without TLS: refused. A
	// plain-text client of the TLS etcd fails within its DialTimeout.
	t.Run("http", func(t *testing.T) {
		plain := "http://" + strings.TrimPrefix(ep, "https://")
		if _, err := New(Config{Endpoints: []string{plain}, TLS: s.PKI.ClientTLS()}); !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), "write https://") {
			t.Errorf("New with an http endpoint and TLS: %v; want ErrBadConfig saying https", err)
		}
		newFails(t, Config{Endpoints: []string{plain}, DialTimeout: 500 * time.Millisecond})
	})
}

// joinAndUse connects with cfg, joins, waits to see itself, registers and
// looks up a global name, checks that a write outside the cluster's
// prefix is refused (the client is that user, not root), and closes.
func joinAndUse(t *testing.T, cfg Config) {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := ctxT(t)
	self := actor.MustAddr(1, 2, 1)
	if err := m.Join(ctx, cluster.Member{Addr: self, Endpoint: "127.0.0.1:7001", Available: true}); err != nil {
		t.Fatal(err)
	}
	await.True(t, 5*time.Second, "the node to see itself", func() bool { return has(m.Members(), self) })
	pid := actor.PID{Node: self, Serial: 7}
	if err := m.Names().Register(ctx, "lobby", pid); err != nil {
		t.Fatal(err)
	}
	if got, err := m.Names().Lookup(ctx, "lobby"); err != nil || got != pid {
		t.Fatalf("Lookup = %v, %v; want %v", got, err, pid)
	}
	if _, err := m.Client().Put(ctx, "/elsewhere", "x"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("a put outside the prefix: %v; want permission denied", err)
	}
	if err := m.Close(); err != nil { // leaves: revokes the lease
		t.Fatal(err)
	}
}

// newFails checks that New(cfg) fails within cfg.DialTimeout and a
// second, and returns its error.
func newFails(t *testing.T, cfg Config) error {
	t.Helper()
	start := time.Now()
	m, err := New(cfg)
	if err == nil {
		m.Close()
		t.Fatal("New succeeded")
	}
	if d := time.Since(start); d > cfg.DialTimeout+probeTimeout+time.Second {
		t.Errorf("New took %v to fail; DialTimeout is %v", d, cfg.DialTimeout)
	}
	t.Logf("error: %v", err)
	return err
}

// TestProbe: the reasons explain gives for a DialTimeout.
func TestProbe(t *testing.T) {
	e, err := StartEmbedded("")
	if err != nil {
		t.Fatal(err)
	}
	eps := e.Endpoints()
	if why := probe(eps[0], nil, time.Second); why != "" {
		t.Errorf("probe of a running plain etcd = %q; want nothing", why)
	}
	e.Close()
	if why := probe(eps[0], nil, time.Second); !strings.Contains(why, "cannot connect to") {
		t.Errorf("probe of a stopped etcd = %q; want cannot connect", why)
	}
	if why := probe("unix:///nowhere", &tls.Config{}, time.Second); why != "" {
		t.Errorf("probe of a unix socket = %q; want nothing (not probed)", why)
	}
}
