package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/rpc"
)

// startGateway runs a one-node gateway whose service "chat" echoes
// (chat.Echo, which also pushes chat.Pushed) and has no method Nope. Both
// routes are public. It returns the gateway and its tcp:// address.
func startGateway(t *testing.T) (*gate.Gateway, string) {
	t.Helper()
	n, err := actor.NewNode(actor.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svc := gate.NewService("chat")
	gate.Handle(svc, "Echo", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		if req.Value == "push" {
			if err := s.Push("chat.Pushed", wrapperspb.String("pushed")); err != nil {
				return nil, err
			}
		}
		return wrapperspb.String("echo:" + req.Value), nil
	})
	pid, err := svc.Serve(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gate.New(gate.Config{
		Node:   n,
		Routes: map[string]gate.Route{"chat": gate.To(rpc.To(pid))},
		Public: []string{"chat.Echo", "chat.Nope"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() }) // before the node's Close: cleanups run last first
	addr, err := g.ListenTCP("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	return g, "tcp://" + addr.String()
}

func TestConsole(t *testing.T) {
	_, addr := startGateway(t)
	in := strings.NewReader(`# a comment
request chat.Echo google.protobuf.StringValue "hi" google.protobuf.StringValue
request chat.Echo google.protobuf.StringValue "hi"
request chat.Nope
request chat.Echo google.protobuf.StringValue "push"   google.protobuf.StringValue
request chat.Echo google.protobuf.StringValue {"not": "a string"}
request chat.Echo no.such.Type {}
frobnicate
session
quit
request chat.Echo google.protobuf.StringValue "after quit" google.protobuf.StringValue
`)
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code := console(ctx, []string{"-addr", addr, "-push", "chat.Pushed=google.protobuf.StringValue"}, in, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit code %d, want 0; stderr:\n%s", code, stderr.String())
	}
	out := stdout.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{
		`reply chat.Echo "echo:hi"`,
		`reply chat.Echo (9 bytes) CgdlY2hvOmhp`,
		`error Unimplemented service chat has no method "Nope"`,
		`push chat.Pushed "pushed"`,
		`reply chat.Echo "echo:push"`,
	}
	if len(lines) != len(want)+1 {
		t.Fatalf("got %d lines, want %d:\n%s\nstderr:\n%s", len(lines), len(want)+1, out, stderr.String())
	}
	for i, w := range want {
		if lines[i] != w {
			t.Errorf("line %d = %q, want %q", i+1, lines[i], w)
		}
	}
	if !strings.HasPrefix(lines[len(want)], "session 1.1.1/") || !strings.HasSuffix(lines[len(want)], " user -") {
		t.Errorf("session line = %q", lines[len(want)])
	}
	contains(t, "stderr", stderr.String(),
		"google.protobuf.StringValue:",
		`unknown message type "no.such.Type"`,
		`unknown command "frobnicate"`)
}

func TestConsoleConnectionLost(t *testing.T) {
	g, addr := startGateway(t)
	pr, pw := io.Pipe()
	defer pw.Close()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- console(context.Background(), []string{"-addr", addr}, pr, &stdout, &stderr) }()
	deadline := time.Now().Add(10 * time.Second)
	for g.Conns() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the console did not connect")
		}
		time.Sleep(10 * time.Millisecond)
	}
	g.Close()
	select {
	case code := <-done:
		if code != exitError {
			t.Errorf("exit code %d, want %d", code, exitError)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the console did not exit when its connection ended")
	}
	contains(t, "stdout", stdout.String(), "closed ")
}

func TestConsoleFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "-addr is required"},
		{[]string{"-addr", "tcp://127.0.0.1:1", "-push", "x"}, `-push "x" is not route=Type`},
		{[]string{"-addr", "tcp://127.0.0.1:1", "-push", "a.B=no.Such"}, `unknown message type "no.Such"`},
		{[]string{"-addr", "tcp://127.0.0.1:1", "extra"}, "unexpected argument"},
	} {
		code, _, errOut := runCmd(append([]string{"console"}, tc.args...)...)
		if code != exitUsage {
			t.Errorf("%v: exit code %d, want %d", tc.args, code, exitUsage)
		}
		contains(t, "stderr", errOut, tc.want)
	}
	code, _, errOut := runCmd("console", "-addr", "tcp://127.0.0.1:1")
	if code != exitError {
		t.Errorf("unreachable gateway: exit code %d, want %d", code, exitError)
	}
	contains(t, "stderr", errOut, "guild console: ")
}

func TestConsoleHelp(t *testing.T) {
	code, _, errOut := runCmd("console", "-h")
	if code != exitOK {
		t.Fatalf("exit code %d", code)
	}
	contains(t, "help", errOut, "usage: guild console", "request <route>", "-proto", "-push", "error <Code> <message>", "session")
	_, out, _ := runCmd("help")
	contains(t, "usage", out, "console  ", "bot      ")
}

func TestParseRequest(t *testing.T) {
	for _, tc := range []struct {
		in                      string
		route, typ, json, reply string
		err                     string
	}{
		{in: "a.B", route: "a.B"},
		{in: "a.B T", route: "a.B", typ: "T", json: "{}"},
		{in: `a.B T {"x": "y z"}`, route: "a.B", typ: "T", json: `{"x": "y z"}`},
		{in: `a.B T {"x": 1}R`, route: "a.B", typ: "T", json: `{"x": 1}`, reply: "R"},
		{in: `a.B T "s p" R`, route: "a.B", typ: "T", json: `"s p"`, reply: "R"},
		{in: `a.B T 12 R`, route: "a.B", typ: "T", json: `12`, reply: "R"},
		{in: "", err: "usage: request"},
		{in: "a.B T {", err: "not JSON"},
		{in: `a.B T {} R extra`, err: "unexpected"},
	} {
		route, typ, js, reply, err := parseRequest(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || route != tc.route || typ != tc.typ || js != tc.json || reply != tc.reply {
			t.Errorf("%q = %q %q %q %q %v, want %q %q %q %q", tc.in, route, typ, js, reply, err, tc.route, tc.typ, tc.json, tc.reply)
		}
	}
}

// TestConsoleProtoFile names a message of a -proto file, which is
// encoded like StringValue, in a request and its reply.
func TestConsoleProtoFile(t *testing.T) {
	_, addr := startGateway(t)
	dir := t.TempDir()
	proto := `syntax = "proto3";
package test;
import "google/protobuf/empty.proto";
message Text { string value = 1; google.protobuf.Empty unused = 2; }
`
	if err := os.WriteFile(filepath.Join(dir, "text.proto"), []byte(proto), 0o644); err != nil {
		t.Fatal(err)
	}
	in := strings.NewReader("request chat.Echo test.Text {\"value\": \"x\"} test.Text\n")
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code := console(ctx, []string{"-addr", addr, "-I", dir, "-proto", "text.proto"}, in, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit code %d, want 0; stderr:\n%s", code, stderr.String())
	}
	if got, want := stdout.String(), `reply chat.Echo {"value":"echo:x"}`+"\n"; got != want {
		t.Errorf("stdout = %q, want %q; stderr:\n%s", got, want, stderr.String())
	}
}
