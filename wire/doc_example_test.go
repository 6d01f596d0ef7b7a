package wire

import (
	"bytes"
	"encoding/hex"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestProtocolDocExample checks the worked example in
// docs/PROTOCOL-NODE.md against the encoder.
func TestProtocolDocExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/PROTOCOL-NODE.md")
	if err != nil {
		t.Skipf("docs not found: %v", err)
	}
	i := bytes.Index(doc, []byte("## 6. A worked example"))
	if i < 0 {
		t.Fatal("the worked example is missing from docs/PROTOCOL-NODE.md")
	}
	block := regexp.MustCompile("(?s)```\n(.*?)```").FindSubmatch(doc[i:])
	if block == nil {
		t.Fatal("no code block in the worked example")
	}
	// Each line: hex bytes and quoted ASCII, then a comment after two
	// or more spaces.
	var want []byte
	for _, line := range strings.Split(string(block[1]), "\n") {
		data, _, _ := strings.Cut(line, "   ")
		for _, tok := range regexp.MustCompile(`"[^"]*"|[0-9a-f]{2}`).FindAllString(data, -1) {
			if tok[0] == '"' {
				want = append(want, tok[1:len(tok)-1]...)
				continue
			}
			b, err := hex.DecodeString(tok)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, b...)
		}
	}
	e := Envelope{
		Kind:          KindRequest,
		Target:        PID{Node: 1<<20 | 2<<12 | 3, Serial: 1<<32 | 7},
		Sender:        PID{Node: 1<<20 | 2<<12 | 4, Serial: 42},
		CorrelationID: 9001,
		PayloadType:   "google.protobuf.StringValue",
		Payload:       []byte{0x0a, 0x05, 'h', 'e', 'l', 'l', 'o'},
	}
	if got := AppendFrame(nil, e.AppendTo(nil)); !bytes.Equal(got, want) {
		t.Fatalf("docs/PROTOCOL-NODE.md example:\n doc  %x\n code %x", want, got)
	}
}
