package app_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/config"
	"github.com/guildkit/guild/rpc"
)

// TestGatewayKCPKeyFromClusterFile: gateway.kcp_key_file encrypts the KCP
// listener: a client with the file's secret is served, one without gets
// no answer within its DialTimeout.
func TestGatewayKCPKeyFromClusterFile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	secret := "0123456789abcdef0123456789abcdef"
	keyFile := filepath.Join(t.TempDir(), "kcp.key")
	if err := os.WriteFile(keyFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := app.NewRegistry()
	reg.Register("who", func() app.Module { return whoModule{} })
	cfg, err := config.Load(writeFile(t, `
cluster:
  etcd: {ttl: 2s, prefix: /apptest-kcp}
nodes:
  gate1:
    addr: 1.1.1
    master: 127.0.0.1:0
    modules: [who]
    gateway:
      kcp: 127.0.0.1:0
      kcp_key_file: `+keyFile+`
      public: [who.Am]
      routes:
        who: {module: who}
`), nil, reg.Names())
	if err != nil {
		t.Fatal(err)
	}
	n, err := app.Start(ctx, cfg, "gate1", reg, app.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(context.Background())
	addr := n.Ready().Gateway["kcp"]
	if !strings.HasPrefix(addr, "kcp://127.0.0.1:") {
		t.Fatalf("kcp listener %q", addr)
	}
	c, err := client.Dial(ctx, client.Config{Addr: addr, KCPKey: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Request(ctx, "who.Am", &wrapperspb.StringValue{}, &wrapperspb.StringValue{}); err != nil {
		t.Errorf("who.Am with the key: %v", err)
	}
	_, err = client.Dial(ctx, client.Config{Addr: addr, DialTimeout: 300 * time.Millisecond})
	if rpc.CodeOf(err) != rpc.Unavailable || !strings.Contains(err.Error(), "Config.KCPKey") {
		t.Errorf("a client without the key: %v, want Unavailable naming Config.KCPKey", err)
	}
}
