package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"math/bits"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/template"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/gate/tokenauth"
	"github.com/guildkit/guild/rpc"
)

// botAbout is the help text of guild bot.
const botAbout = `Bot is a load tester: it connects -n clients to the gateway -addr, starting
them evenly over -ramp, and each runs a scenario of requests until
-duration has passed since the start. Every request step waits its turn at
-rate requests per second per client (0: as fast as the replies come).

A scenario file (-scenario) is YAML: a list of steps that each bot runs in
order, then again from the start until the end:

  steps:
    - request: {route: arena.Join, type: arena.v1.JoinRequest, json: '{"name": "bot-{{.N}}"}'}
    - request: {route: arena.Move, type: arena.v1.MoveRequest, json: {dx: 1, dy: 0.5}}
      repeat: 5
    - request: {route: chat.Say, type: arena.v1.SayRequest, json: {text: hello}}
    - sleep: 1s

This one plays guild demo's arena: it joins, moves five times, says hello
and pauses, round and round (the arena takes at most 2 chat lines a second
from a player; examples/arena/bots.yaml wanders more).

A request's body is the message of type (a full protobuf name: a
well-known type such as google.protobuf.StringValue, a message compiled
into guild such as the arena's arena.v1.*, or a message of a -proto file)
that json holds in protobuf's JSON mapping; json may be a string of JSON
or YAML written in place, as above. Without type the body is empty. json
is a Go template: {{.N}} is the bot's index, from 0. repeat runs a step
that many times. Without -scenario, each bot sends google.protobuf.Empty
to -route.

Every second a progress line goes to standard error: the time elapsed, the
clients connected, the requests per second and the errors so far. At the
end (or at Ctrl-C) a report goes to standard output: the clients
connected, the requests and their rate, the latency of the replies (p50,
p90, p99 and max), the errors by code and the connection errors. Requests
cut short by the end of the test are not counted.

With -idle, the bots only connect and hold their connections (their
heartbeats keep them open) until -duration: a capacity test.

The report ends with the error rate: the requests answered with an error
and the connections that could not be made, over the requests answered and
the connections that could not be made (with -idle: the connections that
could not be made, over those tried). Bot exits 1 when it is above -max-errors (1% by
default; -max-errors 100% never fails), or when no client could connect.`

// botOptions are the flags of guild bot.
type botOptions struct {
	addr        string
	n           int
	duration    time.Duration
	scenario    string
	rate        float64
	ramp        time.Duration
	tokenPrefix string
	idle        bool
	route       string
	protos      stringList
	importDirs  stringList
	timeout     time.Duration
	maxErrors   percent
	kcpKeyFile  string // -kcp-key-file
	kcpKey      []byte // its contents
}

// runBot runs the load test until its duration or an interrupt.
func runBot(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return bot(ctx, args, stdout, stderr)
}

// bot runs the load test with its flags args; cancelling ctx ends it
// early, with its report.
func bot(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	opts, ok, code := parseBotFlags(args, stderr)
	if !ok {
		return code
	}
	types, err := loadTypes(ctx, opts.importDirs, opts.protos, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "guild bot: %v\n", err)
		return exitError
	}
	var sc *scenario
	if opts.scenario != "" {
		sc, err = loadScenario(opts.scenario, types)
	} else {
		sc, err = newScenario([]scenarioStep{{Request: &scenarioRequest{Route: opts.route, Type: "google.protobuf.Empty"}}}, types)
	}
	if err != nil {
		fmt.Fprintf(stderr, "guild bot: %v\n", err)
		return exitUsage
	}

	l := &loadTest{opts: opts, sc: sc, types: types, started: time.Now()}
	ctx, cancel := context.WithDeadline(ctx, l.started.Add(opts.duration))
	defer cancel()
	progressDone := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { l.progress(stderr, progressDone) })
	for i := range opts.n {
		wg.Go(func() { l.runBot(ctx, i) })
	}
	<-ctx.Done()
	close(progressDone)
	wg.Wait()
	rate := l.report(stdout, time.Since(l.started))
	if l.everConn.Load() == 0 {
		return exitError
	}
	if rate > float64(opts.maxErrors) {
		fmt.Fprintf(stderr, "guild bot: the error rate %s is above -max-errors %s\n", fmtPercent(rate), opts.maxErrors.String())
		return exitError
	}
	return exitOK
}

