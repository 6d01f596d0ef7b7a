package wire

import (
	"math"
	"os"
	"regexp"
	"strconv"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// schemaField is one field of the documented schema.
type schemaField struct {
	name  string
	num   int32
	typ   descriptorpb.FieldDescriptorProto_Type
	msg   string // type name for enum and message fields, as written in .proto
	oneof bool   // in the target oneof
}

var envelopeSchema = []schemaField{
	{"kind", 1, descriptorpb.FieldDescriptorProto_TYPE_ENUM, "Kind", false},
	{"target_pid", 2, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, "PID", true},
	{"target_name", 3, descriptorpb.FieldDescriptorProto_TYPE_STRING, "string", true},
	{"sender", 4, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, "PID", false},
	{"correlation_id", 5, descriptorpb.FieldDescriptorProto_TYPE_UINT64, "uint64", false},
	{"deadline", 6, descriptorpb.FieldDescriptorProto_TYPE_SFIXED64, "sfixed64", false},
	{"metadata", 7, descriptorpb.FieldDescriptorProto_TYPE_BYTES, "bytes", false},
	{"payload_type", 8, descriptorpb.FieldDescriptorProto_TYPE_STRING, "string", false},
	{"payload", 9, descriptorpb.FieldDescriptorProto_TYPE_BYTES, "bytes", false},
	{"error_code", 10, descriptorpb.FieldDescriptorProto_TYPE_UINT32, "uint32", false},
	{"error_message", 11, descriptorpb.FieldDescriptorProto_TYPE_STRING, "string", false},
}

// envelopeDescriptor builds the documented schema as a protobuf descriptor,
// so that the standard protobuf library can stand in for another language's
// implementation.
func envelopeDescriptor(t testing.TB) protoreflect.MessageDescriptor {
	t.Helper()
	s := proto.String
	optional := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	var fields []*descriptorpb.FieldDescriptorProto
	for _, f := range envelopeSchema {
		fd := &descriptorpb.FieldDescriptorProto{Name: s(f.name), Number: proto.Int32(f.num), Label: optional, Type: f.typ.Enum(), JsonName: s(f.name)}
		if f.typ == descriptorpb.FieldDescriptorProto_TYPE_ENUM || f.typ == descriptorpb.FieldDescriptorProto_TYPE_MESSAGE {
			fd.TypeName = s(".guild.wire.v1." + f.msg)
		}
		if f.oneof {
			fd.OneofIndex = proto.Int32(0)
		}
		fields = append(fields, fd)
	}
	kinds := []string{"KIND_UNSPECIFIED", "KIND_SEND", "KIND_REQUEST", "KIND_RESPONSE", "KIND_ERROR", "KIND_SYSTEM"}
	var values []*descriptorpb.EnumValueDescriptorProto
	for i, k := range kinds {
		values = append(values, &descriptorpb.EnumValueDescriptorProto{Name: s(k), Number: proto.Int32(int32(i))})
	}
	file := &descriptorpb.FileDescriptorProto{
		Name:     s("guild/wire/envelope.proto"),
		Package:  s("guild.wire.v1"),
		Syntax:   s("proto3"),
		EnumType: []*descriptorpb.EnumDescriptorProto{{Name: s("Kind"), Value: values}},
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: s("PID"), Field: []*descriptorpb.FieldDescriptorProto{
				{Name: s("node"), Number: proto.Int32(1), Label: optional, Type: descriptorpb.FieldDescriptorProto_TYPE_UINT32.Enum(), JsonName: s("node")},
				{Name: s("serial"), Number: proto.Int32(2), Label: optional, Type: descriptorpb.FieldDescriptorProto_TYPE_UINT64.Enum(), JsonName: s("serial")},
			}},
			{Name: s("Envelope"), Field: fields, OneofDecl: []*descriptorpb.OneofDescriptorProto{{Name: s("target")}},
				ReservedRange: []*descriptorpb.DescriptorProto_ReservedRange{{Start: proto.Int32(12), End: proto.Int32(13)}}},
		},
	}
	fd, err := protodesc.NewFile(file, nil)
	if err != nil {
		t.Fatalf("schema: %v", err)
	}
	return fd.Messages().ByName("Envelope")
}

