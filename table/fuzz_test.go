package table_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/guildkit/guild/table"
)

// fuzzSet reads one file of each format into rows with every kind of
// field.
type fuzzSet struct {
	C table.Table[string, fuzzRow] `table:"f.csv"`
	J table.Table[int64, fuzzDeep] `table:"f.json"`
	Y table.Table[int64, fuzzDeep] `table:"f.yaml"`
}

type fuzzRow struct {
	ID string  `table:"id"`
	I  int8    `table:"i"`
	U  uint32  `table:"u"`
	F  float32 `table:"f"`
	B  bool    `table:"b"`
}

type fuzzDeep struct {
	ID   int64            `table:"id"`
	Row  *fuzzRow         `table:"row"`
	List []fuzzRow        `table:"list"`
	Map  map[int]string   `table:"map"`
	Self []*fuzzDeep      `table:"self"`
	Tags map[string][]int `table:"tags"`
}

// FuzzParse feeds arbitrary bytes to the CSV, JSON and YAML readers: a
// table file is input the game does not control (a designer's export, a
// deploy). A load either fails with an error matching ErrInvalid (or
// naming the file) or gives tables whose index agrees with their rows;
// it never panics.
func FuzzParse(f *testing.F) {
	f.Add([]byte("id,i,u,f,b\na,1,2,3.5,true\n"))
	f.Add([]byte(`[{"id": 1, "row": {"id": "x", "i": -3}, "list": [{"id": "y"}], "map": {"1": "a"}, "self": [{"id": 2}], "tags": {"t": [1,2]}}]`))
	f.Add([]byte("- id: 1\n  row: {id: x, b: true}\n  self: [{id: 2, self: [{id: 3}]}]\n"))
	f.Add([]byte("\xEF\xBB\xBFid\n\"a\"\"b\"\n"))
	f.Add([]byte("- &a {id: 1}\n- *a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		for _, name := range []string{"f.csv", "f.json", "f.yaml"} {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		s, err := table.NewSet[fuzzSet](table.Config{Name: "fuzz", Dir: dir, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Reload(context.Background()); err != nil {
			if !errors.Is(err, table.ErrInvalid) {
				t.Fatalf("an error that is not ErrInvalid: %v", err)
			}
			if s.Load() != nil {
				t.Fatal("a snapshot after a failed first load")
			}
			return
		}
		l := s.Load()
		n := 0
		for k, r := range l.C.All() {
			if got := l.C.Ptr(k); got != r || r.ID != k {
				t.Fatalf("row %q: the index does not agree", k)
			}
			n++
		}
		if n != l.C.Len() {
			t.Fatalf("%d rows, Len %d", n, l.C.Len())
		}
		for k, r := range l.J.All() {
			if l.J.Ptr(k) != r || r.ID != k {
				t.Fatalf("json row %d: the index does not agree", k)
			}
		}
	})
}
