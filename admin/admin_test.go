package admin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/admin"
	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/config"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/rpc"
)

const adminToken = "admin-token-0123456789"

// Three nodes; gate1 serves the dashboard, the others only run the agent.
const clusterFile = `
cluster:
  etcd: {ttl: 2s, prefix: /admintest}
admin:
  token: ` + adminToken + `
nodes:
  gate1:
    addr: 1.1.1
    master: 127.0.0.1:0
    join_wait: 1s
    modules: [caller]
    admin: {listen: 127.0.0.1:0}
    gateway:
      tcp: 127.0.0.1:0
      public: [echo.Say, echo.Login]
      routes:
        echo: {module: svc}
  world1:
    addr: 1.2.1
    modules: [svc]
  chat1:
    addr: 1.3.1
`

// svcModule serves the rpc service test.Echo and the gate service
// "echo" (Say echoes, Login binds the session to the user it is given).
type svcModule struct{}

func (svcModule) Start(ctx context.Context, env *app.Env) error {
	desc := &rpc.ServiceDesc{Name: "test.Echo", Methods: []rpc.MethodDesc{{
		Name:       "Say",
		NewRequest: func() proto.Message { return new(wrapperspb.StringValue) },
		Handle:     func(_ any, _ *rpc.Context, req proto.Message) (proto.Message, error) { return req, nil },
	}}}
	if _, err := rpc.Serve(ctx, env.Actor, desc, nil, env.Serve...); err != nil {
		return err
	}
	svc := gate.NewService("echo")
	gate.Handle(svc, "Say", func(_ *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return req, nil
	})
	gate.Handle(svc, "Login", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		s.Bind(req.GetValue())
		return req, nil
	})
	_, err := svc.Serve(ctx, env.Actor)
	return err
}

func (svcModule) Stop(context.Context) error { return nil }

// callerModule hands its Env to the test.
type callerModule struct{ env chan *app.Env }

func (m *callerModule) Start(_ context.Context, env *app.Env) error { m.env <- env; return nil }
func (m *callerModule) Stop(context.Context) error                  { return nil }

// do sends a request to the dashboard, with the token when not empty,
// and decodes a JSON answer into out (when not nil).
func do(t *testing.T, method, url, token, body string, out any) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, url, err, b)
		}
	}
	if resp.StatusCode != http.StatusOK {
		t.Logf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	return resp.StatusCode
}

func view(t *testing.T, base string) admin.View {
	t.Helper()
	var v admin.View
	if code := do(t, "GET", base+"api/view", adminToken, "", &v); code != http.StatusOK {
		t.Fatalf("GET /api/view: %d", code)
	}
	return v
}

func nodeOf(v admin.View, addr string) (admin.NodeView, bool) {
	for _, n := range v.Nodes {
		if n.Addr == addr {
			return n, true
		}
	}
	return admin.NodeView{}, false
}