// parseBotFlags parses the flags of guild bot.
func parseBotFlags(args []string, stderr io.Writer) (opts botOptions, ok bool, code int) {
	fs := botFlags(&opts, stderr)
	if ok, code := parse(fs, args); !ok {
		return opts, false, code
	}
	var problem string
	switch {
	case opts.addr == "":
		problem = "-addr is required"
	case opts.n < 1:
		problem = "-n must be at least 1"
	case opts.duration <= 0:
		problem = "-duration must be positive"
	case opts.rate < 0:
		problem = "-rate must not be negative"
	case opts.ramp < 0:
		problem = "-ramp must not be negative"
	case opts.timeout <= 0:
		problem = "-timeout must be positive"
	}
	if problem != "" {
		fmt.Fprintf(stderr, "guild bot: %s\n\n", problem)
		fs.Usage()
		return opts, false, exitUsage
	}
	if opts.kcpKeyFile != "" {
		var err error
		if opts.kcpKey, err = tokenauth.ReadSecret(opts.kcpKeyFile); err != nil {
			fmt.Fprintf(stderr, "guild bot: -kcp-key-file: %v\n", err)
			return opts, false, exitUsage
		}
	}
	return opts, true, exitOK
}

// botFlags defines the flags of guild bot into opts.
func botFlags(opts *botOptions, stderr io.Writer) *flag.FlagSet {
	fs := newFlagSet("bot", "bot -addr url [-n clients] [-duration d] [-scenario file.yaml] [-rate r] [-ramp d] [-idle] [flags]", botAbout, stderr)
	fs.StringVar(&opts.addr, "addr", "", "the gateway: tcp://host:port, ws://host:port/path, wss://..., kcp://host:port (required)")
	fs.IntVar(&opts.n, "n", 100, "number of concurrent clients")
	fs.DurationVar(&opts.duration, "duration", 10*time.Second, "how long the test runs, from the start of the ramp")
	fs.StringVar(&opts.scenario, "scenario", "", "YAML `file` of the steps each bot runs (default: google.protobuf.Empty to -route)")
	fs.Float64Var(&opts.rate, "rate", 10, "requests per second per client; 0 for as fast as the replies come")
	fs.DurationVar(&opts.ramp, "ramp", 2*time.Second, "time over which the clients connect, evenly spread")
	fs.StringVar(&opts.tokenPrefix, "token-prefix", "", "if set, bot i sends the auth token `prefix`i in its handshake")
	fs.BoolVar(&opts.idle, "idle", false, "only connect and hold the connections, without requests")
	fs.StringVar(&opts.route, "route", "bench.Echo", "the route of the default scenario")
	fs.Var(&opts.protos, "proto", "a .proto `file` whose messages the scenario may name; repeatable")
	fs.Var(&opts.importDirs, "I", "import `dir`ectory of the -proto files and their imports; repeatable (default \".\")")
	fs.DurationVar(&opts.timeout, "timeout", 5*time.Second, "how long a request waits for its reply")
	fs.StringVar(&opts.kcpKeyFile, "kcp-key-file", "", kcpKeyFileUsage)
	opts.maxErrors = 1
	fs.Var(&opts.maxErrors, "max-errors", "exit 1 when the error rate (failed requests and connections) is above this `percent`, such as 1% or 0.5%")
	return fs
}

// scenarioFile is the YAML of a scenario.
type scenarioFile struct {
	Steps []scenarioStep `json:"steps"`
}

// scenarioStep is one step: a request or a sleep, repeated Repeat times.
type scenarioStep struct {
	Request *scenarioRequest `json:"request,omitempty"`
	Sleep   string           `json:"sleep,omitempty"`
	Repeat  int              `json:"repeat,omitempty"`
}

// scenarioRequest is a request step.
type scenarioRequest struct {
	Route string          `json:"route"`
	Type  string          `json:"type,omitempty"`
	JSON  json.RawMessage `json:"json,omitempty"`
}

// scenario is a parsed scenario, ready to run.
type scenario struct {
	steps []step
}

// step is a parsed scenarioStep.
type step struct {
	route  string
	typ    string
	body   []byte             // the body, when it does not depend on the bot
	tmpl   *template.Template // else the template of its JSON
	sleep  time.Duration
	repeat int
}

// loadScenario reads and checks the scenario file path.
func loadScenario(path string, types typeResolver) (*scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f scenarioFile
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	sc, err := newScenario(f.Steps, types)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return sc, nil
}

