package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/cluster/etcd"
	"github.com/guildkit/guild/internal/etcdtest"
)

func TestNodeFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no addr", []string{"-master", "127.0.0.1:0"}, "-addr is required"},
		{"bad addr", []string{"-addr", "1.2", "-master", "127.0.0.1:0"}, "-addr: actor: bad address"},
		{"addr out of range", []string{"-addr", "1.2.99999", "-master", "127.0.0.1:0"}, "-addr: actor: bad address"},
		{"neither master nor etcd", []string{"-addr", "1.2.3"}, "one of -master and -etcd is required"},
		{"master and etcd", []string{"-addr", "1.2.3", "-master", "127.0.0.1:0", "-etcd", "http://127.0.0.1:2379"}, "-master and -etcd exclude each other"},
		{"empty etcd endpoint", []string{"-addr", "1.2.3", "-etcd", "http://127.0.0.1:2379,"}, "-etcd: empty endpoint"},
		{"bad master", []string{"-addr", "1.2.3", "-master", "localhost"}, "-master:"},
		{"bad listen", []string{"-addr", "1.2.3", "-master", "127.0.0.1:0", "-listen", "nowhere"}, "-listen:"},
		{"short ttl", []string{"-addr", "1.2.3", "-master", "127.0.0.1:0", "-ttl", "500ms"}, "-ttl 500ms is below the minimum 1s"},
		{"data without master", []string{"-addr", "1.2.3", "-etcd", "http://127.0.0.1:2379", "-data", "x"}, "-data is the embedded etcd's directory: it needs -master"},
		{"extra argument", []string{"-addr", "1.2.3", "-master", "127.0.0.1:0", "extra"}, "unexpected argument"},
		{"unknown flag", []string{"-addr", "1.2.3", "-nope"}, "flag provided but not defined: -nope"},
		{"etcd TLS with master", []string{"-addr", "1.2.3", "-master", "127.0.0.1:0", "-etcd-ca", "ca.pem"}, "the -etcd-* flags configure the client of an existing etcd: they need -etcd"},
		{"etcd cert without key", []string{"-addr", "1.2.3", "-etcd", "https://127.0.0.1:2379", "-etcd-cert", "c.pem"}, "-etcd-cert and -etcd-key go together"},
		{"etcd TLS over http", []string{"-addr", "1.2.3", "-etcd", "http://127.0.0.1:2379", "-etcd-ca", "ca.pem"}, "the -etcd TLS flags need https endpoints"},
		{"etcd password without user", []string{"-addr", "1.2.3", "-etcd", "http://127.0.0.1:2379", "-etcd-password-file", "pw"}, "-etcd-password-file needs -etcd-user"},
		{"etcd password file missing", []string{"-addr", "1.2.3", "-etcd", "http://127.0.0.1:2379", "-etcd-user", "u", "-etcd-password-file", "/nonexistent/pw"}, "-etcd-password-file:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCmd(append([]string{"node"}, tc.args...)...)
			if code != exitUsage {
				t.Errorf("exit code %d, want %d", code, exitUsage)
			}
			if out != "" {
				t.Errorf("stdout is not empty:\n%s", out)
			}
			contains(t, "stderr", errOut, tc.want, "usage: guild node")
		})
	}
}

func TestNodeHelp(t *testing.T) {
	code, out, errOut := runCmd("node", "-h")
	if code != exitOK {
		t.Fatalf("exit code %d, want 0", code)
	}
	if out != "" {
		t.Errorf("stdout is not empty:\n%s", out)
	}
	contains(t, "help", errOut, "usage: guild node", "-master", "-etcd", "-ttl", "guild.diag/<addr>", "ping", "call <name> <timeout>", `"event":"ready"`)
	code, out, _ = runCmd("help", "node")
	if code != exitOK {
		t.Fatalf("help node: exit code %d, want 0", code)
	}
	contains(t, "help node", out, "usage: guild node")
	_, out, _ = runCmd("help")
	contains(t, "usage", out, "node     run one cluster node until interrupted")
}

