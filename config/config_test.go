package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var registry = []string{"auth", "world", "chat"}

func TestLoadExample(t *testing.T) {
	c, err := Load("testdata/cluster.yaml", nil, registry)
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster.ID != 1 || c.Cluster.Etcd.TTL != 5*time.Second || c.Cluster.Etcd.Prefix != "/guild-dev" {
		t.Errorf("cluster %+v", c.Cluster)
	}
	if got := c.NodeNames(); !reflect.DeepEqual(got, []string{"gate1", "world-1", "world-2"}) {
		t.Errorf("NodeNames %v", got)
	}
	g := c.Nodes["gate1"]
	if g.Name != "gate1" || g.Addr != "1.1.1" || g.Listen != "127.0.0.1:7101" || g.Master != "127.0.0.1:2379" || g.JoinWait != DefaultJoinWait {
		t.Errorf("gate1 %+v", g)
	}
	gw := g.Gateway
	if gw == nil || gw.TCP != "127.0.0.1:7000" || gw.WSPath != "/ws" || !reflect.DeepEqual(gw.Public, []string{"auth.Login"}) {
		t.Fatalf("gateway %+v", gw)
	}
	if r := gw.Routes["arena"]; r == nil || r.Module != "world" || !r.ByUser {
		t.Errorf("route arena %+v", r)
	}
	if r := gw.Routes["rank"]; r == nil || r.RPC != "game.rank.v1.Rank" {
		t.Errorf("route rank %+v", r)
	}
	if r := gw.Routes["lobby"]; r == nil || r.Name != "lobby" {
		t.Errorf("route lobby %+v", r)
	}
	want := Limits{MaxFrame: 65536, HandshakeTimeout: 5 * time.Second, Heartbeat: 10 * time.Second,
		RequestTimeout: 10 * time.Second, Rate: 50, Burst: 100, WriteQueue: 256, MaxConns: 10000,
		ResumeWindow: 30 * time.Second, ResumeBuffer: 128}
	if !reflect.DeepEqual(gw.Limits, want) {
		t.Errorf("limits %+v, want %+v", gw.Limits, want)
	}
	if w := c.Nodes["world-2"]; w.JoinWait != 10*time.Second || w.Address().Type() != 2 {
		t.Errorf("world-2 %+v", w)
	}
	if typ, ok := c.NodeType("world"); !ok || typ != 2 {
		t.Errorf("NodeType(world) = %d, %v", typ, ok)
	}
	if _, ok := c.NodeType("chat"); ok {
		t.Error("NodeType(chat): no node hosts it")
	}
	if got := c.EtcdEndpoints(); !reflect.DeepEqual(got, []string{"http://127.0.0.1:2379"}) {
		t.Errorf("EtcdEndpoints %v", got)
	}
	world, ok := c.Modules["world"].(map[string]any)
	if !ok || world["tick"] != "50ms" || !reflect.DeepEqual(world["size"], map[string]any{"w": int64(64), "h": int64(48)}) {
		t.Errorf("modules.world %#v", c.Modules["world"])
	}
}

// minimal is a valid one-node file that the cases below break.
const minimal = `
nodes:
  n1:
    addr: 1.1.1
    master: 127.0.0.1:0
    modules: [world]
`

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte(minimal), nil, registry)
	if err != nil {
		t.Fatal(err)
	}
	n := c.Nodes["n1"]
	if n.Listen != DefaultListen || n.JoinWait != DefaultJoinWait || n.Gateway != nil {
		t.Errorf("defaults %+v", n)
	}
}

