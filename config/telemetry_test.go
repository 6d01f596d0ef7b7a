package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTelemetry: telemetry.metrics is every node's metrics address unless
// the node has its own; the token comes from the file, a token file or
// the environment.
func TestTelemetry(t *testing.T) {
	file := `
telemetry: {metrics: ":9100", token: 0123456789abcdef}
nodes:
  a: {addr: 1.1.1, master: 127.0.0.1:0}
  b: {addr: 1.2.1, telemetry: {metrics: "127.0.0.1:9101"}}
  c: {addr: 1.2.2, telemetry: {metrics: "127.0.0.1:9102"}}
`
	c, err := Parse([]byte(file), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for node, want := range map[string]string{"a": ":9100", "b": "127.0.0.1:9101", "c": "127.0.0.1:9102", "nope": ":9100"} {
		if got := c.MetricsListen(node); got != want {
			t.Errorf("MetricsListen(%s) = %q, want %q", node, got, want)
		}
	}
	if tok, err := c.MetricsToken(); err != nil || tok != "0123456789abcdef" {
		t.Errorf("MetricsToken = %q, %v", tok, err)
	}
	c, err = Parse([]byte(file), []string{"GUILD_TELEMETRY_TOKEN=from-the-environment", "GUILD_NODES_A_TELEMETRY_METRICS=:9200"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok, _ := c.MetricsToken(); tok != "from-the-environment" || c.MetricsListen("a") != ":9200" {
		t.Errorf("overrides: token %q, a's metrics %q", tok, c.MetricsListen("a"))
	}
	c, err = Parse([]byte("nodes: {a: {addr: 1.1.1, master: 127.0.0.1:0}}"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.MetricsListen("a"); got != "" {
		t.Errorf("MetricsListen without telemetry = %q", got)
	}

	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("  0123456789abcdef-from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = Parse([]byte("telemetry: {metrics: ':0', token_file: "+tokenFile+"}\nnodes: {a: {addr: 1.1.1, master: 127.0.0.1:0}}"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckFiles("a"); err != nil {
		t.Fatal(err)
	}
	if tok, err := c.MetricsToken(); err != nil || tok != "0123456789abcdef-from-a-file" {
		t.Errorf("MetricsToken from a file = %q, %v", tok, err)
	}
	missing := filepath.Join(dir, "nope")
	c, err = Parse([]byte("telemetry: {metrics: ':0', token_file: "+missing+"}\nnodes: {a: {addr: 1.1.1, master: 127.0.0.1:0}}"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckFiles("a"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "telemetry.token_file: tokenauth: open "+missing) {
		t.Errorf("CheckFiles with a missing token file: %v", err)
	}
}

func TestTelemetryValidation(t *testing.T) {
	for _, tc := range []struct{ name, file, want string }{
		{"bad address", "telemetry: {metrics: '9100'}\nnodes: {a: {addr: 1.1.1, master: 127.0.0.1:0}}",
			`telemetry.metrics: "9100" is not host:port`},
		{"bad node address", "nodes: {a: {addr: 1.1.1, master: 127.0.0.1:0, telemetry: {metrics: 'x:99999'}}}",
			`nodes.a.telemetry.metrics: "x:99999": port "99999" is not 0..65535`},
		{"empty node section", "nodes: {a: {addr: 1.1.1, master: 127.0.0.1:0, telemetry: {}}}",
			"nodes.a.telemetry.metrics: required"},
		{"node clash", "nodes: {a: {addr: 1.1.1, master: 127.0.0.1:2379, telemetry: {metrics: '127.0.0.1:2379'}}}",
			"nodes.a.telemetry.metrics: 127.0.0.1:2379 is also nodes.a.master"},
		{"short token", "telemetry: {metrics: ':9100', token: short}\nnodes: {a: {addr: 1.1.1, master: 127.0.0.1:0}}",
			"telemetry.token: 5 bytes, fewer than 16"},
		{"token and file", "telemetry: {metrics: ':9100', token: 0123456789abcdef, token_file: f}\nnodes: {a: {addr: 1.1.1, master: 127.0.0.1:0}}",
			"telemetry: token and token_file exclude each other"},
		{"token without metrics", "telemetry: {token: 0123456789abcdef}\nnodes: {a: {addr: 1.1.1, master: 127.0.0.1:0}}",
			"telemetry: a token guards the metrics listeners, but no node has one"},
		{"unknown key", "telemetry: {metric: ':9100'}\nnodes: {a: {addr: 1.1.1, master: 127.0.0.1:0}}",
			"telemetry.metric: unknown key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.file), nil, nil)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse: %v, want %q", err, tc.want)
			}
		})
	}
	// The cluster-wide address is each machine's: it does not clash with
	// itself across nodes.
	if _, err := Parse([]byte("telemetry: {metrics: ':9100'}\nnodes: {a: {addr: 1.1.1, master: 127.0.0.1:0}, b: {addr: 1.1.2}}"), nil, nil); err != nil {
		t.Errorf("two nodes on telemetry.metrics: %v", err)
	}
}

// TestTraces: telemetry.traces is read, from the file and GUILD_
// variables, and checked.
func TestTraces(t *testing.T) {
	const file = `
telemetry: {traces: {endpoint: "collector:4317", insecure: true, sample_ratio: 0.25}}
nodes:
  a: {addr: 1.1.1, master: 127.0.0.1:0}
`
	c, err := Parse([]byte(file), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := c.Telemetry.Traces
	if tr.Endpoint != "collector:4317" || !tr.Insecure || tr.SampleRatio == nil || *tr.SampleRatio != 0.25 {
		t.Fatalf("traces %+v", tr)
	}
	c, err = Parse([]byte(file), []string{"GUILD_TELEMETRY_TRACES_SAMPLE_RATIO=1", "GUILD_TELEMETRY_TRACES_ENDPOINT=other:4317"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tr := c.Telemetry.Traces; tr.Endpoint != "other:4317" || *tr.SampleRatio != 1 {
		t.Fatalf("traces from the environment %+v", tr)
	}
	for bad, key := range map[string]string{
		`telemetry: {traces: {sample_ratio: 1.5}}`:            "telemetry.traces.sample_ratio",
		`telemetry: {traces: {sample_ratio: -0.1}}`:           "telemetry.traces.sample_ratio",
		`telemetry: {traces: {endpoint: "no-port"}}`:          "telemetry.traces.endpoint",
		`telemetry: {traces: {endpoint: "x:4317", bogus: 1}}`: "bogus",
	} {
		_, err := Parse([]byte(bad+"\nnodes:\n  a: {addr: 1.1.1, master: 127.0.0.1:0}\n"), nil, nil)
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: %v, want an error naming %s", bad, err, key)
		}
	}
}
