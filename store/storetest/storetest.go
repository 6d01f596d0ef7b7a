// Package storetest is the conformance suite that every store.Store
// backend runs: one set of rules, checked the same way against the
// embedded store, Redis, PostgreSQL and MySQL.
//
// A backend's test calls Run with a function that opens a new, empty
// store for each subtest, and its benchmarks call BenchSave and
// BenchLoad:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return open(t) })
//	}
//
//	func BenchmarkSave(b *testing.B) { storetest.BenchSave(b, open(b)) }
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/guildkit/guild/store"
)

// Run runs the conformance suite against the backend that open returns.
// open is called once per subtest and must return a store that holds no
// documents; it registers its own cleanup with t. The suite closes the
// stores it opens (Close is safe to call twice, so the backend's cleanup
// may close them again).
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"LoadMissing", testLoadMissing},
		{"SaveNew", testSaveNew},
		{"SuccessiveSaves", testSuccessiveSaves},
		{"StaleVersion", testStaleVersion},
		{"CreateWhenExists", testCreateWhenExists},
		{"ExpectedAheadOfMissing", testExpectedAheadOfMissing},
		{"LargeDocument", testLargeDocument},
		{"EmptyData", testEmptyData},
		{"CallerOwnsSlices", testCallerOwnsSlices},
		{"OddNames", testOddNames},
		{"KindIsolation", testKindIsolation},
		{"DeleteRightVersion", testDeleteRightVersion},
		{"DeleteWrongVersion", testDeleteWrongVersion},
		{"DeleteMissing", testDeleteMissing},
		{"ConcurrentSave", testConcurrentSave},
		{"ConcurrentCreate", testConcurrentCreate},
		{"CancelledContext", testCancelledContext},
		{"Close", testClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

// Document is the size of the document the benchmarks write: 1 KiB.
const Document = 1 << 10

// BenchSave measures Save of a 1 KiB document over an existing one: one
// version check and one write, as a grain runtime's flush does.
func BenchSave(b *testing.B, s store.Store) {
	ctx := context.Background()
	data := randomData(Document)
	b.Cleanup(func() { _ = s.Close() })
	b.SetBytes(Document)
	b.ReportAllocs()
	var v uint64
	for b.Loop() {
		var err error
		if v, err = s.Save(ctx, "bench", "grain-1", data, v); err != nil {
			b.Fatalf("Save: %v", err)
		}
	}
}

// BenchLoad measures Load of a 1 KiB document, as a grain runtime's
// activation does.
func BenchLoad(b *testing.B, s store.Store) {
	ctx := context.Background()
	data := randomData(Document)
	b.Cleanup(func() { _ = s.Close() })
	if _, err := s.Save(ctx, "bench", "grain-1", data, 0); err != nil {
		b.Fatalf("Save: %v", err)
	}
	b.SetBytes(Document)
	b.ReportAllocs()
	for b.Loop() {
		got, _, err := s.Load(ctx, "bench", "grain-1")
		if err != nil {
			b.Fatalf("Load: %v", err)
		}
		if len(got) != Document {
			b.Fatalf("Load: %d bytes, want %d", len(got), Document)
		}
	}
}

func randomData(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rand.Uint32())
	}
	return b
}

func mustSave(t *testing.T, s store.Store, kind, key string, data []byte, expected uint64) uint64 {
	t.Helper()
	v, err := s.Save(context.Background(), kind, key, data, expected)
	if err != nil {
		t.Fatalf("Save(%q, %q, expected %d): %v", kind, key, expected, err)
	}
	if v != expected+1 {
		t.Fatalf("Save(%q, %q, expected %d) = version %d, want %d", kind, key, expected, v, expected+1)
	}
	return v
}

func wantDoc(t *testing.T, s store.Store, kind, key string, data []byte, version uint64) {
	t.Helper()
	got, v, err := s.Load(context.Background(), kind, key)
	if err != nil {
		t.Fatalf("Load(%q, %q): %v", kind, key, err)
	}
	if v != version {
		t.Errorf("Load(%q, %q) version = %d, want %d", kind, key, v, version)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("Load(%q, %q) data = %s, want %s", kind, key, abbrev(got), abbrev(data))
	}
}

func wantMissing(t *testing.T, s store.Store, kind, key string) {
	t.Helper()
	got, v, err := s.Load(context.Background(), kind, key)
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Load(%q, %q) = %s, %d, %v; want ErrNotFound", kind, key, abbrev(got), v, err)
	}
}

func wantConflict(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, store.ErrVersionConflict) {
		t.Fatalf("%s: err = %v, want ErrVersionConflict", what, err)
	}
}

func abbrev(b []byte) string {
	if len(b) > 32 {
		return fmt.Sprintf("%q... (%d bytes)", b[:32], len(b))
	}
	return fmt.Sprintf("%q", b)
}

func testLoadMissing(t *testing.T, s store.Store) {
	wantMissing(t, s, "player", "nobody")
}

