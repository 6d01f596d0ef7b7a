package wire

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestPayloadProtoRoundTrip(t *testing.T) {
	st, err := structpb.NewStruct(map[string]any{"gold": 12.0, "name": "ana", "items": []any{"sword", true}})
	if err != nil {
		t.Fatal(err)
	}
	inner, err := anypb.New(wrapperspb.String("inside"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []proto.Message{
		wrapperspb.String("hello"),
		wrapperspb.String(""), // encodes to no bytes at all
		durationpb.New(90 * time.Second),
		st,
		inner,
	} {
		name := string(m.ProtoReflect().Descriptor().FullName())
		t.Run(name, func(t *testing.T) {
			typ, b, err := MarshalPayload([]byte("pre"), m)
			if err != nil {
				t.Fatal(err)
			}
			if typ != name {
				t.Fatalf("type name = %q, want %q", typ, name)
			}
			if !bytes.HasPrefix(b, []byte("pre")) {
				t.Fatalf("MarshalPayload did not append to dst")
			}
			got, err := UnmarshalPayload(typ, b[3:], nil)
			if err != nil {
				t.Fatal(err)
			}
			gm, ok := got.(proto.Message)
			if !ok || !proto.Equal(gm, m) {
				t.Fatalf("got %v (%T), want %v", got, got, m)
			}
		})
	}
}

func TestPayloadTypedNilMessage(t *testing.T) {
	typ, b, err := MarshalPayload(nil, (*wrapperspb.StringValue)(nil))
	if err != nil || typ != "google.protobuf.StringValue" || len(b) != 0 {
		t.Fatalf("typed nil message: %q, %x, %v", typ, b, err)
	}
	got, err := UnmarshalPayload(typ, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := got.(*wrapperspb.StringValue); !ok || s == nil || s.Value != "" {
		t.Fatalf("got %#v, want an empty *StringValue", got)
	}
}

func TestPayloadRawBytes(t *testing.T) {
	raw := []byte{0, 1, 2, 0xff}
	typ, b, err := MarshalPayload(nil, raw)
	if err != nil || typ != RawBytesType || !bytes.Equal(b, raw) {
		t.Fatalf("raw: %q, %x, %v", typ, b, err)
	}
	got, err := UnmarshalPayload(RawBytesType, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	gb, ok := got.([]byte)
	if !ok || !bytes.Equal(gb, raw) {
		t.Fatalf("got %#v, want %x", got, raw)
	}
	b[0] = 99
	if gb[0] != 0 {
		t.Fatal("decoded raw bytes alias the input; they must be a copy")
	}
	// Empty raw bytes come back as an empty, non-nil slice.
	got, err = UnmarshalPayload(RawBytesType, nil, nil)
	if gb, ok := got.([]byte); err != nil || !ok || gb == nil || len(gb) != 0 {
		t.Fatalf("empty raw: %#v, %v", got, err)
	}
}

func TestPayloadDoesNotAliasInput(t *testing.T) {
	_, b, err := MarshalPayload(nil, &wrapperspb.BytesValue{Value: []byte("abc")})
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalPayload("google.protobuf.BytesValue", b, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0
	}
	if v := got.(*wrapperspb.BytesValue).Value; string(v) != "abc" {
		t.Fatalf("decoded message aliases the input: %q", v)
	}
}

func TestPayloadNotEncodable(t *testing.T) {
	type blob []byte
	type player struct{ Name string }
	tests := []struct {
		name string
		v    any
		want string // the Go type named in the error
	}{
		{"chan", make(chan int), "chan int"},
		{"struct", player{"ana"}, "wire.player"},
		{"pointer to struct", &player{"ana"}, "*wire.player"},
		{"string", "hello", "string"},
		{"int", 42, "int"},
		{"named bytes", blob("x"), "wire.blob"},
		{"nil", nil, "nil"},
		{"invalid UTF-8 in a proto string", wrapperspb.String("\xff"), "google.protobuf.StringValue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("keep")
			typ, out, err := MarshalPayload(dst, tt.v)
			if !errors.Is(err, ErrNotEncodable) {
				t.Fatalf("MarshalPayload(%T) = %v, want ErrNotEncodable", tt.v, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not name %q", err, tt.want)
			}
			if typ != "" || string(out) != "keep" {
				t.Fatalf("on error: type %q, out %q; want \"\" and dst unchanged", typ, out)
			}
		})
	}
}

func TestPayloadUnknownType(t *testing.T) {
	for _, name := range []string{"game.v1.NoSuchMessage", "", "not a name", "google.protobuf"} {
		if _, err := UnmarshalPayload(name, nil, nil); !errors.Is(err, ErrUnknownType) {
			t.Errorf("UnmarshalPayload(%q) = %v, want ErrUnknownType", name, err)
		}
	}
	// An enum's name is in the registry, but it is not a message.
	if _, err := UnmarshalPayload("google.protobuf.NullValue", nil, nil); !errors.Is(err, ErrUnknownType) {
		t.Errorf("enum name: %v, want ErrUnknownType", err)
	}
}

func TestPayloadCustomRegistry(t *testing.T) {
	_, b, err := MarshalPayload(nil, wrapperspb.String("hi"))
	if err != nil {
		t.Fatal(err)
	}
	empty := new(protoregistry.Types)
	if _, err := UnmarshalPayload("google.protobuf.StringValue", b, empty); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("type missing from the given registry: %v, want ErrUnknownType", err)
	}
	reg := new(protoregistry.Types)
	if err := reg.RegisterMessage((&wrapperspb.StringValue{}).ProtoReflect().Type()); err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalPayload("google.protobuf.StringValue", b, reg)
	if err != nil || got.(*wrapperspb.StringValue).GetValue() != "hi" {
		t.Fatalf("custom registry: %v, %v", got, err)
	}
}

func TestPayloadGarbage(t *testing.T) {
	for _, b := range [][]byte{
		{0xff, 0xff, 0xff},       // truncated varint tag
		{0x0a, 0x10, 'a'},        // length beyond the buffer
		{0x0a, 0x02, 0xff, 0xfe}, // invalid UTF-8 in a string field
	} {
		_, err := UnmarshalPayload("google.protobuf.StringValue", b, nil)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("UnmarshalPayload(StringValue, %x) = %v, want ErrMalformed", b, err)
		}
	}
}

// TestPayloadDecoderMatchesUnmarshalPayload: the caching decoder gives the
// same results and errors as UnmarshalPayload, whatever order the types
// come in, from several goroutines at once.
func TestPayloadDecoderMatchesUnmarshalPayload(t *testing.T) {
	d := NewPayloadDecoder(nil)
	inputs := []any{
		wrapperspb.String("a"), wrapperspb.Int64(7), []byte("raw"), wrapperspb.String("b"),
		wrapperspb.Int64(8), wrapperspb.String("c"),
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				v := inputs[(i+g)%len(inputs)]
				typ, b, err := MarshalPayload(nil, v)
				if err != nil {
					t.Error(err)
					return
				}
				got, err := d.Unmarshal(typ, b)
				if err != nil {
					t.Error(err)
					return
				}
				want, _ := UnmarshalPayload(typ, b, nil)
				if gm, ok := got.(proto.Message); ok {
					if !proto.Equal(gm, want.(proto.Message)) {
						t.Errorf("decoded %v, want %v", got, want)
					}
				} else if !bytes.Equal(got.([]byte), want.([]byte)) {
					t.Errorf("decoded %q, want %q", got, want)
				}
			}
		})
	}
	wg.Wait()
	if _, err := d.Unmarshal("no.such.Type", nil); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("unknown type: %v, want ErrUnknownType", err)
	}
	if _, err := d.Unmarshal("", nil); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("no type: %v, want ErrUnknownType", err)
	}
	// A cached type with bytes that do not decode.
	if _, err := d.Unmarshal("google.protobuf.StringValue", []byte{0x0a, 0x05, 'x'}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("garbage: %v, want ErrMalformed", err)
	}
}