// newScenario checks steps and encodes the bodies that do not depend on
// the bot.
func newScenario(steps []scenarioStep, types typeResolver) (*scenario, error) {
	if len(steps) == 0 {
		return nil, errors.New("the scenario has no steps")
	}
	sc := &scenario{}
	hasRequest := false
	for i, s := range steps {
		st := step{repeat: max(s.Repeat, 1)}
		if s.Repeat < 0 {
			return nil, fmt.Errorf("step %d: repeat is negative", i+1)
		}
		switch {
		case s.Request != nil && s.Sleep != "":
			return nil, fmt.Errorf("step %d: a step is a request or a sleep, not both", i+1)
		case s.Sleep != "":
			d, err := time.ParseDuration(s.Sleep)
			if err != nil || d < 0 {
				return nil, fmt.Errorf("step %d: sleep %q is not a duration such as 100ms", i+1, s.Sleep)
			}
			st.sleep = d
		case s.Request != nil:
			r := s.Request
			if r.Route == "" {
				return nil, fmt.Errorf("step %d: the request has no route", i+1)
			}
			st.route, st.typ = r.Route, r.Type
			text, err := jsonText(r.JSON)
			if err != nil {
				return nil, fmt.Errorf("step %d: json: %v", i+1, err)
			}
			if st.typ == "" && text != "" {
				return nil, fmt.Errorf("step %d: json without a type", i+1)
			}
			if st.typ != "" {
				if text == "" {
					text = "{}"
				}
				tmpl, err := template.New(r.Route).Option("missingkey=error").Parse(text)
				if err != nil {
					return nil, fmt.Errorf("step %d: json: %v", i+1, err)
				}
				// Check the JSON with bot 0 now, rather than in every bot.
				body, err := renderBody(tmpl, st.typ, 0, types)
				if err != nil {
					return nil, fmt.Errorf("step %d: %v", i+1, err)
				}
				if strings.Contains(text, "{{") {
					st.tmpl = tmpl
				} else {
					st.body = body
				}
			}
			hasRequest = true
		default:
			return nil, fmt.Errorf("step %d: a step needs request or sleep", i+1)
		}
		sc.steps = append(sc.steps, st)
	}
	if !hasRequest {
		return nil, errors.New("the scenario has no request step")
	}
	return sc, nil
}

// jsonText returns the JSON text of a step's json field: the content of a
// YAML string, or the JSON of YAML written in place.
func jsonText(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		return s, nil
	}
	return string(raw), nil
}

// renderBody executes tmpl for bot n and encodes the message of type typ
// it yields.
func renderBody(tmpl *template.Template, typ string, n int, types typeResolver) ([]byte, error) {
	var sb strings.Builder
	if err := tmpl.Execute(&sb, struct{ N int }{n}); err != nil {
		return nil, err
	}
	return types.encode(typ, sb.String())
}

// loadTest is one run of guild bot: its bots share its counters.
type loadTest struct {
	opts    botOptions
	sc      *scenario
	types   typeResolver
	started time.Time

	connected atomic.Int64 // connected now
	everConn  atomic.Int64 // connected at some point
	lost      atomic.Int64 // connections the gateway closed or lost
	requests  atomic.Int64 // requests answered, with or without error
	failed    atomic.Int64 // requests answered with an error
	latency   histogram

	mu       sync.Mutex
	errs     map[rpc.Code]int64 // request errors by code
	connErrs map[string]int64   // connection errors by text
}