func testSaveNew(t *testing.T, s store.Store) {
	mustSave(t, s, "player", "p1", []byte(`{"hp":10}`), 0)
	wantDoc(t, s, "player", "p1", []byte(`{"hp":10}`), 1)
}

func testSuccessiveSaves(t *testing.T, s store.Store) {
	var v uint64
	for i := range 5 {
		v = mustSave(t, s, "player", "p1", fmt.Appendf(nil, "state %d", i), v)
		wantDoc(t, s, "player", "p1", fmt.Appendf(nil, "state %d", i), uint64(i+1))
	}
}

func testStaleVersion(t *testing.T, s store.Store) {
	mustSave(t, s, "player", "p1", []byte("one"), 0)
	mustSave(t, s, "player", "p1", []byte("two"), 1)
	for _, stale := range []uint64{1, 3, 100} {
		_, err := s.Save(context.Background(), "player", "p1", []byte("stale"), stale)
		wantConflict(t, fmt.Sprintf("Save(expected %d) over version 2", stale), err)
	}
	wantDoc(t, s, "player", "p1", []byte("two"), 2)
}

func testCreateWhenExists(t *testing.T, s store.Store) {
	mustSave(t, s, "player", "p1", []byte("first"), 0)
	_, err := s.Save(context.Background(), "player", "p1", []byte("second"), 0)
	wantConflict(t, "Save(expected 0) over an existing document", err)
	wantDoc(t, s, "player", "p1", []byte("first"), 1)
}

func testExpectedAheadOfMissing(t *testing.T, s store.Store) {
	_, err := s.Save(context.Background(), "player", "p1", []byte("x"), 3)
	wantConflict(t, "Save(expected 3) of a missing document", err)
	wantMissing(t, s, "player", "p1")
}

func testLargeDocument(t *testing.T, s store.Store) {
	big := randomData(1 << 20)
	mustSave(t, s, "player", "big", big, 0)
	wantDoc(t, s, "player", "big", big, 1)
	mustSave(t, s, "player", "big", []byte("small"), 1)
	wantDoc(t, s, "player", "big", []byte("small"), 2)
	mustSave(t, s, "player", "big", big, 2)
	wantDoc(t, s, "player", "big", big, 3)
}

func testEmptyData(t *testing.T, s store.Store) {
	mustSave(t, s, "player", "empty", []byte{}, 0)
	wantDoc(t, s, "player", "empty", nil, 1)
	mustSave(t, s, "player", "empty", nil, 1)
	wantDoc(t, s, "player", "empty", nil, 2)
	mustSave(t, s, "player", "empty", []byte("x"), 2)
	wantDoc(t, s, "player", "empty", []byte("x"), 3)
}

// testCallerOwnsSlices: the store must neither keep the slice passed to
// Save nor hand out its own memory from Load.
func testCallerOwnsSlices(t *testing.T, s store.Store) {
	in := []byte("original")
	mustSave(t, s, "player", "p1", in, 0)
	copy(in, "XXXXXXXX")
	wantDoc(t, s, "player", "p1", []byte("original"), 1)
	out, _, err := s.Load(context.Background(), "player", "p1")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	copy(out, "YYYYYYYY")
	wantDoc(t, s, "player", "p1", []byte("original"), 1)
}

// testOddNames: kinds and keys are opaque strings. Pairs that a naive
// encoding or a case- or space-insensitive collation would merge must
// stay apart.
func testOddNames(t *testing.T, s store.Store) {
	names := [][2]string{
		{"player", "игрок/玩家 🎮"},
		{"玩家", "p1"},
		{"a:b", "c"},
		{"a", "b:c"},
		{"a:b:c", ""},
		{"a", ""},
		{"", "a"},
		{"", ""},
		{"player", "with space"},
		{"player", " leading"},
		{"player", "trailing "},
		{"player", "trailing"},
		{"player", "Key"},
		{"player", "key"},
		{"player", "KEY"},
		{"player", "é"},
		{"player", "e"},
		{"player", "%3A"},
		{"player", "a'b\"c`d\\e;--"},
		{"player", "line\nbreak\ttab"},
		{"player", "{hash}tag*?[x]"},
		{"player", strings.Repeat("k", 200)},
		{strings.Repeat("K", 100), "p1"},
	}
	for i, n := range names {
		mustSave(t, s, n[0], n[1], fmt.Appendf(nil, "doc %d", i), 0)
	}
	for i, n := range names {
		wantDoc(t, s, n[0], n[1], fmt.Appendf(nil, "doc %d", i), 1)
	}
	for i, n := range names {
		mustSave(t, s, n[0], n[1], fmt.Appendf(nil, "doc %d again", i), 1)
	}
	for i, n := range names {
		wantDoc(t, s, n[0], n[1], fmt.Appendf(nil, "doc %d again", i), 2)
		if err := s.Delete(context.Background(), n[0], n[1], 2); err != nil {
			t.Fatalf("Delete(%q, %q): %v", n[0], n[1], err)
		}
		wantMissing(t, s, n[0], n[1])
	}
}

