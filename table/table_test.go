package table_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guildkit/guild/table"
)

type Item struct {
	ID     int           `table:"id,key"`
	Name   string        `table:"name"`
	Price  int           `table:"price"`
	Weight float64       `table:"weight"`
	Rare   bool          `table:"rare"`
	Cool   time.Duration `table:"cooldown"`
}

func (i Item) Validate() error {
	if i.Price < 0 {
		return fmt.Errorf("price %d is negative", i.Price)
	}
	if i.Name == "boom" {
		panic("a bug in Validate")
	}
	return nil
}

type Reward struct {
	Item  int `table:"item"`
	Count int `table:"count"`
}

type Drop struct {
	ID      string         `table:"id"`
	Rate    float64        `table:"rate"`
	Rewards []Reward       `table:"rewards"`
	Tags    map[string]int `table:"tags"`
	Boss    *Reward        `table:"boss"`
}

type Level struct {
	Level uint8 `table:"level,key"`
	XP    int64 `table:"xp"`
}

// Loot is a set with a check across its tables.
type Loot struct {
	Items  table.Table[int, Item]    `table:"items.csv"`
	Drops  table.Table[string, Drop] `table:"drops.yaml"`
	Levels table.Table[uint8, Level] `table:"levels.json"`

	// ByName is the set's own index, filled by Validate.
	ByName map[string]int
}

func (l *Loot) Validate() error {
	for id, d := range l.Drops.All() {
		for _, r := range d.Rewards {
			if !l.Items.Has(r.Item) {
				return fmt.Errorf("drop %s gives item %d, which items.csv does not have", id, r.Item)
			}
		}
	}
	l.ByName = make(map[string]int)
	for id, it := range l.Items.All() {
		l.ByName[it.Name] = id
	}
	return nil
}

const itemsCSV = "\xEF\xBB\xBFid,name,price,weight,rare,cooldown\n" +
	"1,sword,100,2.5,false,1.5s\n" +
	"2,shield,80,4,true,\n" +
	",,,,,\n" + // a blank spreadsheet row
	"3,\"potion, red\",5,0.25,0,250ms\n"

const dropsYAML = `
- id: goblin
  rate: 0.5
  rewards: [{item: 1, count: 1}, {item: 3, count: 2}]
  tags: {common: 1}
- id: dragon
  rate: 0.01
  rewards:
    - {item: 2, count: 1}
  boss: {item: 1, count: 5}
`

const levelsJSON = `[
  {"level": 1, "xp": 0},
  {"level": 2, "xp": 100}
]`

func write(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		// Write and rename, as a deploy does, so that readers never see
		// a half-written file.
		tmp := p + ".tmp"
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, p); err != nil {
			t.Fatal(err)
		}
	}
}

