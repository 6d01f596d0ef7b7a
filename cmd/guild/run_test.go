package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/config"
)

// writeClusterFile writes a cluster file into a temporary directory.
func writeClusterFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRunInProcess runs guild run on a one-node cluster file (a master
// with a gateway, on free ports), lists it with guild status, and stops
// it by cancelling its ctx, as SIGINT does.
func TestRunInProcess(t *testing.T) {
	path := writeClusterFile(t, `
cluster:
  etcd: {ttl: 2s}
nodes:
  solo:
    addr: 1.1.1
    master: 127.0.0.1:0
    gateway:
      tcp: 127.0.0.1:0
`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 4)
	stdout := &lineWriter{fn: func(line string) { ready <- line }}
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		// Flags may come in any order, with - or --.
		done <- runApp(ctx, []string{"--node", "solo", "-c", path, "-shutdown-timeout", "10s"}, nil, app.NewRegistry(), stdout, &stderr)
	}()
	defer func() {
		if t.Failed() {
			t.Logf("guild run's stderr:\n%s", stderr.String())
		}
	}()

	var ev struct {
		Event    string            `json:"event"`
		Node     string            `json:"node"`
		Addr     string            `json:"addr"`
		Endpoint string            `json:"endpoint"`
		Etcd     []string          `json:"etcd"`
		Gateway  map[string]string `json:"gateway"`
		Version  string            `json:"version"`
		PID      int               `json:"pid"`
	}
	select {
	case line := <-ready:
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("ready line %q: %v", line, err)
		}
	case code := <-done:
		t.Fatalf("guild run exited with code %d before it was ready", code)
	case <-time.After(30 * time.Second):
		cancel()
		<-done
		t.Fatal("no ready line after 30s")
	}
	if ev.Event != "ready" || ev.Node != "solo" || ev.Addr != "1.1.1" || ev.Endpoint == "" || ev.PID != os.Getpid() || ev.Version != version ||
		len(ev.Etcd) != 1 || !strings.HasPrefix(ev.Etcd[0], "http://127.0.0.1:") ||
		!strings.HasPrefix(ev.Gateway["tcp"], "tcp://127.0.0.1:") {
		t.Errorf("ready event %+v", ev)
	}

	// guild status, told the master's endpoint by -etcd, and by the
	// environment.
	for _, tc := range []struct {
		name    string
		args    []string
		environ []string
	}{
		{"flag", []string{"-c", path, "-etcd", ev.Etcd[0]}, nil},
		{"env", []string{"-c", path}, []string{"GUILD_CLUSTER_ETCD_ENDPOINTS=" + ev.Etcd[0]}},
	} {
		var out, errOut syncBuffer
		if code := statusCmd(ctx, tc.args, tc.environ, &out, &errOut); code != exitOK {
			t.Fatalf("status (%s): exit code %d; stderr:\n%s", tc.name, code, errOut.String())
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) != 2 {
			t.Fatalf("status (%s): %d lines:\n%s", tc.name, len(lines), out.String())
		}
		contains(t, "status header", lines[0], "NAME", "ADDR", "TYPE", "ENDPOINT", "AVAILABLE", "UPTIME", "VERSION")
		f := strings.Fields(lines[1])
		if len(f) != 7 || f[0] != "solo" || f[1] != "1.1.1" || f[2] != "1" || f[3] != ev.Endpoint || f[4] != "yes" || f[6] != version {
			t.Errorf("status (%s) row %q", tc.name, lines[1])
		}
	}

	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("exit code %d, want 0", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("guild run did not exit 30s after its ctx ended")
	}
	contains(t, "stderr", stderr.String(), "left the cluster", "stopped")
}

func TestRunInvalidFile(t *testing.T) {
	path := writeClusterFile(t, `
nodes:
  a: {addr: 1.2, master: 127.0.0.1:0, modules: [nope]}
  b: {addr: 1.1.1, listen: 127.0.0.1:7101, gateway: {tcp: 127.0.0.1:7101}}
`)
	var out, errOut syncBuffer
	code := runApp(context.Background(), []string{"-c", path, "-node", "a"},
		[]string{"GUILD_NODES_A_LISTN=x"}, app.NewRegistry(), &out, &errOut)
	if code != exitUsage {
		t.Errorf("exit code %d, want %d", code, exitUsage)
	}
	if out.String() != "" {
		t.Errorf("stdout is not empty:\n%s", out.String())
	}
	got := errOut.String()
	contains(t, "stderr", got, "guild run: invalid cluster file:\n",
		path+`: GUILD_NODES_A_LISTN: matches no field`)
	// Variables are checked before the file: fix it to see the rest.
	errOut = syncBuffer{}
	code = runApp(context.Background(), []string{"-c", path, "-node", "a"}, nil, app.NewRegistry(), &out, &errOut)
	if code != exitUsage {
		t.Errorf("exit code %d, want %d", code, exitUsage)
	}
	got = errOut.String()
	for _, want := range []string{
		path + `: nodes.a.addr: "1.2" is not cluster.type.index`,
		path + `: nodes.a.modules[0]: no module "nope" in the game's registry (it has none)`,
		path + `: nodes.b.gateway.tcp: 127.0.0.1:7101 is also nodes.b.listen`,
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("stderr has no line %q:\n%s", want, got)
		}
	}
}

