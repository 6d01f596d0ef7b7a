package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/pluginpb"

	"github.com/guildkit/guild/examples/echo/echopb"
)

// TestPluginProtocol builds the plugin and speaks protoc's plugin protocol
// to it, as protoc and buf do: a CodeGeneratorRequest on stdin, a
// CodeGeneratorResponse on stdout.
func TestPluginProtocol(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := filepath.Join(t.TempDir(), "protoc-gen-guild")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	f := echopb.File_examples_echo_echopb_echo_proto
	req := &pluginpb.CodeGeneratorRequest{
		FileToGenerate: []string{f.Path()},
		Parameter:      proto.String("paths=source_relative"),
		ProtoFile: []*descriptorpb.FileDescriptorProto{
			protodesc.ToFileDescriptorProto(emptypb.File_google_protobuf_empty_proto),
			protodesc.ToFileDescriptorProto(f),
		},
	}
	in, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Stdin = bytes.NewReader(in)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("plugin: %v", err)
	}
	var resp pluginpb.CodeGeneratorResponse
	if err := proto.Unmarshal(out, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Error != nil {
		t.Fatalf("plugin error: %s", resp.GetError())
	}
	if len(resp.File) != 1 || resp.File[0].GetName() != "examples/echo/echopb/echo_guild.pb.go" {
		t.Fatalf("files %v, want examples/echo/echopb/echo_guild.pb.go", resp.File)
	}
	if c := resp.File[0].GetContent(); !strings.Contains(c, "func RegisterEchoServer(") || !strings.Contains(c, "package echopb") {
		t.Fatalf("unexpected content:\n%s", c)
	}
	if resp.GetSupportedFeatures()&uint64(pluginpb.CodeGeneratorResponse_FEATURE_PROTO3_OPTIONAL) == 0 {
		t.Error("the plugin does not declare proto3 optional support; protoc would refuse such files")
	}
}
