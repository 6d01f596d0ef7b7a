package admin_test

import (
	"fmt"
	"testing"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/admin"
)

// TestFailuresRing: Failures keeps the last n, the newest first, and
// counts them all.
func TestFailuresRing(t *testing.T) {
	f := admin.NewFailures(3)
	if got, total := f.Recent(); len(got) != 0 || total != 0 {
		t.Fatalf("empty: %v %d", got, total)
	}
	for i := range 5 {
		f.Report(actor.Failure{Kind: actor.FailurePanic, Reason: fmt.Sprint(i), Stack: []byte("stack")})
	}
	got, total := f.Recent()
	if total != 5 || len(got) != 3 {
		t.Fatalf("%d kept of %d, want 3 of 5", len(got), total)
	}
	for i, want := range []string{"4", "3", "2"} {
		if got[i].Reason != want || got[i].Stack != "stack" || got[i].Kind != "panic" || got[i].Time.IsZero() {
			t.Fatalf("failure %d: %+v, want reason %s", i, got[i], want)
		}
	}
	if admin.NewFailures(0) == nil {
		t.Fatal("NewFailures(0)")
	}
}