func TestDashboard(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	envs := make(chan *app.Env, 1)
	reg := app.NewRegistry()
	reg.Register("caller", func() app.Module { return &callerModule{env: envs} })
	reg.Register("svc", func() app.Module { return svcModule{} })
	path := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(path, []byte(clusterFile), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, nil, reg.Names())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	gateNode, err := app.Start(ctx, cfg, "gate1", reg, app.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	defer gateNode.Shutdown(context.Background())
	etcdAt := app.WithEtcdEndpoints(gateNode.Ready().Etcd...)
	worldNode, err := app.Start(ctx, cfg, "world1", reg, etcdAt, app.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	defer worldNode.Shutdown(context.Background())
	chatNode, err := app.Start(ctx, cfg, "chat1", reg, etcdAt, app.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	defer chatNode.Shutdown(context.Background())
	env := <-envs
	base := gateNode.Ready().Admin
	if !strings.HasPrefix(base, "http://127.0.0.1:") || worldNode.Ready().Admin != "" || worldNode.Admin() == nil {
		t.Fatalf("admin URLs %q and %q; world1's agent %v", base, worldNode.Ready().Admin, worldNode.Admin())
	}

	// The page is open; the API needs the token; actions too.
	if code := do(t, "GET", base, "", "", nil); code != http.StatusOK {
		t.Errorf("GET / %d", code)
	}
	if code := do(t, "GET", base+"api/view", "", "", nil); code != http.StatusUnauthorized {
		t.Errorf("GET /api/view without the token: %d", code)
	}
	if code := do(t, "GET", base+"api/view", "wrong-token-0123456789", "", nil); code != http.StatusUnauthorized {
		t.Errorf("GET /api/view with a wrong token: %d", code)
	}
	for _, u := range []string{"api/nodes/1.2.1/available", "api/nodes/1.2.1/drain", "api/users/ann/kick"} {
		if code := do(t, "POST", base+u, "", `{"available": false}`, nil); code != http.StatusUnauthorized {
			t.Errorf("POST %s without the token: %d", u, code)
		}
	}

	// Every member is listed, reachable, with its numbers.
	await.True(t, 10*time.Second, "three reachable members on the dashboard", func() bool {
		v := view(t, base)
		if len(v.Nodes) != 3 {
			return false
		}
		for _, n := range v.Nodes {
			if !n.Reachable || n.Snapshot == nil || !n.Member || n.Snapshot.Actor.Actors == 0 {
				return false
			}
		}
		return true
	})
	v := view(t, base)
	for addr, name := range map[string]string{"1.1.1": "gate1", "1.2.1": "world1", "1.3.1": "chat1"} {
		n, _ := nodeOf(v, addr)
		if n.Name != name || !n.Available || n.Uptime <= 0 || n.Endpoint == "" {
			t.Errorf("%s on the dashboard: %+v", addr, n)
		}
	}
	if g, _ := nodeOf(v, "1.1.1"); g.Snapshot.Gateway == nil || len(g.Snapshot.Gateway.Listeners) == 0 {
		t.Errorf("gate1 shows no gateway: %+v", g.Snapshot)
	}
	if w, _ := nodeOf(v, "1.2.1"); w.Snapshot.Gateway != nil || !w.Snapshot.RPCTimed || !w.Snapshot.Drainable {
		t.Errorf("world1's snapshot: %+v", w.Snapshot)
	}
	await.True(t, 10*time.Second, "chat1's lease renewals on the dashboard", func() bool {
		c, _ := nodeOf(view(t, base), "1.3.1")
		l := c.Snapshot.Lease
		return l != nil && l.Grants == 1 && l.Renewals >= 1 && l.MeanRenewSeconds > 0
	})

	// Traffic moves the numbers: world1's message rate, its RPC rate and
	// latency by method, gate1's gateway requests.
	svcType, _ := cfg.NodeType("svc")
	c, err := client.Dial(ctx, client.Config{Addr: gateNode.Ready().Gateway["tcp"]})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stop := make(chan struct{})
	traffic := make(chan error, 1)
	go func() {
		var resp wrapperspb.StringValue
		pace := time.NewTicker(40 * time.Millisecond) // within the gateway's rate limit (50/s)
		defer pace.Stop()
		for {
			select {
			case <-stop:
				traffic <- nil
				return
			case <-pace.C:
			}
			if _, err := env.RPC.Call(ctx, rpc.AnyOf(svcType, cluster.RoundRobin), "test.Echo", "/test.Echo/Say", wrapperspb.String("hi")); err != nil {
				traffic <- err
				return
			}
			if err := c.Request(ctx, "echo.Say", wrapperspb.String("hey"), &resp); err != nil {
				traffic <- err
				return
			}
		}
	}()
	var first admin.NodeView
	await.True(t, 15*time.Second, "world1's message and RPC rates above zero, gate1's request rate too", func() bool {
		v := view(t, base)
		w, _ := nodeOf(v, "1.2.1")
		g, _ := nodeOf(v, "1.1.1")
		if w.Rates.Messages <= 0 || g.Rates.GatewayResponses <= 0 {
			return false
		}
		for _, r := range w.RPC {
			if r.Side == "server" && r.Method == "test.Echo/Say" && r.Rate > 0 && r.P50 != nil && r.P99 != nil && *r.P50 > 0 && *r.P99 >= *r.P50 {
				first = w
				return true
			}
		}
		return false
	})
	await.True(t, 10*time.Second, "world1's counters to move between two views", func() bool {
		w, _ := nodeOf(view(t, base), "1.2.1")
		return w.Snapshot.Actor.Messages > first.Snapshot.Actor.Messages && w.Snapshot.Time.After(first.Snapshot.Time)
	})
	await.True(t, 10*time.Second, "gate1's gateway route echo.Say with a rate and latencies", func() bool {
		g, _ := nodeOf(view(t, base), "1.1.1")
		for _, r := range g.RPC {
			if r.Side == "gateway" && r.Method == "echo.Say" && r.Rate > 0 && r.P50 != nil && *r.P50 > 0 {
				return true
			}
		}
		return false
	})
	close(stop)

	// A panic on world1 shows on the dashboard, with its stack.
	boom, err := worldNode.Cluster().Actor().SpawnFunc(func(c *actor.Context) {
		if s, ok := c.Message().(string); ok {
			panic("dashboard test: " + s)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := worldNode.Cluster().Actor().Send(boom, "kaboom"); err != nil {
		t.Fatal(err)
	}
	await.True(t, 10*time.Second, "world1's panic on the dashboard", func() bool {
		w, _ := nodeOf(view(t, base), "1.2.1")
		s := w.Snapshot
		if s == nil || !s.FailuresKept || s.FailuresTotal < 1 || len(s.Failures) == 0 {
			return false
		}
		f := s.Failures[0]
		return f.Kind == "panic" && f.PID == boom.String() && f.Reason == "dashboard test: kaboom" &&
			f.MessageType == "string" && strings.Contains(f.Stack, "admin_test") && !f.Time.IsZero()
	})
	if err := <-traffic; err != nil {
		t.Fatal(err)
	}

	// Server-Sent Events: two views, different.
	t.Run("events", func(t *testing.T) {
		ectx, ecancel := context.WithTimeout(ctx, 10*time.Second)
		defer ecancel()
		req, _ := http.NewRequestWithContext(ectx, "GET", base+"api/events", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("GET /api/events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 1<<16), 1<<22)
		var events []admin.View
		for len(events) < 2 && sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var v admin.View
			if err := json.Unmarshal([]byte(data), &v); err != nil {
				t.Fatal(err)
			}
			events = append(events, v)
		}
		if len(events) < 2 {
			t.Fatalf("%d events: %v", len(events), sc.Err())
		}
		if !events[1].Time.After(events[0].Time) || len(events[1].Nodes) != 3 {
			t.Errorf("two events at %v and %v, %d nodes", events[0].Time, events[1].Time, len(events[1].Nodes))
		}
	})

	t.Run("mark unavailable", func(t *testing.T) {
		if code := do(t, "POST", base+"api/nodes/1.2.1/available", adminToken, `{"available": false}`, nil); code != http.StatusOK {
			t.Fatalf("mark world1 unavailable: %d", code)
		}
		await.True(t, 10*time.Second, "world1 unavailable in gate1's membership", func() bool {
			return !available(gateNode.Members(), "1.2.1")
		})
		await.True(t, 5*time.Second, "the dashboard to show world1 unavailable", func() bool {
			n, _ := nodeOf(view(t, base), "1.2.1")
			return !n.Available
		})
		if code := do(t, "POST", base+"api/nodes/1.2.1/available", adminToken, `{"available": true}`, nil); code != http.StatusOK {
			t.Fatalf("mark world1 available: %d", code)
		}
		await.True(t, 10*time.Second, "world1 available again", func() bool { return available(gateNode.Members(), "1.2.1") })
	})

	t.Run("bad input", func(t *testing.T) {
		for _, tc := range []struct {
			url, body string
			want      int
		}{
			{"api/nodes/nonsense/available", `{"available": false}`, http.StatusBadRequest},
			{"api/nodes/1.9.9/available", `{"available": false}`, http.StatusNotFound},
			{"api/nodes/1.2.1/available", `{}`, http.StatusBadRequest},
			{"api/nodes/1.2.1/available", `{"available": false, "x": 1}`, http.StatusBadRequest},
			{"api/users/nobody/kick", `{"reason": "x"}`, http.StatusNotFound},
			{"api/users/ann/kick", `{"reason": "` + strings.Repeat("x", 300) + `"}`, http.StatusBadRequest},
		} {
			if code := do(t, "POST", base+tc.url, adminToken, tc.body, nil); code != tc.want {
				t.Errorf("POST %s %s: %d, want %d", tc.url, tc.body, code, tc.want)
			}
		}
	})

	t.Run("kick", func(t *testing.T) {
		closed := make(chan error, 1)
		kc, err := client.Dial(ctx, client.Config{Addr: gateNode.Ready().Gateway["tcp"], OnClose: func(err error) { closed <- err }})
		if err != nil {
			t.Fatal(err)
		}
		defer kc.Close()
		var resp wrapperspb.StringValue
		if err := kc.Request(ctx, "echo.Login", wrapperspb.String("ann"), &resp); err != nil {
			t.Fatal(err)
		}
		await.True(t, 5*time.Second, "ann's session to be findable", func() bool {
			return do(t, "POST", base+"api/users/ann/kick", adminToken, `{"reason": "cheating, says the operator"}`, nil) == http.StatusOK
		})
		select {
		case err := <-closed:
			if err == nil || !strings.Contains(err.Error(), "cheating, says the operator") {
				t.Errorf("the kicked client closed with %v, want the reason", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the kicked client was not closed")
		}
	})

	t.Run("unreachable", func(t *testing.T) {
		// An agent that does not answer: world1 is listed, unreachable,
		// and the view does not wait past the deadline.
		sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
		defer scancel()
		if err := worldNode.Admin().Stop(sctx); err != nil {
			t.Fatal(err)
		}
		await.True(t, 10*time.Second, "world1 unreachable on the dashboard", func() bool {
			start := time.Now()
			v := view(t, base)
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("a view took %v", took)
			}
			n, ok := nodeOf(v, "1.2.1")
			return ok && n.Member && !n.Reachable && n.Error != ""
		})

		// A drained node: it leaves, and stays on the page, unreachable.
		var out map[string]any
		if code := do(t, "POST", base+"api/nodes/1.3.1/drain", adminToken, "", &out); code != http.StatusOK || out["draining"] != true {
			t.Fatalf("drain chat1: %d %v", code, out)
		}
		select {
		case <-chatNode.Done():
		case <-time.After(30 * time.Second):
			t.Fatal("chat1 did not shut down after its drain")
		}
		await.True(t, 10*time.Second, "chat1 listed as gone", func() bool {
			n, ok := nodeOf(view(t, base), "1.3.1")
			return ok && !n.Member && !n.Reachable && !n.Available
		})
	})
}

func available(m cluster.Membership, addr string) bool {
	for _, mb := range m.Members() {
		if mb.Addr.String() == addr {
			return mb.Available
		}
	}
	return false
}
