package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/config"
	"github.com/guildkit/guild/table"
)

type reloadItem struct {
	ID    int `table:"id"`
	Price int `table:"price"`
}

type reloadTables struct {
	Items table.Table[int, reloadItem] `table:"items.csv"`
}

// reloadModule opens the set "shop" from env.Tables.
type reloadModule struct{ sets chan *table.Set[reloadTables] }

func (m *reloadModule) Start(ctx context.Context, env *app.Env) error {
	s, err := table.Open[reloadTables](ctx, env.Tables, "shop")
	if err == nil {
		m.sets <- s
	}
	return err
}

func (m *reloadModule) Stop(context.Context) error { return nil }

func writeTable(t *testing.T, dir, content string) {
	t.Helper()
	p := filepath.Join(dir, "items.csv")
	if err := os.WriteFile(p+".tmp", []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p+".tmp", p); err != nil {
		t.Fatal(err)
	}
}

// TestReload runs guild reload against real nodes started from a
// cluster file: one node with tables and the dashboard, one without
// tables. A good reload prints the new version; a bad file prints the
// error with its line and exits 1, and the node keeps its version; -all
// skips the node without tables.
func TestReload(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	writeTable(t, dir, "id,price\n1,10\n")
	path := writeClusterFile(t, `
cluster:
  etcd: {ttl: 2s}
admin: {token: reload-admin-token-0123456789}
nodes:
  shop1:
    addr: 1.2.1
    master: 127.0.0.1:0
    modules: [shop]
    admin: {listen: 127.0.0.1:0}
    tables: {dir: `+dir+`}
  gate1:
    addr: 1.1.1
`)
	sets := make(chan *table.Set[reloadTables], 1)
	reg := app.NewRegistry()
	reg.Register("shop", func() app.Module { return &reloadModule{sets: sets} })
	cfg, err := config.Load(path, nil, reg.Names())
	if err != nil {
		t.Fatal(err)
	}
	log := app.WithLogger(slog.New(slog.DiscardHandler))
	shop, err := app.Start(ctx, cfg, "shop1", reg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer shop.Shutdown(context.Background())
	gate, err := app.Start(ctx, cfg, "gate1", reg, log, app.WithEtcdEndpoints(shop.Ready().Etcd...))
	if err != nil {
		t.Fatal(err)
	}
	defer gate.Shutdown(context.Background())
	set := <-sets
	v1 := set.Version()
	dash := shop.Ready().Admin

	reload := func(args ...string) (int, string, string) {
		var out, errOut syncBuffer
		code := reloadCmd(ctx, args, nil, &out, &errOut)
		return code, out.String(), errOut.String()
	}

	writeTable(t, dir, "id,price\n1,10\n2,20\n")
	code, out, errOut := reload("-c", path, "--node", "shop1", "-admin", dash)
	v2 := set.Version()
	if code != exitOK || v2.Hash == v1.Hash {
		t.Fatalf("exit code %d; stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	contains(t, "stdout", out, "shop1 (1.2.1): ok\n", "  shop  "+v2.Hash+"  changed, was "+v1.Hash+"\n")

	code, out, _ = reload("-c", path, "-node", "shop1", "-admin", dash)
	if code != exitOK {
		t.Errorf("again: exit code %d", code)
	}
	contains(t, "stdout", out, "  shop  "+v2.Hash+"  unchanged\n")

	writeTable(t, dir, "id,price\n1,10\n1,20\n")
	code, out, _ = reload("-c", path, "-all", "-admin", dash)
	if code != exitError || set.Version() != v2 {
		t.Errorf("a bad file: exit code %d, version %v (was %v)", code, set.Version(), v2)
	}
	contains(t, "stdout", out, "gate1 (1.1.1): no tables, skipped\n", "shop1 (1.2.1): FAILED\n",
		"  shop  "+v2.Hash+"  kept: table set shop:\n    items.csv:3:1: id: duplicate key 1 (also the key of the row at line 2)\n")

	code, out, _ = reload("-c", path, "-node", "gate1", "-admin", dash)
	if code != exitError {
		t.Errorf("a node without tables: exit code %d", code)
	}
	contains(t, "stdout", out, "gate1 (1.1.1): FAILED: the file gives it no tables directory (tables.dir)")

	// The token is checked: a wrong one from the environment fails.
	var outB, errB syncBuffer
	code = reloadCmd(ctx, []string{"-c", path, "-node", "shop1", "-admin", dash}, []string{"GUILD_ADMIN_TOKEN=wrong-admin-token-0123456789"}, &outB, &errB)
	if code != exitError {
		t.Errorf("a wrong token: exit code %d", code)
	}
	contains(t, "stdout", outB.String(), "401 Unauthorized: this needs the admin token")
}

func TestReloadUsage(t *testing.T) {
	path := writeClusterFile(t, `
nodes:
  a: {addr: 1.1.1, master: 127.0.0.1:0, admin: {listen: 127.0.0.1:0}, tables: {dir: /tmp}}
  b: {addr: 1.2.1}
`)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-node", "a"}, exitUsage, "-c is required"},
		{[]string{"-c", path}, exitUsage, "give -node NAME, or -all"},
		{[]string{"-c", path, "-node", "a", "-all"}, exitUsage, "-node and -all exclude each other"},
		{[]string{"-c", path, "-node", "x"}, exitUsage, `has no node "x" (it has a, b)`},
		{[]string{"-c", path, "-node", "a"}, exitUsage, "nodes.a's admin dashboard listens on port 0: give -admin"},
		{[]string{"-c", path, "-node", "a", "-admin", "ftp://x"}, exitUsage, `-admin "ftp://x" is not an http(s) URL`},
		{[]string{"-c", path, "-node", "a", "-timeout", "0s"}, exitUsage, "-timeout 0s is not positive"},
	} {
		var out, errOut syncBuffer
		if code := reloadCmd(context.Background(), tc.args, nil, &out, &errOut); code != tc.code {
			t.Errorf("%q: exit code %d, want %d", tc.args, code, tc.code)
		}
		contains(t, "stderr", errOut.String(), tc.want)
	}
	cfg, err := config.Parse([]byte(`
admin: {listen: ":9090"}
nodes:
  a: {addr: 1.1.1, master: 127.0.0.1:0}
  b: {addr: 1.2.1, admin: {listen: "10.0.0.5:9091"}}
`), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for node, want := range map[string]string{"a": "http://127.0.0.1:9090/", "b": "http://10.0.0.5:9091/", "": "http://127.0.0.1:9090/"} {
		if got, err := adminURL(cfg, node); got != want || err != nil {
			t.Errorf("adminURL(%q) = %q, %v; want %q", node, got, err, want)
		}
	}
	cfg.Admin.Listen = ""
	cfg.Nodes["b"].Admin = nil
	if _, err := adminURL(cfg, "a"); err == nil || !strings.Contains(err.Error(), "no node of the file serves the admin dashboard") {
		t.Errorf("no dashboard: %v", err)
	}
}
