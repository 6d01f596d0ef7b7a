package wire

import (
	"errors"
	"fmt"
	"sync/atomic"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// RawBytesType is the payload type name of a raw []byte payload. It is not
// a protobuf message name: protobuf has no package "guild" message "raw",
// and guild reserves the name.
const RawBytesType = "guild.raw"

// MarshalPayload encodes v for the wire, appending its bytes to dst, and
// returns the payload type name to put in Envelope.PayloadType along with
// the extended slice.
//
// Only two kinds of value can cross a process boundary:
//   - a proto.Message: typeName is the message's full name (for example
//     "google.protobuf.StringValue") and the bytes are its standard binary
//     encoding; a typed nil message encodes as the empty message;
//   - a []byte: typeName is RawBytesType and the bytes are v itself.
//
// Anything else (a struct, a string, a chan, a named type based on []byte,
// nil) returns an error matching ErrNotEncodable that names v's Go type, as
// does a message that protobuf refuses to encode (for example a string
// field holding invalid UTF-8). On error dst is returned unchanged, so the
// caller can report the error to the sender without touching the
// connection.
func MarshalPayload(dst []byte, v any) (typeName string, out []byte, err error) {
	switch m := v.(type) {
	case []byte:
		return RawBytesType, append(dst, m...), nil
	case proto.Message:
		name := string(m.ProtoReflect().Descriptor().FullName())
		out, err := proto.MarshalOptions{}.MarshalAppend(dst, m)
		if err != nil {
			return "", dst, fmt.Errorf("%w: %s: %v", ErrNotEncodable, name, err)
		}
		return name, out, nil
	case nil:
		return "", dst, fmt.Errorf("%w: nil (send a proto.Message or []byte)", ErrNotEncodable)
	}
	return "", dst, fmt.Errorf("%w: %T is neither a proto.Message nor []byte", ErrNotEncodable, v)
}

// UnmarshalPayload decodes a payload that MarshalPayload encoded. typeName
// RawBytesType returns a copy of b as a []byte (never nil, and never
// aliasing b). Any other name is looked up as a protobuf message in types
// (protoregistry.GlobalTypes when types is nil), and the result is a new
// message of that type, such as *wrapperspb.StringValue; it does not alias
// b. The same registry resolves any google.protobuf.Any fields inside it.
//
// An empty or unregistered type name returns an error matching
// ErrUnknownType; bytes that do not decode as the type return an error
// matching ErrMalformed.
func UnmarshalPayload(typeName string, b []byte, types *protoregistry.Types) (any, error) {
	if typeName == RawBytesType {
		return decodeRaw(b), nil
	}
	if types == nil {
		types = protoregistry.GlobalTypes
	}
	mt, err := findType(typeName, types)
	if err != nil {
		return nil, err
	}
	return decodeMessage(mt, b, types)
}

func decodeRaw(b []byte) []byte {
	out := make([]byte, len(b))
	copy(out, b)
	return out
}

func findType(typeName string, types *protoregistry.Types) (protoreflect.MessageType, error) {
	if typeName == "" {
		return nil, fmt.Errorf("%w: the envelope names no payload type", ErrUnknownType)
	}
	mt, err := types.FindMessageByName(protoreflect.FullName(typeName))
	if err != nil {
		if errors.Is(err, protoregistry.NotFound) {
			return nil, fmt.Errorf("%w: %q is not in the protobuf registry", ErrUnknownType, typeName)
		}
		return nil, fmt.Errorf("%w: %q: %v", ErrUnknownType, typeName, err)
	}
	return mt, nil
}

func decodeMessage(mt protoreflect.MessageType, b []byte, types *protoregistry.Types) (any, error) {
	m := mt.New().Interface()
	if err := (proto.UnmarshalOptions{Resolver: types}).Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("%w: payload of type %s: %v", ErrMalformed, mt.Descriptor().FullName(), err)
	}
	return m, nil
}

// PayloadDecoder decodes payloads exactly as UnmarshalPayload does, but
// remembers the last message type it resolved, so that a stream of
// messages of one type skips the registry lookup. It is safe for
// concurrent use. Create it with NewPayloadDecoder.
type PayloadDecoder struct {
	types *protoregistry.Types
	last  atomic.Pointer[namedType]
}

type namedType struct {
	name string
	mt   protoreflect.MessageType
}

// NewPayloadDecoder returns a PayloadDecoder that resolves types in types
// (protoregistry.GlobalTypes when nil). The registry must not change the
// type registered under a name afterwards.
func NewPayloadDecoder(types *protoregistry.Types) *PayloadDecoder {
	if types == nil {
		types = protoregistry.GlobalTypes
	}
	return &PayloadDecoder{types: types}
}

// Unmarshal decodes a payload; see UnmarshalPayload.
func (d *PayloadDecoder) Unmarshal(typeName string, b []byte) (any, error) {
	if typeName == RawBytesType {
		return decodeRaw(b), nil
	}
	if last := d.last.Load(); last != nil && last.name == typeName {
		return decodeMessage(last.mt, b, d.types)
	}
	mt, err := findType(typeName, d.types)
	if err != nil {
		return nil, err
	}
	d.last.Store(&namedType{name: typeName, mt: mt})
	return decodeMessage(mt, b, d.types)
}
