// Package syncgen is the code generator of property sync's diff code,
// run by "guild gen": for every .proto file with a message marked
//
//	option (guild.propsync.synced) = true;
//
// it writes a <file>_sync.pb.go beside protoc-gen-go's output, with a
// method PropsyncDiff (package propsync's Generated) on every synced
// message and every message of the file that one reaches through its
// fields. The code compares two versions of a message field by field in
// typed Go, as propsync.Diff does by reflection, emits the same ops, and
// for a Tracker copies what changed into the version it keeps. Fields
// marked (guild.propsync.private) are neither compared nor copied; those
// a Differ marks private on the Go side are skipped at run time (Walk.Skip).
//
// It handles the fields of proto3 files: scalars, enums, strings and
// bytes (with or without presence), messages, oneofs, repeated fields and
// maps. A message field whose type is of another file goes through
// propsync.Walk.Message (that type's own generated code, or reflection);
// a proto3 optional bytes field is left to reflection
// (propsync.Walk.Field). A file of another syntax with a synced message
// is an error, and so is a field or a oneof, of a message that gets code,
// whose Go name is PropsyncDiff (propsync_diff): it would clash with the
// method.
package syncgen

import (
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"

	"github.com/guildkit/guild/propsync/propsyncpb"
)

// The packages generated code refers to.
const (
	propsyncPkg  = protogen.GoImportPath("github.com/guildkit/guild/propsync")
	protowirePkg = protogen.GoImportPath("google.golang.org/protobuf/encoding/protowire")
	protoPkg     = protogen.GoImportPath("google.golang.org/protobuf/proto")
	mathPkg      = protogen.GoImportPath("math")
	bytesPkg     = protogen.GoImportPath("bytes")
	slicesPkg    = protogen.GoImportPath("slices")
)

// Generate writes the diff code of every file of gen that is to be
// generated and has a synced message.
func Generate(gen *protogen.Plugin) error {
	gen.SupportedFeatures = uint64(pluginpb.CodeGeneratorResponse_FEATURE_PROTO3_OPTIONAL)
	for _, f := range gen.Files {
		if !f.Generate || !hasSynced(f.Messages) {
			continue
		}
		if f.Desc.Syntax() != protoreflect.Proto3 {
			return fmt.Errorf("%s: a synced message needs a proto3 file (guild gen's diff code handles proto3 only)", f.Desc.Path())
		}
		if err := checkNames(f); err != nil {
			return err
		}
		generateFile(gen, f)
	}
	return nil
}

// hasSynced reports whether one of ms, or a message nested in them, is
// marked synced.
func hasSynced(ms []*protogen.Message) bool {
	for _, m := range ms {
		if option(m.Desc.Options(), propsyncpb.E_Synced) || hasSynced(m.Messages) {
			return true
		}
	}
	return false
}

// option reads a bool extension of a descriptor's options. The options
// may hold it as an unknown field (the compiler's descriptors): they are
// decoded again with the extension known.
func option(opts proto.Message, ext protoreflect.ExtensionType) bool {
	if opts == nil || !opts.ProtoReflect().IsValid() {
		return false
	}
	b, err := proto.Marshal(opts)
	if err != nil {
		return false
	}
	types := new(protoregistry.Types)
	if err := types.RegisterExtension(ext); err != nil {
		return false
	}
	o := opts.ProtoReflect().New().Interface()
	if err := (proto.UnmarshalOptions{Resolver: types}).Unmarshal(b, o); err != nil {
		return false
	}
	v, _ := proto.GetExtension(o, ext).(bool)
	return v
}

func private(f *protogen.Field) bool {
	opts, _ := f.Desc.Options().(*descriptorpb.FieldOptions)
	return opts != nil && option(opts, propsyncpb.E_Private)
}

