package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guildkit/guild/admin"
	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/config"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/table"
)

// shopItem is a row of the shop module's items.csv.
type shopItem struct {
	ID    int `table:"id"`
	Price int `table:"price"`
}

func (i shopItem) Validate() error {
	if i.Price <= 0 {
		return errPrice
	}
	return nil
}

var errPrice = errors.New("the price must be positive")

// shopTables is the shop module's table set.
type shopTables struct {
	Items table.Table[int, shopItem] `table:"shop/items.csv"`
}

// shopModule opens its tables from env.Tables and hands its set to the
// test.
type shopModule struct {
	sets chan *table.Set[shopTables]
	envs chan *app.Env
}

func (m *shopModule) Start(ctx context.Context, env *app.Env) error {
	set, err := table.Open[shopTables](ctx, env.Tables, "shop")
	if err != nil {
		return err
	}
	m.sets <- set
	m.envs <- env
	return nil
}

func (m *shopModule) Stop(context.Context) error { return nil }

const tablesAdminToken = "tables-admin-token-0123456789"

func writeItems(t *testing.T, dir, csv string) {
	t.Helper()
	p := filepath.Join(dir, "shop", "items.csv")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p+".tmp", []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p+".tmp", p); err != nil {
		t.Fatal(err)
	}
}

func post(t *testing.T, url string, out any) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	method := "POST"
	if strings.HasSuffix(url, "/tables") || strings.HasSuffix(url, "/view") {
		method = "GET"
	}
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tablesAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: %v in %s", url, err, b)
		}
	}
	return resp.StatusCode
}

