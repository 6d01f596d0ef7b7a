package wire

import (
	"bytes"
	"errors"
	"io"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// TestEnvelopeRoundTripAllCombinations encodes and decodes every subset of
// the envelope's fields.
func TestEnvelopeRoundTripAllCombinations(t *testing.T) {
	full := fullEnvelope()
	setters := []struct {
		name string
		set  func(e *Envelope)
	}{
		{"kind", func(e *Envelope) { e.Kind = full.Kind }},
		{"target", func(e *Envelope) { e.Target = full.Target }},
		{"target_name", func(e *Envelope) { e.TargetName = ".lobby" }},
		{"sender", func(e *Envelope) { e.Sender = full.Sender }},
		{"correlation_id", func(e *Envelope) { e.CorrelationID = full.CorrelationID }},
		{"deadline", func(e *Envelope) { e.Deadline = full.Deadline }},
		{"metadata", func(e *Envelope) { e.Metadata = full.Metadata }},
		{"payload_type", func(e *Envelope) { e.PayloadType = full.PayloadType }},
		{"payload", func(e *Envelope) { e.Payload = full.Payload }},
		{"error_code", func(e *Envelope) { e.ErrorCode = full.ErrorCode }},
		{"error_message", func(e *Envelope) { e.ErrorMessage = full.ErrorMessage }},
	}
	sizes := map[int]bool{}
	for mask := 0; mask < 1<<len(setters); mask++ {
		var e Envelope
		var names []string
		for i, s := range setters {
			if mask&(1<<i) != 0 {
				s.set(&e)
				names = append(names, s.name)
			}
		}
		want := e
		if want.TargetName != "" {
			want.Target = PID{} // a name is the target; the PID is not written
		}
		t.Run(strings.Join(names, "+"), func(t *testing.T) {
			b := roundTrip(t, &e, &want)
			sizes[len(b)] = true
		})
	}
	if len(sizes) < 50 {
		t.Fatalf("only %d distinct encoding sizes over all combinations: fields are being dropped", len(sizes))
	}
}

// TestEnvelopeRoundTripEdgeValues covers extreme and unusual field values.
func TestEnvelopeRoundTripEdgeValues(t *testing.T) {
	tests := []struct {
		name string
		e    Envelope
	}{
		{"zero", Envelope{}},
		{"every kind", Envelope{Kind: KindSystem}},
		{"unknown kind", Envelope{Kind: 99}},
		{"negative kind", Envelope{Kind: -3}},
		{"max int32 kind", Envelope{Kind: math.MaxInt32}},
		{"max values", Envelope{
			Target: PID{Node: math.MaxUint32, Serial: math.MaxUint64}, Sender: PID{Node: math.MaxUint32, Serial: math.MaxUint64},
			CorrelationID: math.MaxUint64, Deadline: math.MaxInt64, ErrorCode: math.MaxUint32,
		}},
		{"negative deadline", Envelope{Deadline: -1}},
		{"min deadline", Envelope{Deadline: math.MinInt64}},
		{"pid with node only", Envelope{Target: PID{Node: 5}, Sender: PID{Node: 6}}},
		{"pid with serial only", Envelope{Target: PID{Serial: 5}, Sender: PID{Serial: 6}}},
		{"unicode strings", Envelope{TargetName: "公会/大厅", PayloadType: "game.v1.Ärger", ErrorMessage: "échec ✗"}},
		{"binary metadata and payload", Envelope{Metadata: []byte{0, 0xff, 0x80}, Payload: bytes.Repeat([]byte{0, 1, 2, 0xff}, 10000)}},
		{"raw bytes payload", Envelope{Kind: KindSend, PayloadType: RawBytesType, Payload: []byte("raw")}},
		{"error reply", Envelope{Kind: KindError, Target: PID{Node: 1, Serial: 2}, CorrelationID: 3, ErrorCode: CodeFirstApplication + 7, ErrorMessage: "not enough gold"}},
		{"full", *fullEnvelope()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { roundTrip(t, &tt.e, &tt.e) })
	}
}

func TestEnvelopeEmptySlicesDecodeAsNil(t *testing.T) {
	e := Envelope{Metadata: []byte{}, Payload: []byte{}}
	b := e.AppendTo(nil)
	if len(b) != 0 {
		t.Fatalf("empty metadata and payload encoded as %x, want nothing", b)
	}
	// A peer may write empty bytes fields explicitly.
	b = protowire.AppendTag(b, fieldMetadata, protowire.BytesType)
	b = protowire.AppendBytes(b, nil)
	b = protowire.AppendTag(b, fieldPayload, protowire.BytesType)
	b = protowire.AppendBytes(b, nil)
	var got Envelope
	if err := got.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	if got.Metadata != nil || got.Payload != nil {
		t.Fatalf("empty fields decoded as %#v and %#v, want nil", got.Metadata, got.Payload)
	}
}

func TestEnvelopeEncodingIsCanonical(t *testing.T) {
	e := fullEnvelope()
	var got Envelope
	if err := got.Unmarshal(e.AppendTo(nil)); err != nil {
		t.Fatal(err)
	}
	if a, b := e.AppendTo(nil), got.AppendTo(nil); !bytes.Equal(a, b) {
		t.Fatalf("equal envelopes encode differently:\n%x\n%x", a, b)
	}
	// AppendTo appends: it keeps what dst held.
	prefix := []byte("prefix")
	out := e.AppendTo(prefix)
	if !bytes.HasPrefix(out, []byte("prefix")) || !bytes.Equal(out[len(prefix):], e.AppendTo(nil)) {
		t.Fatalf("AppendTo did not append to dst")
	}
}

// TestEnvelopeKnownBytes pins the encoding of a small envelope, byte by
// byte, to the documented schema.
func TestEnvelopeKnownBytes(t *testing.T) {
	e := Envelope{
		Kind:          KindRequest,
		Target:        PID{Node: 1, Serial: 2},
		CorrelationID: 300,
		Deadline:      1,
		PayloadType:   RawBytesType,
		Payload:       []byte{0xAB},
	}
	want := []byte{
		0x08, 0x02, // kind = 2
		0x12, 0x04, 0x08, 0x01, 0x10, 0x02, // target_pid = {node: 1, serial: 2}
		0x28, 0xac, 0x02, // correlation_id = 300
		0x31, 1, 0, 0, 0, 0, 0, 0, 0, // deadline = 1, little-endian fixed64
		0x42, 0x09, 'g', 'u', 'i', 'l', 'd', '.', 'r', 'a', 'w', // payload_type
		0x4a, 0x01, 0xab, // payload
	}
	if got := e.AppendTo(nil); !bytes.Equal(got, want) {
		t.Fatalf("encoding\n got  %x\n want %x", got, want)
	}
	n := Envelope{Kind: KindError, TargetName: ".x", ErrorCode: 4, ErrorMessage: "t"}
	want = []byte{0x08, 0x04, 0x1a, 0x02, '.', 'x', 0x50, 0x04, 0x5a, 0x01, 't'}
	if got := n.AppendTo(nil); !bytes.Equal(got, want) {
		t.Fatalf("encoding\n got  %x\n want %x", got, want)
	}
}

func TestEnvelopeInvalidUTF8IsReplacedOnEncode(t *testing.T) {
	e := Envelope{TargetName: "a\xffb", PayloadType: "t\xfe", ErrorMessage: "bad \xc3("}
	want := Envelope{TargetName: "a\uFFFDb", PayloadType: "t\uFFFD", ErrorMessage: "bad \uFFFD("}
	roundTrip(t, &e, &want)
}

// appendUnknownFields appends one unknown field of every wire type.
func appendUnknownFields(b []byte) []byte {
	b = protowire.AppendTag(b, 100, protowire.VarintType)
	b = protowire.AppendVarint(b, math.MaxUint64)
	b = protowire.AppendTag(b, 101, protowire.Fixed32Type)
	b = protowire.AppendFixed32(b, 7)
	b = protowire.AppendTag(b, 102, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, 8)
	b = protowire.AppendTag(b, 103, protowire.BytesType)
	b = protowire.AppendBytes(b, []byte("future field"))
	b = protowire.AppendTag(b, 104, protowire.StartGroupType)
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, 1)
	b = protowire.AppendTag(b, 104, protowire.EndGroupType)
	b = protowire.AppendTag(b, 12, protowire.BytesType) // reserved for grain targets
	b = protowire.AppendBytes(b, []byte("grain"))
	return b
}

