package main

// The README's commands and code, checked so that they cannot rot:
//
//   - TestReadmeCommands: every command line of the README's ```sh blocks,
//     and every inline `go run ./cmd/guild ...` span, runs guild the one way
//     the README says (go run ./cmd/guild, or go run
//     github.com/guildkit/guild/cmd/guild in the reader's own module), names
//     a command that exists, and passes that command's flag parsing (its
//     flags are parsed by the command's own flag set, without running it).
//     The other commands of the sh blocks must be go run/install of a
//     package that exists, make with a target of the Makefile, or protoc.
//   - TestReadmeProto: the ```proto block passes guild gen.
//   - TestReadmeClusterFiles: each ```yaml block that is a whole cluster
//     file (it has nodes) loads as guild run loads it, unless the comment
//     before it says <!-- given: a fragment ... --> (nodes of another
//     game's modules, on machines of their own).
//   - TestReadmeGoBlocks: every ```go block compiles and passes go vet, in
//     a module of its own that requires this one, with the Go code the
//     proto block generates (its go_package, example.com/game/chat/v1).
//
// The Go blocks are fragments. Each one becomes a package of its own: its
// lines that start with "type " or "func " (at the start of the line) are
// top-level declarations; the other lines are the body of a function
// returning error. A fragment's free names (a pid it was handed, a
// message type it sends) are declared in an HTML comment right before the
// block, invisible on GitHub:
//
//	<!-- given: var pid actor.PID; type Inc struct{} -->
//
// which goes at the package level of the fragment's file, as Go source.
// Imports are added for the packages the fragment names (see
// readmeImports), and a variable that the body declares with := and does
// not use is used, so that a sketch need not print everything it makes.

import (
	"bytes"
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/scanner"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// readmeBlock is a fenced code block of the README.
type readmeBlock struct {
	lang  string
	line  int // of its first line of code, from 1
	text  string
	given string // the declarations of its <!-- given: ... --> comment
}

// readReadme returns the README's text and its fenced code blocks.
func readReadme(t *testing.T) (string, []readmeBlock) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var (
		blocks []readmeBlock
		cur    *readmeBlock
		given  string
		body   []string
	)
	for i, line := range strings.Split(string(b), "\n") {
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			cur = &readmeBlock{lang: strings.TrimPrefix(line, "```"), line: i + 2, given: given}
			body = nil
		case cur != nil && line == "```":
			cur.text = strings.Join(body, "\n") + "\n"
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			body = append(body, line)
		}
		given = ""
		if cur == nil {
			if m := givenComment.FindStringSubmatch(line); m != nil {
				given = m[1]
			}
		}
	}
	if cur != nil {
		t.Fatalf("README.md:%d: the code block is not closed", cur.line-1)
	}
	return string(b), blocks
}

// givenComment is the HTML comment that declares a Go fragment's free
// names.
var givenComment = regexp.MustCompile(`^<!-- given: (.*) -->$`)

// Ways of running guild in the README.
const (
	guildHere   = "go run ./cmd/guild"                         // from this repository's root
	guildModule = "go run github.com/guildkit/guild/cmd/guild" // from a module that requires guild
)

// checkGuildArgs checks guild's arguments args: a command that exists,
// whose flag set accepts the flags.
func checkGuildArgs(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("no command")
	}
	cmd, ok := lookup(args[0])
	if !ok {
		return fmt.Errorf("no command %q", args[0])
	}
	var out bytes.Buffer
	fs := cmd.flags(&out)
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("guild %s: %v", cmd.name, err)
	}
	if fs.NArg() > 0 && !cmd.operands {
		return fmt.Errorf("guild %s takes no argument after its flags, and gets %q", cmd.name, fs.Args())
	}
	return nil
}

// shellCommands returns the command lines of an sh block: continuation
// lines joined, comments and a trailing & dropped.
func shellCommands(text string) []string {
	var cmds []string
	var cur string
	for _, line := range strings.Split(text, "\n") {
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			line = ""
		}
		line = strings.TrimSpace(line)
		if strings.HasSuffix(line, "\\") {
			cur += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		line = strings.TrimSpace(strings.TrimSuffix(cur+line, "&"))
		cur = ""
		if line != "" {
			cmds = append(cmds, line)
		}
	}
	return cmds
}

