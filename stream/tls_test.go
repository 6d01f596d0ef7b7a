package stream_test

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/config"
	"github.com/guildkit/guild/internal/testpki"
	"github.com/guildkit/guild/stream"
)

// tlsNode starts a cluster node on store whose mesh runs meshTLS.
func tlsNode(t *testing.T, store *cluster.Memory, index int, meshTLS *tls.Config) *cluster.Node {
	t.Helper()
	addr := actor.MustAddr(1, 1, index)
	ms := store.Membership(addr)
	t.Cleanup(func() { _ = ms.Close() })
	n, err := cluster.Start(ctxFor(t, 5*time.Second), cluster.NodeConfig{
		Actor:      actor.Config{Addr: addr, Logger: slog.New(slog.DiscardHandler)},
		Listen:     "127.0.0.1:0",
		Membership: ms,
		TLS:        meshTLS,
		Logger:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// TestMeshTLS: streams run the node's mesh TLS (mutual) by default; a
// peer without a certificate the CA signed, or in clear, is refused.
func TestMeshTLS(t *testing.T) {
	pki := testpki.New(t, "node")
	files := config.TLS{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, CAFile: pki.CAFile}
	mesh, err := files.MeshConfig()
	if err != nil {
		t.Fatal(err)
	}
	store := cluster.NewMemory()
	a, b := tlsNode(t, store, 1, mesh), tlsNode(t, store, 2, mesh)
	quiet := stream.Config{Logger: slog.New(slog.DiscardHandler)}
	ctx := ctxFor(t, 10*time.Second)
	ha, err := stream.Start(ctx, a, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer ha.Close()
	hb, err := stream.Start(ctx, b, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer hb.Close()
	hb.Handle("", echo)
	s, err := ha.OpenStream(ctx, b.Addr())
	if err != nil {
		t.Fatalf("open over mutual TLS: %v", err)
	}
	_, _ = s.Write([]byte("secret"))
	_ = s.CloseWrite()
	back, err := io.ReadAll(s)
	if err != nil || string(back) != "secret" {
		t.Fatalf("echo over TLS: %q, %v", back, err)
	}
	_ = s.Close()

	// A node whose streams present no client certificate is refused by
	// b; one that runs its streams in clear is refused too.
	for name, cfg := range map[string]stream.Config{
		"no client certificate": {TLS: pki.ServerOnlyTLS()},
		"clear":                 {Insecure: true},
	} {
		c := tlsNode(t, store, 3+len(name)%50, mesh)
		cfg.Logger = quiet.Logger
		hc, err := stream.Start(ctx, c, cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = hc.OpenStream(ctx, b.Addr())
		t.Logf("%s: %v", name, err)
		if !errors.Is(err, stream.ErrHandshake) && !errors.Is(err, stream.ErrPeerGone) {
			t.Errorf("%s: open to a mutual-TLS host: %v, want a handshake failure", name, err)
		}
		if err == nil {
			t.Errorf("%s: opened", name)
		}
		_ = hc.Close()
	}
	if hb.Active() != 0 {
		t.Errorf("the refused peers have %d streams on b", hb.Active())
	}
}
