package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

func writeScenario(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "scenario.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// reportValue returns the first number on the report's line that starts
// with label.
func reportValue(t *testing.T, report, label string) int {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(label) + `\s+(\d+)`).FindStringSubmatch(report)
	if m == nil {
		t.Fatalf("no %q line in the report:\n%s", label, report)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func TestBotScenario(t *testing.T) {
	_, addr := startGateway(t)
	path := writeScenario(t, `steps:
  - request: {route: chat.Echo, type: google.protobuf.StringValue, json: '"bot-{{.N}}"'}
  - request: {route: chat.Echo, type: google.protobuf.StringValue, json: '"hello"'}
    repeat: 3
  - sleep: 10ms
`)
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code := bot(ctx, []string{"-addr", addr, "-n", "20", "-duration", "1200ms", "-ramp", "200ms", "-rate", "20", "-scenario", path}, &stdout, &stderr)
	report := stdout.String()
	if code != exitOK {
		t.Fatalf("exit code %d, want 0; stdout:\n%s\nstderr:\n%s", code, report, stderr.String())
	}
	if n := reportValue(t, report, "clients"); n != 20 {
		t.Errorf("%d clients connected, want 20:\n%s", n, report)
	}
	if n := reportValue(t, report, "requests"); n == 0 {
		t.Errorf("no requests:\n%s", report)
	}
	if n := reportValue(t, report, "errors"); n != 0 {
		t.Errorf("%d errors:\n%s", n, report)
	}
	if n := reportValue(t, report, "connection errors"); n != 0 {
		t.Errorf("%d connection errors:\n%s", n, report)
	}
	contains(t, "report", report, "latency            p50 ", " p90 ", " p99 ", "requests/s ",
		"error rate         0% of ", "at most -max-errors 1%")
	contains(t, "progress", stderr.String(), "clients ", "req/s ")
}

// TestBotDefaultScenarioCountsErrors runs bots whose every request fails:
// the report counts the errors, and the run exits 1 because its error rate
// (100%) is above -max-errors, 1% by default, unless -max-errors allows it.
func TestBotDefaultScenarioCountsErrors(t *testing.T) {
	_, addr := startGateway(t)
	for _, tc := range []struct {
		maxErrors []string
		code      int
		verdict   string
	}{
		{nil, exitError, "above -max-errors 1%"},
		{[]string{"-max-errors", "100%"}, exitOK, "at most -max-errors 100%"},
	} {
		var stdout, stderr syncBuffer
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		// chat.Nope has no method: every request answers Unimplemented.
		args := append([]string{"-addr", addr, "-n", "3", "-duration", "500ms", "-ramp", "0s", "-route", "chat.Nope"}, tc.maxErrors...)
		code := bot(ctx, args, &stdout, &stderr)
		cancel()
		report := stdout.String()
		if code != tc.code {
			t.Fatalf("%v: exit code %d, want %d; stdout:\n%s\nstderr:\n%s", args, code, tc.code, report, stderr.String())
		}
		if reportValue(t, report, "errors") == 0 || reportValue(t, report, "errors") != reportValue(t, report, "requests") {
			t.Errorf("every request should have failed:\n%s", report)
		}
		contains(t, "report", report, "Unimplemented", "latency            no replies", "error rate         100% of ", " requests and failed connections, ", tc.verdict)
		if lines := strings.Split(strings.TrimSpace(report), "\n"); !strings.HasPrefix(lines[len(lines)-1], "error rate") {
			t.Errorf("the report's last line is not the error rate:\n%s", report)
		}
		if tc.code != exitOK {
			contains(t, "stderr", stderr.String(), "guild bot: the error rate 100% is above -max-errors 1%")
		}
	}
}

// TestBotIdle holds -n connections until cancelled, as by Ctrl-C, and
// still reports.
func TestBotIdle(t *testing.T) {
	g, addr := startGateway(t)
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- bot(ctx, []string{"-addr", addr, "-n", "15", "-duration", "30s", "-ramp", "100ms", "-idle"}, &stdout, &stderr)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for g.Conns() != 15 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections, want 15", g.Conns())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The gateway counts a connection when it accepts it; the bot counts
	// a client when its handshake is answered: give the last ones time.
	time.Sleep(300 * time.Millisecond)
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("exit code %d, want 0", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the bot did not stop when cancelled")
	}
	report := stdout.String()
	if n := reportValue(t, report, "clients"); n != 15 {
		t.Errorf("%d clients connected, want 15:\n%s", n, report)
	}
	if strings.Contains(report, "requests") {
		t.Errorf("an idle report has no requests:\n%s", report)
	}
	contains(t, "report", report, "error rate         0% of 15 connections tried, at most -max-errors 1%")
}

func TestBotNoGateway(t *testing.T) {
	code, out, _ := runCmd("bot", "-addr", "tcp://127.0.0.1:1", "-n", "2", "-duration", "2s", "-ramp", "0s")
	if code != exitError {
		t.Errorf("exit code %d, want %d", code, exitError)
	}
	if n := reportValue(t, out, "connection errors"); n != 2 {
		t.Errorf("%d connection errors, want 2:\n%s", n, out)
	}
}

func TestBotBadScenario(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"steps: []", "no steps"},
		{"steps: [{sleep: 1s}]", "no request step"},
		{"steps: [{sleep: soon}]", "not a duration"},
		{"steps: [{request: {route: a.B}, sleep: 1s}]", "not both"},
		{"steps: [{request: {type: google.protobuf.Empty}}]", "no route"},
		{"steps: [{request: {route: a.B, json: '{}'}}]", "json without a type"},
		{"steps: [{request: {route: a.B, type: no.Such}}]", `unknown message type "no.Such"`},
		{"steps: [{request: {route: a.B, type: google.protobuf.StringValue, json: '{{.M}}'}}]", "M"},
		{"steps: [{request: {route: a.B, type: google.protobuf.StringValue, json: '12'}}]", "google.protobuf.StringValue"},
		{"steps: [{reqest: {route: a.B}}]", "unknown field"},
		{"steps: [{}]", "needs request or sleep"},
	} {
		path := writeScenario(t, tc.yaml)
		code, _, errOut := runCmd("bot", "-addr", "tcp://127.0.0.1:1", "-scenario", path)
		if code != exitUsage {
			t.Errorf("%s: exit code %d, want %d", tc.yaml, code, exitUsage)
		}
		contains(t, tc.yaml, errOut, tc.want)
	}
}