// checkNames returns an error naming the first field or oneof of a
// message of f that gets diff code whose Go name is that of the method
// the code adds (PropsyncDiff): the generated Go would not compile.
func checkNames(f *protogen.File) error {
	const method = "PropsyncDiff"
	for _, m := range reached(f) {
		for _, fd := range m.Fields {
			if fd.GoName == method {
				return fmt.Errorf("%s: message %s: field %s: its Go name %s is that of the method of property sync's diff code; rename the field",
					f.Desc.Path(), m.Desc.FullName(), fd.Desc.Name(), method)
			}
		}
		for _, o := range m.Oneofs {
			if o.GoName == method && !o.Desc.IsSynthetic() {
				return fmt.Errorf("%s: message %s: oneof %s: its Go name %s is that of the method of property sync's diff code; rename the oneof",
					f.Desc.Path(), m.Desc.FullName(), o.Desc.Name(), method)
			}
		}
	}
	return nil
}

// generateFile writes the diff code of one file.
func generateFile(gen *protogen.Plugin, f *protogen.File) {
	g := gen.NewGeneratedFile(f.GeneratedFilenamePrefix+"_sync.pb.go", f.GoImportPath)
	g.P("// Code generated by guild gen (propsync/syncgen). DO NOT EDIT.")
	g.P("// source: ", f.Desc.Path())
	g.P()
	g.P("package ", f.GoPackageName)
	w := &writer{g: g, file: f}
	for _, m := range reached(f) {
		w.message(m)
	}
}

// reached returns the messages of f that get code: the synced ones, and
// the messages of f they reach through their fields, at any depth, in
// the order of the file.
func reached(f *protogen.File) []*protogen.Message {
	var all []*protogen.Message
	var list func(ms []*protogen.Message)
	list = func(ms []*protogen.Message) {
		for _, m := range ms {
			if !m.Desc.IsMapEntry() {
				all = append(all, m)
			}
			list(m.Messages)
		}
	}
	list(f.Messages)
	in := make(map[protoreflect.FullName]bool)
	var reach func(m *protogen.Message)
	reach = func(m *protogen.Message) {
		if in[m.Desc.FullName()] || m.Desc.ParentFile().Path() != f.Desc.Path() {
			return
		}
		in[m.Desc.FullName()] = true
		for _, fd := range m.Fields {
			switch {
			case fd.Desc.IsMap():
				if v := fd.Message.Fields[1]; v.Message != nil {
					reach(v.Message)
				}
			case fd.Message != nil:
				reach(fd.Message)
			}
		}
	}
	for _, m := range all {
		if option(m.Desc.Options(), propsyncpb.E_Synced) {
			reach(m)
		}
	}
	var out []*protogen.Message
	for _, m := range all {
		if in[m.Desc.FullName()] {
			out = append(out, m)
		}
	}
	return out
}

// writer writes one file's diff code.
type writer struct {
	g    *protogen.GeneratedFile
	file *protogen.File
}

func (w *writer) P(v ...any) { w.g.P(v...) }

func (w *writer) id(pkg protogen.GoImportPath, name string) string {
	return w.g.QualifiedGoIdent(pkg.Ident(name))
}

// foreign reports whether id is of another Go package than this file's.
// A function body of the generated code never names such an identifier:
// protogen names the package's import after its path, so that a local
// variable of the code (common, set, w, ...) could shadow it.
func (w *writer) foreign(id protogen.GoIdent) bool {
	return id.GoImportPath != w.file.GoImportPath
}

// local reports whether message m has generated code of this file.
func (w *writer) local(m *protogen.Message) bool {
	return m.Desc.ParentFile().Path() == w.file.Desc.Path()
}