// runBot runs bot i: it connects at its time in the ramp, then runs the
// scenario until ctx ends.
func (l *loadTest) runBot(ctx context.Context, i int) {
	if l.opts.n > 1 {
		at := l.started.Add(l.opts.ramp * time.Duration(i) / time.Duration(l.opts.n))
		t := time.NewTimer(time.Until(at))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
	bodies, err := l.bodies(i)
	if err != nil { // the scenario was checked with bot 0; another index broke it
		l.connError(err)
		return
	}
	cfg := client.Config{Addr: l.opts.addr, RequestTimeout: l.opts.timeout, KCPKey: l.opts.kcpKey}
	if l.opts.tokenPrefix != "" {
		cfg.Token = l.opts.tokenPrefix + strconv.Itoa(i)
	}
	var lost atomic.Bool
	cfg.OnClose = func(error) { lost.Store(true) }
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		if ctx.Err() == nil {
			l.connError(err)
		}
		return
	}
	l.connected.Add(1)
	l.everConn.Add(1)
	defer func() {
		l.connected.Add(-1)
		if lost.Load() {
			l.lost.Add(1)
		}
		_ = c.Close()
	}()
	if l.opts.idle {
		<-ctx.Done()
		return
	}

	var tick <-chan time.Time
	if l.opts.rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / l.opts.rate))
		defer t.Stop()
		tick = t.C
	}
	for {
		for k, st := range l.sc.steps {
			for range st.repeat {
				if st.route == "" {
					if !sleep(ctx, st.sleep) {
						return
					}
					continue
				}
				if tick != nil {
					select {
					case <-tick:
					case <-ctx.Done():
						return
					}
				}
				if !l.request(ctx, c, st.route, bodies[k]) {
					return
				}
				if lost.Load() {
					return
				}
			}
		}
	}
}

// bodies returns the request bodies of bot i, by step.
func (l *loadTest) bodies(i int) ([][]byte, error) {
	out := make([][]byte, len(l.sc.steps))
	for k, st := range l.sc.steps {
		if st.tmpl == nil {
			out[k] = st.body
			continue
		}
		b, err := renderBody(st.tmpl, st.typ, i, l.types)
		if err != nil {
			return nil, fmt.Errorf("bot %d: %v", i, err)
		}
		out[k] = b
	}
	return out, nil
}

// request makes one request and records it. It returns false when ctx
// has ended.
func (l *loadTest) request(ctx context.Context, c *client.Client, route string, body []byte) bool {
	rctx, cancel := context.WithTimeout(ctx, l.opts.timeout)
	defer cancel()
	start := time.Now()
	_, err := c.RequestRaw(rctx, route, body)
	took := time.Since(start)
	if ctx.Err() != nil {
		return false // cut short by the end of the test: not counted
	}
	l.requests.Add(1)
	if err != nil {
		l.failed.Add(1)
		code := rpc.CodeOf(err)
		l.mu.Lock()
		if l.errs == nil {
			l.errs = make(map[rpc.Code]int64)
		}
		l.errs[code]++
		l.mu.Unlock()
		return true
	}
	l.latency.record(took)
	return true
}

// connError records a failed connection.
func (l *loadTest) connError(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.connErrs == nil {
		l.connErrs = make(map[string]int64)
	}
	l.connErrs[err.Error()]++
}

// sleep waits d or the end of ctx, and reports whether ctx is still alive.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// progress writes a progress line to w every second until done is closed:
// rewritten in place on a terminal, a new line each time otherwise.
func (l *loadTest) progress(w io.Writer, done <-chan struct{}) {
	term := isTerminal(w)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var lastReq int64
	last := l.started
	for {
		select {
		case <-done:
			if term {
				fmt.Fprintln(w)
			}
			return
		case now := <-t.C:
			req := l.requests.Load()
			rate := float64(req-lastReq) / now.Sub(last).Seconds()
			lastReq, last = req, now
			line := fmt.Sprintf("%5.0fs  clients %d/%d  req/s %.0f  errors %d",
				now.Sub(l.started).Seconds(), l.connected.Load(), l.opts.n, rate, l.failed.Load())
			if term {
				fmt.Fprintf(w, "\r%-70s", line)
			} else {
				fmt.Fprintln(w, line)
			}
		}
	}
}