func TestEnvelopeSkipsUnknownFields(t *testing.T) {
	e := fullEnvelope()
	enc := e.AppendTo(nil)

	for _, where := range []string{"before", "after", "middle"} {
		t.Run(where, func(t *testing.T) {
			var b []byte
			switch where {
			case "before":
				b = append(appendUnknownFields(nil), enc...)
			case "after":
				b = appendUnknownFields(append([]byte(nil), enc...))
			case "middle":
				// Between kind (2 bytes) and the rest.
				b = append(appendUnknownFields(append([]byte(nil), enc[:2]...)), enc[2:]...)
			}
			var got Envelope
			if err := got.Unmarshal(b); err != nil {
				t.Fatal(err)
			}
			if !equalEnvelope(&got, e) {
				t.Fatalf("got %s\nwant %s", dump(&got), dump(e))
			}
		})
	}

	t.Run("inside a PID", func(t *testing.T) {
		pid := appendUnknownFields(nil)
		pid = protowire.AppendTag(pid, fieldPIDNode, protowire.VarintType)
		pid = protowire.AppendVarint(pid, 77)
		pid = appendUnknownFields(pid)
		var b []byte
		b = protowire.AppendTag(b, fieldSender, protowire.BytesType)
		b = protowire.AppendBytes(b, pid)
		var got Envelope
		if err := got.Unmarshal(b); err != nil {
			t.Fatal(err)
		}
		if got.Sender != (PID{Node: 77}) {
			t.Fatalf("sender = %+v, want {Node:77}", got.Sender)
		}
	})
}

