// Package table loads a game's data tables (the design tables every game
// has: items, levels, drop rates) from JSON, YAML or CSV files into typed
// Go values, validates them, and reloads them while the game runs,
// without a restart.
//
// A module declares a table set as a struct of Table fields, each tagged
// with its file (relative to the set's directory) and typed with its key
// and its row:
//
//	type Item struct {
//		ID    int    `table:"id,key"`
//		Name  string `table:"name"`
//		Price int    `table:"price"`
//	}
//
//	type Loot struct {
//		Items table.Table[int, Item]    `table:"items.csv"`
//		Drops table.Table[string, Drop] `table:"drops.yaml"`
//	}
//
// Open (inside a Group, which app.Env.Tables is on a node with a tables
// section in its cluster file) or NewSet and Reload load it; Set.Load
// returns the current snapshot, a *Loot that is never modified:
//
//	loot := set.Load()                  // once per message
//	item, ok := loot.Items.Get(req.ItemID)
//
// # Files
//
// The file's extension says its format: .json is an array of objects,
// .yaml or .yml a sequence of mappings, .csv a header row naming the
// columns, then one row per line (a UTF-8 byte-order mark, as spreadsheets
// write, is skipped; a row whose cells are all empty is skipped). A key,
// column or header name matches a row field by its table tag, else by
// the field's Go name, case-insensitively (as encoding/json does); a key
// or column that matches no field is an error, so that a typo does not
// leave a column unread. The key field is the one tagged ",key", else
// the field named ID; its type must be the Table's K. A field tagged
// "-" is left alone.
//
// CSV cells are numbers (int, uint and float kinds of any size), bools
// (true, false, 1, 0), strings and durations ("1.5s", time.Duration); an
// empty cell is the zero value, except the key's. JSON and YAML rows may
// also hold lists, string- or integer-keyed maps, nested structs and
// pointers.
//
// # Validation
//
// A row type with a Validate() error method (on the value or the
// pointer) has it called for every row; a set type with one (on the
// pointer) has it called once the tables of a load are all read, for the
// checks across tables (a drop names an item that exists). The set's
// Validate may also fill fields of its own (an index by another column):
// it runs before the snapshot is published, never after. Duplicate keys
// are an error. A load that fails (a file missing or too large, a parse
// error, a validation error, a panic in a Validate) changes nothing: the
// old snapshot stays, and the error names the file, the line, the column
// and the field (items.csv:4:3: price: "ten" is not a whole number); each
// matches ErrInvalid and is an *Error. Up to Config.MaxErrors problems are
// reported at once.
//
// # Atomic reloads: take the snapshot once per message
//
// A reload reads and validates every file of the set, then swaps the
// whole snapshot in one atomic store. A reader that calls Load once and
// uses what it got sees every table of one version: all old or all new,
// never a mix. An actor must therefore call Load once per message (per
// turn) and use that snapshot throughout the message, never call Load
// twice in one message, and never keep a snapshot across messages if it
// wants the newest data. A snapshot stays valid (and unchanged) for as
// long as it is referenced; rows returned by Get are copies, and those
// reached through Ptr or All must not be modified.
//
// # Versions and triggers
//
// Every load has a Version: the first 12 hex digits of a SHA-256 over the
// set's files (their names and bytes), and the time it was loaded. A
// reload whose files hash the same as the current version keeps the
// current snapshot. Reloads come from Set.Reload, Group.Reload (the admin
// API's reload action and guild reload call it), or the Group's file
// watcher (GroupConfig.Watch): it polls the files' size and modification
// time every interval, and reloads a set once its files have stopped
// changing for one interval (a copy in progress is not loaded half
// written); the content hash then decides whether anything changed.
// Each reload is logged with the set, its version and the previous one;
// Status reports the version served, the tables' row counts and hashes,
// and the reloads and failures counted.
//
// # Goroutines and locks
//
// A Set starts no goroutine; its reloads run on the caller's goroutine,
// one at a time per set (a later one waits, within its ctx), so the files
// read last are the ones served. Readers take no lock: Load is one
// atomic load. A Group with Watch set owns one
// goroutine, the watcher, started by NewGroup and stopped by Close. The
// hooks (Validate) run on the reloading goroutine, inside the set's
// one-reload-at-a-time gate and under no mutex; a Validate must not
// reload its own set. A panic in one is recovered and fails the reload.
package table