// assignment matches a shell line that sets a variable to a command's
// output: NAME=$(command).
var assignment = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=\$\((.*)\)$`)

// inlineCode matches an inline code span, which may run over lines.
var inlineCode = regexp.MustCompile("`([^`]+)`")

func TestReadmeCommands(t *testing.T) {
	root := repoRoot(t)
	text, blocks := readReadme(t)
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	var check func(where, line string)
	check = func(where, line string) {
		t.Helper()
		// VAR=$(command): the command; a | b: each side.
		if m := assignment.FindStringSubmatch(line); m != nil {
			check(where, m[1])
			return
		}
		if left, right, ok := strings.Cut(line, " | "); ok {
			check(where, left)
			check(where, right)
			return
		}
		fields := strings.Fields(line)
		joined := strings.Join(fields, " ")
		switch {
		case strings.HasPrefix(joined, guildHere+" "), strings.HasPrefix(joined, guildModule+" "):
			checked++
			if err := checkGuildArgs(fields[3:]); err != nil {
				t.Errorf("%s: %s: %v", where, joined, err)
			}
		case fields[0] == "guild" || fields[0] == "./guild":
			t.Errorf("%s: %s: the README runs guild as %q", where, joined, guildHere)
		case len(fields) >= 3 && fields[0] == "go" && (fields[1] == "run" || fields[1] == "install"):
			pkg, _, _ := strings.Cut(fields[2], "@")
			dir, ok := strings.CutPrefix(pkg, "github.com/guildkit/guild/")
			if !ok {
				dir = pkg
			}
			if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(dir), "main.go")); err != nil {
				t.Errorf("%s: %s: no command %s in this repository", where, joined, pkg)
			}
		case fields[0] == "make":
			for _, target := range fields[1:] {
				if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(target) + `:`).Match(makefile) {
					t.Errorf("%s: %s: the Makefile has no target %s", where, joined, target)
				}
			}
		case fields[0] == "protoc": // documented for teams that use it; not run here
		case fields[0] == "printf": // writes a message body for the next command
		case strings.HasPrefix(fields[0], "mosquitto_"): // run as written by TestDemoMQTT
		default:
			t.Errorf("%s: %s: a command this test does not know how to check", where, joined)
		}
	}
	for _, b := range blocks {
		if b.lang != "sh" {
			continue
		}
		for _, cmd := range shellCommands(b.text) {
			check(fmt.Sprintf("README.md:%d", b.line), cmd)
		}
	}
	// Inline spans that run guild, in the prose: the text without its
	// fenced blocks (their lines left empty, to keep the line numbers).
	lines := strings.Split(text, "\n")
	for i, fenced := 0, false; i < len(lines); i++ {
		if strings.HasPrefix(lines[i], "```") {
			fenced = !fenced
			lines[i] = ""
		} else if fenced {
			lines[i] = ""
		}
	}
	text = strings.Join(lines, "\n")
	for _, m := range inlineCode.FindAllStringSubmatchIndex(text, -1) {
		span := strings.Join(strings.Fields(text[m[2]:m[3]]), " ")
		where := fmt.Sprintf("README.md:%d", strings.Count(text[:m[0]], "\n")+1)
		switch {
		case strings.HasPrefix(span, guildHere+" "), strings.HasPrefix(span, guildModule+" "):
			check(where, span)
		case strings.HasPrefix(span, "guild ") || strings.HasPrefix(span, "./guild "):
			// "guild gen" names a command; a command line with more
			// must be one to run, written the README's way.
			if f := strings.Fields(span); len(f) > 2 || f[0] == "./guild" {
				t.Errorf("%s: %s: the README runs guild as %q", where, span, guildHere)
			}
		}
	}
	if checked < 10 {
		t.Errorf("only %d guild command lines found in the README: is the test still reading it right?", checked)
	}
}

// TestReadmeCommandCheck checks that checkGuildArgs refuses what guild
// would refuse.
func TestReadmeCommandCheck(t *testing.T) {
	for _, args := range [][]string{
		{"frob"}, {"bot", "-nope"}, {"bot", "-n"}, {"bot", "-n", "many"}, {"demo", "extra"}, {"node", "-ttl", "soon"},
	} {
		if err := checkGuildArgs(args); err == nil {
			t.Errorf("guild %q passed", args)
		}
	}
	for _, args := range [][]string{
		{"demo"}, {"gen", "-I", ".", "a.proto"}, {"help", "node"}, {"bot", "-addr", "tcp://x:1", "-idle", "-n", "5"},
	} {
		if err := checkGuildArgs(args); err != nil {
			t.Errorf("guild %q: %v", args, err)
		}
	}
}

// TestReadmeProto runs guild gen on the README's .proto example, at the
// path its first comment gives.
func TestReadmeProto(t *testing.T) {
	dir := t.TempDir()
	genReadmeProto(t, dir, "source_relative")
}

