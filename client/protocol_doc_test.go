package client_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/guildkit/guild/gate/gatepb"
)

// TestProtocolDocExample checks the framed Handshake in docs/PROTOCOL.md
// against the code: its bytes decode as the Handshake the page describes,
// and the encoder makes the same bytes.
func TestProtocolDocExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/PROTOCOL.md")
	if err != nil {
		t.Fatalf("docs/PROTOCOL.md: %v", err)
	}
	m := regexp.MustCompile("(?s)<!-- handshake-example:begin -->\n```\n(.*?)```\n<!-- handshake-example:end -->").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/PROTOCOL.md has no handshake example between its markers")
	}
	// Each line: hex bytes separated by single spaces, then a comment
	// after two or more spaces.
	var b []byte
	for _, line := range strings.Split(string(m[1]), "\n") {
		data, _, _ := strings.Cut(line, "  ")
		for _, tok := range strings.Fields(data) {
			x, err := hex.DecodeString(tok)
			if err != nil || len(x) != 1 {
				t.Fatalf("line %q: %q is not a hex byte", line, tok)
			}
			b = append(b, x...)
		}
	}
	if len(b) < gatepb.HeaderSize {
		t.Fatalf("the example has %d bytes", len(b))
	}
	if n := binary.BigEndian.Uint32(b); int(n) != len(b)-gatepb.HeaderSize {
		t.Fatalf("the length prefix says %d bytes, %d follow", n, len(b)-gatepb.HeaderSize)
	}
	var f gatepb.Frame
	if err := gatepb.Decode(b[gatepb.HeaderSize:], &f); err != nil {
		t.Fatal(err)
	}
	h := f.GetHandshake()
	if h == nil {
		t.Fatalf("the example decodes as a %T, not a Handshake", f.Body)
	}
	if h.GetVersion() != gatepb.Version || h.GetToken() != "secret" || h.GetClient() != "ts-sdk/0.1" {
		t.Fatalf("the example decodes as %v, want version 1, token \"secret\", client \"ts-sdk/0.1\"", h)
	}
	want, err := gatepb.AppendStream(nil, &gatepb.Frame{Body: &gatepb.Frame_Handshake{Handshake: &gatepb.Handshake{
		Version: gatepb.Version, Token: "secret", Client: "ts-sdk/0.1",
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("docs/PROTOCOL.md example:\n doc  % x\n code % x", b, want)
	}
}
