package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTables(t *testing.T) {
	dir := t.TempDir()
	c, err := Parse([]byte(`
tables: {dir: `+dir+`, watch: 2s}
nodes:
  a: {addr: 1.1.1, master: 127.0.0.1:0}
  b: {addr: 1.2.1, tables: {watch: 500ms}}
  c: {addr: 1.2.2, tables: {dir: /elsewhere}}
`), []string{"GUILD_NODES_A_TABLES_WATCH=1s"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		node  string
		dir   string
		watch time.Duration
	}{{"a", dir, time.Second}, {"b", dir, 500 * time.Millisecond}, {"c", "/elsewhere", 2 * time.Second}} {
		if got := c.TablesOf(tc.node); got.Dir != tc.dir || got.Watch != tc.watch {
			t.Errorf("%s: %+v, want %s %v", tc.node, got, tc.dir, tc.watch)
		}
	}
	if err := c.CheckFiles("a"); err != nil {
		t.Errorf("a's directory exists: %v", err)
	}
	err = c.CheckFiles("c")
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "nodes.c.tables.dir: stat /elsewhere: no such file or directory") {
		t.Errorf("c's directory is missing: %v", err)
	}
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c.Tables.Dir = file
	if err := c.CheckFiles("a"); err == nil || !strings.Contains(err.Error(), "tables.dir: "+file+" is not a directory") {
		t.Errorf("a file: %v", err)
	}
	if got := (&Config{}).TablesOf("none"); got.Dir != "" {
		t.Errorf("no tables: %+v", got)
	}
}

func TestTablesInvalid(t *testing.T) {
	_, err := Parse([]byte(`
tables: {watch: 10ms}
nodes:
  a: {addr: 1.1.1, master: 127.0.0.1:0, tables: {watch: -1s}}
`), nil, nil)
	for _, want := range []string{
		"tables.watch: 10ms: 0 (no watching) or at least 100ms",
		"tables.dir: required with tables.watch",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("no %q in:\n%v", want, err)
		}
	}
	_, err = Parse([]byte(`
nodes:
  a: {addr: 1.1.1, master: 127.0.0.1:0, tables: {dri: x}}
`), nil, nil)
	if want := "nodes.a.tables.dri: unknown key (the keys here are dir, watch)"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("no %q in:\n%v", want, err)
	}
	_, err = Parse([]byte(`
nodes:
  a: {addr: 1.1.1, master: 127.0.0.1:0, tables: {watch: -1s}}
  b: {addr: 1.2.1, tables: {}}
`), nil, nil)
	for _, want := range []string{
		"nodes.a.tables.watch: -1s: 0 (no watching) or at least 100ms",
		"nodes.b.tables.dir: required: the directory of the node's table files (or tables.dir for every node)",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("no %q in:\n%v", want, err)
		}
	}
}
