package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gatekcp "github.com/guildkit/guild/gate/kcp"
)

// TestKCPKeyFile: console and bot reach an encrypted KCP gateway with
// -kcp-key-file; a file that is missing or too short is a usage error
// that names the flag.
func TestKCPKeyFile(t *testing.T) {
	secret := "0123456789abcdef0123456789abcdef"
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "kcp.key")
	short := filepath.Join(dir, "short")
	for p, body := range map[string]string{keyFile: secret + "\n", short: "tiny\n"} {
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	g, _ := startGateway(t)
	a, err := gatekcp.Listen(g, "127.0.0.1:0", gatekcp.Options{Key: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	addr := "kcp://" + a.String()

	var stdout, stderr syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	in := strings.NewReader("request chat.Echo google.protobuf.StringValue \"hi\" google.protobuf.StringValue\nquit\n")
	if code := console(ctx, []string{"-addr", addr, "-kcp-key-file", keyFile}, in, &stdout, &stderr); code != exitOK {
		t.Fatalf("console: exit code %d, want 0; stderr:\n%s", code, stderr.String())
	}
	contains(t, "console's stdout", stdout.String(), `reply chat.Echo "echo:hi"`)

	code, out, errOut := runCmd("bot", "-addr", addr, "-kcp-key-file", keyFile, "-n", "2", "-duration", "1s", "-ramp", "0s", "-route", "chat.Echo")
	if code != exitOK {
		t.Fatalf("bot: exit code %d, want 0; stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}

	for _, cmd := range []string{"console", "bot"} {
		for _, tc := range []struct{ file, want string }{
			{filepath.Join(dir, "nope"), "no such file"},
			{short, "the secret has 4 bytes, fewer than 16"},
		} {
			code, _, errOut := runCmd(cmd, "-addr", addr, "-kcp-key-file", tc.file)
			if code != exitUsage {
				t.Errorf("%s -kcp-key-file %s: exit code %d, want %d", cmd, tc.file, code, exitUsage)
			}
			contains(t, cmd+"'s stderr", errOut, "guild "+cmd+": -kcp-key-file: ", tc.want)
		}
	}
}
