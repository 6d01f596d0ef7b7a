package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// gameProto is a small API of a game: a message, and a service whose
// methods use it and a well-known type.
const gameProto = `// The game's API.
syntax = "proto3";

package game.v1;

option go_package = "example.com/game/gamev1;gamev1";

import "google/protobuf/empty.proto";

// Player is one player of the game.
message Player {
  string name = 1;
  int32 level = 2;
}

message GetPlayerRequest {
  string name = 1;
}

// Players looks players up and kicks them out.
service Players {
  rpc GetPlayer(GetPlayerRequest) returns (Player);
  rpc Kick(GetPlayerRequest) returns (google.protobuf.Empty);
}
`

// writeFile writes content to dir/name, creating directories.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// repoRoot returns the root of the guild module.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("runtime.Caller failed")
	}
	root := filepath.Join(filepath.Dir(file), "..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found: %v", err)
	}
	return root
}

// TestGenWithoutProtoc generates the code of a .proto file with no protoc
// nor plugin to be found, then builds it.
func TestGenWithoutProtoc(t *testing.T) {
	goTool, goErr := exec.LookPath("go") // before PATH goes
	origPath := os.Getenv("PATH")

	dir := t.TempDir()
	writeFile(t, dir, "gamev1/game.proto", gameProto)
	t.Setenv("PATH", t.TempDir())
	if _, err := exec.LookPath("protoc"); err == nil {
		t.Fatal("protoc is still on PATH")
	}

	code, out, errOut := runCmd("gen", "-I", dir, "-out", dir, "gamev1/game.proto")
	if code != exitOK {
		t.Fatalf("exit code %d, want 0; stderr:\n%s", code, errOut)
	}
	if errOut != "" {
		t.Errorf("stderr is not empty:\n%s", errOut)
	}
	pbGo := filepath.Join(dir, "gamev1", "game.pb.go")
	contains(t, "stdout", out, "wrote "+pbGo)
	contains(t, "game.pb.go", readFile(t, pbGo),
		"package gamev1",
		"type Player struct",
		"// Player is one player of the game.",
		`emptypb "google.golang.org/protobuf/types/known/emptypb"`,
	)
	// guild's generator writes this file for a file with services; its
	// exact content is covered by rpcgen's golden test.
	guildGo := filepath.Join(dir, "gamev1", "game_guild.pb.go")
	contains(t, "stdout", out, "wrote "+guildGo)
	contains(t, "game_guild.pb.go", readFile(t, guildGo),
		"package gamev1",
		"type PlayersServer interface",
		"func (x PlayersClient) GetPlayer(",
		"func (x PlayersClient) KickOneWay(",
	)

	// A second run finds every file up to date and writes none.
	info, err := os.Stat(pbGo)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCmd("gen", "-I", dir, "-out", dir, filepath.Join(dir, "gamev1", "game.proto"))
	if code != exitOK || out != "" {
		t.Fatalf("second run: exit code %d, stdout %q, want 0 and nothing written; stderr:\n%s", code, out, errOut)
	}
	if info2, err := os.Stat(pbGo); err != nil || !info2.ModTime().Equal(info.ModTime()) {
		t.Errorf("second run touched %s: %v", pbGo, err)
	}

	if testing.Short() {
		t.Skip("skipping the build of the generated code in short mode")
	}
	if goErr != nil {
		t.Skipf("no go command to build the generated code: %v", goErr)
	}
	writeFile(t, dir, "go.mod", "module example.com/game\n\ngo 1.26\n\n"+
		"require (\n\tgithub.com/guildkit/guild v0.0.0\n\tgoogle.golang.org/protobuf v1.36.12\n)\n\n"+
		"replace github.com/guildkit/guild => "+repoRoot(t)+"\n")
	build := exec.Command(goTool, "build", "./...")
	build.Dir = dir
	build.Env = append(os.Environ(), "PATH="+origPath, "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local", "GOWORK=off")
	if msg, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build of the generated code: %v\n%s", err, msg)
	}
}

// TestGenImportPaths puts the output under the go_package import path.
func TestGenImportPaths(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "protos/game.proto", gameProto)
	out := filepath.Join(dir, "out")
	code, stdout, errOut := runCmd("gen", "-I", filepath.Join(dir, "protos"), "-out", out, "-paths", "import", "game.proto")
	if code != exitOK {
		t.Fatalf("exit code %d, want 0; stderr:\n%s", code, errOut)
	}
	pbGo := filepath.Join(out, "example.com", "game", "gamev1", "game.pb.go")
	contains(t, "stdout", stdout, "wrote "+pbGo)
	contains(t, "game.pb.go", readFile(t, pbGo), "package gamev1")
}

