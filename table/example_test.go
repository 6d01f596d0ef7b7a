package table_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/guildkit/guild/table"
)

// Sword is a row of the example's weapons.csv.
type Sword struct {
	ID     int    `table:"id,key"`
	Name   string `table:"name"`
	Damage int    `table:"damage"`
}

// Validate is called for every row of every load.
func (s Sword) Validate() error {
	if s.Damage <= 0 {
		return fmt.Errorf("damage %d: at least 1", s.Damage)
	}
	return nil
}

// Armory is the example's table set: one table here; a set reloads all
// of its tables at once.
type Armory struct {
	Swords table.Table[int, Sword] `table:"weapons.csv"`
}

// ExampleOpen declares a table set in a Group (a node gives its modules
// one, app.Env.Tables), reads a row, and reloads after a bad edit: the
// old data stays, and the error names the file, line and field.
func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "tables")
	defer os.RemoveAll(dir)
	csv := "id,name,damage\n1,Short sword,7\n2,Claymore,12\n"
	_ = os.WriteFile(filepath.Join(dir, "weapons.csv"), []byte(csv), 0o644)

	ctx := context.Background()
	g, err := table.NewGroup(table.GroupConfig{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer g.Close(ctx)
	armory, err := table.Open[Armory](ctx, g, "armory")
	if err != nil {
		fmt.Println(err)
		return
	}

	// In an actor: one snapshot per message.
	snap := armory.Load()
	sword, ok := snap.Swords.Get(2)
	fmt.Println(sword.Name, sword.Damage, ok)

	// A bad edit: the reload fails and the old snapshot stays.
	_ = os.WriteFile(filepath.Join(dir, "weapons.csv"), []byte("id,name,damage\n1,Short sword,0\n"), 0o644)
	for _, r := range g.Reload(ctx, "example") {
		fmt.Println(r.Set, "changed:", r.Changed)
		fmt.Println(r.Error)
	}
	fmt.Println(armory.Load().Swords.Len(), "swords still")
	// Output:
	// Claymore 12 true
	// armory changed: false
	// table set armory:
	// weapons.csv:2:1: row 1: damage 0: at least 1
	// 2 swords still
}
