package wire

import (
	"bytes"
	"fmt"
	"testing"
)

// equalEnvelope compares two envelopes field by field, treating nil and
// empty byte slices as equal (the encoding does not tell them apart).
func equalEnvelope(a, b *Envelope) bool {
	return a.Kind == b.Kind && a.Target == b.Target && a.TargetName == b.TargetName &&
		a.Sender == b.Sender && a.CorrelationID == b.CorrelationID && a.Deadline == b.Deadline &&
		bytes.Equal(a.Metadata, b.Metadata) && a.PayloadType == b.PayloadType &&
		bytes.Equal(a.Payload, b.Payload) && a.ErrorCode == b.ErrorCode && a.ErrorMessage == b.ErrorMessage
}

func dump(e *Envelope) string {
	return fmt.Sprintf("{kind=%v target=%+v name=%q sender=%+v corr=%d deadline=%d metadata=%q type=%q payload=%q code=%d msg=%q}",
		e.Kind, e.Target, e.TargetName, e.Sender, e.CorrelationID, e.Deadline, e.Metadata, e.PayloadType, e.Payload, e.ErrorCode, e.ErrorMessage)
}

// roundTrip encodes e, decodes the bytes, and fails unless the result
// equals want.
func roundTrip(t *testing.T, e, want *Envelope) []byte {
	t.Helper()
	b := e.AppendTo(nil)
	if len(b) != e.Size() {
		t.Fatalf("Size() = %d, AppendTo wrote %d bytes for %s", e.Size(), len(b), dump(e))
	}
	var got Envelope
	if err := got.Unmarshal(b); err != nil {
		t.Fatalf("Unmarshal(%x) of %s: %v", b, dump(e), err)
	}
	if !equalEnvelope(&got, want) {
		t.Fatalf("round trip:\n got  %s\n want %s\n bytes %x", dump(&got), dump(want), b)
	}
	return b
}

// fullEnvelope has every field set (with a PID target).
func fullEnvelope() *Envelope {
	return &Envelope{
		Kind:          KindRequest,
		Target:        PID{Node: 1<<20 | 2<<12 | 3, Serial: 1<<32 | 7},
		Sender:        PID{Node: 1<<20 | 2<<12 | 4, Serial: 42},
		CorrelationID: 9001,
		Deadline:      1_760_000_000_123_456_789,
		Metadata:      []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
		PayloadType:   "google.protobuf.StringValue",
		Payload:       []byte{0x0a, 0x05, 'h', 'e', 'l', 'l', 'o'},
		ErrorCode:     CodeTimeout,
		ErrorMessage:  "deadline passed",
	}
}