func TestValidation(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		want       []string
	}{
		{"unknown top key", minimal + "extra: 1\n", []string{"extra: unknown key"}},
		{"unknown nested key", `
nodes:
  n1:
    addr: 1.1.1
    master: 127.0.0.1:0
    gateway: {tpc: 127.0.0.1:0, tcp: 127.0.0.1:0, limits: {rates: 5}}
`, []string{"nodes.n1.gateway.tpc: unknown key", "nodes.n1.gateway.limits.rates: unknown key"}},
		{"unknown route key", `
nodes:
  n1:
    addr: 1.1.1
    master: 127.0.0.1:0
    modules: [world]
    gateway: {tcp: 127.0.0.1:0, routes: {w: {module: world, byuser: true}}}
`, []string{"nodes.n1.gateway.routes.w.byuser: unknown key"}},
		{"duplicate yaml key", "nodes:\n  n1: {addr: 1.1.1, master: 127.0.0.1:0}\n  n1: {addr: 1.1.2}\n", []string{"already set"}},
		{"bad address", `
nodes:
  n1: {addr: 1.2, master: 127.0.0.1:0}
  n2: {addr: x.y.z}
  n3: {}
  n4: {addr: 0.0.0}
`, []string{`nodes.n1.addr: "1.2" is not cluster.type.index`, `nodes.n2.addr: "x.y.z" is not cluster.type.index`,
			"nodes.n3.addr: required", "nodes.n4.addr: 0.0.0 is not a node address"}},
		{"duplicate addr", `
nodes:
  a: {addr: 1.1.1, master: 127.0.0.1:0}
  b: {addr: 1.1.1}
`, []string{"nodes.b.addr: 1.1.1 is also the address of nodes.a"}},
		{"cluster id", `
cluster: {id: 2}
nodes:
  a: {addr: 1.1.1, master: 127.0.0.1:0}
`, []string{"nodes.a.addr: 1.1.1 is not in cluster 2 (cluster.id)"}},
		{"port clash", `
nodes:
  a:
    addr: 1.1.1
    listen: 127.0.0.1:7101
    master: 127.0.0.1:2379
    gateway: {tcp: 127.0.0.1:7000, ws: 127.0.0.1:7101, kcp: 127.0.0.1:0, mqtt: 127.0.0.1:0}
  b:
    addr: 1.1.2
    listen: 127.0.0.1:2379
    gateway: {tcp: 127.0.0.1:7000}
`, []string{"nodes.a.gateway.ws: 127.0.0.1:7101 is also nodes.a.listen",
			"nodes.b.listen: 127.0.0.1:2379 is also nodes.a.master",
			"nodes.b.gateway.tcp: 127.0.0.1:7000 is also nodes.a.gateway.tcp"}},
		{"bad host port", `
nodes:
  a: {addr: 1.1.1, master: localhost, listen: "127.0.0.1:99999", gateway: {tcp: nowhere}}
`, []string{`nodes.a.master: "localhost" is not host:port`, `nodes.a.listen: "127.0.0.1:99999": port "99999" is not 0..65535`,
			`nodes.a.gateway.tcp: "nowhere" is not host:port`}},
		{"no etcd", "nodes:\n  a: {addr: 1.1.1}\n", []string{"cluster.etcd.endpoints: the nodes have no etcd"}},
		{"two masters", `
nodes:
  a: {addr: 1.1.1, master: 127.0.0.1:0}
  b: {addr: 1.1.2, master: 127.0.0.1:0}
`, []string{"nodes.b.master: nodes.a is the master already"}},
		{"data without master", `
cluster: {etcd: {endpoints: [http://127.0.0.1:2379]}}
nodes:
  a: {addr: 1.1.1, data: /tmp/x}
`, []string{"nodes.a.data: the embedded etcd's directory needs master"}},
		{"route to a module no node hosts", `
nodes:
  a:
    addr: 1.1.1
    master: 127.0.0.1:0
    gateway: {tcp: 127.0.0.1:0, routes: {c: {module: chat}, x: {module: nope}}}
`, []string{`nodes.a.gateway.routes.c.module: no node hosts module "chat"`,
			`nodes.a.gateway.routes.x.module: no module "nope" in the game's registry`}},
		{"bad routes", `
nodes:
  a:
    addr: 1.1.1
    master: 127.0.0.1:0
    modules: [world]
    gateway:
      tcp: 127.0.0.1:0
      public: [login]
      routes:
        empty: {}
        both: {module: world, name: x}
        named: {name: x, by_user: true}
        rpcuser: {module: world, rpc: a.B, by_user: true}
`, []string{"nodes.a.gateway.routes.empty: give module", "nodes.a.gateway.routes.both: module and name exclude each other",
			"nodes.a.gateway.routes.named: by_user and rpc go with module", "nodes.a.gateway.routes.rpcuser.by_user: by_user does not go with rpc",
			`nodes.a.gateway.public[0]: "login" is not a route`}},
		{"gateway without listener", `
nodes:
  a: {addr: 1.1.1, master: 127.0.0.1:0, gateway: {ws_path: ws}}
`, []string{"nodes.a.gateway: no listener", `nodes.a.gateway.ws_path: "ws" does not start with /`}},
		{"unregistered module", `
nodes:
  a: {addr: 1.1.1, master: 127.0.0.1:0, modules: [world, wrold, world]}
modules:
  wrld: {x: 1}
`, []string{`nodes.a.modules[1]: no module "wrold" in the game's registry (it has auth, world, chat)`,
			`nodes.a.modules[2]: module "world" is listed twice`, `modules.wrld: no module "wrld" in the game's registry`}},
		{"module on two node types", `
nodes:
  a: {addr: 1.1.1, master: 127.0.0.1:0, modules: [world]}
  b: {addr: 1.2.1, modules: [world]}
`, []string{`nodes.b.modules[0]: module "world" is hosted by node type 2 here but by type 1 on nodes.a`}},
		{"bad durations", `
cluster: {etcd: {ttl: 5, dial_timeout: forever}}
nodes:
  a: {addr: 1.1.1, master: 127.0.0.1:0, join_wait: 3x, gateway: {tcp: 127.0.0.1:0, limits: {heartbeat: 10}}}
`, []string{"cluster.etcd.ttl: 5 is not a duration", `cluster.etcd.dial_timeout: "forever" is not a duration`,
			`nodes.a.join_wait: "3x" is not a duration`, "nodes.a.gateway.limits.heartbeat: 10 is not a duration"}},
		{"short ttl and negatives", `
cluster: {etcd: {ttl: 500ms, prefix: guild}}
nodes:
  a: {addr: 1.1.1, master: 127.0.0.1:0, gateway: {tcp: 127.0.0.1:0, limits: {rate: -1, heartbeat: -1s, resume_window: -1s, resume_buffer: -2}}}
`, []string{"cluster.etcd.ttl: 500ms is below the minimum 1s", `cluster.etcd.prefix: "guild" must start with /`,
			"nodes.a.gateway.limits.rate: negative", "nodes.a.gateway.limits.heartbeat: negative",
			"nodes.a.gateway.limits.resume_window: negative", "nodes.a.gateway.limits.resume_buffer: negative"}},
		{"wrong kinds", `
cluster: {id: one, etcd: {endpoints: http://x}}
nodes:
  a: {addr: 1.1.1, master: 127.0.0.1:0, modules: world, gateway: {tcp: 127.0.0.1:0, limits: {burst: 1.5, rate: fast}}}
`, []string{`cluster.id: "one" is not a whole number`, `cluster.etcd.endpoints: want a list, got "http://x"`,
			`nodes.a.modules: want a list, got "world"`, "nodes.a.gateway.limits.burst: 1.5 is not a whole number",
			`nodes.a.gateway.limits.rate: "fast" is not a number`}},
		{"bad node names", `
nodes:
  a.b: {addr: 1.1.1, master: 127.0.0.1:0}
  x-1: {addr: 1.1.2}
  x_1: {addr: 1.1.3}
`, []string{"nodes.a.b: a node name is letters", "nodes.x_1: the name is nodes.x-1's in environment variables"}},
		{"no nodes", "cluster: {id: 1}\n", []string{"nodes: no nodes"}},
		{"not a mapping", "- a\n- b\n", []string{"the file is not a mapping"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.file), nil, registry)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not match ErrInvalid: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
			// Every problem is one line of the joined error.
			if got := len(strings.Split(err.Error(), "\n")); got != len(tc.want) && tc.name != "duplicate yaml key" && tc.name != "not a mapping" {
				t.Errorf("%d errors, want %d:\n%v", got, len(tc.want), err)
			}
		})
	}
}

