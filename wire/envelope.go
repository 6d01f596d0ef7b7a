package wire

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// The envelope is a protobuf message. This schema is also in envelope.proto
// beside this file (documentation only: nothing is generated from it), and
// docs/PROTOCOL-NODE.md describes the bytes.
//
//	syntax = "proto3";
//	package guild.wire.v1;
//
//	enum Kind {
//	  KIND_UNSPECIFIED = 0;
//	  KIND_SEND = 1;     // one-way message
//	  KIND_REQUEST = 2;  // expects a RESPONSE or ERROR with the same correlation_id
//	  KIND_RESPONSE = 3; // the answer to a REQUEST
//	  KIND_ERROR = 4;    // a failed REQUEST: error_code and error_message
//	  KIND_SYSTEM = 5;   // runtime traffic (watch, terminated, ...), defined by the cluster layer
//	}
//
//	message PID {
//	  uint32 node = 1;   // the node's logical address, cluster<<20 | type<<12 | index
//	  uint64 serial = 2; // the actor's serial on that node
//	}
//
//	message Envelope {
//	  Kind kind = 1;
//	  oneof target {
//	    PID target_pid = 2;
//	    string target_name = 3;  // a registered name; local names start with "."
//	  }
//	  PID sender = 4;             // absent: no sender
//	  uint64 correlation_id = 5;  // pairs a REQUEST with its RESPONSE or ERROR
//	  sfixed64 deadline = 6;      // unix nanoseconds; absent or 0: none
//	  bytes metadata = 7;         // key-values, encoded as a Metadata message
//	  string payload_type = 8;    // protobuf full message name, or "guild.raw"
//	  bytes payload = 9;          // the encoded payload
//	  uint32 error_code = 10;     // KIND_ERROR only
//	  string error_message = 11;  // KIND_ERROR only
//	  reserved 12;                // a grain-identity target, to be defined with grains
//	}
const (
	fieldKind          protowire.Number = 1
	fieldTargetPID     protowire.Number = 2
	fieldTargetName    protowire.Number = 3
	fieldSender        protowire.Number = 4
	fieldCorrelationID protowire.Number = 5
	fieldDeadline      protowire.Number = 6
	fieldMetadata      protowire.Number = 7
	fieldPayloadType   protowire.Number = 8
	fieldPayload       protowire.Number = 9
	fieldErrorCode     protowire.Number = 10
	fieldErrorMessage  protowire.Number = 11

	fieldPIDNode   protowire.Number = 1
	fieldPIDSerial protowire.Number = 2
)

// Kind says what an envelope is for. Its values are the protobuf enum Kind.
type Kind int32

// The kinds of envelope.
const (
	// KindUnspecified is the zero Kind: an envelope without a kind. The
	// transport drops such envelopes.
	KindUnspecified Kind = 0
	// KindSend is a one-way message.
	KindSend Kind = 1
	// KindRequest expects exactly one KindResponse or KindError envelope
	// back, carrying the same CorrelationID and addressed to the Sender.
	KindRequest Kind = 2
	// KindResponse answers a request; its payload is the reply.
	KindResponse Kind = 3
	// KindError answers a request that failed: ErrorCode and ErrorMessage
	// say why, and the payload, if any, carries details.
	KindError Kind = 4
	// KindSystem carries runtime traffic between nodes (watches,
	// termination notices, heartbeats); the cluster layer defines its
	// payloads.
	KindSystem Kind = 5
)

// String returns the kind's name, or "Kind(n)" for a value this version does
// not know.
func (k Kind) String() string {
	switch k {
	case KindUnspecified:
		return "unspecified"
	case KindSend:
		return "send"
	case KindRequest:
		return "request"
	case KindResponse:
		return "response"
	case KindError:
		return "error"
	case KindSystem:
		return "system"
	}
	return "Kind(" + strconv.FormatInt(int64(k), 10) + ")"
}

// Known reports whether k is one of the kinds this version defines, other
// than KindUnspecified. Unmarshal accepts any kind, so that a newer peer's
// new kinds are not malformed; the transport drops what it does not know.
func (k Kind) Known() bool { return k >= KindSend && k <= KindSystem }