// TestEnvelopeProtoFileMatchesSchema keeps envelope.proto honest: every
// field it declares in Envelope and PID is the one the code implements.
func TestEnvelopeProtoFileMatchesSchema(t *testing.T) {
	src, err := os.ReadFile("envelope.proto")
	if err != nil {
		t.Fatal(err)
	}
	decl := regexp.MustCompile(`(?m)^\s*(\w+)\s+(\w+)\s*=\s*(\d+);`)
	message := regexp.MustCompile(`(?s)message (\w+) \{(.*?)\n\}`)
	found := map[string]map[string]string{}
	for _, m := range message.FindAllSubmatch(src, -1) {
		fields := map[string]string{}
		for _, d := range decl.FindAllSubmatch(m[2], -1) {
			fields[string(d[2])] = string(d[1]) + " = " + string(d[3])
		}
		found[string(m[1])] = fields
	}
	want := map[string]map[string]string{
		"PID": {"node": "uint32 = 1", "serial": "uint64 = 2"},
	}
	env := map[string]string{}
	for _, f := range envelopeSchema {
		env[f.name] = f.msg + " = " + strconv.Itoa(int(f.num))
	}
	want["Envelope"] = env
	for msg, fields := range want {
		if len(found[msg]) != len(fields) {
			t.Errorf("envelope.proto message %s declares %d fields, code has %d: %v", msg, len(found[msg]), len(fields), found[msg])
		}
		for name, d := range fields {
			if found[msg][name] != d {
				t.Errorf("envelope.proto %s.%s: %q, want %q", msg, name, found[msg][name], d)
			}
		}
	}
}

// TestEnvelopeInteropWithProtobuf checks both directions against the
// standard protobuf library working from the documented schema.
func TestEnvelopeInteropWithProtobuf(t *testing.T) {
	md := envelopeDescriptor(t)
	for _, e := range []*Envelope{
		fullEnvelope(),
		{Kind: KindError, TargetName: ".lobby", CorrelationID: 1, ErrorCode: CodeNotFound, ErrorMessage: "no such name"},
		{Kind: KindSend, Target: PID{Node: math.MaxUint32, Serial: math.MaxUint64}, Deadline: -5, PayloadType: RawBytesType, Payload: []byte{0}},
		{Kind: 77},
		{},
	} {
		// Ours → protobuf.
		b := e.AppendTo(nil)
		m := dynamicpb.NewMessage(md)
		if err := (proto.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(b, m); err != nil {
			t.Fatalf("protobuf cannot decode %s: %v", dump(e), err)
		}
		if unknown := m.GetUnknown(); len(unknown) != 0 {
			t.Fatalf("protobuf found unknown fields %x in %s", unknown, dump(e))
		}
		got := fromDynamic(m)
		if !equalEnvelope(&got, e) {
			t.Fatalf("protobuf read\n %s\nwant\n %s", dump(&got), dump(e))
		}
		// Protobuf → ours. (The Go protobuf library writes oneof fields
		// after the others, so its bytes differ from ours in order only.)
		pb, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if len(pb) != len(b) {
			t.Fatalf("protobuf encodes %s in %d bytes, we use %d", dump(e), len(pb), len(b))
		}
		var back Envelope
		if err := back.Unmarshal(pb); err != nil {
			t.Fatalf("cannot decode protobuf's encoding: %v", err)
		}
		if !equalEnvelope(&back, e) {
			t.Fatalf("from protobuf\n %s\nwant\n %s", dump(&back), dump(e))
		}
	}
}

// fromDynamic reads a dynamic Envelope message into an Envelope.
func fromDynamic(m *dynamicpb.Message) Envelope {
	fd := m.Descriptor().Fields()
	get := func(name string) protoreflect.Value { return m.Get(fd.ByName(protoreflect.Name(name))) }
	pid := func(name string) PID {
		if !m.Has(fd.ByName(protoreflect.Name(name))) {
			return PID{}
		}
		p := get(name).Message()
		pf := p.Descriptor().Fields()
		return PID{Node: uint32(p.Get(pf.ByName("node")).Uint()), Serial: p.Get(pf.ByName("serial")).Uint()}
	}
	return Envelope{
		Kind:          Kind(get("kind").Enum()),
		Target:        pid("target_pid"),
		TargetName:    get("target_name").String(),
		Sender:        pid("sender"),
		CorrelationID: get("correlation_id").Uint(),
		Deadline:      get("deadline").Int(),
		Metadata:      get("metadata").Bytes(),
		PayloadType:   get("payload_type").String(),
		Payload:       get("payload").Bytes(),
		ErrorCode:     uint32(get("error_code").Uint()),
		ErrorMessage:  get("error_message").String(),
	}
}