func (w *writer) message(m *protogen.Message) {
	name := m.GoIdent.GoName
	walk := "*" + w.id(propsyncPkg, "Walk")
	w.P()
	w.P("// PropsyncDiff implements propsync.Generated: it diffs x with last, a *", name, ".")
	w.P("func (x *", name, ") PropsyncDiff(w ", walk, ", last ", w.id(protoPkg, "Message"), ") {")
	w.P("x.propsyncDiff(w, last.(*", name, "))")
	w.P("}")
	w.P()
	w.P("func (x *", name, ") propsyncDiff(w ", walk, ", last *", name, ") {")
	w.P("keep, skip := w.Keep(), w.Skip(x)")
	w.P("_, _ = keep, skip")
	for _, f := range m.Fields {
		switch {
		case f.Oneof != nil && !f.Oneof.Desc.IsSynthetic():
			if f.Oneof.Fields[0] != f {
				continue
			}
			// A case marked private on the Go side: the oneof goes to
			// reflection, which knows the marks.
			var marked []string
			for _, c := range f.Oneof.Fields {
				marked = append(marked, "skip["+strconv.Itoa(c.Desc.Index())+"]")
			}
			w.P("if skip != nil && (", strings.Join(marked, " || "), ") {")
			w.P("w.Field(", num(f), ", x, last)")
			w.P("} else {")
			w.oneof(f.Oneof)
			w.P("}")
		case private(f):
			// neither compared nor copied
		default:
			w.P("if skip == nil || !skip[", strconv.Itoa(f.Desc.Index()), "] {")
			switch {
			case f.Desc.IsMap():
				w.mapField(f)
			case f.Desc.IsList():
				w.list(f)
			case f.Message != nil:
				w.singularMessage(f)
			case f.Desc.HasPresence():
				w.optional(f)
			default:
				w.scalar(f)
			}
			w.P("}")
		}
	}
	w.P("}")
}

func num(f *protogen.Field) string { return strconv.Itoa(int(f.Desc.Number())) }

// wireType returns the protowire name of a scalar kind's wire type.
func (w *writer) wireType(k protoreflect.Kind) string {
	switch k {
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		return w.id(protowirePkg, "Fixed32Type")
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		return w.id(protowirePkg, "Fixed64Type")
	case protoreflect.StringKind, protoreflect.BytesKind:
		return w.id(protowirePkg, "BytesType")
	}
	return w.id(protowirePkg, "VarintType")
}

// appendValue returns the expression that appends scalar v of kind k
// (without its tag) to b.
func (w *writer) appendValue(k protoreflect.Kind, b, v string) string {
	pw := func(name string) string { return w.id(protowirePkg, name) }
	switch k {
	case protoreflect.BoolKind:
		return pw("AppendVarint") + "(" + b + ", " + pw("EncodeBool") + "(" + v + "))"
	case protoreflect.Sint32Kind, protoreflect.Sint64Kind:
		return pw("AppendVarint") + "(" + b + ", " + pw("EncodeZigZag") + "(int64(" + v + ")))"
	case protoreflect.Int32Kind, protoreflect.EnumKind:
		return pw("AppendVarint") + "(" + b + ", uint64(int64(" + v + ")))"
	case protoreflect.Int64Kind, protoreflect.Uint32Kind, protoreflect.Uint64Kind:
		return pw("AppendVarint") + "(" + b + ", uint64(" + v + "))"
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind:
		return pw("AppendFixed32") + "(" + b + ", uint32(" + v + "))"
	case protoreflect.FloatKind:
		return pw("AppendFixed32") + "(" + b + ", " + w.id(mathPkg, "Float32bits") + "(" + v + "))"
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind:
		return pw("AppendFixed64") + "(" + b + ", uint64(" + v + "))"
	case protoreflect.DoubleKind:
		return pw("AppendFixed64") + "(" + b + ", " + w.id(mathPkg, "Float64bits") + "(" + v + "))"
	case protoreflect.StringKind: // checked as protobuf checks it: w.Valid
		return pw("AppendString") + "(" + b + ", w.Valid(" + v + "))"
	case protoreflect.BytesKind:
		return pw("AppendBytes") + "(" + b + ", " + v + ")"
	}
	panic(fmt.Sprintf("syncgen: no scalar encoding for kind %v", k))
}

// appendTagged returns the expression that appends field n's record of
// scalar v of kind k to b.
func (w *writer) appendTagged(k protoreflect.Kind, n int, b, v string) string {
	tag := w.id(protowirePkg, "AppendTag") + "(" + b + ", " + strconv.Itoa(n) + ", " + w.wireType(k) + ")"
	return w.appendValue(k, tag, v)
}