func TestNilRegistrySkipsModuleCheck(t *testing.T) {
	if _, err := Parse([]byte(minimal+"modules:\n  anything: {a: 1}\n"), nil, nil); err != nil {
		t.Fatal(err)
	}
}

func TestEnvOverrides(t *testing.T) {
	env := []string{
		"PATH=/bin",
		"GUILD_DEMO=127.0.0.1:8080",  // another tool's
		"GUILD_BENCH_GATE_CLIENTS=1", // another tool's
		"GUILD_BIN=/tmp/guild",       // the browser tests'
		"GUILD_TEST_TRANSPORT=nats",  // guild's own tests'
		"GUILD_CHAOS_SEED=7",
		"GUILD_NODES_GATE1_LISTEN=127.0.0.1:9000",
		"GUILD_CLUSTER_ETCD_ENDPOINTS=http://a:2379, http://b:2379",
		"GUILD_CLUSTER_ETCD_TTL=7s",
		"GUILD_NODES_GATE1_GATEWAY_LIMITS_RATE=10.5",
		"GUILD_NODES_GATE1_GATEWAY_LIMITS_MAX_CONNS=5",
		"GUILD_NODES_GATE1_GATEWAY_WS_PATH=/socket",
		"GUILD_NODES_GATE1_GATEWAY_WS=127.0.0.1:8181",
		"GUILD_NODES_GATE1_GATEWAY_PUBLIC=auth.Login,auth.Register",
		"GUILD_NODES_GATE1_GATEWAY_ROUTES_ARENA_BY_USER=false",
		"GUILD_NODES_WORLD_2_ADDR=1.2.9",
		"GUILD_NODES_WORLD_1_GATEWAY_TCP=127.0.0.1:7500", // a section the file lacks
		"GUILD_NODES_WORLD_1_MODULES=world,chat",
		"GUILD_MODULES_WORLD_TICK=20ms",
		"GUILD_MODULES_WORLD_SIZE_W=128",
		"GUILD_MODULES_CHAT_MAX=3", // not in the file: a module of the registry
	}
	_, err := Load("testdata/cluster.yaml", env, registry)
	if err == nil {
		t.Fatal("GUILD_MODULES_CHAT_MAX: want an error, chat has no section to set a key in")
	}
	if !strings.Contains(err.Error(), "GUILD_MODULES_CHAT_MAX: matches no field") || strings.Count(err.Error(), "\n") != 0 {
		t.Fatalf("error %v", err)
	}
	c, err := Load("testdata/cluster.yaml", env[:len(env)-1], registry)
	if err != nil {
		t.Fatal(err)
	}
	g := c.Nodes["gate1"]
	if g.Listen != "127.0.0.1:9000" {
		t.Errorf("listen %q", g.Listen)
	}
	if got := c.Cluster.Etcd.Endpoints; !reflect.DeepEqual(got, []string{"http://a:2379", "http://b:2379"}) {
		t.Errorf("endpoints %q", got)
	}
	if c.Cluster.Etcd.TTL != 7*time.Second {
		t.Errorf("ttl %v", c.Cluster.Etcd.TTL)
	}
	l := g.Gateway.Limits
	if l.Rate != 10.5 || l.MaxConns != 5 || l.Burst != 100 {
		t.Errorf("limits %+v", l)
	}
	if g.Gateway.WSPath != "/socket" || g.Gateway.WS != "127.0.0.1:8181" {
		t.Errorf("ws %q %q", g.Gateway.WS, g.Gateway.WSPath)
	}
	if !reflect.DeepEqual(g.Gateway.Public, []string{"auth.Login", "auth.Register"}) {
		t.Errorf("public %q", g.Gateway.Public)
	}
	if g.Gateway.Routes["arena"].ByUser {
		t.Error("routes.arena.by_user not overridden")
	}
	if c.Nodes["world-2"].Addr != "1.2.9" {
		t.Errorf("world-2 addr %q", c.Nodes["world-2"].Addr)
	}
	w1 := c.Nodes["world-1"]
	if w1.Gateway == nil || w1.Gateway.TCP != "127.0.0.1:7500" || w1.Gateway.WSPath != DefaultWSPath {
		t.Errorf("world-1 gateway %+v", w1.Gateway)
	}
	if !reflect.DeepEqual(w1.Modules, []string{"world", "chat"}) {
		t.Errorf("world-1 modules %q", w1.Modules)
	}
	world := c.Modules["world"].(map[string]any)
	if world["tick"] != "20ms" || world["size"].(map[string]any)["w"] != int64(128) {
		t.Errorf("modules.world %#v", world)
	}
}