// Envelope is the header and payload of one node-to-node message: one frame
// body is one encoded Envelope.
//
// The zero value of each field means "absent" and is not written. Strings
// are written as UTF-8; AppendTo replaces invalid sequences with U+FFFD
// (Go strings may hold any bytes, protobuf strings may not).
type Envelope struct {
	// Kind says what the envelope is for.
	Kind Kind
	// Target is the actor the envelope is for, when TargetName is empty.
	Target PID
	// TargetName is a registered name to deliver to. When it is non-empty
	// it is the target and Target is not written.
	TargetName string
	// Sender is the actor that sent the envelope, or zero for none.
	Sender PID
	// CorrelationID pairs a request with its response or error. Zero means
	// none (a send).
	CorrelationID uint64
	// Deadline is when a request stops being worth handling, in unix
	// nanoseconds; zero means no deadline.
	Deadline int64
	// Metadata is the message's key-values (trace context, the user a
	// gateway request comes from...), encoded as a Metadata message: see
	// AppendMetadata and ParseMetadata. After Unmarshal it aliases the
	// decoded buffer.
	Metadata []byte
	// PayloadType names the payload's type: a protobuf message's full name
	// (as MarshalPayload returns it), or RawBytesType. Empty with an empty
	// payload means no payload.
	PayloadType string
	// Payload is the encoded payload. After Unmarshal it aliases the
	// decoded buffer.
	Payload []byte
	// ErrorCode is the error's code in a KindError envelope: one of the
	// Code constants, or an application's own code (1000 and up).
	ErrorCode uint32
	// ErrorMessage is the error's text in a KindError envelope.
	ErrorMessage string
}

// Reset clears e, dropping its references into any decoded buffer.
func (e *Envelope) Reset() { *e = Envelope{} }

// maxFixedSize bounds the bytes an envelope needs beyond the contents of
// its strings and byte slices: 11 one-byte tags, the kind, two PIDs
// (a length and up to 2+5+1+10 bytes each), the correlation ID, the
// deadline, five lengths and the error code, all at their widest.
const maxFixedSize = 11 + 10 + 2*(1+18) + 10 + 8 + 5*10 + 5

// Size returns the number of bytes AppendTo appends for e.
func (e *Envelope) Size() int {
	n := 0
	if e.Kind != 0 {
		n += 1 + protowire.SizeVarint(uint64(int64(e.Kind)))
	}
	if e.TargetName != "" {
		n += 1 + protowire.SizeBytes(len(validUTF8(e.TargetName)))
	} else if !e.Target.IsZero() {
		n += 1 + protowire.SizeBytes(pidSize(e.Target))
	}
	if !e.Sender.IsZero() {
		n += 1 + protowire.SizeBytes(pidSize(e.Sender))
	}
	if e.CorrelationID != 0 {
		n += 1 + protowire.SizeVarint(e.CorrelationID)
	}
	if e.Deadline != 0 {
		n += 1 + protowire.SizeFixed64()
	}
	if len(e.Metadata) > 0 {
		n += 1 + protowire.SizeBytes(len(e.Metadata))
	}
	if e.PayloadType != "" {
		n += 1 + protowire.SizeBytes(len(validUTF8(e.PayloadType)))
	}
	if len(e.Payload) > 0 {
		n += 1 + protowire.SizeBytes(len(e.Payload))
	}
	if e.ErrorCode != 0 {
		n += 1 + protowire.SizeVarint(uint64(e.ErrorCode))
	}
	if e.ErrorMessage != "" {
		n += 1 + protowire.SizeBytes(len(validUTF8(e.ErrorMessage)))
	}
	return n
}

// AppendTo appends e's protobuf encoding to dst and returns the extended
// slice. Fields are written in field-number order and zero fields are left
// out, so equal envelopes encode to equal bytes.
func (e *Envelope) AppendTo(dst []byte) []byte {
	// Grow once by an upper bound of the size (unless a string needs its
	// invalid UTF-8 replaced), cheaper to compute than Size.
	dst = slices.Grow(dst, maxFixedSize+len(e.TargetName)+len(e.Metadata)+len(e.PayloadType)+len(e.Payload)+len(e.ErrorMessage))
	if e.Kind != 0 {
		dst = protowire.AppendTag(dst, fieldKind, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(int64(e.Kind)))
	}
	if e.TargetName != "" {
		dst = protowire.AppendTag(dst, fieldTargetName, protowire.BytesType)
		dst = protowire.AppendString(dst, validUTF8(e.TargetName))
	} else if !e.Target.IsZero() {
		dst = appendPID(dst, fieldTargetPID, e.Target)
	}
	if !e.Sender.IsZero() {
		dst = appendPID(dst, fieldSender, e.Sender)
	}
	if e.CorrelationID != 0 {
		dst = protowire.AppendTag(dst, fieldCorrelationID, protowire.VarintType)
		dst = protowire.AppendVarint(dst, e.CorrelationID)
	}
	if e.Deadline != 0 {
		dst = protowire.AppendTag(dst, fieldDeadline, protowire.Fixed64Type)
		dst = protowire.AppendFixed64(dst, uint64(e.Deadline))
	}
	if len(e.Metadata) > 0 {
		dst = protowire.AppendTag(dst, fieldMetadata, protowire.BytesType)
		dst = protowire.AppendBytes(dst, e.Metadata)
	}
	if e.PayloadType != "" {
		dst = protowire.AppendTag(dst, fieldPayloadType, protowire.BytesType)
		dst = protowire.AppendString(dst, validUTF8(e.PayloadType))
	}
	if len(e.Payload) > 0 {
		dst = protowire.AppendTag(dst, fieldPayload, protowire.BytesType)
		dst = protowire.AppendBytes(dst, e.Payload)
	}
	if e.ErrorCode != 0 {
		dst = protowire.AppendTag(dst, fieldErrorCode, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(e.ErrorCode))
	}
	if e.ErrorMessage != "" {
		dst = protowire.AppendTag(dst, fieldErrorMessage, protowire.BytesType)
		dst = protowire.AppendString(dst, validUTF8(e.ErrorMessage))
	}
	return dst
}