// differs returns the expression that is true when scalars a and b of
// kind k differ (floats by their bits, as Diff).
func (w *writer) differs(k protoreflect.Kind, a, b string) string {
	switch k {
	case protoreflect.FloatKind:
		f := w.id(mathPkg, "Float32bits")
		return f + "(" + a + ") != " + f + "(" + b + ")"
	case protoreflect.DoubleKind:
		f := w.id(mathPkg, "Float64bits")
		return f + "(" + a + ") != " + f + "(" + b + ")"
	case protoreflect.BytesKind:
		return "!" + w.id(bytesPkg, "Equal") + "(" + a + ", " + b + ")"
	}
	return a + " != " + b
}

// has returns the expression that is true when scalar v of kind k, a
// field without presence, is set (not its default).
func (w *writer) has(k protoreflect.Kind, v string) string {
	switch k {
	case protoreflect.BoolKind:
		return v
	case protoreflect.StringKind:
		return v + ` != ""`
	case protoreflect.BytesKind:
		return "len(" + v + ") > 0"
	case protoreflect.FloatKind:
		return w.id(mathPkg, "Float32bits") + "(" + v + ") != 0"
	case protoreflect.DoubleKind:
		return w.id(mathPkg, "Float64bits") + "(" + v + ") != 0"
	}
	return v + " != 0"
}

// copied returns v as the kept version holds it: bytes are copied (the
// state's may be changed in place).
func (w *writer) copied(k protoreflect.Kind, v string) string {
	if k == protoreflect.BytesKind {
		return w.id(bytesPkg, "Clone") + "(" + v + ")"
	}
	return v
}

func (w *writer) fieldStep(f *protogen.Field) string {
	return w.id(propsyncPkg, "FieldStep") + "(" + num(f) + ")"
}

// keep writes a statement that runs only when the walk keeps the old
// version up to date (Walk.Keep).
func (w *writer) keep(stmt ...any) {
	w.P("if keep {")
	w.P(stmt...)
	w.P("}")
}

// clearWhenEmpty opens the diff of a repeated or map field f (x in the
// new version, l in the old): when x is empty, l is CLEARed if it was
// not; else the block it leaves open follows.
func (w *writer) clearWhenEmpty(f *protogen.Field, x, l string) {
	w.P("if len(", x, ") == 0 {")
	w.P("if len(", l, ") > 0 {")
	w.P("w.Clear(", num(f), ")")
	w.keep(l, " = nil")
	w.P("}")
	w.P("} else {")
}

// setScalar writes the SET of scalar field f to v.
func (w *writer) setScalar(f *protogen.Field, v string) {
	w.P("w.Set(", w.fieldStep(f), ", ", w.appendTagged(f.Desc.Kind(), int(f.Desc.Number()), "nil", v), ")")
}

// scalar writes the diff of a scalar field without presence.
func (w *writer) scalar(f *protogen.Field) {
	k, x, l := f.Desc.Kind(), "x."+f.GoName, "last."+f.GoName
	w.P("if ", w.differs(k, x, l), " {")
	w.P("if ", w.has(k, x), " {")
	w.setScalar(f, x)
	w.P("} else {")
	w.P("w.Clear(", num(f), ")")
	w.P("}")
	w.keep(l, " = ", w.copied(k, x))
	w.P("}")
}

// optional writes the diff of a scalar field with presence (proto3
// optional): a pointer, but for bytes, which go to reflection.
func (w *writer) optional(f *protogen.Field) {
	k, x, l := f.Desc.Kind(), "x."+f.GoName, "last."+f.GoName
	if k == protoreflect.BytesKind {
		w.P("w.Field(", num(f), ", x, last)")
		return
	}
	w.P("switch {")
	w.P("case ", x, " == nil && ", l, " != nil:")
	w.P("w.Clear(", num(f), ")")
	w.keep(l, " = nil")
	w.P("case ", x, " != nil && (", l, " == nil || ", w.differs(k, "*"+x, "*"+l), "):")
	w.setScalar(f, "*"+x)
	w.P("if keep {")
	w.P("v := *", x)
	w.P(l, " = &v")
	w.P("}")
	w.P("}")
}

// descend writes the diff of messages x and l, both non-nil, of field f's
// message type, at step.
func (w *writer) descend(m *protogen.Message, step, x, l string) {
	if !w.local(m) {
		w.P("w.Message(", step, ", ", x, ", ", l, ")")
		return
	}
	w.P("w.Push(", step, ")")
	w.P(x, ".propsyncDiff(w, ", l, ")")
	w.P("w.Pop()")
}