// startShop starts a one-node cluster whose node hosts the shop module,
// with the tables section given, and returns the node and its set.
func startShop(t *testing.T, ctx context.Context, tables string) (*app.Node, *table.Set[shopTables], *app.Env) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(path, []byte(`
cluster:
  etcd: {ttl: 2s}
admin: {token: `+tablesAdminToken+`}
`+tables+`
nodes:
  solo:
    addr: 1.1.1
    master: 127.0.0.1:0
    modules: [shop]
    admin: {listen: 127.0.0.1:0}
    telemetry: {metrics: 127.0.0.1:0}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &shopModule{sets: make(chan *table.Set[shopTables], 1), envs: make(chan *app.Env, 1)}
	reg := app.NewRegistry()
	reg.Register("shop", func() app.Module { return m })
	cfg, err := config.Load(path, nil, reg.Names())
	if err != nil {
		t.Fatal(err)
	}
	node, err := app.Start(ctx, cfg, "solo", reg, app.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Shutdown(context.Background()) })
	return node, <-m.sets, <-m.envs
}

// TestTablesWatchFromClusterFile: a node whose cluster file has a tables
// section gives its modules env.Tables, and with watch reloads a set
// when its file changes.
func TestTablesWatchFromClusterFile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	writeItems(t, dir, "id,price\n1,10\n2,20\n")
	node, set, env := startShop(t, ctx, "tables: {dir: "+dir+", watch: 100ms}")
	if env.Tables == nil || env.Tables != node.Tables() || env.Tables.Dir() != dir || env.Tables.Watch() != 100*time.Millisecond {
		t.Fatalf("env.Tables %v, node's %v", env.Tables, node.Tables())
	}
	if it, ok := set.Load().Items.Get(2); !ok || it.Price != 20 {
		t.Fatalf("item 2: %+v %v", it, ok)
	}
	v1 := set.Version()
	writeItems(t, dir, "id,price\n1,10\n2,25\n")
	await.True(t, 10*time.Second, "the watcher to load the new price", func() bool {
		it, _ := set.Load().Items.Get(2)
		return it.Price == 25
	})
	if v2 := set.Version(); v2.Hash == v1.Hash {
		t.Errorf("the version did not change")
	}
	// A bad file: the watcher refuses it, and the old data stays.
	writeItems(t, dir, "id,price\n1,10\n2,0\n")
	await.True(t, 10*time.Second, "the watcher to refuse the bad file", func() bool { return set.Status().Failures == 1 })
	if it, _ := set.Load().Items.Get(2); it.Price != 25 {
		t.Errorf("after a refused file: %+v", it)
	}
}

// TestTablesAdminReload: the admin API reloads a node's tables; a bad
// file is refused with its line and the old version stays; the
// dashboard's snapshot and the metrics carry the versions.
func TestTablesAdminReload(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	writeItems(t, dir, "id,price\n1,10\n2,20\n")
	node, set, _ := startShop(t, ctx, "tables: {dir: "+dir+"}") // no watch: only the API reloads
	v2 := set.Version()

	base := node.Ready().Admin
	writeItems(t, dir, "id,price\n1,10\n2,0\n")
	var reply admin.TablesReply
	if code := post(t, base+"api/nodes/1.1.1/reload", &reply); code != http.StatusUnprocessableEntity {
		t.Fatalf("reload of a bad file: %d %+v", code, reply)
	}
	if reply.OK || len(reply.Results) != 1 || !strings.Contains(reply.Results[0].Error, "shop/items.csv:3:1: row 2: the price must be positive") ||
		reply.Results[0].Version.Hash != v2.Hash || reply.Results[0].Changed || reply.Node != "solo" {
		t.Errorf("reply %+v", reply)
	}
	if set.Version() != v2 || set.Status().Failures != 1 {
		t.Errorf("after the failed reload: %+v", set.Status())
	}
	// Fixed: 200, changed, and the version is reported.
	writeItems(t, dir, "id,price\n1,10\n2,30\n3,40\n")
	reply = admin.TablesReply{}
	if code := post(t, base+"api/nodes/1.1.1/reload", &reply); code != http.StatusOK {
		t.Fatalf("reload: %d %+v", code, reply)
	}
	v3 := set.Version()
	if !reply.OK || len(reply.Results) != 1 || !reply.Results[0].Changed || reply.Results[0].Version.Hash != v3.Hash || v3.Hash == v2.Hash ||
		reply.Results[0].Previous.Hash != v2.Hash || len(reply.Sets) != 1 || reply.Sets[0].Tables[0].Rows != 3 {
		t.Errorf("reply %+v", reply)
	}
	reply = admin.TablesReply{}
	if code := post(t, base+"api/nodes/1.1.1/tables", &reply); code != http.StatusOK || len(reply.Sets) != 1 || reply.Sets[0].Version.Hash != v3.Hash || reply.Sets[0].Set != "shop" {
		t.Errorf("tables: %d %+v", code, reply)
	}
	var v admin.View
	if code := post(t, base+"api/view", &v); code != http.StatusOK || len(v.Nodes) != 1 || v.Nodes[0].Snapshot == nil ||
		len(v.Nodes[0].Snapshot.Tables) != 1 || v.Nodes[0].Snapshot.Tables[0].Version.Hash != v3.Hash {
		t.Errorf("view: %+v", v)
	}
	if code := post(t, base+"api/nodes/1.9.9/reload", nil); code != http.StatusNotFound {
		t.Errorf("reload of a node that is not a member: %d", code)
	}

	// The metrics: the version served and the counts.
	resp, err := http.Get(node.Ready().Metrics)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`guild_table_set_info{set="shop",version="` + v3.Hash + `"} 1`,
		`guild_table_loads_total{set="shop"} 2`,
		`guild_table_reload_failures_total{set="shop"} 1`,
		`guild_table_rows{file="shop/items.csv",set="shop"} 3`,
		`guild_table_set_loaded_timestamp_seconds{set="shop"}`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
}

// TestTablesBadDataStopsTheStart: a module whose tables do not load does
// not start, and the error names the file and line; a module on a node
// without tables gets a nil env.Tables, and table.Open says what is
// missing.
func TestTablesBadDataStopsTheStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	writeItems(t, dir, "id,price\n1,ten\n")
	reg := app.NewRegistry()
	reg.Register("shop", func() app.Module {
		return &shopModule{sets: make(chan *table.Set[shopTables], 1), envs: make(chan *app.Env, 1)}
	})
	for _, tc := range []struct{ tables, want string }{
		{"tables: {dir: " + dir + "}", `app: start module shop: table set shop:
shop/items.csv:2:3: price: "ten" is not a whole number`},
		{"", "table: set shop: no tables here (a node needs tables.dir in its cluster file, or a Group)"},
		{"tables: {dir: " + filepath.Join(dir, "none") + "}", "tables.dir: stat " + filepath.Join(dir, "none") + ": no such file or directory"},
	} {
		cfg, err := config.Parse([]byte(tc.tables+`
nodes:
  solo: {addr: 1.1.1, master: 127.0.0.1:0, modules: [shop]}
`), nil, reg.Names())
		if err != nil {
			t.Fatal(err)
		}
		node, err := app.Start(ctx, cfg, "solo", reg, app.WithLogger(slog.New(slog.DiscardHandler)))
		if err == nil {
			_ = node.Shutdown(context.Background())
			t.Fatalf("%q: started", tc.tables)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v\nwant %s", tc.tables, err, tc.want)
		}
	}
}
