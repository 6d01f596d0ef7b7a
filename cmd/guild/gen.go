package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bufbuild/protocompile"
	"github.com/bufbuild/protocompile/reporter"
	gengo "google.golang.org/protobuf/cmd/protoc-gen-go/internal_gengo"
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"

	"github.com/guildkit/guild/propsync/propsyncpb"
	"github.com/guildkit/guild/propsync/syncgen"
	"github.com/guildkit/guild/rpc/rpcgen"
)

// genAbout is the help text of guild gen.
const genAbout = `Gen compiles .proto files and writes their Go code: the messages, as
protoc-gen-go writes them (<file>.pb.go), and for every file with services,
guild's server interfaces and typed clients (<file>_guild.pb.go, see package
rpc), and for every file with a message marked
option (guild.propsync.synced) = true, typed property-sync diff code
(<file>_sync.pb.go, see package propsync). It needs neither protoc nor any
plugin: the compiler and the generators run inside guild.

Each file is named by its path relative to an import directory (-I), as in
its importers' import statements, or by a path on disk under one of the
import directories. The well-known types (google/protobuf/empty.proto and
the others protoc ships) can always be imported, and so can guild's
propsync/propsyncpb/propsync.proto (property sync's options). Every file
must have a go_package option.

Gen writes only the files whose content changed, and prints their paths.`

// genParams are the flags of guild gen.
type genParams struct {
	importDirs []string // -I, in order; "." when none is given
	outDir     string   // -out
	paths      string   // -paths: "source_relative" or "import"
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

// genFlags defines the flags of guild gen into p.
func genFlags(p *genParams, stderr io.Writer) *flag.FlagSet {
	flags := newFlagSet("gen", "gen [-I dir]... [-out dir] [-paths source_relative|import] file.proto...", genAbout, stderr)
	flags.Var((*stringList)(&p.importDirs), "I", "import `dir`ectory where .proto files and their imports are found; repeatable, searched in order (default \".\")")
	flags.StringVar(&p.outDir, "out", ".", "`dir`ectory to write the generated files under")
	flags.StringVar(&p.paths, "paths", "source_relative", "where a file's output goes under -out: source_relative, beside the path of the .proto\n"+
		"relative to its import directory; or import, under its go_package import path")
	return flags
}

// runGen compiles .proto files and writes the Go code generated from them.
func runGen(args []string, stdout, stderr io.Writer) int {
	var p genParams
	flags := genFlags(&p, stderr)
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if flags.NArg() == 0 {
		fmt.Fprint(stderr, "guild gen: no .proto files given\n\n")
		flags.Usage()
		return exitUsage
	}
	if p.paths != "source_relative" && p.paths != "import" {
		fmt.Fprintf(stderr, "guild gen: -paths must be source_relative or import, not %q\n", p.paths)
		return exitUsage
	}
	if len(p.importDirs) == 0 {
		p.importDirs = []string{"."}
	}

	written, err := gen(context.Background(), p, flags.Args(), stderr)
	for _, name := range written {
		fmt.Fprintf(stdout, "wrote %s\n", name)
	}
	if err != nil {
		fmt.Fprintf(stderr, "guild gen: %v\n", err)
		return exitError
	}
	return exitOK
}

// gen compiles files, runs the generators and writes their output. It
// returns the paths of the files it wrote, even on error. Warnings of the
// compiler go to warnings.
func gen(ctx context.Context, p genParams, files []string, warnings io.Writer) (written []string, err error) {
	names := make([]string, 0, len(files))
	for _, f := range files {
		name, err := protoName(p.importDirs, f)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}

	compiled, err := compileProtos(ctx, p.importDirs, names, warnings)
	if err != nil {
		return nil, err
	}
	req, err := codeGeneratorRequest(compiled, "paths="+p.paths)
	if err != nil {
		return nil, err
	}

	generators := []struct {
		name string
		run  func(*protogen.Plugin) error
	}{
		{"protoc-gen-go", generateGo},
		{"guild", rpcgen.Generate},
		{"guild propsync", syncgen.Generate},
	}
	var out []*pluginpb.CodeGeneratorResponse_File
	seen := make(map[string]string) // output file name -> generator
	for _, g := range generators {
		files, err := runGenerator(req, g.run)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", g.name, err)
		}
		for _, f := range files {
			if other, ok := seen[f.GetName()]; ok {
				return nil, fmt.Errorf("%s and %s both generate %s", other, g.name, f.GetName())
			}
			seen[f.GetName()] = g.name
			out = append(out, f)
		}
	}

	for _, f := range out {
		path, changed, err := writeGenerated(p.outDir, f)
		if err != nil {
			return written, err
		}
		if changed {
			written = append(written, path)
		}
	}
	return written, nil
}

// protoName returns the name of the .proto file arg as the compiler knows
// it: its slash-separated path relative to the import directory it is in.
// arg is either a path on disk under one of importDirs (the first that
// contains it wins), or already a path relative to one of them.
func protoName(importDirs []string, arg string) (string, error) {
	if abs, err := filepath.Abs(arg); err == nil && isFile(abs) {
		for _, dir := range importDirs {
			absDir, err := filepath.Abs(dir)
			if err != nil {
				continue
			}
			if rel, err := filepath.Rel(absDir, abs); err == nil && filepath.IsLocal(rel) {
				return filepath.ToSlash(rel), nil
			}
		}
	}
	if !filepath.IsAbs(arg) && filepath.IsLocal(arg) {
		for _, dir := range importDirs {
			if isFile(filepath.Join(dir, arg)) {
				return filepath.ToSlash(filepath.Clean(arg)), nil
			}
		}
	}
	if isFile(arg) {
		return "", fmt.Errorf("%s is not under any import directory (-I %s)", arg, strings.Join(importDirs, " -I "))
	}
	return "", fmt.Errorf("%s: file not found in the import directories (-I %s)", arg, strings.Join(importDirs, " -I "))
}