// singularMessage writes the diff of a message field.
func (w *writer) singularMessage(f *protogen.Field) {
	x, l := "x."+f.GoName, "last."+f.GoName
	w.P("switch {")
	w.P("case ", x, " != nil && ", l, " != nil:")
	w.descend(f.Message, w.fieldStep(f), x, l)
	w.P("case ", x, " != nil:")
	w.P("w.Set(", w.fieldStep(f), ", w.AppendMessage(nil, ", num(f), ", ", x, "))")
	w.keep(l, " = ", w.id(propsyncPkg, "Copy"), "(", x, ")")
	w.P("case ", l, " != nil:")
	w.P("w.Clear(", num(f), ")")
	w.keep(l, " = nil")
	w.P("}")
}

// appendElems writes the statements that append to b the records of
// field f's elements in slice s (packed when the field is).
func (w *writer) appendElems(f *protogen.Field, b, s string) {
	k, n := f.Desc.Kind(), int(f.Desc.Number())
	switch {
	case f.Message != nil:
		w.P("for _, e := range ", s, " {")
		w.P(b, " = w.AppendMessage(", b, ", ", strconv.Itoa(n), ", e)")
		w.P("}")
	case f.Desc.IsPacked():
		w.P("var p []byte")
		w.P("for _, e := range ", s, " {")
		w.P("p = ", w.appendValue(k, "p", "e"))
		w.P("}")
		w.P(b, " = ", w.id(protowirePkg, "AppendTag"), "(", b, ", ", strconv.Itoa(n), ", ", w.id(protowirePkg, "BytesType"), ")")
		w.P(b, " = ", w.id(protowirePkg, "AppendBytes"), "(", b, ", p)")
	default:
		w.P("for _, e := range ", s, " {")
		w.P(b, " = ", w.appendTagged(k, n, b, "e"))
		w.P("}")
	}
}

// list writes the diff of a repeated field.
func (w *writer) list(f *protogen.Field) {
	k, x, l := f.Desc.Kind(), "x."+f.GoName, "last."+f.GoName
	w.clearWhenEmpty(f, x, l)
	w.P("common := min(len(", x, "), len(", l, "))")
	w.P("for i := 0; i < common; i++ {")
	step := w.id(propsyncPkg, "IndexStep") + "(" + num(f) + ", i)"
	if f.Message != nil {
		w.descendOrEmpty(f.Message, step, x+"[i]", l+"[i]")
	} else {
		w.P("if ", w.differs(k, x+"[i]", l+"[i]"), " {")
		w.P("{")
		w.P("var b []byte")
		w.appendElems(f, "b", x+"[i:i+1]")
		w.P("w.Set(", step, ", b)")
		w.P("}")
		w.keep(l, "[i] = ", w.copied(k, x+"[i]"))
		w.P("}")
	}
	w.P("}")
	w.P("switch {")
	w.P("case len(", x, ") < len(", l, "):")
	w.P("w.Truncate(", num(f), ", len(", x, "))")
	w.P("if keep {")
	w.P("clear(", l, "[len(", x, "):])")
	w.P(l, " = ", l, "[:len(", x, ")]")
	w.P("}")
	w.P("case len(", x, ") > len(", l, "):")
	w.P("{")
	w.P("var b []byte")
	w.appendElems(f, "b", x+"[common:]")
	w.P("w.Append(", num(f), ", b)")
	w.P("}")
	w.P("if keep {")
	switch {
	case f.Message != nil:
		w.P("for _, e := range ", x, "[common:] {")
		w.P(l, " = append(", l, ", ", w.id(propsyncPkg, "Copy"), "(e))")
		w.P("}")
	case k == protoreflect.BytesKind:
		w.P("for _, e := range ", x, "[common:] {")
		w.P(l, " = append(", l, ", ", w.id(bytesPkg, "Clone"), "(e))")
		w.P("}")
	default:
		w.P(l, " = append(", l, ", ", x, "[common:]...)")
	}
	w.P("}")
	w.P("}")
	w.P("}")
}