// Unmarshal decodes an envelope from b, replacing every field of e.
//
// Metadata and Payload alias b: they are valid only as long as b is (for a
// FrameReader's body, until its next Next), so copy them to keep them.
// Strings never alias b. A string equal to the value e held for the same
// field before the call is reused rather than allocated, so decoding a
// stream of envelopes into one Envelope allocates nothing while the target
// name and payload type repeat.
//
// Unmarshal follows protobuf's rules: unknown fields are skipped, a repeated
// scalar field keeps its last value, and repeated PID fields merge. It
// returns an error matching ErrMalformed, naming the field and the problem,
// for a truncated or overlong varint, a length beyond the buffer, an invalid
// field number or wire type, a known field with the wrong wire type, invalid
// UTF-8 in a string field, or both a target PID and a target name. On error
// e is reset.
func (e *Envelope) Unmarshal(b []byte) error {
	if err := e.unmarshal(b); err != nil {
		*e = Envelope{}
		return err
	}
	return nil
}

func (e *Envelope) unmarshal(b []byte) error {
	prevName, prevType, prevMsg := e.TargetName, e.PayloadType, e.ErrorMessage
	*e = Envelope{}
	var haveTargetPID, haveTargetName bool
	size := len(b)
	for len(b) > 0 {
		off := size - len(b)
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: envelope: field tag at offset %d: %v", ErrMalformed, off, parseError(n))
		}
		b = b[n:]
		var err error
		switch num {
		case fieldKind:
			var v uint64
			if v, n, err = consumeVarint(typ, b); err == nil {
				e.Kind = Kind(int32(v)) // protobuf truncates enum varints to int32
			}
		case fieldTargetPID:
			var v []byte
			if v, n, err = consumeBytes(typ, b); err == nil {
				haveTargetPID = true
				err = decodePID(v, &e.Target)
			}
		case fieldTargetName:
			var v []byte
			if v, n, err = consumeBytes(typ, b); err == nil {
				haveTargetName = true
				e.TargetName, err = decodeString(v, prevName)
			}
		case fieldSender:
			var v []byte
			if v, n, err = consumeBytes(typ, b); err == nil {
				err = decodePID(v, &e.Sender)
			}
		case fieldCorrelationID:
			e.CorrelationID, n, err = consumeVarint(typ, b)
		case fieldDeadline:
			var v uint64
			if v, n, err = consumeFixed64(typ, b); err == nil {
				e.Deadline = int64(v)
			}
		case fieldMetadata:
			e.Metadata, n, err = consumeBytes(typ, b)
		case fieldPayloadType:
			var v []byte
			if v, n, err = consumeBytes(typ, b); err == nil {
				e.PayloadType, err = decodeString(v, prevType)
			}
		case fieldPayload:
			e.Payload, n, err = consumeBytes(typ, b)
		case fieldErrorCode:
			var v uint64
			if v, n, err = consumeVarint(typ, b); err == nil {
				e.ErrorCode = uint32(v) // protobuf truncates uint32 varints
			}
		case fieldErrorMessage:
			var v []byte
			if v, n, err = consumeBytes(typ, b); err == nil {
				e.ErrorMessage, err = decodeString(v, prevMsg)
			}
		default:
			// An unknown field, from a newer peer: skip it.
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				err = parseError(n)
			}
		}
		if err != nil {
			return fmt.Errorf("%w: envelope field %d (%s) at offset %d: %v", ErrMalformed, num, fieldName(num), off, err)
		}
		b = b[n:]
	}
	if haveTargetPID && haveTargetName {
		return fmt.Errorf("%w: envelope has both target_pid (field 2) and target_name (field 3)", ErrMalformed)
	}
	if len(e.Metadata) == 0 {
		e.Metadata = nil
	}
	if len(e.Payload) == 0 {
		e.Payload = nil
	}
	return nil
}