// isFile reports whether path names a regular file.
func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

// compileProtos compiles the named files, found in importDirs or among the
// well-known types. It reports every error it finds, one per line, each
// starting with file:line:col.
func compileProtos(ctx context.Context, importDirs, names []string, warnings io.Writer) ([]protoreflect.FileDescriptor, error) {
	var errs []error
	c := protocompile.Compiler{
		Resolver: protocompile.CompositeResolver{
			protocompile.WithStandardImports(&protocompile.SourceResolver{ImportPaths: importDirs}),
			protocompile.ResolverFunc(guildImport),
		},
		SourceInfoMode: protocompile.SourceInfoStandard, // the generators copy comments
		Reporter: reporter.NewReporter(
			func(err reporter.ErrorWithPos) error {
				errs = append(errs, err) // calls are serialised by the compiler
				return nil               // go on, to report every error at once
			},
			func(err reporter.ErrorWithPos) {
				fmt.Fprintf(warnings, "guild gen: warning: %v\n", err)
			}),
	}
	res, err := c.Compile(ctx, names...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err != nil {
		return nil, err
	}
	fds := make([]protoreflect.FileDescriptor, len(res))
	for i, f := range res {
		fds[i] = f
	}
	return fds, nil
}

// guildImport resolves an import of one of guild's own .proto files that
// any file can import, as it can the well-known types, without an import
// directory that holds it: propsync/propsyncpb/propsync.proto (property
// sync's options), whose descriptor is linked into guild. An import
// directory that holds a file of the same path wins.
func guildImport(path string) (protocompile.SearchResult, error) {
	for _, fd := range []protoreflect.FileDescriptor{propsyncpb.File_propsync_propsyncpb_propsync_proto} {
		if fd.Path() == path {
			return protocompile.SearchResult{Desc: fd}, nil
		}
	}
	return protocompile.SearchResult{}, fmt.Errorf("%s: %w", path, fs.ErrNotExist)
}

// codeGeneratorRequest makes the request protoc would send a plugin asked
// to generate files: every file and its transitive imports, dependencies
// before their dependents, each once.
func codeGeneratorRequest(files []protoreflect.FileDescriptor, parameter string) (*pluginpb.CodeGeneratorRequest, error) {
	req := &pluginpb.CodeGeneratorRequest{}
	if parameter != "" {
		req.Parameter = &parameter
	}
	done := make(map[string]bool)
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if done[fd.Path()] {
			return
		}
		done[fd.Path()] = true // the compiler has rejected import cycles
		imports := fd.Imports()
		for i := range imports.Len() {
			add(imports.Get(i).FileDescriptor)
		}
		req.ProtoFile = append(req.ProtoFile, protodesc.ToFileDescriptorProto(fd))
	}
	for _, fd := range files {
		add(fd)
		req.FileToGenerate = append(req.FileToGenerate, fd.Path())
	}
	for _, fdp := range req.ProtoFile {
		if fdp.GetOptions().GetGoPackage() == "" {
			return nil, fmt.Errorf("%s has no go_package option; add one naming the Go package of its generated code, e.g.\n\n"+
				"\toption go_package = \"example.com/yourmodule/%spb\";", fdp.GetName(), packageHint(fdp))
		}
	}
	return req, nil
}

// packageHint returns a Go package name to suggest for fdp.
func packageHint(fdp *descriptorpb.FileDescriptorProto) string {
	name := fdp.GetPackage()
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		name = name[i+1:]
	}
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(fdp.GetName()), ".proto")
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return -1
	}, name)
}

// generateGo is protoc-gen-go, run in this process.
func generateGo(gen *protogen.Plugin) error {
	for _, f := range gen.Files {
		if f.Generate {
			gengo.GenerateFile(gen, f)
		}
	}
	gen.SupportedFeatures = gengo.SupportedFeatures
	gen.SupportedEditionsMinimum = gengo.SupportedEditionsMinimum
	gen.SupportedEditionsMaximum = gengo.SupportedEditionsMaximum
	return nil
}

// runGenerator runs one generator on req, as protoc would run a plugin,
// and returns the files it generated.
func runGenerator(req *pluginpb.CodeGeneratorRequest, generate func(*protogen.Plugin) error) ([]*pluginpb.CodeGeneratorResponse_File, error) {
	plugin, err := protogen.Options{}.New(req)
	if err != nil {
		return nil, err
	}
	if err := generate(plugin); err != nil {
		plugin.Error(err)
	}
	resp := plugin.Response()
	if resp.Error != nil {
		return nil, errors.New(resp.GetError())
	}
	for _, f := range resp.File {
		if f.GetInsertionPoint() != "" {
			return nil, fmt.Errorf("insertion points are not supported (file %s)", f.GetName())
		}
	}
	return resp.File, nil
}

// writeGenerated writes the generated file f under outDir, unless it holds
// that content already, so that its modification time only changes with
// its content. It returns the file's path and whether it wrote it.
func writeGenerated(outDir string, f *pluginpb.CodeGeneratorResponse_File) (path string, changed bool, err error) {
	rel := filepath.FromSlash(f.GetName())
	if !filepath.IsLocal(rel) {
		return "", false, fmt.Errorf("refusing to write %q outside the output directory", f.GetName())
	}
	path = filepath.Join(outDir, rel)
	content := []byte(f.GetContent())
	old, err := os.ReadFile(path)
	if err == nil && bytes.Equal(old, content) {
		return path, false, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return path, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return path, false, err
	}
	if err := os.WriteFile(path, content, 0o644); err != nil {
		return path, false, err
	}
	return path, true, nil
}
