package table_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/guildkit/guild/table"
)

// benchItems is a set of one table of 10,000 items.
type benchItems struct {
	Items table.Table[int, Item] `table:"items.csv"`
}

// BenchmarkLookup is the hot path: an actor takes the snapshot once per
// message and looks a row up by key. "snapshot" does both for every
// lookup (the worst case: one lookup per message); "table" looks up in a
// snapshot taken once; "map" is a plain map[int]Item, for comparison in
// the same run.
func BenchmarkLookup(b *testing.B) {
	const n = 10_000
	dir := b.TempDir()
	var sb strings.Builder
	sb.WriteString("id,name,price,weight,rare,cooldown\n")
	plain := make(map[int]Item, n)
	for i := range n {
		fmt.Fprintf(&sb, "%d,item%d,%d,1.5,false,1s\n", i, i, i)
		plain[i] = Item{ID: i, Name: fmt.Sprintf("item%d", i), Price: i, Weight: 1.5, Cool: 1e9}
	}
	write(b, dir, map[string]string{"items.csv": sb.String()})
	s, err := table.NewSet[benchItems](table.Config{Name: "bench", Dir: dir, Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Reload(context.Background()); err != nil {
		b.Fatal(err)
	}
	var sink int
	b.Run("snapshot", func(b *testing.B) {
		i := 0
		for b.Loop() {
			it, _ := s.Load().Items.Get(i)
			sink += it.Price
			i = (i + 7919) % n
		}
	})
	b.Run("table", func(b *testing.B) {
		items := &s.Load().Items
		i := 0
		for b.Loop() {
			it, _ := items.Get(i)
			sink += it.Price
			i = (i + 7919) % n
		}
	})
	b.Run("ptr", func(b *testing.B) {
		items := &s.Load().Items
		i := 0
		for b.Loop() {
			sink += items.Ptr(i).Price
			i = (i + 7919) % n
		}
	})
	b.Run("map", func(b *testing.B) {
		i := 0
		for b.Loop() {
			it := plain[i]
			sink += it.Price
			i = (i + 7919) % n
		}
	})
	_ = sink
}