func TestEnvelopeRepeatedFields(t *testing.T) {
	var b []byte
	// Scalars: the last value wins.
	b = protowire.AppendTag(b, fieldCorrelationID, protowire.VarintType)
	b = protowire.AppendVarint(b, 1)
	b = protowire.AppendTag(b, fieldCorrelationID, protowire.VarintType)
	b = protowire.AppendVarint(b, 2)
	b = protowire.AppendTag(b, fieldPayloadType, protowire.BytesType)
	b = protowire.AppendString(b, "first")
	b = protowire.AppendTag(b, fieldPayloadType, protowire.BytesType)
	b = protowire.AppendString(b, "second")
	// Messages: the occurrences merge.
	b = appendPID(b, fieldSender, PID{Node: 5})
	b = appendPID(b, fieldSender, PID{Serial: 6})
	b = appendPID(b, fieldTargetPID, PID{Node: 1, Serial: 1})
	b = appendPID(b, fieldTargetPID, PID{Serial: 9})
	// An explicit zero, as another encoder may write it, still counts.
	b = appendPID(b, fieldSender, PID{Node: 8, Serial: 8})
	b = protowire.AppendTag(b, fieldSender, protowire.BytesType)
	b = protowire.AppendBytes(b, []byte{0x10, 0x00}) // serial = 0
	var got Envelope
	if err := got.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	want := Envelope{CorrelationID: 2, PayloadType: "second", Sender: PID{Node: 8, Serial: 0}, Target: PID{Node: 1, Serial: 9}}
	if !equalEnvelope(&got, &want) {
		t.Fatalf("got %s\nwant %s", dump(&got), dump(&want))
	}
}