// keySort returns the statement that sorts slice s of the keys of a map
// whose key field is key (false before true for bool keys, as Diff).
func (w *writer) keySort(key *protogen.Field, s string) string {
	if key.Desc.Kind() == protoreflect.BoolKind {
		return w.id(slicesPkg, "SortFunc") + "(" + s + ", func(a, b bool) int {\nswitch {\ncase a == b:\nreturn 0\ncase b:\nreturn -1\n}\nreturn 1\n})"
	}
	return w.id(slicesPkg, "Sort") + "(" + s + ")"
}

// mapField writes the diff of a map field.
func (w *writer) mapField(f *protogen.Field) {
	x, l := "x."+f.GoName, "last."+f.GoName
	key, val := f.Message.Fields[0], f.Message.Fields[1]
	kk := key.Desc.Kind()
	keyType := fieldGoType(w.g, key)
	step := w.id(propsyncPkg, "KeyStep") + "(" + num(f) + ", k)"
	w.clearWhenEmpty(f, x, l)
	w.P("had := len(", l, ")")
	w.P("var set []", keyType)
	w.P("for k, v := range ", x, " {")
	if val.Message != nil {
		w.P("_, ok := ", l, "[k]")
	} else {
		w.P("lv, ok := ", l, "[k]")
	}
	w.P("switch {")
	w.P("case !ok:")
	w.P("set = append(set, k)")
	if val.Message != nil {
		w.P("default:")
		w.descendOrEmpty(val.Message, step, "v", l+"[k]")
	} else {
		w.P("case ", w.differs(val.Desc.Kind(), "v", "lv"), ":")
		w.P("set = append(set, k)")
	}
	w.P("}")
	w.P("}")
	w.P("if len(set) > 0 {")
	w.P(w.keySort(key, "set"))
	w.P("if keep && ", l, " == nil {")
	if v := val.Message; v != nil && w.foreign(v.GoIdent) || val.Enum != nil && w.foreign(val.Enum.GoIdent) {
		w.P(l, " = ", w.id(propsyncPkg, "MakeMap"), "(", l, ", len(set))")
	} else {
		w.P(l, " = make(", fieldGoType(w.g, f), ", len(set))")
	}
	w.P("}")
	w.P("for _, k := range set {")
	w.P("v := ", x, "[k]")
	w.P("kb := ", w.appendTagged(kk, 1, "nil", "k"))
	if val.Message != nil {
		w.P("w.Set(", step, ", w.AppendMessageEntry(nil, ", num(f), ", kb, v))")
	} else {
		w.P("vb := ", w.appendTagged(val.Desc.Kind(), 2, "nil", "v"))
		w.P("w.Set(", step, ", ", w.id(propsyncPkg, "AppendEntry"), "(nil, ", num(f), ", kb, vb))")
	}
	w.P("if keep {")
	if val.Message != nil {
		w.P(l, "[k] = ", w.id(propsyncPkg, "Copy"), "(v)")
	} else {
		w.P(l, "[k] = ", w.copied(val.Desc.Kind(), "v"))
	}
	w.P("}")
	w.P("}")
	w.P("}")
	w.P("if had+len(set) != len(", x, ") {")
	w.P("var gone []", keyType)
	w.P("for k := range ", l, " {")
	w.P("if _, ok := ", x, "[k]; !ok {")
	w.P("gone = append(gone, k)")
	w.P("}")
	w.P("}")
	w.P(w.keySort(key, "gone"))
	w.P("for _, k := range gone {")
	w.P("w.Delete(", step, ")")
	w.keep("delete(", l, ", k)")
	w.P("}")
	w.P("}")
	w.P("}")
}