func TestEnvErrors(t *testing.T) {
	env := []string{
		"GUILD_NODES_GATE1_LISTN=127.0.0.1:9000",     // typo
		"GUILD_NODES_GATE9_LISTEN=127.0.0.1:9000",    // no such node
		"GUILD_NODES_GATE1_GATEWAY_LIMITS_RATE=fast", // not a number
		"GUILD_NODES_GATE1_GATEWAY_LIMITS_BURST=1.5", // not a whole number
		"GUILD_CLUSTER_ETCD_TTL=5",                   // no unit
		"GUILD_NODES_GATE1_GATEWAY=127.0.0.1:1",      // a section
		"GUILD_NODES_WORLD_1_ADDR=1.2",               // caught by validation
	}
	_, err := Load("testdata/cluster.yaml", env, registry)
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{
		"GUILD_NODES_GATE1_LISTN: matches no field",
		"GUILD_NODES_GATE9_LISTEN: matches no field",
		`GUILD_NODES_GATE1_GATEWAY_LIMITS_RATE (nodes.gate1.gateway.limits.rate): "fast" is not a number`,
		`GUILD_NODES_GATE1_GATEWAY_LIMITS_BURST (nodes.gate1.gateway.limits.burst): "1.5" is not a whole number`,
		`GUILD_CLUSTER_ETCD_TTL (cluster.etcd.ttl): "5" is not a duration`,
		"GUILD_NODES_GATE1_GATEWAY: matches no field",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not contain %q:\n%v", w, err)
		}
	}
	// Overrides apply before validation: the bad address is reported too
	// once the variables are otherwise right.
	_, err = Load("testdata/cluster.yaml", env[len(env)-1:], registry)
	if err == nil || !strings.Contains(err.Error(), `nodes.world-1.addr: "1.2" is not cluster.type.index`) {
		t.Errorf("error %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "none.yaml"), nil, nil)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %v", err)
	}
}