// TestNodeInProcess runs a master node in this process, joins it with a
// second node, talks to its diagnostic actor, and stops it by cancelling
// its ctx, as SIGINT does.
func TestNodeInProcess(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 4)
	stdout := &lineWriter{fn: func(line string) { ready <- line }}
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- runNode(ctx, []string{"-addr", "1.1.1", "-master", "127.0.0.1:0", "-ttl", "1s", "-data", t.TempDir()}, stdout, &stderr)
	}()
	defer func() {
		if t.Failed() {
			t.Logf("the node's stderr:\n%s", stderr.String())
		}
	}()

	var ev readyEvent
	select {
	case line := <-ready:
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("ready line %q: %v", line, err)
		}
	case code := <-done:
		t.Fatalf("the node exited with code %d before it was ready", code)
	case <-time.After(30 * time.Second):
		cancel()
		<-done
		t.Fatal("no ready line after 30s")
	}
	if ev.Event != "ready" || ev.Addr != "1.1.1" || ev.Endpoint == "" || ev.PID != os.Getpid() ||
		len(ev.Etcd) != 1 || !strings.HasPrefix(ev.Etcd[0], "http://127.0.0.1:") {
		t.Errorf("ready event %+v", ev)
	}

	n, m := joinCluster(t, ev.Etcd, actor.MustAddr(1, 1, 9), time.Second)
	if err := startDiag(ctx, n.Actor(), time.Now(), 0, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "2 members", func() bool { return len(m.Members()) == 2 })

	an := n.Actor()
	got, err := diagRequest(an, "guild.diag/1.1.1", "ping", 5*time.Second)
	if err != nil || !strings.HasPrefix(got, "pong 1.1.1 ") {
		t.Errorf("ping: %q, %v; want pong 1.1.1 <start>", got, err)
	}
	got, err = diagRequest(an, "guild.diag/1.1.1", "call guild.diag/1.1.9 5s", 10*time.Second)
	if err != nil || !strings.HasPrefix(got, "ok pong 1.1.9 ") {
		t.Errorf("call across nodes: %q, %v; want ok pong 1.1.9 <start> <µs>", got, err)
	}
	got, err = diagRequest(an, "guild.diag/1.1.1", "call guild.diag/1.1.1 5s", 10*time.Second)
	if err != nil || !strings.HasPrefix(got, "ok pong 1.1.1 ") {
		t.Errorf("call to itself: %q, %v; want ok pong 1.1.1 <start> <µs>", got, err)
	}
	got, err = diagRequest(an, "guild.diag/1.1.1", "call guild.diag/7.7.7 1s", 10*time.Second)
	if err != nil || !strings.HasPrefix(got, "err ") || !strings.Contains(got, "name not found") {
		t.Errorf("call to nobody: %q, %v; want err <name not found> <µs>", got, err)
	}
	for _, bad := range []string{"hello", "call guild.diag/1.1.9", "call guild.diag/1.1.9 soon", "ping ping"} {
		got, err = diagRequest(an, "guild.diag/1.1.1", bad, 5*time.Second)
		if err == nil || !strings.Contains(err.Error(), "guild.diag: bad request") {
			t.Errorf("%q: %q, %v; want a bad request error", bad, got, err)
		}
	}

	// The test's node goes first: the master's etcd serves its Close.
	if err := n.Close(); err != nil {
		t.Error(err)
	}
	if err := m.Close(); err != nil {
		t.Error(err)
	}
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("exit code %d after cancel, want 0", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the node did not exit 20s after cancel")
	}
	contains(t, "stderr", stderr.String(), "embedded etcd started", "node ready", "stopping")
}

