package rpcgen_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/bufbuild/protocompile"
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/pluginpb"

	"github.com/guildkit/guild/rpc/internal/echopb"
	"github.com/guildkit/guild/rpc/rpcgen"
)

// request builds the generator request for files, with their imports first.
func request(files ...protoreflect.FileDescriptor) *pluginpb.CodeGeneratorRequest {
	req := &pluginpb.CodeGeneratorRequest{Parameter: proto.String("paths=source_relative")}
	seen := map[string]bool{}
	var add func(f protoreflect.FileDescriptor)
	add = func(f protoreflect.FileDescriptor) {
		if seen[f.Path()] {
			return
		}
		seen[f.Path()] = true
		imps := f.Imports()
		for i := range imps.Len() {
			add(imps.Get(i).FileDescriptor)
		}
		req.ProtoFile = append(req.ProtoFile, protodesc.ToFileDescriptorProto(f))
	}
	for _, f := range files {
		add(f)
		req.FileToGenerate = append(req.FileToGenerate, f.Path())
	}
	return req
}

// generate runs rpcgen on req and returns the files it wrote, by name.
func generate(t *testing.T, req *pluginpb.CodeGeneratorRequest) (map[string]string, error) {
	t.Helper()
	gen, err := protogen.Options{}.New(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := rpcgen.Generate(gen); err != nil {
		return nil, err
	}
	resp := gen.Response()
	if resp.Error != nil {
		return nil, &genError{resp.GetError()}
	}
	out := map[string]string{}
	for _, f := range resp.File {
		out[f.GetName()] = f.GetContent()
	}
	return out, nil
}

type genError struct{ msg string }

func (e *genError) Error() string { return e.msg }

// TestGolden: the generator's output for echo.proto is, byte for byte, the
// echo_guild.pb.go committed beside it (which "make gen" writes and CI
// checks). A change to the generator shows up here as a diff to review.
func TestGolden(t *testing.T) {
	// Compiled from source, as "guild gen" does, for the comments (the
	// descriptor compiled into echopb has none).
	c := protocompile.Compiler{
		Resolver:       protocompile.WithStandardImports(&protocompile.SourceResolver{ImportPaths: []string{"../.."}}),
		SourceInfoMode: protocompile.SourceInfoStandard,
	}
	compiled, err := c.Compile(context.Background(), "rpc/internal/echopb/echo.proto")
	if err != nil {
		t.Fatal(err)
	}
	if compiled[0].Services().Len() != echopb.File_rpc_internal_echopb_echo_proto.Services().Len() {
		t.Fatal("echo.proto and the compiled-in echopb disagree: run make gen")
	}
	files, err := generate(t, request(compiled[0]))
	if err != nil {
		t.Fatal(err)
	}
	got, ok := files["rpc/internal/echopb/echo_guild.pb.go"]
	if !ok || len(files) != 1 {
		t.Fatalf("generated files %v, want only rpc/internal/echopb/echo_guild.pb.go", keys(files))
	}
	want, err := os.ReadFile("../internal/echopb/echo_guild.pb.go")
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("the output differs from rpc/internal/echopb/echo_guild.pb.go (run make gen and review the diff):\n%s", got)
	}
	for _, s := range []string{
		"type EchoServer interface", "func RegisterEchoServer(", "func EchoServiceDesc()",
		"func (x EchoClient) Say(", "func (x EchoClient) SayAsync(", "func (x EchoClient) NoteOneWay(",
	} {
		if !strings.Contains(got, s) {
			t.Errorf("the output lacks %q", s)
		}
	}
	if strings.Contains(got, "SayOneWay") {
		t.Error("Say does not return google.protobuf.Empty but got a one-way form")
	}
}

// TestNoServicesNoFile: a file without services gets no guild file.
func TestNoServicesNoFile(t *testing.T) {
	files, err := generate(t, request(emptypb.File_google_protobuf_empty_proto))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 0 {
		t.Fatalf("generated %v for a file without services", keys(files))
	}
}

// TestStreamingRefused: a streaming method is refused with an error naming
// it, not silently skipped.
func TestStreamingRefused(t *testing.T) {
	fd := &descriptorpb.FileDescriptorProto{
		Name:        proto.String("stream.proto"),
		Package:     proto.String("s.v1"),
		Syntax:      proto.String("proto3"),
		Options:     &descriptorpb.FileOptions{GoPackage: proto.String("example.com/s;s")},
		MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String("M")}},
		Service: []*descriptorpb.ServiceDescriptorProto{{
			Name: proto.String("Feed"),
			Method: []*descriptorpb.MethodDescriptorProto{{
				Name: proto.String("Watch"), InputType: proto.String(".s.v1.M"), OutputType: proto.String(".s.v1.M"),
				ServerStreaming: proto.Bool(true),
			}},
		}},
	}
	req := &pluginpb.CodeGeneratorRequest{FileToGenerate: []string{"stream.proto"}, ProtoFile: []*descriptorpb.FileDescriptorProto{fd}}
	_, err := generate(t, req)
	if err == nil || !strings.Contains(err.Error(), "Feed.Watch") {
		t.Fatalf("err = %v, want one naming Feed.Watch", err)
	}
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