func TestEnvName(t *testing.T) {
	if got := EnvName("world-2"); got != "WORLD_2" {
		t.Errorf("EnvName = %q", got)
	}
}

func TestYAML12Names(t *testing.T) {
	c, err := Parse([]byte("nodes:\n  no: {addr: 1.1.1, master: 127.0.0.1:0}\n  on: {addr: 1.1.2}\n"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.NodeNames(); !reflect.DeepEqual(got, []string{"no", "on"}) {
		t.Errorf("names %q", got)
	}
}

func TestLoadErrorsNameTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("nodes:\n  a: {addr: 1.2}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path, nil, nil)
	if err == nil {
		t.Fatal("no error")
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		if !strings.HasPrefix(line, path+": ") {
			t.Errorf("line %q does not start with the file's name", line)
		}
	}
}

func TestTransportSection(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/c.yaml"
	write := func(body string) {
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("cluster:\n  transport: {pending_queue: 64, heartbeat: 500ms, dead_after: 2s}\nnodes:\n  a: {addr: 1.1.1, master: 127.0.0.1:0}\n")
	c, err := Load(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tc := c.Cluster.Transport.TCP()
	if tc.PendingQueue != 64 || tc.HeartbeatInterval != 500*time.Millisecond || tc.DeadAfter != 2*time.Second {
		t.Fatalf("TCP() = %+v", tc)
	}
	if _, err := Load(path, []string{"GUILD_CLUSTER_TRANSPORT_PENDING_QUEUE=128"}, nil); err != nil {
		t.Fatalf("override: %v", err)
	}
	c, err = Load(path, []string{"GUILD_CLUSTER_TRANSPORT_WATCH_LINK_TIMEOUT=4s"}, nil)
	if err != nil || c.Cluster.Transport.WatchLinkTimeout != 4*time.Second {
		t.Fatalf("watch_link_timeout override: %v, %v", err, c.Cluster.Transport.WatchLinkTimeout)
	}
	if _, err := Load(path, []string{"GUILD_CLUSTER_TRANSPORT_WATCH_LINK_TIMEOUT=-1s"}, nil); err == nil {
		t.Fatal("a negative watch_link_timeout was accepted")
	}
	write("cluster:\n  transport: {heartbeat: 5s, dead_after: 2s}\nnodes:\n  a: {addr: 1.1.1, master: 127.0.0.1:0}\n")
	if _, err = Load(path, nil, nil); err == nil || !strings.Contains(err.Error(), "cluster.transport: dead_after 2s must be longer than heartbeat 5s") {
		t.Fatalf("err = %v", err)
	}
	write("cluster:\n  transport: {pendng: 1}\nnodes:\n  a: {addr: 1.1.1, master: 127.0.0.1:0}\n")
	if _, err = Load(path, nil, nil); err == nil || !strings.Contains(err.Error(), "cluster.transport.pendng: unknown key") {
		t.Fatalf("err = %v", err)
	}
}