// TestGenRepoProto regenerates guild's own rpc.proto in a scratch
// directory and compares it with the committed file.
func TestGenRepoProto(t *testing.T) {
	pbdir := filepath.Join(repoRoot(t), "rpc", "rpcpb")
	want, err := os.ReadFile(filepath.Join(pbdir, "rpc.pb.go"))
	if err != nil {
		t.Skipf("no generated rpc.pb.go to compare with: %v", err)
	}
	out := t.TempDir()
	code, _, errOut := runCmd("gen", "-I", repoRoot(t), "-out", out, filepath.Join(pbdir, "rpc.proto"))
	if code != exitOK {
		t.Fatalf("exit code %d, want 0; stderr:\n%s", code, errOut)
	}
	if got := readFile(t, filepath.Join(out, "rpc", "rpcpb", "rpc.pb.go")); got != string(want) {
		t.Errorf("rpc/rpcpb/rpc.pb.go is out of date: run `make gen`")
	}
}

func TestGenErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "syntax.proto", "syntax = \"proto3\";\n\nmessage Broken {\n  string name = 1\n}\n")
	writeFile(t, dir, "nogopkg.proto", "syntax = \"proto3\";\n\npackage game.v1;\n\nmessage Player {}\n")
	writeFile(t, dir, "badimport.proto", "syntax = \"proto3\";\n\nimport \"nowhere.proto\";\n")
	outside := writeFile(t, t.TempDir(), "outside.proto", gameProto)
	clash := "syntax = \"proto3\";\n\npackage game.v1;\n\noption go_package = \"example.com/game/v1\";\n\n" +
		"import \"propsync/propsyncpb/propsync.proto\";\n\n" +
		"message Hero {\n  option (guild.propsync.synced) = true;\n  Stats stats = 1;\n}\n\n"
	writeFile(t, dir, "clashfield.proto", clash+"message Stats {\n  int32 propsync_diff = 1;\n}\n")
	writeFile(t, dir, "clashoneof.proto", strings.ReplaceAll(clash, "game.v1", "game.v2")+
		"message Stats {\n  oneof propsyncDiff {\n    int32 hp = 1;\n    int32 mp = 2;\n  }\n}\n")

	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"missing file", []string{"missing.proto"}, exitError,
			[]string{"missing.proto: file not found", "-I " + dir}},
		{"outside the import directories", []string{outside}, exitError,
			[]string{outside + " is not under any import directory"}},
		{"syntax error", []string{"syntax.proto"}, exitError,
			[]string{"syntax.proto:5:1: syntax error"}},
		{"missing go_package", []string{"nogopkg.proto"}, exitError,
			[]string{"nogopkg.proto has no go_package option", `option go_package = "example.com/yourmodule/v1pb";`}},
		{"missing import", []string{"badimport.proto"}, exitError,
			[]string{"badimport.proto:3:8:", "nowhere.proto"}},
		{"synced field named propsync_diff", []string{"clashfield.proto"}, exitError,
			[]string{"clashfield.proto: message game.v1.Stats: field propsync_diff: its Go name PropsyncDiff", "rename the field"}},
		{"synced oneof named propsyncDiff", []string{"clashoneof.proto"}, exitError,
			[]string{"clashoneof.proto: message game.v2.Stats: oneof propsyncDiff: its Go name PropsyncDiff", "rename the oneof"}},
		{"no files", nil, exitUsage,
			[]string{"no .proto files given", "usage: guild gen"}},
		{"bad -paths", []string{"-paths", "flat", "syntax.proto"}, exitUsage,
			[]string{"-paths must be source_relative or import"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"gen", "-I", dir, "-out", dir}, tt.args...)
			code, out, errOut := runCmd(args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.code, errOut)
			}
			if out != "" {
				t.Errorf("stdout is not empty:\n%s", out)
			}
			contains(t, "stderr", errOut, tt.want...)
		})
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".go") {
			t.Errorf("a failed run wrote %s", e.Name())
		}
	}
}

func TestGenHelp(t *testing.T) {
	code, out, _ := runCmd("help", "gen")
	if code != exitOK {
		t.Fatalf("exit code %d, want 0", code)
	}
	contains(t, "help", out, "usage: guild gen", "-I dir", "-out dir", "-paths", "protoc")
}

// heroProto is a synced state that imports guild's propsync.proto with no
// import directory that holds it.
const heroProto = `syntax = "proto3";

package game.v1;

option go_package = "example.com/game/herov1;herov1";

import "propsync/propsyncpb/propsync.proto";

message Hero {
  option (guild.propsync.synced) = true;
  string name = 1;
  Stats stats = 2;
  repeated Item items = 3;
  map<string, int64> counters = 4;
  string password = 5 [(guild.propsync.private) = true];
  oneof mount { string horse = 6; Stats dragon = 7; }
}

message Stats { int32 hp = 1; }
message Item { string id = 1; }
// Unrelated is not reached from Hero: it gets no diff code.
message Unrelated { string x = 1; }
`