func lootFiles() map[string]string {
	return map[string]string{"items.csv": itemsCSV, "drops.yaml": dropsYAML, "levels.json": levelsJSON}
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newLoot(t *testing.T, dir string) *table.Set[Loot] {
	t.Helper()
	s, err := table.NewSet[Loot](table.Config{Name: "loot", Dir: dir, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLoadAllFormats(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, lootFiles())
	s := newLoot(t, dir)
	if s.Load() != nil {
		t.Fatal("a snapshot before the first load")
	}
	v, err := s.Reload(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Hash) != 12 || v.Loaded.IsZero() {
		t.Errorf("version %+v", v)
	}
	l := s.Load()
	if got := l.Items.Len(); got != 3 {
		t.Fatalf("%d items, want 3", got)
	}
	want := Item{ID: 3, Name: "potion, red", Price: 5, Weight: 0.25, Rare: false, Cool: 250 * time.Millisecond}
	if it, ok := l.Items.Get(3); !ok || it != want {
		t.Errorf("item 3: %+v %v, want %+v", it, ok, want)
	}
	if it, _ := l.Items.Get(1); it.Cool != 1500*time.Millisecond || it.Weight != 2.5 {
		t.Errorf("item 1: %+v", it)
	}
	if it := l.Items.Ptr(2); it == nil || !it.Rare || it.Cool != 0 {
		t.Errorf("item 2: %+v", it)
	}
	if l.Items.Ptr(9) != nil || l.Items.Has(9) {
		t.Error("item 9 exists")
	}
	d := l.Drops.Ptr("dragon")
	if d == nil || d.Rate != 0.01 || len(d.Rewards) != 1 || d.Boss == nil || d.Boss.Count != 5 {
		t.Errorf("dragon: %+v", d)
	}
	if g := l.Drops.Ptr("goblin"); g == nil || g.Tags["common"] != 1 || len(g.Rewards) != 2 || g.Rewards[1] != (Reward{3, 2}) {
		t.Errorf("goblin: %+v", g)
	}
	if lv, ok := l.Levels.Get(2); !ok || lv.XP != 100 {
		t.Errorf("level 2: %+v %v", lv, ok)
	}
	if l.ByName["potion, red"] != 3 {
		t.Errorf("the set's own index: %v", l.ByName)
	}
	var order []int
	for id := range l.Items.All() {
		order = append(order, id)
	}
	if fmt.Sprint(order) != "[1 2 3]" {
		t.Errorf("file order %v", order)
	}
	st := s.Status()
	if st.Set != "loot" || st.Version != v || len(st.Tables) != 3 || st.Tables[0] != (table.TableStatus{File: "items.csv", Rows: 3, Hash: l.Items.Hash()}) || st.Loads != 1 {
		t.Errorf("status %+v", st)
	}

	// The same files: the same snapshot, counted as unchanged.
	v2, err := s.Reload(context.Background())
	if err != nil || v2 != v || s.Load() != l || s.Status().Unchanged != 1 {
		t.Errorf("reload of the same files: %v %v; same snapshot %v", v2, err, s.Load() == l)
	}
	// A change: a new version and snapshot; the old one is untouched.
	write(t, dir, map[string]string{"levels.json": `[{"level": 1, "xp": 0}]`})
	v3, err := s.Reload(context.Background())
	if err != nil || v3.Hash == v.Hash || s.Load().Levels.Len() != 1 || l.Levels.Len() != 2 {
		t.Errorf("after a change: %v %v", v3, err)
	}
}

// TestErrors checks each kind of bad input and its message.
func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"csv not a number", map[string]string{"items.csv": "id,name,price\n1,sword,ten\n"},
			[]string{`items.csv:2:9: price: "ten" is not a whole number`}},
		{"csv unknown column", map[string]string{"items.csv": "id,name,colour\n1,sword,red\n"},
			[]string{`items.csv:1:9: column "colour" matches no field of table_test.Item (its fields are id, name, price, weight, rare, cooldown)`}},
		{"csv duplicate key", map[string]string{"items.csv": "id,name\n1,a\n2,b\n1,c\n"},
			[]string{`items.csv:4:1: id: duplicate key 1 (also the key of the row at line 2)`}},
		{"csv no key", map[string]string{"items.csv": "id,name\n1,a\n,b\n"},
			[]string{`items.csv:3:1: the row has no id (column "id")`}},
		{"csv cell count", map[string]string{"items.csv": "id,name\n1,a\n2,b,c\n"},
			[]string{`items.csv:3:1: the row's cell count is not the header's`}},
		{"csv bad bool", map[string]string{"items.csv": "id,rare\n1,yes\n"},
			[]string{`items.csv:2:3: rare: "yes" is not true or false`}},
		{"csv bad duration", map[string]string{"items.csv": "id,cooldown\n1,5\n"},
			[]string{`items.csv:2:3: cooldown: "5" is not a duration (like 1.5s or 250ms)`}},
		{"csv header twice", map[string]string{"items.csv": "id,name,Name\n"},
			[]string{`items.csv:1:9: column 3 of the header, "Name", is also column 2`}},
		{"csv quote", map[string]string{"items.csv": "id,name\n1,\"sw\"ord\n"},
			[]string{`items.csv:2:6: extraneous or missing " in quoted-field`}},
		{"row Validate", map[string]string{"items.csv": "id,price\n1,5\n7,-3\n"},
			[]string{`items.csv:3:1: row 7: price -3 is negative`}},
		{"row Validate panics", map[string]string{"items.csv": "id,name\n4,boom\n"},
			[]string{`items.csv:2:1: row 4: Validate panicked: a bug in Validate`}},
		{"yaml type", map[string]string{"drops.yaml": "- id: a\n  rate: high\n"},
			[]string{`drops.yaml:2:9: rate: "high" is not a number`}},
		{"yaml nested", map[string]string{"drops.yaml": "- id: a\n  rewards:\n    - {item: 1, count: x}\n"},
			[]string{`drops.yaml:3:24: rewards[0].count: "x" is not a number`}},
		{"yaml unknown key", map[string]string{"drops.yaml": "- id: a\n  rat: 1\n"},
			[]string{`drops.yaml:2:3: key "rat" matches no field of table_test.Drop`}},
		{"yaml syntax", map[string]string{"drops.yaml": "- id: a\n rate: [\n"},
			[]string{`drops.yaml:1: did not find expected`}},
		{"yaml not a sequence", map[string]string{"drops.yaml": "id: a\n"},
			[]string{`drops.yaml:1:1: the file is not a sequence of mappings`}},
		{"yaml no key", map[string]string{"drops.yaml": "- rate: 1\n"},
			[]string{`drops.yaml:1:3: the row has no id (key "id")`}},
		{"json type", map[string]string{"levels.json": `[{"level": 1, "xp": "many"}]`},
			[]string{`levels.json:1:21: xp: "many" is not a number`}},
		{"json range", map[string]string{"levels.json": "[\n {\"level\": 300}\n]"},
			[]string{`levels.json:2:12: level: 300 does not fit a uint8`}},
		{"json syntax", map[string]string{"levels.json": "[\n {\"level\": 1,}\n]"},
			[]string{`levels.json:2:14: invalid character '}' looking for beginning of object key string`}},
		{"json not an array", map[string]string{"levels.json": `{"level": 1}`},
			[]string{`levels.json:1:1: the file is not an array of objects`}},
		{"json row not an object", map[string]string{"levels.json": "[\n 1]"},
			[]string{`levels.json:2:2: row 1 is not objects`}},
		{"json duplicate key in object", map[string]string{"levels.json": `[{"level": 1, "level": 2}]`},
			[]string{`levels.json:1:15: key "level" is already set in this object`}},
		{"json trailing", map[string]string{"levels.json": `[] []`},
			[]string{`levels.json:1:4: data after the array`}},
		{"set Validate", map[string]string{"drops.yaml": "- {id: a, rewards: [{item: 42}]}\n"},
			[]string{`Validate: drop a gives item 42, which items.csv does not have`}},
		{"missing file", map[string]string{"levels.json": "-"},
			[]string{`levels.json: open `, `no such file or directory`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			files := lootFiles()
			for k, v := range tc.files {
				files[k] = v
			}
			if files["levels.json"] == "-" {
				delete(files, "levels.json")
			}
			write(t, dir, files)
			s := newLoot(t, dir)
			_, err := s.Reload(context.Background())
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error does not say %q:\n%v", w, err)
				}
			}
			if !strings.HasPrefix(err.Error(), "table set loot") {
				t.Errorf("the error does not name the set: %v", err)
			}
			if tc.name != "missing file" && !errors.Is(err, table.ErrInvalid) {
				t.Errorf("not ErrInvalid: %v", err)
			}
			var te *table.Error
			if strings.HasPrefix(tc.name, "csv") && (!errors.As(err, &te) || te.File != "items.csv" || te.Line == 0) {
				t.Errorf("not an *Error with its file and line: %#v", te)
			}
			if s.Load() != nil || s.Status().Failures != 1 || s.Status().LastError == "" {
				t.Errorf("after a failed first load: %+v", s.Status())
			}
		})
	}
}

