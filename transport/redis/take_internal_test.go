package redis

import (
	"context"
	"crypto/rand"
	"log/slog"
	"os"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// TestTakeAppliesOnce: the reader's acknowledgement removes what it
// delivered once, however often it reaches Redis (a retry, and the
// original that a partition held), and the reader's resync after a lost
// answer tells an applied acknowledgement from one that was not.
func TestTakeAppliesOnce(t *testing.T) {
	client := goredis.NewClient(&goredis.Options{Addr: DefaultAddr, MaxRetries: -1})
	defer client.Close()
	ctx := context.Background()
	if err := client.Ping(ctx).Err(); err != nil {
		msg := "Redis not reachable on " + DefaultAddr + " (" + err.Error() + "); run `bash scripts/services.sh` (or install and start it) to run this test"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	prefix := "guildtest-" + rand.Text()
	inbox := prefix + ":inbox:1.1.1"
	b := &broker{c: Config{InboxTTL: time.Minute}.withDefaults(), inbox: inbox, cursor: keyOf(inbox, "cursor"), sub: client, log: slog.New(slog.DiscardHandler)}
	t.Cleanup(func() { client.Del(ctx, b.inbox, b.cursor) })
	if err := client.RPush(ctx, b.inbox, "a", "b", "c").Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.loadScripts(); err != nil {
		t.Fatal(err)
	}
	var rd reader
	check := func(what string, got []string, want ...string) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: got %q, want %q", what, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: got %q, want %q", what, got, want)
			}
		}
	}
	take := func() []string {
		t.Helper()
		msgs, err := b.cycle(&rd, false, time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		rd.pending += int64(len(msgs))
		return msgs
	}
	check("the first take", take(), "a", "b", "c")
	if rd.acked != 0 || rd.pending != 3 {
		t.Fatalf("after the first take: %+v, want 3 pending", rd)
	}
	// The acknowledgement is applied, but its answer is lost: the reader
	// does not know.
	lost := rd
	if _, err := b.cycle(&lost, false, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	// Applied twice (a retry): nothing more is removed.
	again := rd
	if _, err := b.cycle(&again, false, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if again.acked != 3 || again.pending != 0 {
		t.Fatalf("a repeated acknowledgement: reader %+v, want the cursor at 3 and nothing pending", again)
	}
	if err := client.RPush(ctx, b.inbox, "d").Err(); err != nil {
		t.Fatal(err)
	}
	check("the list after a repeated acknowledgement", client.LRange(ctx, b.inbox, 0, -1).Val(), "d")
	// Back from a lost connection, the reader resyncs with the cursor.
	cursor, err := client.Get(ctx, b.cursor).Int64()
	if err != nil {
		t.Fatal(err)
	}
	b.resync(&rd, cursor)
	if rd.acked != 3 || rd.pending != 0 {
		t.Fatalf("resync after an applied acknowledgement: %+v, want the cursor at 3 and nothing pending", rd)
	}
	check("the take after resync", take(), "d")
	// An acknowledgement that never reached Redis stays pending.
	b.resync(&rd, 3)
	if rd.acked != 3 || rd.pending != 1 {
		t.Fatalf("resync after a lost acknowledgement: %+v, want 1 pending", rd)
	}
	check("the take that applies it", take())
	if rd.acked != 4 || rd.pending != 0 {
		t.Fatalf("after the last take: %+v, want the cursor at 4", rd)
	}
	if n := client.LLen(ctx, b.inbox).Val(); n != 0 {
		t.Fatalf("%d messages left in the inbox, want 0", n)
	}
}
