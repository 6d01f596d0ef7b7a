package propsync

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/guildkit/guild/propsync/propsyncpb"
)

// The runtime of the generated diff code (the package doc's "Generated
// diff code"): for generated code only; it may change with guild.

// Generated is what guild gen's diff code implements (see the package
// doc, "Generated diff code").
type Generated interface {
	proto.Message
	// PropsyncDiff compares the message with last, a message of its type,
	// through w: it emits the ops that take last to it, and when
	// w.Keep() makes last equal to it (its fields that are not private).
	PropsyncDiff(w *Walk, last proto.Message)
}

// Walk is one diff in progress by generated code: the path to the
// message it is in, and the ops found so far. Generated code calls its
// methods; nothing else should.
type Walk struct {
	d    *Differ
	keep bool
	// The path: frames hold no pointer (a Push is a plain store, as a
	// walk pushes at every message it enters, changed or not); the keys
	// of string steps are in keys, and the propsyncpb.Steps made of the
	// first frames, once an op needed them, in steps (shared by the ops
	// below them).
	frames []walkFrame
	keys   []string
	steps  []*propsyncpb.Step
	ops    []*propsyncpb.Op
	err    error
}

// walkFrame is a Step without its string key.
type walkFrame struct {
	field uint32
	kind  uint8
	n     uint64
}

// Step is one step of a Walk's path: a field, or an element or a map
// entry of one. Make it with FieldStep, IndexStep or KeyStep.
type Step struct {
	field uint32
	kind  uint8 // stepField, stepIndex, stepString, stepInt, stepUint, stepBool
	n     uint64
	s     string
}

const (
	stepField uint8 = iota
	stepIndex
	stepString
	stepInt
	stepUint
	stepBool
)

// FieldStep is the step to field num.
func FieldStep(num uint32) Step { return Step{field: num} }

// IndexStep is the step to element i of repeated field num.
func IndexStep(num uint32, i int) Step { return Step{field: num, kind: stepIndex, n: uint64(i)} }

// KeyStep is the step to the entry k of map field num.
func KeyStep[K string | int32 | int64 | uint32 | uint64 | bool](num uint32, k K) Step {
	switch v := any(k).(type) {
	case string:
		return Step{field: num, kind: stepString, s: v}
	case int32:
		return Step{field: num, kind: stepInt, n: uint64(int64(v))}
	case int64:
		return Step{field: num, kind: stepInt, n: uint64(v)}
	case uint32:
		return Step{field: num, kind: stepUint, n: uint64(v)}
	case uint64:
		return Step{field: num, kind: stepUint, n: v}
	default:
		s := Step{field: num, kind: stepBool}
		if any(k).(bool) {
			s.n = 1
		}
		return s
	}
}

func (s Step) proto() *propsyncpb.Step {
	p := &propsyncpb.Step{Field: s.field}
	switch s.kind {
	case stepIndex:
		p.At = &propsyncpb.Step_Index{Index: uint32(s.n)}
	case stepString:
		p.At = &propsyncpb.Step_KeyString{KeyString: s.s}
	case stepInt:
		p.At = &propsyncpb.Step_KeyInt{KeyInt: int64(s.n)}
	case stepUint:
		p.At = &propsyncpb.Step_KeyUint{KeyUint: s.n}
	case stepBool:
		p.At = &propsyncpb.Step_KeyBool{KeyBool: s.n == 1}
	}
	return p
}

// generated reports whether Diff and Tracker may use m's generated code.
func (d *Differ) generated(m proto.Message) (Generated, bool) {
	if d.reflectOnly {
		return nil, false
	}
	g, ok := m.(Generated)
	return g, ok
}

// walk diffs new with last by new's generated code; with keep it makes
// last equal to new. w, optional, is a Walk to reuse.
func (d *Differ) walk(w *Walk, g Generated, last proto.Message, keep bool) ([]*propsyncpb.Op, error) {
	if w == nil {
		w = new(Walk)
	}
	w.d, w.keep, w.ops, w.err = d, keep, nil, nil
	w.frames, w.keys, w.steps = w.frames[:0], w.keys[:0], w.steps[:0]
	g.PropsyncDiff(w, last)
	return w.ops, w.err
}

// Keep reports whether the walk also makes the old version equal to the
// new one.
func (w *Walk) Keep() bool { return w.keep }