// joinCluster starts a cluster node at addr that joins the etcd at
// endpoints. A cleanup closes it, and its membership, in case the test does
// not.
func joinCluster(t *testing.T, endpoints []string, addr actor.Addr, ttl time.Duration) (*cluster.Node, *etcd.Membership) {
	t.Helper()
	m, err := etcd.New(etcd.Config{Endpoints: endpoints, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := cluster.Start(ctx, cluster.NodeConfig{
		Actor:      actor.Config{Addr: addr, Logger: log},
		Listen:     "127.0.0.1:0",
		Membership: m,
		Names:      m.Names(),
		Logger:     log,
	})
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.Close()
		m.Close()
	})
	return n, m
}

// diagRequest resolves the global name and asks its actor msg, within
// timeout in all.
func diagRequest(n *actor.Node, name, msg string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	pid, err := n.Lookup(ctx, name)
	if err != nil {
		return "", err
	}
	return callString(ctx, n, pid, msg)
}

// callString Calls pid with the StringValue msg and returns the reply's text.
func callString(ctx context.Context, n *actor.Node, pid actor.PID, msg string) (string, error) {
	reply, err := n.Call(ctx, pid, wrapperspb.String(msg))
	if err != nil {
		return "", err
	}
	s, ok := reply.(*wrapperspb.StringValue)
	if !ok {
		return "", fmt.Errorf("reply of type %T", reply)
	}
	return s.GetValue(), nil
}

// waitFor polls cond every 5 ms and fails t after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lineWriter calls fn with every complete line written to it, without the
// newline. Writes may come from several goroutines.
type lineWriter struct {
	mu  sync.Mutex
	buf []byte
	fn  func(line string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.fn(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestNodeEtcdTLSAndAuth: guild node joins an etcd that serves TLS only,
// requires client certificates and has authentication on, with the
// -etcd-* flags: by its certificate's user, and by a user and password
// from a file; a wrong password fails the node with an error that does
// not repeat it.
func TestNodeEtcdTLSAndAuth(t *testing.T) {
	srv := etcdtest.Start(t)
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(etcdtest.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badFile := filepath.Join(t.TempDir(), "bad")
	if err := os.WriteFile(badFile, []byte("not-the-s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tlsArgs := []string{"-etcd", strings.Join(srv.Endpoints, ","), "-etcd-ca", srv.PKI.CAFile, "-etcd-cert", srv.PKI.ClientCert, "-etcd-key", srv.PKI.ClientKey, "-ttl", "1s"}
	for i, tc := range []struct {
		name string
		args []string
	}{
		{"client certificate", nil},
		{"user and password file", []string{"-etcd-user", etcdtest.User, "-etcd-password-file", pwFile}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ready := make(chan string, 4)
			var stderr syncBuffer
			done := make(chan int, 1)
			args := append([]string{"-addr", fmt.Sprintf("1.1.%d", i+1)}, append(tlsArgs, tc.args...)...)
			go func() { done <- runNode(ctx, args, &lineWriter{fn: func(l string) { ready <- l }}, &stderr) }()
			select {
			case line := <-ready:
				if !strings.Contains(line, `"event":"ready"`) {
					t.Fatalf("ready line %q", line)
				}
			case code := <-done:
				t.Fatalf("exit %d before ready; stderr:\n%s", code, stderr.String())
			case <-time.After(30 * time.Second):
				cancel()
				<-done
				t.Fatalf("no ready line after 30s; stderr:\n%s", stderr.String())
			}
			cancel()
			if code := <-done; code != exitOK {
				t.Errorf("exit code %d after cancel; stderr:\n%s", code, stderr.String())
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var stderr syncBuffer
		args := append([]string{"-addr", "1.1.9", "-etcd-user", etcdtest.User, "-etcd-password-file", badFile}, tlsArgs...)
		code := runNode(ctx, args, &lineWriter{fn: func(string) {}}, &stderr)
		if code == exitOK || ctx.Err() != nil {
			t.Fatalf("exit code %d (ctx %v) with a wrong password; stderr:\n%s", code, ctx.Err(), stderr.String())
		}
		if strings.Contains(stderr.String(), "not-the-s3cret") {
			t.Errorf("stderr repeats the password:\n%s", stderr.String())
		}
	})
}
