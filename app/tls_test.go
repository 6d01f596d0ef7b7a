package app_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/config"
	"github.com/guildkit/guild/internal/testpki"
)

// TestTLSFromClusterFile: cluster.transport.tls puts the node mesh under
// mutual TLS (a request crosses it; a peer without a certificate signed
// by the cluster's CA is refused), and gateway.tls serves the gateway's
// tcp and ws listeners over TLS (a TLS client gets answers, a plain one
// does not).
func TestTLSFromClusterFile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pki := testpki.New(t, "guild-node") // its server certificate names localhost, for both

	rec := &recorder{}
	reg := app.NewRegistry()
	reg.Register("world", func() app.Module { return &echoModule{name: "world", serve: true, rec: rec} })
	cfg, err := config.Load(writeFile(t, fmt.Sprintf(`
cluster:
  etcd: {ttl: 2s, prefix: /apptest-tls}
  transport:
    tls: {cert_file: %s, key_file: %s, ca_file: %s, server_name: localhost}
nodes:
  gate1:
    addr: 1.1.1
    master: 127.0.0.1:0
    gateway:
      tcp: 127.0.0.1:0
      ws: 127.0.0.1:0
      tls: {cert_file: %s, key_file: %s}
      public: [echo.Say]
      routes:
        echo: {module: world}
  world1:
    addr: 1.2.1
    modules: [world]
modules:
  world: {greeting: hello}
`, pki.ServerCert, pki.ServerKey, pki.CAFile, pki.ServerCert, pki.ServerKey)), nil, reg.Names())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	gw, err := app.Start(ctx, cfg, "gate1", reg, app.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Shutdown(context.Background())
	ready := gw.Ready()
	world, err := app.Start(ctx, cfg, "world1", reg, app.WithEtcdEndpoints(ready.Etcd...), app.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	defer world.Shutdown(context.Background())
	if !strings.HasPrefix(ready.Gateway["ws"], "wss://") {
		t.Fatalf("the ws listener's URL is %q, want wss://", ready.Gateway["ws"])
	}

	// A TLS client, over tcp and wss, reaches the world module on the
	// other node: through the gateway's TLS and the mesh's.
	clientTLS := &tls.Config{RootCAs: pki.Pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	for _, addr := range []string{ready.Gateway["tcp"], ready.Gateway["ws"]} {
		c, err := client.Dial(ctx, client.Config{Addr: addr, TLS: clientTLS})
		if err != nil {
			t.Fatalf("dial %s over TLS: %v", addr, err)
		}
		var reply wrapperspb.StringValue
		waitFor(t, 10*time.Second, "the world module to answer over "+addr, func() bool {
			return c.Request(ctx, "echo.Say", wrapperspb.String("hi"), &reply) == nil
		})
		if reply.GetValue() != "hello from world1: hi" {
			t.Fatalf("echo.Say over %s = %q", addr, reply.GetValue())
		}
		_ = c.Close()
	}

	// A client without TLS gets no session.
	dctx, dcancel := context.WithTimeout(ctx, 3*time.Second)
	defer dcancel()
	if c, err := client.Dial(dctx, client.Config{Addr: ready.Gateway["tcp"], DialTimeout: 2 * time.Second}); err == nil {
		_ = c.Close()
		t.Fatal("a plain TCP client got a session from a TLS gateway")
	}

	// The mesh refuses a peer without a certificate of the cluster's CA:
	// one with none, and one with a certificate of another CA.
	other := testpki.New(t, "intruder")
	intruder, err := tls.LoadX509KeyPair(other.ServerCert, other.ServerKey) // names localhost too
	if err != nil {
		t.Fatal(err)
	}
	for name, certs := range map[string][]tls.Certificate{"no certificate": nil, "another CA's certificate": {intruder}} {
		conn, err := tls.Dial("tcp", world.Ready().Endpoint, &tls.Config{RootCAs: pki.Pool, ServerName: "localhost", Certificates: certs, MinVersion: tls.VersionTLS12})
		if err != nil {
			continue // refused in the handshake
		}
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Read(make([]byte, 1)) // TLS 1.3: the server's refusal comes with the first read
		_ = conn.Close()
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("a peer with %s: read %v, want a refused certificate", name, err)
		}
	}
}