func TestRunUsageErrors(t *testing.T) {
	path := writeClusterFile(t, "nodes:\n  a: {addr: 1.1.1, master: 127.0.0.1:0}\n")
	for _, tc := range []struct {
		name string
		args []string
		want string
		code int
	}{
		{"no file", []string{"-node", "a"}, "-c is required", exitUsage},
		{"no node", []string{"-c", path}, "-node is required", exitUsage},
		{"unknown node", []string{"-c", path, "-node", "b"}, `has no node "b" (it has a)`, exitUsage},
		{"missing file", []string{"-c", path + ".none", "-node", "a"}, "no such file", exitError},
		{"bad timeout", []string{"-c", path, "-node", "a", "-shutdown-timeout", "0s"}, "-shutdown-timeout 0s is not positive", exitUsage},
		{"extra argument", []string{"-c", path, "-node", "a", "x"}, "unexpected argument", exitUsage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut syncBuffer
			code := runApp(context.Background(), tc.args, nil, app.NewRegistry(), &out, &errOut)
			if code != tc.code {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
			contains(t, "stderr", errOut.String(), tc.want)
		})
	}
}

func TestRunAndStatusHelp(t *testing.T) {
	code, _, errOut := runCmd("run", "-h")
	if code != exitOK {
		t.Fatalf("exit code %d", code)
	}
	contains(t, "run help", errOut, "usage: guild run", "-node", "-shutdown-timeout", "GUILD_", `"event":"ready"`)
	code, _, errOut = runCmd("status", "-h")
	if code != exitOK {
		t.Fatalf("exit code %d", code)
	}
	contains(t, "status help", errOut, "usage: guild status", "AVAILABLE", "-etcd")
	_, out, _ := runCmd("help")
	contains(t, "usage", out, "run      run a node of a cluster file", "status   list the nodes")
}

func TestStatusErrors(t *testing.T) {
	code, _, errOut := runCmd("status")
	if code != exitUsage || !strings.Contains(errOut, "-c is required") {
		t.Errorf("no -c: %d %q", code, errOut)
	}
	path := writeClusterFile(t, "nodes:\n  a: {addr: 1.1.1}\n")
	code, _, errOut = runCmd("status", "-c", path)
	if code != exitUsage || !strings.Contains(errOut, "cluster.etcd.endpoints: the nodes have no etcd") {
		t.Errorf("invalid file: %d %q", code, errOut)
	}
}

func TestGuildModules(t *testing.T) {
	if guildModules() == nil {
		t.Fatal("nil registry")
	}
}

// TestRunMissingAuthFile: guild run reads the files of the node it runs
// before it starts anything; a missing one is a problem of the cluster
// file, naming its key (exit 2). The other nodes do not read them.
func TestRunMissingAuthFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "tokens.txt")
	path := writeClusterFile(t, `
nodes:
  gate: {addr: 1.1.1, master: 127.0.0.1:0, gateway: {mqtt: 127.0.0.1:0, auth: {tokens_file: `+missing+`}}}
  world: {addr: 1.2.1}
`)
	var out, errOut syncBuffer
	code := runApp(context.Background(), []string{"-c", path, "-node", "gate"}, nil, app.NewRegistry(), &out, &errOut)
	if code != exitUsage || out.String() != "" {
		t.Errorf("exit code %d, stdout %q; want %d and nothing", code, out.String(), exitUsage)
	}
	contains(t, "stderr", errOut.String(), "guild run: invalid cluster file:\n",
		"nodes.gate.gateway.auth.tokens_file: tokenauth: open "+missing)
	if _, err := config.Load(path, nil, nil); err != nil {
		t.Errorf("loading the file elsewhere (the world node, guild status) reads no token file: %v", err)
	}
}