// shippedScenarios returns the scenario files under examples/: the YAML
// files with a top-level steps key.
func shippedScenarios(t *testing.T) []string {
	t.Helper()
	var files []string
	root := filepath.Join(repoRoot(t), "examples")
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || (filepath.Ext(path) != ".yaml" && filepath.Ext(path) != ".yml") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if regexp.MustCompile(`(?m)^steps:`).Match(b) {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scenario under examples/")
	}
	return files
}

// helpScenario returns the scenario of guild help bot, in a file.
func helpScenario(t *testing.T) string {
	t.Helper()
	_, after, ok := strings.Cut(botAbout, "\n  steps:\n")
	example, _, _ := strings.Cut(after, "\n\n")
	if !ok || example == "" {
		t.Fatal("no scenario in guild help bot")
	}
	text := "steps:\n"
	for _, l := range strings.Split(example, "\n") {
		text += strings.TrimPrefix(l, "  ") + "\n"
	}
	return writeScenario(t, text)
}

// TestShippedScenarios runs every scenario shipped under examples/, and
// the one of guild help bot, against the demo, started in-process as
// guild demo: each must run with no error at all. The scenarios' sleeps
// are left out, so that a short run reaches every request step.
func TestShippedScenarios(t *testing.T) {
	files := map[string]string{"guild help bot": helpScenario(t)}
	for _, f := range shippedScenarios(t) {
		files[filepath.Base(filepath.Dir(f))+"/"+filepath.Base(f)] = f
	}
	b, _ := startDemo(t, "-addr", "127.0.0.1:0", "-tcp", "127.0.0.1:0", "-data", t.TempDir())
	if b.bots == "" {
		t.Fatal("the banner has no bots' command")
	}
	for name, file := range files {
		t.Run(name, func(t *testing.T) {
			var f scenarioFile
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if err := yaml.UnmarshalStrict(raw, &f); err != nil {
				t.Fatal(err)
			}
			var steps []scenarioStep
			for _, s := range f.Steps {
				if s.Sleep == "" {
					steps = append(steps, s)
				}
			}
			out, err := yaml.Marshal(scenarioFile{Steps: steps})
			if err != nil {
				t.Fatal(err)
			}
			path := writeScenario(t, string(out))
			var stdout, stderr syncBuffer
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			args := []string{"-addr", b.bots, "-n", "3", "-duration", "2s", "-ramp", "100ms", "-scenario", path, "-max-errors", "0%"}
			code := bot(ctx, args, &stdout, &stderr)
			report := stdout.String()
			if code != exitOK {
				t.Errorf("exit code %d, want 0; stdout:\n%s\nstderr:\n%s", code, report, stderr.String())
			}
			if n := reportValue(t, report, "errors"); n != 0 {
				t.Errorf("%d errors:\n%s", n, report)
			}
			// Each bot went round the scenario at least once.
			if n := reportValue(t, report, "requests"); n < 3*len(steps) {
				t.Errorf("%d requests, want at least %d (3 bots, %d request steps):\n%s", n, 3*len(steps), len(steps), report)
			}
		})
	}
}

func TestBotFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "-addr is required"},
		{[]string{"-addr", "tcp://x:1", "-n", "0"}, "-n must be at least 1"},
		{[]string{"-addr", "tcp://x:1", "-duration", "0s"}, "-duration must be positive"},
		{[]string{"-addr", "tcp://x:1", "-rate", "-1"}, "-rate must not be negative"},
		{[]string{"-addr", "tcp://x:1", "-max-errors", "101%"}, "want a percentage from 0% to 100%"},
		{[]string{"-addr", "tcp://x:1", "-max-errors", "lots"}, "want a percentage from 0% to 100%"},
	} {
		code, _, errOut := runCmd(append([]string{"bot"}, tc.args...)...)
		if code != exitUsage {
			t.Errorf("%v: exit code %d, want %d", tc.args, code, exitUsage)
		}
		contains(t, "stderr", errOut, tc.want, "usage: guild bot")
	}
	code, _, errOut := runCmd("bot", "-h")
	if code != exitOK {
		t.Errorf("-h: exit code %d", code)
	}
	contains(t, "help", errOut, "steps:", "{{.N}}", "-idle", "-token-prefix", "p50", "-max-errors", "(default 1%)", "exits 1")
}

func TestHistogram(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.9, 900 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {1, time.Millisecond}} {
		got := h.quantile(tc.q)
		if diff := float64(got-tc.want) / float64(tc.want); diff < -0.02 || diff > 0.02 {
			t.Errorf("quantile(%v) = %v, want %v within 2%%", tc.q, got, tc.want)
		}
	}
	for _, v := range []uint64{0, 1, 63, 64, 65, 127, 128, 1000, 1 << 40, 1<<63 - 1} {
		i := histIndex(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d, out of range", v, i)
		}
		if mid := histValue(i); float64(mid) < float64(v)*0.98 || float64(mid) > float64(v)*1.02+1 {
			t.Errorf("histValue(histIndex(%d)) = %d", v, mid)
		}
	}
}

func TestPercentFlag(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		text string
	}{{"1%", 1, "1%"}, {"0.5%", 0.5, "0.5%"}, {"2", 2, "2%"}, {" 100 % ", 100, "100%"}, {"0", 0, "0%"}} {
		var p percent
		if err := p.Set(tc.in); err != nil {
			t.Errorf("Set(%q): %v", tc.in, err)
			continue
		}
		if float64(p) != tc.want || p.String() != tc.text {
			t.Errorf("Set(%q) = %v (%s), want %v (%s)", tc.in, float64(p), p.String(), tc.want, tc.text)
		}
	}
	if got := fmtPercent(100.0 / 3); got != "33.33%" {
		t.Errorf("fmtPercent(100/3) = %s", got)
	}
}