// genReadmeProto writes the README's proto block under dir, at the path
// its first line's comment names, and runs guild gen on it into dir with
// -paths paths. It returns the proto's path.
func genReadmeProto(t *testing.T, dir, paths string) string {
	t.Helper()
	_, blocks := readReadme(t)
	var protos []readmeBlock
	for _, b := range blocks {
		if b.lang == "proto" {
			protos = append(protos, b)
		}
	}
	if len(protos) != 1 {
		t.Fatalf("%d proto blocks in the README, want 1", len(protos))
	}
	name, ok := strings.CutPrefix(strings.SplitN(protos[0].text, "\n", 2)[0], "// ")
	if !ok || !strings.HasSuffix(name, ".proto") {
		t.Fatalf("README.md:%d: the proto block's first line is not a comment with its path", protos[0].line)
	}
	writeFile(t, dir, name, protos[0].text)
	var warnings bytes.Buffer
	p := genParams{importDirs: []string{dir}, outDir: dir, paths: paths}
	written, err := gen(context.Background(), p, []string{name}, &warnings)
	if err != nil {
		t.Fatalf("README.md:%d: guild gen %s: %v\n%s", protos[0].line, name, err, warnings.String())
	}
	if len(written) != 2 {
		t.Errorf("guild gen wrote %q, want the messages and the service", written)
	}
	return name
}

// readmeImports are the packages a Go block may name, by name.
var readmeImports = map[string]string{
	"context":      "context",
	"errors":       "errors",
	"fmt":          "fmt",
	"io":           "io",
	"log":          "log",
	"slog":         "log/slog",
	"testing":      "testing",
	"time":         "time",
	"wrapperspb":   "google.golang.org/protobuf/types/known/wrapperspb",
	"emptypb":      "google.golang.org/protobuf/types/known/emptypb",
	"proto":        "google.golang.org/protobuf/proto",
	"protoreflect": "google.golang.org/protobuf/reflect/protoreflect",
	"propsync":     "github.com/guildkit/guild/propsync",
	"propsyncpb":   "github.com/guildkit/guild/propsync/propsyncpb",
	"actor":        "github.com/guildkit/guild/actor",
	"app":          "github.com/guildkit/guild/app",
	"client":       "github.com/guildkit/guild/client",
	"cluster":      "github.com/guildkit/guild/cluster",
	"clustertest":  "github.com/guildkit/guild/cluster/clustertest",
	"config":       "github.com/guildkit/guild/config",
	"etcd":         "github.com/guildkit/guild/cluster/etcd",
	"gate":         "github.com/guildkit/guild/gate",
	"gatekcp":      "github.com/guildkit/guild/gate/kcp",
	"gatews":       "github.com/guildkit/guild/gate/websocket",
	"grain":        "github.com/guildkit/guild/grain",
	"rpc":          "github.com/guildkit/guild/rpc",
	"store":        "github.com/guildkit/guild/store",
	"stream":       "github.com/guildkit/guild/stream",
	"table":        "github.com/guildkit/guild/table",
	"embedded":     "github.com/guildkit/guild/store/embedded",
	"arenapb":      "github.com/guildkit/guild/examples/arena/arenapb",
	"playerspb":    "github.com/guildkit/guild/examples/players/playerspb",
	"chatv1":       "example.com/game/chat/v1",
}

