package app_test

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/config"
	"github.com/guildkit/guild/gate/gatepb"
)

// TestGatewayResumeKeyFromClusterFile: with limits.resume_window and
// resume_key_file, a logged-in session's resume token carries its sealed
// record ("<session>.<secret>~<sealed>"), so that its client can resume
// it on another gateway after this one died; without the key it does
// not.
func TestGatewayResumeKeyFromClusterFile(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.txt")
	keyFile := filepath.Join(dir, "resume.key")
	if err := os.WriteFile(tokens, []byte("good-ann ann\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, key string
		sealed    bool
	}{
		{"with resume_key_file", "resume_key_file: " + keyFile, true},
		{"without a key", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			reg := app.NewRegistry()
			reg.Register("who", func() app.Module { return whoModule{} })
			cfg, err := config.Load(writeFile(t, `
cluster:
  etcd: {ttl: 2s, prefix: /apptest-resume}
nodes:
  gate1:
    addr: 1.1.1
    master: 127.0.0.1:0
    modules: [who]
    gateway:
      tcp: 127.0.0.1:0
      auth: {tokens_file: `+tokens+`}
      `+tc.key+`
      public: [who.Am]
      routes:
        who: {module: who}
      limits: {resume_window: 30s}
`), nil, reg.Names())
			if err != nil {
				t.Fatal(err)
			}
			n, err := app.Start(ctx, cfg, "gate1", reg, app.WithLogger(slog.New(slog.DiscardHandler)))
			if err != nil {
				t.Fatal(err)
			}
			defer n.Shutdown(context.Background())
			ack := rawHandshake(t, strings.TrimPrefix(n.Ready().Gateway["tcp"], "tcp://"), "good-ann")
			tok := ack.GetResumeToken()
			if ack.GetUserId() != "ann" || !strings.HasPrefix(tok, ack.GetSessionId()+".") {
				t.Fatalf("ack %v: want user ann and a resume token", ack)
			}
			if got := strings.Contains(tok, "~"); got != tc.sealed {
				t.Fatalf("resume token %q: sealed record %v, want %v", tok, got, tc.sealed)
			}
		})
	}
}

// rawHandshake opens a framed TCP connection to a gateway, sends a
// Handshake with token and returns the HandshakeAck.
func rawHandshake(t *testing.T, addr, token string) *gatepb.HandshakeAck {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	b, err := gatepb.AppendStream(nil, &gatepb.Frame{Body: &gatepb.Frame_Handshake{Handshake: &gatepb.Handshake{Version: gatepb.Version, Token: token}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write(b); err != nil {
		t.Fatal(err)
	}
	var hdr [gatepb.HeaderSize]byte
	if _, err := io.ReadFull(nc, hdr[:]); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(nc, body); err != nil {
		t.Fatal(err)
	}
	var f gatepb.Frame
	if err := gatepb.Decode(body, &f); err != nil {
		t.Fatal(err)
	}
	ack := f.GetHandshakeAck()
	if ack == nil || ack.GetCode() != 0 {
		t.Fatalf("handshake: %v", &f)
	}
	// A goodbye: the session ends now, rather than waiting the resume
	// window for its client (which the node's Shutdown would wait for).
	bye, _ := gatepb.AppendStream(nil, &gatepb.Frame{Body: &gatepb.Frame_Close{Close: &gatepb.Close{}}})
	_, _ = nc.Write(bye)
	return ack
}