// Valid returns s, a string the walk emits, and makes the walk fail (as
// Diff does by reflection, where the encoding refuses it) when s is not
// valid UTF-8.
func (w *Walk) Valid(s string) string {
	if !utf8.ValidString(s) {
		w.fail(errInvalidUTF8)
	}
	return s
}

// errInvalidUTF8 is the error of a string that is not UTF-8, in a value
// or a map key.
var errInvalidUTF8 = errors.New("propsync: a string field holds invalid UTF-8")

func (w *Walk) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

// Skip returns which fields of m's type, by index, the Differ marks
// private on the Go side (NewDiffer with names): the generated code
// skips them. nil when it marks none of them.
func (w *Walk) Skip(m proto.Message) []bool {
	if w.d.private == nil {
		return nil
	}
	return w.d.goPrivate(m.ProtoReflect().Descriptor())
}

// Push enters the message that s selects.
func (w *Walk) Push(s Step) {
	w.frames = append(w.frames, walkFrame{field: s.field, kind: s.kind, n: s.n})
	if s.kind == stepString {
		w.keys = append(w.keys, s.s)
	}
}

// Pop leaves the message entered last.
func (w *Walk) Pop() {
	f := w.frames[len(w.frames)-1]
	w.frames = w.frames[:len(w.frames)-1]
	if f.kind == stepString {
		w.keys = w.keys[:len(w.keys)-1]
	}
	if len(w.steps) > len(w.frames) {
		w.steps = w.steps[:len(w.frames)]
	}
}

// path returns the path to the current message followed by last.
func (w *Walk) path(last Step) []*propsyncpb.Step {
	prefix := w.prefix()
	if last.kind == stepString {
		w.Valid(last.s)
	}
	p := make([]*propsyncpb.Step, len(prefix)+1)
	copy(p, prefix)
	p[len(prefix)] = last.proto()
	return p
}

// prefix returns the path to the current message, making the
// propsyncpb.Steps of the frames that have none yet.
func (w *Walk) prefix() []*propsyncpb.Step {
	if len(w.steps) < len(w.frames) {
		k := 0 // the string keys of the frames with steps already
		for _, f := range w.frames[:len(w.steps)] {
			if f.kind == stepString {
				k++
			}
		}
		for _, f := range w.frames[len(w.steps):] {
			s := Step{field: f.field, kind: f.kind, n: f.n}
			if f.kind == stepString {
				s.s = w.Valid(w.keys[k])
				k++
			}
			w.steps = append(w.steps, s.proto())
		}
	}
	return w.steps
}

// Set emits a SET of s with value, the field's encoding (tag included) as
// a part of the current message.
func (w *Walk) Set(s Step, value []byte) {
	w.ops = append(w.ops, &propsyncpb.Op{Kind: propsyncpb.Op_SET, Path: w.path(s), Value: value})
}

// Clear emits a CLEAR of field num.
func (w *Walk) Clear(num uint32) {
	w.ops = append(w.ops, &propsyncpb.Op{Kind: propsyncpb.Op_CLEAR, Path: w.path(FieldStep(num))})
}

// Delete emits a MAP_DELETE of the entry s.
func (w *Walk) Delete(s Step) {
	w.ops = append(w.ops, &propsyncpb.Op{Kind: propsyncpb.Op_MAP_DELETE, Path: w.path(s)})
}

// Truncate emits a LIST_TRUNCATE of repeated field num to n elements.
func (w *Walk) Truncate(num uint32, n int) {
	w.ops = append(w.ops, &propsyncpb.Op{Kind: propsyncpb.Op_LIST_TRUNCATE, Path: w.path(FieldStep(num)), Length: uint32(n)})
}

// Append emits a LIST_APPEND to repeated field num of the elements in
// value (encoded as for Set).
func (w *Walk) Append(num uint32, value []byte) {
	w.ops = append(w.ops, &propsyncpb.Op{Kind: propsyncpb.Op_LIST_APPEND, Path: w.path(FieldStep(num)), Value: value})
}

// AppendMessage appends to b the record of field num holding m (nil: an
// empty message) as a client may see it: without its private fields,
// encoded deterministically.
func (w *Walk) AppendMessage(b []byte, num uint32, m proto.Message) []byte {
	b = protowire.AppendTag(b, protowire.Number(num), protowire.BytesType)
	return w.appendMessageValue(b, m)
}

