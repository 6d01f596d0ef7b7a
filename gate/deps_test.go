package gate_test

import (
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/gate"
)

// TestNoOptionalLink: package gate links no WebSocket, KCP or MQTT
// library (a gateway without them does not carry coder/websocket, kcp-go
// or mochi-mqtt; packages gate/websocket, gate/kcp and gate/mqtt bring
// them), nor those leaf packages; package gate/kcp links no gateway
// (package client imports it for kcp:// addresses). It asks the go tool,
// and skips when there is none.
func TestNoOptionalLink(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH:", err)
	}
	for _, c := range []struct {
		pkg, banned string
		subpackages bool // the banned path's subpackages too
	}{
		{"github.com/guildkit/guild/gate", "github.com/coder/websocket", true},
		{"github.com/guildkit/guild/gate", "github.com/guildkit/guild/gate/websocket", false},
		{"github.com/guildkit/guild/gate", "github.com/xtaci/kcp-go", true},
		{"github.com/guildkit/guild/gate", "github.com/guildkit/guild/gate/kcp", false},
		{"github.com/guildkit/guild/gate/kcp", "github.com/guildkit/guild/gate", false},
		{"github.com/guildkit/guild/gate", "github.com/mochi-mqtt/server", true},
		{"github.com/guildkit/guild/gate", "github.com/guildkit/guild/gate/mqtt", false},
	} {
		out, err := exec.Command(goTool, "list", "-deps", c.pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", c.pkg, err, out)
		}
		for dep := range strings.FieldsSeq(string(out)) {
			if dep == c.banned || c.subpackages && strings.HasPrefix(dep, c.banned+"/") {
				t.Errorf("%s links %s", c.pkg, dep)
			}
		}
	}
}

// TestServeListener: a listener the gateway did not open serves the
// framed protocol, its sessions named by ServeListener's network; a name
// that is empty or another framing's is refused, and the listener with
// it closed.
func TestServeListener(t *testing.T) {
	opened := make(chan string, 1)
	f := startOneNode(t, gate.Config{Public: []string{"chat.Echo"}, OnOpen: func(s *gate.SessionInfo) { opened <- s.Listener }})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.g.ServeListener(ln, "tcp-internal", false); err != nil {
		t.Fatal(err)
	}
	c := dial(t, client.Config{Addr: "tcp://" + ln.Addr().String()})
	if got, err := call(t, c, "chat.Echo", "hi"); err != nil || got != "echo:hi" {
		t.Fatalf("chat.Echo: %q, %v", got, err)
	}
	if l := recv(t, opened, "the session"); l != "tcp-internal" {
		t.Errorf("SessionInfo.Listener %q, want tcp-internal", l)
	}

	for _, network := range []string{"", "ws", "mqtt", "mqtt-ws"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if err := f.g.ServeListener(ln, network, false); err == nil || !strings.Contains(err.Error(), "gate: ServeListener: network") {
			t.Errorf("network %q: %v, want an error naming it", network, err)
		}
		if _, err := ln.Accept(); err == nil {
			t.Errorf("network %q: the refused listener is still open", network)
		}
	}
}