func testKindIsolation(t *testing.T, s store.Store) {
	mustSave(t, s, "player", "42", []byte("a player"), 0)
	wantMissing(t, s, "guild", "42")
	mustSave(t, s, "guild", "42", []byte("a guild"), 0)
	mustSave(t, s, "guild", "42", []byte("a guild, v2"), 1)
	wantDoc(t, s, "player", "42", []byte("a player"), 1)
	wantDoc(t, s, "guild", "42", []byte("a guild, v2"), 2)
	if err := s.Delete(context.Background(), "guild", "42", 2); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantDoc(t, s, "player", "42", []byte("a player"), 1)
}

func testDeleteRightVersion(t *testing.T, s store.Store) {
	mustSave(t, s, "player", "p1", []byte("one"), 0)
	mustSave(t, s, "player", "p1", []byte("two"), 1)
	if err := s.Delete(context.Background(), "player", "p1", 2); err != nil {
		t.Fatalf("Delete(expected 2): %v", err)
	}
	wantMissing(t, s, "player", "p1")
	// A document created again starts over at version 1.
	mustSave(t, s, "player", "p1", []byte("again"), 0)
	wantDoc(t, s, "player", "p1", []byte("again"), 1)
}

func testDeleteWrongVersion(t *testing.T, s store.Store) {
	mustSave(t, s, "player", "p1", []byte("one"), 0)
	mustSave(t, s, "player", "p1", []byte("two"), 1)
	for _, wrong := range []uint64{0, 1, 3} {
		err := s.Delete(context.Background(), "player", "p1", wrong)
		wantConflict(t, fmt.Sprintf("Delete(expected %d) of version 2", wrong), err)
	}
	wantDoc(t, s, "player", "p1", []byte("two"), 2)
}

func testDeleteMissing(t *testing.T, s store.Store) {
	for _, v := range []uint64{0, 1} {
		if err := s.Delete(context.Background(), "player", "nobody", v); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Delete(expected %d) of a missing document: err = %v, want ErrNotFound", v, err)
		}
	}
}

const racers = 20

// race has racers goroutines Save the same key with the same expected
// version at once, and checks that exactly one wins: the core guarantee
// that a stale owner can never overwrite a newer state.
func race(t *testing.T, s store.Store, key string, expected uint64) {
	t.Helper()
	var (
		start   = make(chan struct{})
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []int
		others  []error
	)
	for i := range racers {
		wg.Go(func() {
			<-start
			v, err := s.Save(context.Background(), "player", key, fmt.Appendf(nil, "racer %d", i), expected)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && v == expected+1:
				winners = append(winners, i)
			case err == nil:
				others = append(others, fmt.Errorf("racer %d: version %d, want %d", i, v, expected+1))
			case !errors.Is(err, store.ErrVersionConflict):
				others = append(others, fmt.Errorf("racer %d: %w", i, err))
			}
		})
	}
	close(start)
	wg.Wait()
	for _, err := range others {
		t.Errorf("want success or ErrVersionConflict: %v", err)
	}
	if len(winners) != 1 {
		t.Fatalf("%d racers won Save(expected %d), want exactly 1: %v", len(winners), expected, winners)
	}
	wantDoc(t, s, "player", key, fmt.Appendf(nil, "racer %d", winners[0]), expected+1)
}

func testConcurrentSave(t *testing.T, s store.Store) {
	mustSave(t, s, "player", "contended", []byte("start"), 0)
	for v := uint64(1); v <= 5; v++ {
		race(t, s, "contended", v)
	}
}

func testConcurrentCreate(t *testing.T, s store.Store) {
	for i := range 5 {
		race(t, s, fmt.Sprintf("fresh-%d", i), 0)
	}
}

func testCancelledContext(t *testing.T, s store.Store) {
	mustSave(t, s, "player", "p1", []byte("one"), 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := s.Load(ctx, "player", "p1"); !errors.Is(err, context.Canceled) {
		t.Errorf("Load with a cancelled context: err = %v, want context.Canceled", err)
	}
	if _, err := s.Save(ctx, "player", "p1", []byte("two"), 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Save with a cancelled context: err = %v, want context.Canceled", err)
	}
	if _, err := s.Save(ctx, "player", "p2", []byte("new"), 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Save (new) with a cancelled context: err = %v, want context.Canceled", err)
	}
	if err := s.Delete(ctx, "player", "p1", 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete with a cancelled context: err = %v, want context.Canceled", err)
	}
	wantDoc(t, s, "player", "p1", []byte("one"), 1)
	wantMissing(t, s, "player", "p2")
}

func testClose(t *testing.T, s store.Store) {
	mustSave(t, s, "player", "p1", []byte("one"), 0)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := context.Background()
	if _, _, err := s.Load(ctx, "player", "p1"); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Load after Close: err = %v, want ErrClosed", err)
	}
	if _, err := s.Save(ctx, "player", "p1", []byte("two"), 1); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Save after Close: err = %v, want ErrClosed", err)
	}
	if err := s.Delete(ctx, "player", "p1", 1); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Delete after Close: err = %v, want ErrClosed", err)
	}
}
