package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// kcp-go starts its timer scheduler at package init, for the
		// whole process (the gateway links it in).
		goleak.IgnoreTopFunction("github.com/xtaci/kcp-go/v5.(*TimedSched).sched"),
		goleak.IgnoreTopFunction("github.com/xtaci/kcp-go/v5.(*TimedSched).prepend"),
	)
}

// TestRun: the inventory a player built in the first run of the server
// is there, from the store, in the second.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, filepath.Join(t.TempDir(), "players.db"), &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		"server run 1",
		"before logging in: rpc: Unauthenticated: player.Inventory: log in first",
		"inventory: gold 100, items map[], visit 1",
		"bought a sword: gold 20, items map[potion:3 sword:1]",
		"tried to buy a castle: rpc: Code(1001): not enough gold (code 1001)",
		"server run 2",
		"inventory: gold 20, items map[potion:3 sword:1], visit 2",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}
