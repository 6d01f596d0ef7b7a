package app_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/guildkit/guild/admin"
	"github.com/guildkit/guild/app"
)

// staticReloader is a Reloader with one item whose version never moves.
type staticReloader struct{}

func (staticReloader) Versions() map[string]string {
	return map[string]string{"counter": "5c1f0e9a2b7d"}
}
func (staticReloader) ReloadItems(context.Context) (map[string]error, error) {
	return nil, nil
}

// TestEnvAddReloader: a module's reloader reaches the node's admin agent
// (the tables action lists it beside the sets, a reload reports it), a
// second one of the same name is refused; on a node without an admin
// agent AddReloader does nothing but check its arguments.
func TestEnvAddReloader(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	writeItems(t, dir, "id,price\n1,10\n")
	node, _, env := startShop(t, ctx, "tables: {dir: "+dir+"}")
	if err := env.AddReloader("fixes", staticReloader{}); err != nil {
		t.Fatal(err)
	}
	if err := env.AddReloader("fixes", staticReloader{}); err == nil {
		t.Error("a second reloader named fixes was added")
	}
	base := node.Ready().Admin
	var reply admin.TablesReply
	if code := post(t, base+"api/nodes/1.1.1/tables", &reply); code != http.StatusOK || len(reply.Sets) != 1 ||
		len(reply.Reloaders) != 1 || reply.Reloaders[0].Name != "fixes" ||
		len(reply.Reloaders[0].Items) != 1 || reply.Reloaders[0].Items[0] != (admin.ReloadItem{Name: "counter", Version: "5c1f0e9a2b7d"}) {
		t.Fatalf("tables: %d %+v", code, reply)
	}
	reply = admin.TablesReply{}
	if code := post(t, base+"api/nodes/1.1.1/reload", &reply); code != http.StatusOK || !reply.OK || len(reply.Results) != 1 ||
		len(reply.Reloaders) != 1 || reply.Reloaders[0].Items[0] != (admin.ReloadItem{Name: "counter", Version: "5c1f0e9a2b7d"}) {
		t.Fatalf("reload: %d %+v", code, reply)
	}

	var bare app.Env // no admin agent
	if err := bare.AddReloader("fixes", staticReloader{}); err != nil {
		t.Errorf("without an agent: %v", err)
	}
	if err := bare.AddReloader("", staticReloader{}); err == nil {
		t.Error("without an agent: an empty name was accepted")
	}
	if err := bare.AddReloader("fixes", nil); err == nil {
		t.Error("without an agent: a nil Reloader was accepted")
	}
}