// TestManyErrorsAtOnce: a designer sees every problem of a file (up to
// MaxErrors), not one per attempt.
func TestManyErrorsAtOnce(t *testing.T) {
	dir := t.TempDir()
	files := lootFiles()
	var b strings.Builder
	b.WriteString("id,price\n")
	for i := range 30 {
		fmt.Fprintf(&b, "%d,x%d\n", i, i)
	}
	files["items.csv"] = b.String()
	write(t, dir, files)
	s, err := table.NewSet[Loot](table.Config{Name: "loot", Dir: dir, Logger: quiet(), MaxErrors: 5})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Reload(context.Background())
	if n := strings.Count(fmt.Sprint(err), "is not a whole number"); n != 5 {
		t.Errorf("%d problems reported, want 5:\n%v", n, err)
	}
}

// TestFailedReloadKeepsTheOld: a reload that fails leaves the snapshot
// and its version as they were, counts the failure, and logs it; the
// next good reload clears the error.
func TestFailedReloadKeepsTheOld(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, lootFiles())
	var logs bytes.Buffer
	s, err := table.NewSet[Loot](table.Config{Name: "loot", Dir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	v1, err := s.Reload(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	old := s.Load()
	write(t, dir, map[string]string{"items.csv": "id,price\n1,-5\n"})
	v, err := s.Reload(context.Background())
	if err == nil || v != v1 || s.Load() != old || s.Version() != v1 {
		t.Fatalf("a failed reload: %v %v; snapshot kept %v", v, err, s.Load() == old)
	}
	st := s.Status()
	if st.Failures != 1 || !strings.Contains(st.LastError, "items.csv:2:1: row 1: price -5 is negative") || st.LastErrorAt.IsZero() || st.Version != v1 {
		t.Errorf("status %+v", st)
	}
	if !strings.Contains(logs.String(), "table set reload failed: the old one stays") || !strings.Contains(logs.String(), "version="+v1.Hash) {
		t.Errorf("log:\n%s", logs.String())
	}
	write(t, dir, lootFiles())
	if _, err := s.Reload(context.Background()); err != nil || s.Status().LastError != "" {
		t.Errorf("a good reload after: %v %+v", err, s.Status())
	}
	if !strings.Contains(logs.String(), `msg="table set loaded" set=loot version=`+v1.Hash+" previous=none") {
		t.Errorf("log:\n%s", logs.String())
	}
}

// TestSetTypeErrors: a set type that cannot work is refused by NewSet.
func TestSetTypeErrors(t *testing.T) {
	type noKey struct{ Name string }
	type list struct {
		ID   int
		Tags []string
	}
	type twoKeys struct {
		A int `table:"a,key"`
		B int `table:"b,key"`
	}
	type iface struct {
		ID int
		X  any
	}
	check := func(name string, err error, want string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", name, err, want)
		}
	}
	_, err := table.NewSet[struct {
		T table.Table[int, noKey] `table:"a.csv"`
	}](table.Config{Name: "x", Dir: "."})
	check("no key", err, "has no key field")
	_, err = table.NewSet[struct {
		T table.Table[string, Item] `table:"a.csv"`
	}](table.Config{Name: "x", Dir: "."})
	check("key type", err, "the key field table_test.Item.ID is a int, but the table's key type is string")
	_, err = table.NewSet[struct {
		T table.Table[int, list] `table:"a.csv"`
	}](table.Config{Name: "x", Dir: "."})
	check("csv list", err, "a []string cannot be read from a CSV cell")
	_, err = table.NewSet[struct {
		T table.Table[int, list] `table:"a.json"`
	}](table.Config{Name: "x", Dir: "."})
	if err != nil {
		t.Errorf("a list in JSON: %v", err)
	}
	_, err = table.NewSet[struct {
		T table.Table[int, twoKeys] `table:"a.json"`
	}](table.Config{Name: "x", Dir: "."})
	check("two keys", err, "two key fields")
	_, err = table.NewSet[struct {
		T table.Table[int, iface] `table:"a.json"`
	}](table.Config{Name: "x", Dir: "."})
	check("interface", err, "a interface {} cannot be read")
	_, err = table.NewSet[struct {
		T table.Table[int, Item] `table:"a.txt"`
	}](table.Config{Name: "x", Dir: "."})
	check("extension", err, "is not .json, .yaml, .yml or .csv")
	_, err = table.NewSet[struct {
		T table.Table[int, Item]
	}](table.Config{Name: "x", Dir: "."})
	check("no file", err, "needs its file")
	_, err = table.NewSet[struct {
		T table.Table[int, Item] `table:"../a.csv"`
	}](table.Config{Name: "x", Dir: "."})
	check("outside", err, "not inside the set's directory")
	_, err = table.NewSet[struct{ X int }](table.Config{Name: "x", Dir: "."})
	check("no table", err, "has no Table field")
	_, err = table.NewSet[Loot](table.Config{Name: "a b", Dir: "."})
	check("name", err, "use letters")
	_, err = table.NewSet[Loot](table.Config{Name: "a"})
	check("dir", err, "Config.Dir is empty")
}

// TestFileTooLarge: a file beyond MaxFileSize fails the load.
func TestFileTooLarge(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, lootFiles())
	s, err := table.NewSet[Loot](table.Config{Name: "loot", Dir: dir, Logger: quiet(), MaxFileSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "items.csv: larger than 64 bytes") {
		t.Errorf("%v", err)
	}
}

// TestYAMLAliasBomb: aliases cannot expand a small file into a huge one.
func TestYAMLAliasBomb(t *testing.T) {
	dir := t.TempDir()
	files := lootFiles()
	var b strings.Builder
	b.WriteString("a: &a [1,1,1,1,1,1,1,1,1,1]\n")
	prev := "a"
	for i := range 12 {
		name := fmt.Sprintf("b%d", i)
		fmt.Fprintf(&b, "%s: &%s [*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s]\n", name, name, prev, prev, prev, prev, prev, prev, prev, prev, prev, prev)
		prev = name
	}
	files["drops.yaml"] = b.String()
	write(t, dir, files)
	s := newLoot(t, dir)
	if _, err := s.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "too many values") {
		t.Errorf("%v", err)
	}
}

func TestEmptyFiles(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"items.csv": "", "drops.yaml": "", "levels.json": "[]"})
	s := newLoot(t, dir)
	if _, err := s.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if l := s.Load(); l.Items.Len() != 0 || l.Drops.Len() != 0 || l.Levels.Len() != 0 {
		t.Error("rows in empty files")
	}
}

func TestCanceledReload(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, lootFiles())
	s := newLoot(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Reload(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("%v", err)
	}
}
