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
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/internal/etcdtest"
)

// TestEtcdTLSAndAuth starts nodes from a cluster file against an etcd as
// production runs one (TLS only, client certificates required,
// authentication on, a user allowed the cluster's prefix only): one node
// with the password in password_file, one with it in GUILD_ETCD_PASSWORD.
// They find each other, a client's request crosses them, and Status
// lists them; a wrong password stops a node from starting, with an error
// that says why without the password.
func TestEtcdTLSAndAuth(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := etcdtest.Start(t)
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "etcd-password")
	if err := os.WriteFile(pwFile, []byte(etcdtest.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := `
cluster:
  etcd:
    endpoints: [` + strings.Join(s.Endpoints, ", ") + `]
    tls:
      ca_file: ` + s.PKI.CAFile + `
      cert_file: ` + s.PKI.ClientCert + `
      key_file: ` + s.PKI.ClientKey + `
    username: ` + etcdtest.User + `
    password_file: ` + pwFile + `
nodes:
  gate1:
    addr: 1.1.1
    join_wait: 1s
    gateway:
      tcp: 127.0.0.1:0
      public: [echo.Say]
      routes:
        echo: {module: world}
  world1:
    addr: 1.2.1
    join_wait: 1s
    modules: [world]
modules:
  world: {greeting: hello}
`
	rec := &recorder{}
	reg := app.NewRegistry()
	reg.Register("world", func() app.Module { return &echoModule{name: "world", serve: true, rec: rec} })
	path := writeFile(t, file)
	cfg, err := config.Load(path, nil, reg.Names())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	gate, err := app.Start(ctx, cfg, "gate1", reg, app.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	defer gate.Shutdown(context.Background())

	// world1's password comes from the environment, not from the file.
	envFile := writeFile(t, strings.Replace(file, "    password_file: "+pwFile+"\n", "", 1))
	envCfg, err := config.Load(envFile, []string{config.EtcdPasswordEnv + "=" + etcdtest.Password}, reg.Names())
	if err != nil {
		t.Fatal(err)
	}
	if envCfg.Cluster.Etcd.PasswordFile != "" {
		t.Fatal("the second file still names the password file")
	}
	world, err := app.Start(ctx, envCfg, "world1", reg, app.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	defer world.Shutdown(context.Background())
	await.True(t, 10*time.Second, "2 members in the gateway's view", func() bool { return len(gate.Members().Members()) == 2 })

	c, err := client.Dial(ctx, client.Config{Addr: gate.Ready().Gateway["tcp"]})
	if err != nil {
		t.Fatal(err)
	}
	var resp wrapperspb.StringValue
	if err := c.Request(ctx, "echo.Say", wrapperspb.String("hi"), &resp); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if resp.GetValue() != "hello from world1: hi" {
		t.Errorf("reply %q", resp.GetValue())
	}
	st, err := app.Status(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 || !st[0].Up || !st[1].Up {
		t.Errorf("status %+v", st)
	}

	// A wrong password: the node does not start, and says why.
	const wrong = "wrong-password-123"
	bad, err := config.Load(envFile, []string{config.EtcdPasswordEnv + "=" + wrong}, reg.Names())
	if err != nil {
		t.Fatal(err)
	}
	n, err := app.Start(ctx, bad, "world1", reg, app.WithLogger(log))
	if err == nil {
		n.Shutdown(context.Background())
		t.Fatal("a node with a wrong etcd password started")
	}
	if !strings.Contains(err.Error(), "authentication failed") || strings.Contains(err.Error(), wrong) {
		t.Errorf("start with a wrong password: %v; want authentication failed, without the password", err)
	}

	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	if err := world.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	if err := gate.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
}
