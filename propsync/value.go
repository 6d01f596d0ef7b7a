package propsync

import (
	"bytes"
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/guildkit/guild/propsync/propsyncpb"
)

// An op's value is the field's wire encoding as a part of the message
// that holds it: encode puts the value (a field's, a list element's or a
// map entry's) in an empty message of the parent's type and encodes
// that; the decoding side takes the field back out of such a message.

var deterministic = proto.MarshalOptions{Deterministic: true}

// encodeField encodes v as field fd of an empty message like parent.
func encodeField(parent protoreflect.Message, fd protoreflect.FieldDescriptor, v protoreflect.Value) ([]byte, error) {
	p := parent.New()
	p.Set(fd, v)
	return deterministic.Marshal(p.Interface())
}

// encodeElems encodes elements [from, to) of list l, the value of field
// fd, as field fd of an empty message like parent.
func encodeElems(d *Differ, parent protoreflect.Message, fd protoreflect.FieldDescriptor, l protoreflect.List, from, to int) ([]byte, error) {
	p := parent.New()
	nl := p.Mutable(fd).List()
	for i := from; i < to; i++ {
		nl.Append(d.visible(fd, l.Get(i)))
	}
	return deterministic.Marshal(p.Interface())
}

// encodeEntry encodes the entry k: v of map field fd.
func encodeEntry(parent protoreflect.Message, fd protoreflect.FieldDescriptor, k protoreflect.MapKey, v protoreflect.Value) ([]byte, error) {
	p := parent.New()
	p.Mutable(fd).Map().Set(k, v)
	return deterministic.Marshal(p.Interface())
}

// decodeParent decodes an op's value into an empty message like parent.
func decodeParent(parent protoreflect.Message, value []byte) (protoreflect.Message, error) {
	p := parent.New()
	if err := (proto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(value, p.Interface()); err != nil {
		return nil, fmt.Errorf("%w: the value does not decode as a %s: %v", ErrBadOp, parent.Descriptor().FullName(), err)
	}
	return p, nil
}

// clone returns a copy of m. proto.Clone would do, but that it drops a
// float field's -0 (it merges, and -0 == 0), which Diff tells from 0: the
// copy is decoded from m's encoding, and only a message that does not
// encode (a string that is not UTF-8) is cloned.
func clone(m proto.Message) proto.Message {
	b, err := proto.Marshal(m)
	if err == nil {
		c := m.ProtoReflect().New().Interface()
		if err = proto.Unmarshal(b, c); err == nil {
			return c
		}
	}
	return proto.Clone(m)
}

// copyInto makes dst, a message of src's type, a copy of src (see clone).
func copyInto(dst, src proto.Message) {
	proto.Reset(dst)
	if b, err := proto.Marshal(src); err == nil {
		if err = proto.Unmarshal(b, dst); err == nil {
			return
		}
		proto.Reset(dst)
	}
	proto.Merge(dst, src)
}

// visible returns v, a value of field (or element or map value) fd, as a
// client may see it: a message is copied without its private fields.
func (d *Differ) visible(fd protoreflect.FieldDescriptor, v protoreflect.Value) protoreflect.Value {
	if fd.IsMap() {
		fd = fd.MapValue()
	}
	if fd.Message() == nil {
		return v
	}
	c := clone(v.Message().Interface()).ProtoReflect()
	d.redact(c)
	return protoreflect.ValueOfMessage(c)
}

// scalarEqual compares two values of a scalar, enum or bytes field. Floats
// compare by their bits, so that NaN equals itself and -0 is not 0 (their
// encodings differ).
func scalarEqual(fd protoreflect.FieldDescriptor, a, b protoreflect.Value) bool {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return a.Bool() == b.Bool()
	case protoreflect.EnumKind:
		return a.Enum() == b.Enum()
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return a.Int() == b.Int()
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return a.Uint() == b.Uint()
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return math.Float64bits(a.Float()) == math.Float64bits(b.Float())
	case protoreflect.StringKind:
		return a.String() == b.String()
	case protoreflect.BytesKind:
		return bytes.Equal(a.Bytes(), b.Bytes())
	}
	return false
}

// keyStep returns the step to the entry k of map field fd.
func keyStep(fd protoreflect.FieldDescriptor, k protoreflect.MapKey) *propsyncpb.Step {
	s := &propsyncpb.Step{Field: uint32(fd.Number())}
	switch fd.MapKey().Kind() {
	case protoreflect.StringKind:
		s.At = &propsyncpb.Step_KeyString{KeyString: k.String()}
	case protoreflect.BoolKind:
		s.At = &propsyncpb.Step_KeyBool{KeyBool: k.Bool()}
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		s.At = &propsyncpb.Step_KeyUint{KeyUint: k.Uint()}
	default: // the signed integers
		s.At = &propsyncpb.Step_KeyInt{KeyInt: k.Int()}
	}
	return s
}

// mapKey returns the key of map field fd that step s names.
func mapKey(fd protoreflect.FieldDescriptor, s *propsyncpb.Step) (protoreflect.MapKey, error) {
	kind := fd.MapKey().Kind()
	bad := func() (protoreflect.MapKey, error) {
		return protoreflect.MapKey{}, fmt.Errorf("%w: field %s: a map with %v keys has no key %v", ErrBadOp, fd.FullName(), kind, s.GetAt())
	}
	switch kind {
	case protoreflect.StringKind:
		a, ok := s.At.(*propsyncpb.Step_KeyString)
		if !ok {
			return bad()
		}
		return protoreflect.ValueOfString(a.KeyString).MapKey(), nil
	case protoreflect.BoolKind:
		a, ok := s.At.(*propsyncpb.Step_KeyBool)
		if !ok {
			return bad()
		}
		return protoreflect.ValueOfBool(a.KeyBool).MapKey(), nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		a, ok := s.At.(*propsyncpb.Step_KeyUint)
		if !ok || a.KeyUint > math.MaxUint32 {
			return bad()
		}
		return protoreflect.ValueOfUint32(uint32(a.KeyUint)).MapKey(), nil
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		a, ok := s.At.(*propsyncpb.Step_KeyUint)
		if !ok {
			return bad()
		}
		return protoreflect.ValueOfUint64(a.KeyUint).MapKey(), nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		a, ok := s.At.(*propsyncpb.Step_KeyInt)
		if !ok || a.KeyInt < math.MinInt32 || a.KeyInt > math.MaxInt32 {
			return bad()
		}
		return protoreflect.ValueOfInt32(int32(a.KeyInt)).MapKey(), nil
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		a, ok := s.At.(*propsyncpb.Step_KeyInt)
		if !ok {
			return bad()
		}
		return protoreflect.ValueOfInt64(a.KeyInt).MapKey(), nil
	}
	return bad()
}