// report writes the final report of a run that lasted elapsed, and
// returns its error rate in percent.
func (l *loadTest) report(w io.Writer, elapsed time.Duration) (rate float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var connErrs int64
	for _, n := range l.connErrs {
		connErrs += n
	}
	fmt.Fprintf(w, "duration           %.1fs\n", elapsed.Seconds())
	fmt.Fprintf(w, "clients            %d connected of %d\n", l.everConn.Load(), l.opts.n)
	fmt.Fprintf(w, "connections lost   %d\n", l.lost.Load())
	fmt.Fprintf(w, "connection errors  %d\n", connErrs)
	texts := slices.SortedFunc(maps.Keys(l.connErrs), func(a, b string) int {
		return cmp.Or(cmp.Compare(l.connErrs[b], l.connErrs[a]), strings.Compare(a, b))
	})
	for i, text := range texts {
		if i == maxConnErrLines {
			fmt.Fprintf(w, "  and %d other errors\n", len(texts)-i)
			break
		}
		fmt.Fprintf(w, "  %6d  %s\n", l.connErrs[text], text)
	}
	// The error rate: the failed requests and connections over the requests
	// answered and the failed connections; in an idle run, the failed
	// connections over the connections tried.
	failed, tried, what := l.failed.Load()+connErrs, l.requests.Load()+connErrs, "requests and failed connections"
	if l.opts.idle {
		tried, what = l.everConn.Load()+connErrs, "connections tried"
	}
	if tried > 0 {
		rate = 100 * float64(failed) / float64(tried)
	}
	defer func() {
		verdict := "at most"
		if rate > float64(l.opts.maxErrors) {
			verdict = "above"
		}
		fmt.Fprintf(w, "error rate         %s of %d %s, %s -max-errors %s\n",
			fmtPercent(rate), tried, what, verdict, l.opts.maxErrors.String())
	}()
	if l.opts.idle {
		return rate
	}
	req := l.requests.Load()
	fmt.Fprintf(w, "requests           %d\n", req)
	fmt.Fprintf(w, "requests/s         %.1f\n", float64(req)/elapsed.Seconds())
	if l.latency.count() > 0 {
		fmt.Fprintf(w, "latency            p50 %s  p90 %s  p99 %s  max %s\n",
			fmtLatency(l.latency.quantile(0.50)), fmtLatency(l.latency.quantile(0.90)),
			fmtLatency(l.latency.quantile(0.99)), fmtLatency(l.latency.quantile(1)))
	} else {
		fmt.Fprintf(w, "latency            no replies\n")
	}
	fmt.Fprintf(w, "errors             %d\n", l.failed.Load())
	codes := slices.Sorted(maps.Keys(l.errs))
	for _, code := range codes {
		fmt.Fprintf(w, "  %6d  %s\n", l.errs[code], code)
	}
	return rate
}

// percent is the value of -max-errors: a percentage, written 1% or 1
// (both mean one in a hundred), from 0 to 100.
type percent float64

func (p *percent) String() string { return fmtPercent(float64(*p)) }

func (p *percent) Set(s string) error {
	v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "%")), 64)
	if err != nil || v < 0 || v > 100 {
		return errors.New("want a percentage from 0% to 100%, such as 1% or 0.5%")
	}
	*p = percent(v)
	return nil
}

// fmtPercent formats a percentage without needless zeros: 1%, 0.5%,
// 33.33%.
func fmtPercent(v float64) string {
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64) + "%"
}

// maxConnErrLines bounds the kinds of connection errors the report lists,
// most frequent first.
const maxConnErrLines = 10

// fmtLatency formats d in µs below a millisecond, else in ms.
func fmtLatency(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%dµs", d.Microseconds())
	}
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}

// histogram counts durations in log-linear buckets, 64 per power of two
// (within 1.6% of the value), with atomic adds: bots record into it
// concurrently without a lock.
type histogram struct {
	buckets [histBuckets]atomic.Int64
}

const (
	histSubBits = 6
	histSub     = 1 << histSubBits
	histBuckets = (64 - histSubBits) * histSub
)

// histIndex returns the bucket of v nanoseconds.
func histIndex(v uint64) int {
	if v < histSub {
		return int(v)
	}
	exp := bits.Len64(v) - histSubBits - 1 // v>>exp is in [histSub, 2*histSub)
	return (exp+1)*histSub + int(v>>exp) - histSub
}

// histValue returns the middle of bucket i.
func histValue(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	exp := i/histSub - 1
	low := uint64(i%histSub+histSub) << exp
	return low + (uint64(1)<<exp)/2
}

func (h *histogram) record(d time.Duration) {
	h.buckets[histIndex(uint64(max(d, 0)))].Add(1)
}

func (h *histogram) count() int64 {
	var n int64
	for i := range h.buckets {
		n += h.buckets[i].Load()
	}
	return n
}

// quantile returns the duration below which a fraction q of the recorded
// ones fall (q = 1: the largest).
func (h *histogram) quantile(q float64) time.Duration {
	total := h.count()
	if total == 0 {
		return 0
	}
	rank := int64(q*float64(total) + 0.5)
	rank = min(max(rank, 1), total)
	var seen int64
	for i := range h.buckets {
		seen += h.buckets[i].Load()
		if seen >= rank {
			return time.Duration(histValue(i))
		}
	}
	return time.Duration(histValue(histBuckets - 1))
}
