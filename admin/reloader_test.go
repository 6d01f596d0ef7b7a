package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/guildkit/guild/admin"
	"github.com/guildkit/guild/internal/await"
)

// fakeReloader is an admin.Reloader whose next reload's outcome the test
// sets: the versions it moves to, and the items' errors.
type fakeReloader struct {
	mu      sync.Mutex
	vs      map[string]string
	next    map[string]string // applied by the next ReloadItems
	errs    map[string]error
	whole   error
	panics  bool
	reloads int
}

func (f *fakeReloader) Versions() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.vs)
}

func (f *fakeReloader) ReloadItems(context.Context) (map[string]error, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reloads++
	if f.panics {
		panic("reloader on fire")
	}
	maps.Copy(f.vs, f.next)
	f.next = nil
	return f.errs, f.whole
}

func (f *fakeReloader) set(next map[string]string, errs map[string]error, whole error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next, f.errs, f.whole = next, errs, whole
}

// post sends an action and decodes the JSON answer whatever its status.
func post(t *testing.T, url string, out any) int {
	t.Helper()
	req, err := http.NewRequest("POST", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("POST %s: %d %s: %v", url, resp.StatusCode, b, err)
	}
	return resp.StatusCode
}

// TestReloaders reloads a node without tables but with reloaders
// through the admin API: the reply lists each item's versions before
// and after, the snapshot and the tables action list their versions,
// a rejected item or a failed reloader makes it 422 (OK false), a
// panicking reloader is an error of its own, AddReloader refuses bad
// names, and a node with nothing to reload answers 409.
func TestReloaders(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	node, members := soloNode(t, ctx, log)
	agent, err := admin.StartAgent(ctx, admin.AgentConfig{Node: node, Name: "solo", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Stop(ctx)
	dash, err := admin.Serve(admin.Config{Listen: "127.0.0.1:0", Node: node, Members: members, Token: adminToken, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer dash.Close()
	base := dash.URL()

	var none struct{ Error string }
	if code := post(t, base+"api/nodes/1.1.1/reload", &none); code != http.StatusConflict || !strings.Contains(none.Error, "nothing to reload") {
		t.Fatalf("a node with nothing to reload: %d %q", code, none.Error)
	}

	fixes := &fakeReloader{vs: map[string]string{"counter": "aaa", "shop": "bbb"}}
	if err := agent.AddReloader("fixes", fixes); err != nil {
		t.Fatal(err)
	}
	broken := &fakeReloader{vs: map[string]string{}}
	for _, bad := range []struct {
		name string
		r    admin.Reloader
	}{{"", fixes}, {"other", nil}, {"fixes", broken}} {
		if err := agent.AddReloader(bad.name, bad.r); err == nil {
			t.Errorf("AddReloader(%q, %v) accepted it", bad.name, bad.r)
		}
	}

	var tr admin.TablesReply
	if code := do(t, "GET", base+"api/nodes/1.1.1/tables", adminToken, "", &tr); code != http.StatusOK ||
		len(tr.Reloaders) != 1 || tr.Reloaders[0].Name != "fixes" || len(tr.Sets) != 0 ||
		!slices.Equal(tr.Reloaders[0].Items, []admin.ReloadItem{{Name: "counter", Version: "aaa"}, {Name: "shop", Version: "bbb"}}) {
		t.Fatalf("tables: %d %+v", code, tr)
	}
	await.True(t, 10*time.Second, "the snapshot to list the reloader's versions", func() bool {
		n, ok := nodeOf(view(t, base), "1.1.1")
		return ok && n.Snapshot != nil && len(n.Snapshot.Reloaders) == 1 && slices.Equal(n.Snapshot.Reloaders[0].Items, tr.Reloaders[0].Items)
	})

	// A new version of counter, a new item, and shop unchanged.
	fixes.set(map[string]string{"counter": "ccc", "chat": "ddd"}, nil, nil)
	var reply admin.TablesReply
	if code := post(t, base+"api/nodes/1.1.1/reload", &reply); code != http.StatusOK || !reply.OK || len(reply.Reloaders) != 1 {
		t.Fatalf("reload: %d %+v", code, reply)
	}
	want := []admin.ReloadItem{
		{Name: "chat", Version: "ddd", Changed: true},
		{Name: "counter", Version: "ccc", Previous: "aaa", Changed: true},
		{Name: "shop", Version: "bbb"},
	}
	if got := reply.Reloaders[0].Items; !slices.Equal(got, want) {
		t.Fatalf("reload: %+v, want %+v", got, want)
	}

	// shop's new file is rejected: it keeps bbb; the reply is 422.
	fixes.set(nil, map[string]error{"shop": errors.New("hotfix: module rejected: shop: compile")}, nil)
	reply = admin.TablesReply{}
	if code := post(t, base+"api/nodes/1.1.1/reload", &reply); code != http.StatusUnprocessableEntity || reply.OK {
		t.Fatalf("a rejected item: %d %+v", code, reply)
	}
	if it := reply.Reloaders[0].Items[2]; it.Name != "shop" || it.Version != "bbb" || it.Changed || !strings.Contains(it.Error, "rejected") {
		t.Fatalf("the rejected item: %+v", it)
	}

	// A failure of the whole, and a second reloader that panics: both
	// are reported, and the node goes on.
	fixes.set(nil, nil, errors.New("the directory is gone"))
	broken.panics = true
	if err := agent.AddReloader("broken", broken); err != nil {
		t.Fatal(err)
	}
	reply = admin.TablesReply{}
	if code := post(t, base+"api/nodes/1.1.1/reload", &reply); code != http.StatusUnprocessableEntity || reply.OK || len(reply.Reloaders) != 2 {
		t.Fatalf("failed reloaders: %d %+v", code, reply)
	}
	if r := reply.Reloaders; r[0].Error != "the directory is gone" || r[1].Name != "broken" || !strings.Contains(r[1].Error, "reloader on fire") {
		t.Fatalf("failed reloaders: %+v", r)
	}
	if n, ok := nodeOf(view(t, base), "1.1.1"); !ok || !n.Reachable {
		t.Fatalf("the agent after a panicking reloader: %+v", n)
	}
}
