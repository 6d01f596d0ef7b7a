package app_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/config"
	"github.com/guildkit/guild/internal/testpki"
	"github.com/guildkit/guild/stream"
)

// lineGame is a module that serves the stream service "game": it answers
// each line with the node's name, the client's address and the line.
type lineGame struct{ node string }

func (m *lineGame) Start(_ context.Context, env *app.Env) error {
	if env.Streams == nil {
		return fmt.Errorf("no stream host on %s", env.NodeName)
	}
	m.node = env.NodeName
	env.Streams.Handle("game", func(_ context.Context, s *stream.Stream) {
		r := bufio.NewReader(s)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if _, err := fmt.Fprintf(s, "%s %s %s", m.node, s.Info(), line); err != nil {
				return
			}
		}
	})
	return nil
}

func (m *lineGame) Stop(context.Context) error { return nil }

// TestStreamsFromClusterFile: a streams section runs a stream host on
// the mesh's TLS, and streams.gateway pipes clients to a module's nodes.
func TestStreamsFromClusterFile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pki := testpki.New(t, "guild-node")
	reg := app.NewRegistry()
	reg.Register("game", func() app.Module { return &lineGame{} })
	cfg, err := config.Load(writeFile(t, fmt.Sprintf(`
cluster:
  etcd: {ttl: 2s, prefix: /apptest-streams}
  transport:
    tls: {cert_file: %s, key_file: %s, ca_file: %s, server_name: localhost}
nodes:
  gate1:
    addr: 1.1.1
    master: 127.0.0.1:0
    streams:
      listen: 127.0.0.1:0
      gateway: {listen: 127.0.0.1:0, module: game, service: game, pick: round-robin}
  game1:
    addr: 1.2.1
    modules: [game]
    streams: {listen: 127.0.0.1:0, max_rate: 50000000, busy_rate: 20000000}
`, pki.ServerCert, pki.ServerKey, pki.CAFile)), nil, reg.Names())
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
	game, err := app.Start(ctx, cfg, "game1", reg, app.WithEtcdEndpoints(ready.Etcd...), app.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	defer game.Shutdown(context.Background())
	addr, ok := strings.CutPrefix(ready.Gateway["stream"], "tcp://")
	if !ok {
		t.Fatalf("the stream gateway's URL is %q", ready.Gateway["stream"])
	}
	var line string
	waitFor(t, 10*time.Second, "a client to reach the game node through the stream gateway", func() bool {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(conn, "hello\n"); err != nil {
			return false
		}
		line, err = bufio.NewReader(conn).ReadString('\n')
		return err == nil
	})
	if !strings.HasPrefix(line, "game1 127.0.0.1:") || !strings.HasSuffix(line, " hello\n") {
		t.Fatalf("the game node answered %q", line)
	}

	// The game node's stream listener speaks TLS only: a hello in clear
	// gets no hello back.
	conn, err := net.Dial("tcp", game.Streams().ListenAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = conn.Write([]byte("\x00\x00\x00\x0cGSTRM1\x01\x00\x00\x10\x10\x01"))
	got, _ := io.ReadAll(conn)
	if strings.Contains(string(got), "GSTRM1") {
		t.Fatalf("the stream listener answered a clear hello: %q", got)
	}
}

func TestStreamsConfigErrors(t *testing.T) {
	for name, section := range map[string]string{
		"no backends":      `{listen: 127.0.0.1:0, gateway: {listen: 127.0.0.1:0}}`,
		"both":             `{gateway: {listen: 127.0.0.1:0, module: game, node_type: 2}}`,
		"unknown module":   `{gateway: {listen: 127.0.0.1:0, module: nope}}`,
		"bad pick":         `{gateway: {listen: 127.0.0.1:0, node_type: 2, pick: best}}`,
		"small window":     `{window: 1000}`,
		"no gateway port":  `{gateway: {node_type: 2}}`,
		"bad listen":       `{listen: nowhere}`,
		"negative streams": `{max_streams_per_peer: -1}`,
		"negative rate":    `{max_rate: -5}`,
	} {
		reg := app.NewRegistry()
		reg.Register("game", func() app.Module { return &lineGame{} })
		_, err := config.Parse(fmt.Appendf(nil, "nodes:\n  n: {addr: 1.1.1, master: 127.0.0.1:0, modules: [game], streams: %s}\n", section), nil, reg.Names())
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if !strings.Contains(err.Error(), "streams") {
			t.Errorf("%s: %v does not name the section", name, err)
		}
	}
}