// commonProto is a package of messages and enums that another file's
// synced state uses, in a Go package named common.
const commonProto = `syntax = "proto3";

package game.common;

option go_package = "example.com/game/common";

enum Rarity { RARITY_UNSPECIFIED = 0; RARITY_RARE = 1; }
message Item { string id = 1; }
`

// lootProto is a synced state whose fields are of Go package common,
// whose name is that of a local variable of the diff code (and w, of
// its Walk): the code must not name such a package where a variable
// shadows it. Its oneof vault has only private cases.
const lootProto = `syntax = "proto3";

package game.v1;

option go_package = "example.com/game/lootv1;lootv1";

import "common/common.proto";
import "propsync/propsyncpb/propsync.proto";

message Loot {
  option (guild.propsync.synced) = true;
  repeated game.common.Item items = 1;
  map<string, game.common.Item> bag = 2;
  map<string, game.common.Rarity> rarity = 3;
  oneof pick { game.common.Item item = 4; string name = 5; }
  oneof vault { string pin = 6 [(guild.propsync.private) = true]; }
}
`

// TestGenSynced generates the diff code of a message marked synced
// (guild.propsync.synced), importing guild's propsync.proto without -I,
// vets (so compiles) it, and checks that a synced message in a proto2
// file is refused. It also generates and vets lootProto, whose fields
// are of a Go package named like a local variable of the diff code.
func TestGenSynced(t *testing.T) {
	goTool, goErr := exec.LookPath("go")
	dir := t.TempDir()
	writeFile(t, dir, "herov1/hero.proto", heroProto)
	writeFile(t, dir, "common/common.proto", commonProto)
	writeFile(t, dir, "lootv1/loot.proto", lootProto)
	code, out, errOut := runCmd("gen", "-I", dir, "-out", dir, "herov1/hero.proto", "common/common.proto", "lootv1/loot.proto")
	if code != exitOK {
		t.Fatalf("exit code %d, want 0; stderr:\n%s", code, errOut)
	}
	syncGo := filepath.Join(dir, "herov1", "hero_sync.pb.go")
	contains(t, "stdout", out, "wrote "+syncGo)
	src := readFile(t, syncGo)
	contains(t, "hero_sync.pb.go", src,
		"package herov1",
		"func (x *Hero) PropsyncDiff(w *propsync.Walk, last proto.Message)",
		"func (x *Stats) propsyncDiff(",
		"func (x *Item) propsyncDiff(",
	)
	for _, absent := range []string{"Unrelated", "Password"} {
		if strings.Contains(src, absent) {
			t.Errorf("hero_sync.pb.go mentions %s:\n%s", absent, src)
		}
	}
	lootGo := filepath.Join(dir, "lootv1", "loot_sync.pb.go")
	contains(t, "stdout", out, "wrote "+lootGo)
	if src := readFile(t, lootGo); strings.Contains(src, `"example.com/game/common"`) {
		t.Errorf("loot_sync.pb.go imports package common, whose name a local variable may shadow:\n%s", src)
	}

	proto2 := strings.Replace(strings.Replace(heroProto, `"proto3"`, `"proto2"`, 1), "string name = 1;", "optional string name = 1;", 1)
	proto2 = strings.NewReplacer("  Stats stats", "  optional Stats stats", "  string password", "  optional string password",
		"{ int32 hp", "{ optional int32 hp", "{ string id", "{ optional string id", "{ string x", "{ optional string x").Replace(proto2)
	writeFile(t, dir, "herov2/hero.proto", strings.ReplaceAll(proto2, "herov1", "herov2"))
	if code, _, errOut := runCmd("gen", "-I", dir, "-out", dir, "herov2/hero.proto"); code == exitOK || !strings.Contains(errOut, "proto3") {
		t.Errorf("a synced message in a proto2 file: exit code %d, stderr:\n%s", code, errOut)
	}

	if testing.Short() {
		t.Skip("skipping the build of the generated code in short mode")
	}
	if goErr != nil {
		t.Skipf("no go command to build the generated code: %v", goErr)
	}
	if err := os.RemoveAll(filepath.Join(dir, "herov2")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "go.mod", "module example.com/game\n\ngo 1.26\n\n"+
		"require (\n\tgithub.com/guildkit/guild v0.0.0\n\tgoogle.golang.org/protobuf v1.36.12\n)\n\n"+
		"replace github.com/guildkit/guild => "+repoRoot(t)+"\n")
	build := exec.Command(goTool, "vet", "./...")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local", "GOWORK=off")
	if msg, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go vet of the generated code: %v\n%s", err, msg)
	}
}