// fieldName names an envelope field for error messages.
func fieldName(num protowire.Number) string {
	switch num {
	case fieldKind:
		return "kind"
	case fieldTargetPID:
		return "target_pid"
	case fieldTargetName:
		return "target_name"
	case fieldSender:
		return "sender"
	case fieldCorrelationID:
		return "correlation_id"
	case fieldDeadline:
		return "deadline"
	case fieldMetadata:
		return "metadata"
	case fieldPayloadType:
		return "payload_type"
	case fieldPayload:
		return "payload"
	case fieldErrorCode:
		return "error_code"
	case fieldErrorMessage:
		return "error_message"
	}
	return "unknown"
}

func pidSize(p PID) int {
	n := 0
	if p.Node != 0 {
		n += 1 + protowire.SizeVarint(uint64(p.Node))
	}
	if p.Serial != 0 {
		n += 1 + protowire.SizeVarint(p.Serial)
	}
	return n
}

func appendPID(dst []byte, num protowire.Number, p PID) []byte {
	dst = protowire.AppendTag(dst, num, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(pidSize(p)))
	if p.Node != 0 {
		dst = protowire.AppendTag(dst, fieldPIDNode, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(p.Node))
	}
	if p.Serial != 0 {
		dst = protowire.AppendTag(dst, fieldPIDSerial, protowire.VarintType)
		dst = protowire.AppendVarint(dst, p.Serial)
	}
	return dst
}

// decodePID merges the PID message in b into p, as protobuf merges a
// repeated message field.
func decodePID(b []byte, p *PID) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("PID field tag: %v", parseError(n))
		}
		b = b[n:]
		var err error
		switch num {
		case fieldPIDNode:
			var v uint64
			if v, n, err = consumeVarint(typ, b); err == nil {
				p.Node = uint32(v)
			}
		case fieldPIDSerial:
			p.Serial, n, err = consumeVarint(typ, b)
		default:
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				err = parseError(n)
			}
		}
		if err != nil {
			name := "unknown"
			switch num {
			case fieldPIDNode:
				name = "node"
			case fieldPIDSerial:
				name = "serial"
			}
			return fmt.Errorf("PID field %d (%s): %v", num, name, err)
		}
		b = b[n:]
	}
	return nil
}

func consumeVarint(typ protowire.Type, b []byte) (uint64, int, error) {
	if typ != protowire.VarintType {
		return 0, 0, wrongType(typ, protowire.VarintType)
	}
	v, n := protowire.ConsumeVarint(b)
	if n < 0 {
		return 0, 0, parseError(n)
	}
	return v, n, nil
}

func consumeFixed64(typ protowire.Type, b []byte) (uint64, int, error) {
	if typ != protowire.Fixed64Type {
		return 0, 0, wrongType(typ, protowire.Fixed64Type)
	}
	v, n := protowire.ConsumeFixed64(b)
	if n < 0 {
		return 0, 0, parseError(n)
	}
	return v, n, nil
}

func consumeBytes(typ protowire.Type, b []byte) ([]byte, int, error) {
	if typ != protowire.BytesType {
		return nil, 0, wrongType(typ, protowire.BytesType)
	}
	v, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return nil, 0, parseError(n)
	}
	return v, n, nil
}

// decodeString returns v as a string, reusing prev when it holds the same
// bytes, so that a repeated value does not allocate.
func decodeString(v []byte, prev string) (string, error) {
	if !utf8.Valid(v) {
		return "", errors.New("invalid UTF-8")
	}
	if string(v) == prev {
		return prev, nil
	}
	return string(v), nil
}

// validUTF8 returns s with invalid UTF-8 sequences replaced by U+FFFD. It
// allocates only when s is invalid.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

func wrongType(got, want protowire.Type) error {
	return fmt.Errorf("wire type %s, want %s", typeName(got), typeName(want))
}

func typeName(t protowire.Type) string {
	switch t {
	case protowire.VarintType:
		return "varint (0)"
	case protowire.Fixed64Type:
		return "fixed64 (1)"
	case protowire.BytesType:
		return "length-delimited (2)"
	case protowire.StartGroupType:
		return "start-group (3)"
	case protowire.EndGroupType:
		return "end-group (4)"
	case protowire.Fixed32Type:
		return "fixed32 (5)"
	}
	return "reserved (" + strconv.Itoa(int(t)) + ")"
}

// parseError describes a negative protowire length. It does not wrap
// io.ErrUnexpectedEOF: a short envelope is malformed, not a short stream.
func parseError(n int) error {
	err := protowire.ParseError(n)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("truncated: runs past the end of the envelope")
	}
	return err
}