// appendMessageValue appends m's visible encoding, length first.
func (w *Walk) appendMessageValue(b []byte, m proto.Message) []byte {
	if m == nil || !m.ProtoReflect().IsValid() {
		return protowire.AppendVarint(b, 0)
	}
	if w.d.hasPrivate(m.ProtoReflect().Descriptor()) {
		m = w.d.Redact(m)
	}
	size := deterministic.Size(m)
	b = protowire.AppendVarint(b, uint64(size))
	out, err := deterministic.MarshalAppend(b, m)
	if err != nil {
		w.fail(fmt.Errorf("propsync: encode %s: %w", m.ProtoReflect().Descriptor().FullName(), err))
		return b
	}
	return out
}

// AppendEntry appends to b the record of map field num holding the entry
// whose key's and value's encodings (tags included) are key and value.
func AppendEntry(b []byte, num uint32, key, value []byte) []byte {
	b = protowire.AppendTag(b, protowire.Number(num), protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(len(key)+len(value)))
	b = append(b, key...)
	return append(b, value...)
}

// AppendMessageEntry appends to b the record of map field num holding the
// entry of key (its encoding, tag included) and the message m as a client
// may see it.
func (w *Walk) AppendMessageEntry(b []byte, num uint32, key []byte, m proto.Message) []byte {
	v := w.AppendMessage(nil, 2, m)
	return AppendEntry(b, num, key, v)
}

// Copy returns a copy of m (nil for nil), for the old version to keep.
func Copy[M proto.Message](m M) M {
	if m.ProtoReflect().IsValid() {
		return clone(m).(M)
	}
	return m
}

// Empty returns a new empty message of m's type; m may be a nil pointer.
// Generated code calls it for a message type of another Go package,
// which it does not name in a function body: a local variable of the
// code could shadow the package's name there.
func Empty[M proto.Message](m M) M {
	return m.ProtoReflect().Type().New().Interface().(M)
}

// MakeMap returns a new map of m's type with room for n entries: for a
// map whose values are of another Go package (see Empty).
func MakeMap[M ~map[K]V, K comparable, V any](m M, n int) M {
	return make(M, n)
}

// Message diffs x and last, two messages of one type that s selects,
// whose type's code is not known to the caller: by their generated code
// if they have it, else by reflection.
func (w *Walk) Message(s Step, x, last proto.Message) {
	w.Push(s)
	defer w.Pop()
	if g, ok := x.(Generated); ok {
		g.PropsyncDiff(w, last)
		return
	}
	w.reflect(x.ProtoReflect(), last.ProtoReflect(), nil)
}

// Field diffs field num of x and last by reflection: for a field of a
// kind the generator leaves to reflection. With Keep it then copies the
// field (or the oneof it is in) from x to last.
func (w *Walk) Field(num uint32, x, last proto.Message) {
	n, o := x.ProtoReflect(), last.ProtoReflect()
	fd := n.Descriptor().Fields().ByNumber(protoreflect.FieldNumber(num))
	if fd == nil {
		return
	}
	w.reflect(n, o, fd)
}

// reflect diffs n and o by reflection, whole or (fd set) only field fd,
// and with Keep copies what it diffed from n to o.
func (w *Walk) reflect(n, o protoreflect.Message, fd protoreflect.FieldDescriptor) {
	r := &differ{d: w.d, prefix: w.prefix()} // its ops copy it; w does not change it meanwhile
	if fd == nil {
		r.message(o, n, wireMessage{}, wireMessage{})
		if w.keep {
			copyInto(o.Interface(), n.Interface())
		}
	} else {
		r.field(o, n, fd, wireMessage{}, wireMessage{})
		if w.keep {
			copyField(n, o, fd)
		}
	}
	w.ops = append(w.ops, r.ops...)
	if r.err != nil {
		w.fail(r.err)
	}
}

// copyField makes field fd of o (or the oneof it is in) equal to n's.
func copyField(n, o protoreflect.Message, fd protoreflect.FieldDescriptor) {
	if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
		if f := o.WhichOneof(od); f != nil {
			o.Clear(f)
		}
		if fd = n.WhichOneof(od); fd == nil {
			return
		}
	}
	if !n.Has(fd) {
		o.Clear(fd)
		return
	}
	tmp := n.New()
	tmp.Set(fd, n.Get(fd))
	c := clone(tmp.Interface()).ProtoReflect()
	o.Set(fd, c.Get(fd))
}
