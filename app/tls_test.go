package app_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/config"
)

// testCA is a throwaway certificate authority whose files a test's
// cluster file names.
type testCA struct {
	t    *testing.T
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	file string // the CA's PEM
	next int64
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{t: t, dir: t.TempDir(), cert: cert, key: key, pool: x509.NewCertPool(), next: 2}
	ca.pool.AddCert(cert)
	ca.file = ca.write(name+"-ca.pem", "CERTIFICATE", der)
	return ca
}

func (ca *testCA) write(name, kind string, der []byte) string {
	ca.t.Helper()
	path := filepath.Join(ca.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		ca.t.Fatal(err)
	}
	return path
}

// issue makes a certificate for 127.0.0.1 and the DNS names, usable by
// servers and clients, and returns its cert and key files.
func (ca *testCA) issue(name string, dns ...string) (certFile, keyFile string) {
	ca.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		ca.t.Fatal(err)
	}
	ca.next++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.next), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: dns,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		ca.t.Fatal(err)
	}
	return ca.write(name+".pem", "CERTIFICATE", der), ca.write(name+"-key.pem", "EC PRIVATE KEY", kder)
}

// TestTLSFromClusterFile: cluster.transport.tls puts the node mesh under
// mutual TLS (a request crosses it; a peer without a certificate signed
// by the cluster's CA is refused), and gateway.tls serves the gateway's
// tcp and ws listeners over TLS (a TLS client gets answers, a plain one
// does not).
func TestTLSFromClusterFile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ca := newTestCA(t, "guild-test")
	nodeCert, nodeKey := ca.issue("node", "guild-node")
	gateCert, gateKey := ca.issue("gateway", "game.example")

	rec := &recorder{}
	reg := app.NewRegistry()
	reg.Register("world", func() app.Module { return &echoModule{name: "world", serve: true, rec: rec} })
	cfg, err := config.Load(writeFile(t, fmt.Sprintf(`
cluster:
  etcd: {ttl: 2s, prefix: /apptest-tls}
  transport:
    tls: {cert_file: %s, key_file: %s, ca_file: %s, server_name: guild-node}
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
`, nodeCert, nodeKey, ca.file, gateCert, gateKey)), nil, reg.Names())
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
	clientTLS := &tls.Config{RootCAs: ca.pool, ServerName: "game.example", MinVersion: tls.VersionTLS12}
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
	other := newTestCA(t, "other")
	oc, ok := other.issue("intruder", "guild-node")
	intruder, err := tls.LoadX509KeyPair(oc, ok)
	if err != nil {
		t.Fatal(err)
	}
	for name, certs := range map[string][]tls.Certificate{"no certificate": nil, "another CA's certificate": {intruder}} {
		conn, err := tls.Dial("tcp", world.Ready().Endpoint, &tls.Config{RootCAs: ca.pool, ServerName: "guild-node", Certificates: certs, MinVersion: tls.VersionTLS12})
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