// oneof writes the diff of a oneof, as Diff: a case that stayed is
// diffed as a field, a new case is SET whole, a case that went without
// another (or for a private one) is CLEARed.
func (w *writer) oneof(o *protogen.Oneof) {
	x, l := "x."+o.GoName, "last."+o.GoName
	var visible []*protogen.Field
	for _, f := range o.Fields {
		if !private(f) {
			visible = append(visible, f)
		}
	}
	// clearOld CLEARs last's case, when it is one a client sees (a
	// wrapper that is a nil pointer holds no case).
	clearOld := func() {
		if len(visible) > 0 {
			w.P("switch lw := ", l, ".(type) {")
			for _, f := range visible {
				w.P("case *", w.g.QualifiedGoIdent(f.GoIdent), ":")
				w.P("if lw != nil {")
				w.P("w.Clear(", num(f), ")")
				w.P("}")
			}
			w.P("}")
		}
		w.keep(l, " = nil")
	}
	if len(visible) > 0 {
		w.P("switch xv := ", x, ".(type) {")
	} else { // only private cases: none reads the new value
		w.P("switch ", x, ".(type) {")
	}
	w.P("case nil:")
	clearOld()
	for _, f := range o.Fields {
		wrapper := w.g.QualifiedGoIdent(f.GoIdent)
		w.P("case *", wrapper, ":")
		if private(f) {
			clearOld()
			continue
		}
		w.P("if xv == nil {") // a nil wrapper: no case
		clearOld()
		w.P("break")
		w.P("}")
		xv := "xv." + f.GoName
		w.P("lv, same := ", l, ".(*", wrapper, ")")
		w.P("same = same && lv != nil")
		if f.Message != nil {
			w.P("if same {")
			w.descendOrEmpty(f.Message, w.fieldStep(f), xv, "lv."+f.GoName)
			w.P("} else {")
			w.P("w.Set(", w.fieldStep(f), ", w.AppendMessage(nil, ", num(f), ", ", xv, "))")
			w.keep(l, " = &", wrapper, "{", f.GoName, ": ", w.id(propsyncPkg, "Copy"), "(", xv, ")}")
			w.P("}")
			continue
		}
		k := f.Desc.Kind()
		w.P("switch {")
		w.P("case !same:")
		w.setScalar(f, xv)
		w.keep(l, " = &", wrapper, "{", f.GoName, ": ", w.copied(k, xv), "}")
		w.P("case ", w.differs(k, xv, "lv."+f.GoName), ":")
		w.setScalar(f, xv)
		w.keep("lv.", f.GoName, " = ", w.copied(k, xv))
		w.P("}")
	}
	w.P("}")
}

// descendOrEmpty writes the diff of messages x and l of type m at step,
// where either may be a nil pointer: a nil one counts as an empty message
// (as reflection reads it), and with keep a nil l becomes one first.
func (w *writer) descendOrEmpty(m *protogen.Message, step, x, l string) {
	empty := func(v string) string { return "&" + m.GoIdent.GoName + "{}" }
	if w.foreign(m.GoIdent) {
		empty = func(v string) string { return w.id(propsyncPkg, "Empty") + "(" + v + ")" }
	}
	w.P("{")
	w.P("xm, lm := ", x, ", ", l)
	w.P("if lm == nil {")
	w.P("lm = ", empty("lm"))
	w.keep(l, " = lm")
	w.P("}")
	w.P("if xm == nil {")
	w.P("xm = ", empty("xm"))
	w.P("}")
	w.descend(m, step, "xm", "lm")
	w.P("}")
}

// fieldGoType returns the Go type of a field (a map key, or a whole map),
// as protoc-gen-go declares it.
func fieldGoType(g *protogen.GeneratedFile, f *protogen.Field) string {
	if f.Desc.IsMap() {
		return "map[" + fieldGoType(g, f.Message.Fields[0]) + "]" + fieldGoType(g, f.Message.Fields[1])
	}
	var goType string
	switch f.Desc.Kind() {
	case protoreflect.BoolKind:
		goType = "bool"
	case protoreflect.EnumKind:
		goType = g.QualifiedGoIdent(f.Enum.GoIdent)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		goType = "int32"
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		goType = "uint32"
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		goType = "int64"
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		goType = "uint64"
	case protoreflect.FloatKind:
		goType = "float32"
	case protoreflect.DoubleKind:
		goType = "float64"
	case protoreflect.StringKind:
		goType = "string"
	case protoreflect.BytesKind:
		goType = "[]byte"
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return "*" + g.QualifiedGoIdent(f.Message.GoIdent)
	}
	return goType
}
