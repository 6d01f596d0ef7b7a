package table_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/table"
)

// Gen is a set whose two tables carry the same generation in every row:
// a reader that ever sees two different generations in one snapshot saw
// a mixed set.
type Gen struct {
	A table.Table[int, genRow] `table:"a.csv"`
	B table.Table[int, genRow] `table:"b/b.json"`
}

type genRow struct {
	ID  int `table:"id"`
	Gen int `table:"gen"`
}

// Validate checks that every row of B has a row of A, of the same
// generation: files read while a writer was between the two renames
// fail it, and are never published.
func (g *Gen) Validate() error {
	for id, b := range g.B.All() {
		a := g.A.Ptr(id)
		if a == nil {
			return fmt.Errorf("b row %d has no a row", id)
		}
		if a.Gen != b.Gen {
			return fmt.Errorf("b row %d is of generation %d, a's of %d", id, b.Gen, a.Gen)
		}
	}
	return nil
}

func genFiles(gen, rows int) map[string]string {
	var a, b strings.Builder
	a.WriteString("id,gen\n")
	b.WriteString("[")
	for i := range rows {
		fmt.Fprintf(&a, "%d,%d\n", i, gen)
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"id": %d, "gen": %d}`, i, gen)
	}
	b.WriteString("]")
	return map[string]string{"a.csv": a.String(), "b/b.json": b.String()}
}

// check reports whether a snapshot is one generation throughout, and
// which.
func check(g *Gen) (int, error) {
	gen := -1
	for _, t := range []*table.Table[int, genRow]{&g.A, &g.B} {
		for id, r := range t.All() {
			if gen == -1 {
				gen = r.Gen
			}
			if r.Gen != gen {
				return 0, fmt.Errorf("%s row %d is of generation %d, another row of %d", t.File(), id, r.Gen, gen)
			}
		}
	}
	if g.A.Len() != g.B.Len() {
		return 0, fmt.Errorf("a has %d rows, b %d", g.A.Len(), g.B.Len())
	}
	return gen, nil
}

// TestAtomicSwap: readers that take one snapshot and check it across
// both tables never see a mix (two generations, or row counts that
// differ), while writers rewrite the files and reload, concurrently,
// many times; nor does the generation they see ever go back. Run it
// with -race.
func TestAtomicSwap(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, genFiles(0, 5))
	s, err := table.NewSet[Gen](table.Config{Name: "gen", Dir: dir, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	const reloads = 200
	stop := make(chan struct{})
	var readers sync.WaitGroup
	var reads, mixed atomic.Int64
	var firstErr atomic.Pointer[error]
	for range 4 {
		readers.Go(func() {
			last := -1
			for {
				select {
				case <-stop:
					return
				default:
				}
				snap := s.Load() // once per "message"
				gen, err := check(snap)
				if err != nil {
					mixed.Add(1)
					firstErr.CompareAndSwap(nil, &err)
					continue
				}
				if gen < last {
					err := fmt.Errorf("generation went back from %d to %d", last, gen)
					firstErr.CompareAndSwap(nil, &err)
					mixed.Add(1)
				}
				last = gen
				reads.Add(1)
			}
		})
	}
	// Two writers: one rewrites the files, both reload.
	var writers sync.WaitGroup
	writers.Go(func() {
		for i := 1; i <= reloads; i++ {
			files := genFiles(i, 3+i%5)
			for name, content := range files {
				p := filepath.Join(dir, name)
				_ = os.WriteFile(p+".tmp", []byte(content), 0o644)
				_ = os.Rename(p+".tmp", p)
			}
			_, _ = s.Reload(context.Background())
		}
	})
	writers.Go(func() {
		for range reloads {
			_, _ = s.Reload(context.Background())
		}
	})
	writers.Wait()
	close(stop)
	readers.Wait()
	if e := firstErr.Load(); e != nil {
		t.Fatalf("%d mixed snapshots of %d reads; the first: %v", mixed.Load(), reads.Load(), *e)
	}
	if _, err := s.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if gen, _ := check(s.Load()); gen != reloads {
		t.Errorf("the last snapshot is of generation %d, want %d", gen, reloads)
	}
	st := s.Status()
	t.Logf("%d reads; %d loads, %d unchanged, %d failures", reads.Load(), st.Loads, st.Unchanged, st.Failures)
}

// TestWatch: a Group with Watch reloads a set when its files change and
// then hold still, keeps the old snapshot when the new files are bad,
// and stops its watcher on Close.
func TestWatch(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, genFiles(1, 3))
	g, err := table.NewGroup(table.GroupConfig{Dir: dir, Watch: table.MinWatch, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	s, err := table.Open[Gen](context.Background(), g, "gen")
	if err != nil {
		t.Fatal(err)
	}
	v1 := s.Version()

	write(t, dir, genFiles(2, 4))
	await.True(t, 10*time.Second, "the watcher to load generation 2", func() bool {
		gen, err := check(s.Load())
		return err == nil && gen == 2
	})
	if v := s.Version(); v.Hash == v1.Hash {
		t.Errorf("the version did not change: %v", v)
	}
	v2 := s.Version()

	// A bad file: the watcher tries, fails, counts it; the old snapshot
	// stays, and it does not retry the same files at every tick. (One
	// file changes, in one rename: the two-file write above may have
	// been caught half done, which Validate refuses, and counted.)
	failures := s.Status().Failures
	good := genFiles(2, 4)
	write(t, dir, map[string]string{"b/b.json": `[{"id": 99, "gen": 2}]`})
	await.True(t, 10*time.Second, "the watcher to fail on the bad set", func() bool { return s.Status().Failures == failures+1 })
	if s.Version() != v2 {
		t.Errorf("a failed reload changed the version: %v, was %v", s.Version(), v2)
	}
	if st := g.Status(); len(st) != 1 || !strings.Contains(st[0].LastError, "b row 99 has no a row") {
		t.Errorf("group status %+v", st)
	}
	// The file back as it was (a new modification time, the same
	// bytes): a reload that finds the same hash changes nothing.
	write(t, dir, map[string]string{"b/b.json": good["b/b.json"]})
	await.True(t, 10*time.Second, "the watcher to see the files back as they were", func() bool { return s.Status().Unchanged >= 1 })
	if s.Version() != v2 || s.Status().LastError != "" || s.Status().Failures != failures+1 {
		t.Errorf("after the files came back: %+v", s.Status())
	}
	if err := g.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := table.Open[Gen](context.Background(), g, "gen2"); err == nil {
		t.Error("Open on a closed group")
	}
}

// TestWatchDebounce: while a file keeps changing at every tick, the
// watcher waits; it loads once the file holds still.
func TestWatchDebounce(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, genFiles(1, 2))
	const tick = 200 * time.Millisecond
	g, err := table.NewGroup(table.GroupConfig{Dir: dir, Watch: tick, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	s, err := table.Open[Gen](context.Background(), g, "gen")
	if err != nil {
		t.Fatal(err)
	}
	// b.json first, then a.csv: between the two writes, b has a row
	// that a lacks, which Validate refuses. Both land within one tick,
	// and the watcher waits for a tick without change, so it loads the
	// whole new set and never the half-written one (on a machine too
	// slow to write two small files within 200ms it may try the half
	// and count a failure, which the test logs).
	half := genFiles(2, 3)
	write(t, dir, map[string]string{"b/b.json": half["b/b.json"]})
	write(t, dir, map[string]string{"a.csv": half["a.csv"]})
	await.True(t, 10*time.Second, "generation 2", func() bool {
		gen, err := check(s.Load())
		return err == nil && gen == 2
	})
	if st := s.Status(); st.Failures != 0 {
		t.Logf("a load caught the files between two writes (a slow machine): %+v", st)
	}
	if err := g.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestGroupReload: Group.Reload reloads every set and reports each.
func TestGroupReload(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, genFiles(1, 2))
	write(t, dir, lootFiles())
	g, err := table.NewGroup(table.GroupConfig{Dir: dir, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	gs, err := table.Open[Gen](context.Background(), g, "gen")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := table.Open[Loot](context.Background(), g, "loot"); err != nil {
		t.Fatal(err)
	}
	if _, err := table.Open[Loot](context.Background(), g, "loot"); err == nil || !strings.Contains(err.Error(), "a set named loot is in the group already") {
		t.Errorf("a second loot: %v", err)
	}
	write(t, dir, genFiles(2, 2))
	write(t, dir, map[string]string{"items.csv": "id,price\n1,x\n"})
	rs := g.Reload(context.Background(), "test")
	if len(rs) != 2 || rs[0].Set != "gen" || !rs[0].Changed || rs[0].Error != "" || rs[0].Version != gs.Version() || rs[0].Previous.Hash == rs[0].Version.Hash {
		t.Errorf("gen: %+v", rs[0])
	}
	if rs[1].Set != "loot" || rs[1].Changed || !strings.Contains(rs[1].Error, `items.csv:2:3: price: "x" is not a whole number`) || rs[1].Version != rs[1].Previous {
		t.Errorf("loot: %+v", rs[1])
	}
	if _, err := table.Open[Gen](context.Background(), nil, "x"); err == nil || !strings.Contains(err.Error(), "tables.dir") {
		t.Errorf("Open without a group: %v", err)
	}
	if _, err := table.NewGroup(table.GroupConfig{Dir: dir, Watch: time.Millisecond}); err == nil {
		t.Error("a 1ms watch")
	}
}