// readmeGoFile returns the Go file of block b, in package pkg.
func readmeGoFile(t *testing.T, b readmeBlock, pkg string) string {
	t.Helper()
	if strings.HasPrefix(b.text, "package ") {
		return b.text
	}
	var decls, body []string
	lines := strings.Split(strings.TrimRight(b.text, "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if !strings.HasPrefix(l, "type ") && !strings.HasPrefix(l, "func ") {
			body = append(body, l)
			continue
		}
		decls = append(decls, l)
		if !strings.HasSuffix(l, "{") {
			continue
		}
		for i++; i < len(lines); i++ {
			decls = append(decls, lines[i])
			if lines[i] == "}" {
				break
			}
		}
	}
	// Use what the body declares with := and might not use.
	src := "package p\nfunc f() error {\n" + strings.Join(body, "\n") + "\nreturn nil\n}\n"
	f, err := parser.ParseFile(token.NewFileSet(), "", src, 0)
	if err != nil {
		t.Fatalf("README.md:%d: the block's statements do not parse: %v\n%s", b.line, err, src)
	}
	var uses []string
	locals := map[string]bool{}
	for _, st := range f.Decls[0].(*ast.FuncDecl).Body.List {
		if as, ok := st.(*ast.AssignStmt); ok && as.Tok == token.DEFINE {
			for _, e := range as.Lhs {
				if id, ok := e.(*ast.Ident); ok && id.Name != "_" {
					uses = append(uses, "_ = "+id.Name)
					locals[id.Name] = true
				}
			}
		}
	}
	code := strings.Join(decls, "\n") + "\n" + b.given + "\n"
	if len(body) > 0 {
		code += "func readmeBlock() error {\n" + strings.Join(body, "\n") + "\n" + strings.Join(uses, "\n") + "\nreturn nil\n}\n"
	}
	// The packages named as pkg.Name, outside comments and strings.
	named := map[string]bool{}
	var sc scanner.Scanner
	fset := token.NewFileSet()
	sc.Init(fset.AddFile("", -1, len(code)), []byte(code), nil, 0)
	prev := ""
	for {
		_, tok, lit := sc.Scan()
		if tok == token.EOF {
			break
		}
		if tok == token.PERIOD && prev != "" {
			named[prev] = true
		}
		prev = ""
		if tok == token.IDENT {
			prev = lit
		}
	}
	var imports []string
	for name, path := range readmeImports {
		if named[name] && !locals[name] { // client := ... hides the package client
			imports = append(imports, fmt.Sprintf("%q", path))
		}
	}
	slices.Sort(imports)
	return fmt.Sprintf("// README.md:%d\n\npackage %s\n\nimport (\n%s\n)\n\n%s", b.line, pkg, strings.Join(imports, "\n"), code)
}

// TestReadmeGoBlocks builds and vets every Go block of the README, each in
// a package of a module that requires this one (see the top of this file).
func TestReadmeGoBlocks(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the README's code with the go command")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	root, err := filepath.Abs(repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	// The module example.com/game, with the proto's code at the path of
	// its go_package.
	out := t.TempDir()
	genReadmeProto(t, out, "import")
	mod := filepath.Join(out, "example.com", "game")
	goMod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goMod = regexp.MustCompile(`(?m)^module .*$`).ReplaceAll(goMod, []byte("module example.com/game"))
	goMod = append(goMod, fmt.Sprintf("\nrequire github.com/guildkit/guild v0.0.0\n\nreplace github.com/guildkit/guild => %s\n", root)...)
	writeFile(t, mod, "go.mod", string(goMod))
	goSum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, mod, "go.sum", string(goSum))

	_, blocks := readReadme(t)
	n := 0
	for _, b := range blocks {
		if b.lang != "go" {
			continue
		}
		n++
		pkg := fmt.Sprintf("line%d", b.line)
		writeFile(t, filepath.Join(mod, "readme", pkg), "block.go", readmeGoFile(t, b, pkg))
	}
	if n == 0 {
		t.Fatal("no Go block in the README")
	}
	cmd := exec.Command(goTool, "vet", "./...")
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Run(); err != nil {
		t.Errorf("go vet of the README's %d Go blocks (readme/lineN is the block at README.md:N): %v\n%s", n, err, output.String())
		// Show the files, to read the errors against.
		_ = filepath.WalkDir(filepath.Join(mod, "readme"), func(path string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				src, _ := os.ReadFile(path)
				t.Logf("%s:\n%s", path, numbered(src))
			}
			return err
		})
	}
}

// numbered returns src with line numbers.
func numbered(src []byte) string {
	var b strings.Builder
	for i, l := range strings.Split(string(src), "\n") {
		fmt.Fprintf(&b, "%4d  %s\n", i+1, l)
	}
	return b.String()
}

// TestReadmeClusterFiles loads each YAML block of the README that is a
// whole cluster file (it has nodes) as guild run would, with the modules
// guild run offers.
func TestReadmeClusterFiles(t *testing.T) {
	_, blocks := readReadme(t)
	n := 0
	for _, b := range blocks {
		if b.lang != "yaml" || !regexp.MustCompile(`(?m)^nodes:`).MatchString(b.text) {
			continue
		}
		if strings.HasPrefix(b.given, "a fragment") { // <!-- given: a fragment ... -->: not a whole file
			continue
		}
		n++
		path := writeFile(t, t.TempDir(), "cluster.yaml", b.text)
		var stderr bytes.Buffer
		if _, _, ok := loadConfig("run", path, nil, guildModules().Names(), &stderr); !ok {
			t.Errorf("README.md:%d: the cluster file does not load:\n%s", b.line, stderr.String())
		}
	}
	if n == 0 {
		t.Error("no cluster file in the README")
	}
}