func TestEnvelopeMalformed(t *testing.T) {
	tag := func(num protowire.Number, typ protowire.Type) []byte { return protowire.AppendTag(nil, num, typ) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	valid := fullEnvelope().AppendTo(nil)

	tests := []struct {
		name string
		b    []byte
		want string // in the error message
	}{
		{"truncated varint", cat(tag(fieldCorrelationID, protowire.VarintType), []byte{0x80, 0x80}), "correlation_id"},
		{"truncated kind", cat(tag(fieldKind, protowire.VarintType)), "kind"},
		{"varint overflow", cat(tag(fieldCorrelationID, protowire.VarintType), bytes.Repeat([]byte{0xff}, 10), []byte{0x01}), "overflow"},
		{"truncated tag", []byte{0x80}, "field tag"},
		{"field number zero", []byte{0x00, 0x01}, "field tag"},
		{"length beyond buffer", cat(tag(fieldPayload, protowire.BytesType), []byte{10, 1, 2, 3}), "payload"},
		{"huge length", cat(tag(fieldMetadata, protowire.BytesType), protowire.AppendVarint(nil, math.MaxUint64)), "metadata"},
		{"truncated fixed64", cat(tag(fieldDeadline, protowire.Fixed64Type), []byte{1, 2, 3}), "deadline"},
		{"kind as bytes", cat(tag(fieldKind, protowire.BytesType), []byte{1, 1}), "kind"},
		{"payload as varint", cat(tag(fieldPayload, protowire.VarintType), []byte{1}), "wire type varint"},
		{"deadline as varint", cat(tag(fieldDeadline, protowire.VarintType), []byte{1}), "want fixed64"},
		{"sender as fixed32", cat(tag(fieldSender, protowire.Fixed32Type), []byte{1, 2, 3, 4}), "sender"},
		{"target as group", cat(tag(fieldTargetPID, protowire.StartGroupType), tag(fieldTargetPID, protowire.EndGroupType)), "target_pid"},
		{"reserved wire type", []byte{0x0e, 0}, "reserved"},
		{"stray end group", tag(50, protowire.EndGroupType), "end group"},
		{"unterminated unknown group", cat(tag(50, protowire.StartGroupType), tag(1, protowire.VarintType), []byte{1}), "unknown"},
		{"truncated unknown field", cat(tag(50, protowire.BytesType), []byte{5, 1}), "unknown"},
		{"invalid UTF-8 in payload_type", cat(tag(fieldPayloadType, protowire.BytesType), protowire.AppendBytes(nil, []byte{0xff})), "payload_type"},
		{"invalid UTF-8 in target_name", cat(tag(fieldTargetName, protowire.BytesType), protowire.AppendBytes(nil, []byte("a\xc0"))), "UTF-8"},
		{"invalid UTF-8 in error_message", cat(tag(fieldErrorMessage, protowire.BytesType), protowire.AppendBytes(nil, []byte{0xed, 0xa0, 0x80})), "error_message"},
		{"both targets", cat(appendPID(nil, fieldTargetPID, PID{Node: 1, Serial: 2}), tag(fieldTargetName, protowire.BytesType), protowire.AppendString(nil, "x")), "both"},
		{"both targets, name first", cat(tag(fieldTargetName, protowire.BytesType), protowire.AppendString(nil, ""), appendPID(nil, fieldTargetPID, PID{})), "both"},
		{"PID truncated varint", cat(tag(fieldSender, protowire.BytesType), []byte{2, 0x08, 0x80}), "sender"},
		{"PID wrong wire type", cat(tag(fieldTargetPID, protowire.BytesType), protowire.AppendBytes(nil, cat(tag(fieldPIDSerial, protowire.Fixed64Type), make([]byte, 8)))), "serial"},
		{"valid then truncated", valid[:len(valid)-1], "error_message"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := fullEnvelope()
			err := e.Unmarshal(tt.b)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Unmarshal(%x) = %v, want ErrMalformed", tt.b, err)
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("%v matches io.ErrUnexpectedEOF: a transport would take it for a short stream", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not mention %q", err, tt.want)
			}
			if !equalEnvelope(e, &Envelope{}) {
				t.Fatalf("envelope not reset after error: %s", dump(e))
			}
		})
	}
}

func TestEnvelopeUnmarshalReplacesEveryField(t *testing.T) {
	e := fullEnvelope()
	e.TargetName = ".old"
	small := Envelope{Kind: KindSend, Target: PID{Node: 1, Serial: 1}}
	if err := e.Unmarshal(small.AppendTo(nil)); err != nil {
		t.Fatal(err)
	}
	if !equalEnvelope(e, &small) {
		t.Fatalf("got %s, want %s", dump(e), dump(&small))
	}
}

func TestEnvelopeAliasing(t *testing.T) {
	b := fullEnvelope().AppendTo(nil)
	var e Envelope
	if err := e.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	name := e.PayloadType
	for i := range b {
		b[i] = 'X'
	}
	if !bytes.Equal(e.Payload, bytes.Repeat([]byte("X"), len(e.Payload))) {
		t.Fatalf("Payload does not alias the buffer as documented")
	}
	if !bytes.Equal(e.Metadata, bytes.Repeat([]byte("X"), len(e.Metadata))) {
		t.Fatalf("Metadata does not alias the buffer as documented")
	}
	if name != fullEnvelope().PayloadType || e.PayloadType != name {
		t.Fatalf("PayloadType changed with the buffer: %q", e.PayloadType)
	}
}

func TestEnvelopeReset(t *testing.T) {
	e := fullEnvelope()
	e.Reset()
	if !equalEnvelope(e, &Envelope{}) || e.Metadata != nil || e.Payload != nil {
		t.Fatalf("Reset left %s", dump(e))
	}
}

func TestEnvelopeUnmarshalDoesNotAllocate(t *testing.T) {
	e := fullEnvelope()
	e.TargetName = "game.room"
	e.Target = PID{}
	b := e.AppendTo(nil)
	var got Envelope
	if err := got.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if err := got.Unmarshal(b); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Unmarshal of a repeated envelope allocates %v times, want 0", allocs)
	}
	// A new string value is allocated, not aliased.
	other := Envelope{PayloadType: "other.Type"}
	ob := other.AppendTo(nil)
	if err := got.Unmarshal(ob); err != nil {
		t.Fatal(err)
	}
	copy(ob, bytes.Repeat([]byte("Z"), len(ob)))
	if got.PayloadType != "other.Type" {
		t.Fatalf("PayloadType aliases the buffer: %q", got.PayloadType)
	}
}

func TestEnvelopeAppendToAllocatesOnce(t *testing.T) {
	e := fullEnvelope()
	buf := make([]byte, 0, 1024)
	if allocs := testing.AllocsPerRun(100, func() { buf = e.AppendTo(buf[:0]) }); allocs != 0 {
		t.Fatalf("AppendTo into a large enough buffer allocates %v times, want 0", allocs)
	}
	if raceEnabled {
		return // -race turns slices.Grow's single allocation into two
	}
	if allocs := testing.AllocsPerRun(100, func() { _ = e.AppendTo(nil) }); allocs != 1 {
		t.Fatalf("AppendTo(nil) allocates %v times, want 1 (sized by Size)", allocs)
	}
}

func TestKind(t *testing.T) {
	for k, want := range map[Kind]string{
		KindUnspecified: "unspecified", KindSend: "send", KindRequest: "request",
		KindResponse: "response", KindError: "error", KindSystem: "system", 42: "Kind(42)", -1: "Kind(-1)",
	} {
		if k.String() != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int32(k), k.String(), want)
		}
		if known := k >= 1 && k <= 5; k.Known() != known {
			t.Errorf("Kind(%d).Known() = %v, want %v", int32(k), k.Known(), known)
		}
	}
}

func TestPIDIsZero(t *testing.T) {
	if !(PID{}).IsZero() || (PID{Node: 1}).IsZero() || (PID{Serial: 1}).IsZero() {
		t.Fatal("PID.IsZero is wrong")
	}
}
