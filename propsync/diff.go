package propsync

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/guildkit/guild/propsync/propsyncpb"
)

// Diff returns the ops that take old to new as a client sees them, with
// the .proto's private marks only; see Differ.Diff.
func Diff(old, new proto.Message) ([]*propsyncpb.Op, error) {
	return (&Differ{}).Diff(old, new)
}

// Diff returns the ops that take old to new, two messages of one type,
// leaving out private fields and all below them: applied to a replica of
// old (Apply), they make it equal to new without its private fields. No
// op at all means that nothing a client sees changed.
//
// What changed is found field by field, by reflection: a singular scalar,
// enum or bytes field that changed is SET (or CLEARed, to its default or
// unset); a message field is recursed into, and SET or CLEARed whole only
// when it went from unset to set or back; a oneof that changed its case
// SETs the new case (or CLEARs the old); a repeated field SETs each
// changed element of the prefix both versions share (recursing into
// message elements), then LIST_TRUNCATEs or LIST_APPENDs the rest; a map
// SETs (or recurses into) the entries whose key is new or whose value
// changed and MAP_DELETEs the keys that went. Ops come in the order of
// the fields' declarations; a map's SETs and MAP_DELETEs in the order of
// their keys, but the changes inside its message values in no fixed
// order (ops on different keys commute).
//
// The walk is cheap where nothing changed: Diff encodes both messages
// (deterministically) and skips each field, at any depth it walks to,
// whose bytes are equal in both. A message that does not encode (a
// string that is not UTF-8) is walked whole.
func (d *Differ) Diff(old, new proto.Message) ([]*propsyncpb.Op, error) {
	o, n := old.ProtoReflect(), new.ProtoReflect()
	if o.Descriptor().FullName() != n.Descriptor().FullName() {
		return nil, fmt.Errorf("%w: %s and %s", ErrMismatch, o.Descriptor().FullName(), n.Descriptor().FullName())
	}
	if g, ok := d.generated(new); ok && o.Type() == n.Type() && o.IsValid() && n.IsValid() {
		return d.walk(nil, g, old, false)
	}
	ob, err := deterministic.Marshal(old)
	if err != nil {
		ob = nil
	}
	nb, err := deterministic.Marshal(new)
	if err != nil {
		nb = nil
	}
	return d.diff(o, n, ob, nb)
}

// diff diffs o and n, given their deterministic encodings (or nil).
func (d *Differ) diff(o, n protoreflect.Message, ob, nb []byte) ([]*propsyncpb.Op, error) {
	w := &differ{d: d}
	w.message(o, n, wireOf(ob), wireOf(nb))
	return w.ops, w.err
}

// differ is one Diff's walk: the path to the message it is in, and the
// ops found so far.
type differ struct {
	d      *Differ
	prefix []*propsyncpb.Step // the path to where the walk began (a Walk's)
	path   []pathStep
	ops    []*propsyncpb.Op
	err    error
}

// pathStep is a step of the path being walked; it becomes a
// propsyncpb.Step only in an op.
type pathStep struct {
	fd    protoreflect.FieldDescriptor
	index int                 // >= 0: an element of a list
	key   protoreflect.MapKey // fd is a map: its entry
}

func (p pathStep) step() *propsyncpb.Step {
	switch {
	case p.fd.IsMap():
		return keyStep(p.fd, p.key)
	case p.index >= 0:
		return &propsyncpb.Step{Field: uint32(p.fd.Number()), At: &propsyncpb.Step_Index{Index: uint32(p.index)}}
	}
	return step(p.fd)
}

// at returns the path to the message so far followed by last. A map key
// in it that is not UTF-8 makes the diff fail, as it does the generated
// code's walk (Walk.Valid): the op would not encode.
func (w *differ) at(last *propsyncpb.Step) []*propsyncpb.Step {
	p := make([]*propsyncpb.Step, len(w.prefix)+len(w.path)+1)
	copy(p, w.prefix)
	for i, s := range w.path {
		p[len(w.prefix)+i] = s.step()
	}
	p[len(p)-1] = last
	for _, s := range p[len(w.prefix):] {
		if k, ok := s.At.(*propsyncpb.Step_KeyString); ok && !utf8.ValidString(k.KeyString) && w.err == nil {
			w.err = errInvalidUTF8
		}
	}
	return p
}

func (w *differ) emit(kind propsyncpb.Op_Kind, last *propsyncpb.Step, value []byte, err error) {
	if err != nil {
		if w.err == nil {
			w.err = fmt.Errorf("propsync: encode %v: %w", last, err)
		}
		return
	}
	w.ops = append(w.ops, &propsyncpb.Op{Kind: kind, Path: w.at(last), Value: value})
}

// descend diffs o and n, the messages that s selects.
func (w *differ) descend(s pathStep, o, n protoreflect.Message, ob, nb []byte) {
	w.path = append(w.path, s)
	w.message(o, n, wireOf(ob), wireOf(nb))
	w.path = w.path[:len(w.path)-1]
}

// message diffs two messages of one type.
// ob and nb are their encodings, or nil when not known: a field whose
// bytes are equal in both is not walked.
func (w *differ) message(o, n protoreflect.Message, ow, nw wireMessage) {
	fields := o.Descriptor().Fields()
	for i := range fields.Len() {
		w.field(o, n, fields.Get(i), ow, nw)
	}
}

// field diffs field fd of two messages of one type (for the first field
// of a oneof: the oneof; for its other fields: nothing).
func (w *differ) field(o, n protoreflect.Message, fd protoreflect.FieldDescriptor, ow, nw wireMessage) {
	how := w.d.info(o.Descriptor()).how[fd.Index()]
	switch how {
	case howSkip:
		return
	case howOneof:
		w.oneof(o, n, fd.ContainingOneof(), ow, nw)
		return
	}
	if same(ow, nw, fd.Number()) {
		return
	}
	switch how {
	case howList:
		w.list(o, n, fd, ow, nw)
	case howMap:
		w.mapField(o, n, fd)
	default:
		w.singular(o, n, fd, ow, nw)
	}
}

func step(fd protoreflect.FieldDescriptor) *propsyncpb.Step {
	return &propsyncpb.Step{Field: uint32(fd.Number())}
}

// oneof diffs a oneof: the case that stayed is diffed as a field; a new
// case is SET whole; a case that went without another is CLEARed.
func (w *differ) oneof(o, n protoreflect.Message, od protoreflect.OneofDescriptor, ow, nw wireMessage) {
	if ow.ok && nw.ok {
		fields, all := od.Fields(), true
		for i := 0; i < fields.Len() && all; i++ {
			all = same(ow, nw, fields.Get(i).Number())
		}
		if all {
			return
		}
	}
	of, nf := o.WhichOneof(od), n.WhichOneof(od)
	switch {
	case nf == nil && of == nil:
	case nf == nil:
		if !w.d.IsPrivate(of) {
			w.emit(propsyncpb.Op_CLEAR, step(of), nil, nil)
		}
	case w.d.IsPrivate(nf):
		if of != nil && !w.d.IsPrivate(of) {
			w.emit(propsyncpb.Op_CLEAR, step(of), nil, nil)
		}
	case of == nf:
		w.singular(o, n, nf, ow, nw)
	default:
		b, err := encodeField(n, nf, w.d.visible(nf, n.Get(nf)))
		w.emit(propsyncpb.Op_SET, step(nf), b, err)
	}
}

// singular diffs a field that is neither repeated nor a map.
func (w *differ) singular(o, n protoreflect.Message, fd protoreflect.FieldDescriptor, ow, nw wireMessage) {
	if fd.Message() != nil {
		oh, nh := o.Has(fd), n.Has(fd)
		switch {
		case oh && nh:
			var ob, nb []byte
			if op, np := payloads(ow, fd.Number()), payloads(nw, fd.Number()); len(op) == 1 && len(np) == 1 {
				ob, nb = op[0], np[0]
			}
			w.descend(pathStep{fd: fd, index: -1}, o.Get(fd).Message(), n.Get(fd).Message(), ob, nb)
		case nh:
			b, err := encodeField(n, fd, w.d.visible(fd, n.Get(fd)))
			w.emit(propsyncpb.Op_SET, step(fd), b, err)
		case oh:
			w.emit(propsyncpb.Op_CLEAR, step(fd), nil, nil)
		}
		return
	}
	oh, nh := o.Has(fd), n.Has(fd)
	switch {
	case !nh && oh:
		w.emit(propsyncpb.Op_CLEAR, step(fd), nil, nil)
	case nh && (!oh || !scalarEqual(fd, o.Get(fd), n.Get(fd))):
		b, err := encodeField(n, fd, n.Get(fd))
		w.emit(propsyncpb.Op_SET, step(fd), b, err)
	}
}

// list diffs a repeated field.
func (w *differ) list(o, n protoreflect.Message, fd protoreflect.FieldDescriptor, ow, nw wireMessage) {
	ol, nl := o.Get(fd).List(), n.Get(fd).List()
	var op, np [][]byte
	if fd.Message() != nil {
		if op, np = payloads(ow, fd.Number()), payloads(nw, fd.Number()); len(op) != ol.Len() || len(np) != nl.Len() {
			op, np = nil, nil
		}
	}
	if nl.Len() == 0 {
		if ol.Len() > 0 {
			w.emit(propsyncpb.Op_CLEAR, step(fd), nil, nil)
		}
		return
	}
	common := min(ol.Len(), nl.Len())
	for i := 0; i < common; i++ {
		if fd.Message() != nil {
			var ob, nb []byte
			if op != nil {
				if bytes.Equal(op[i], np[i]) {
					continue
				}
				ob, nb = op[i], np[i]
			}
			w.descend(pathStep{fd: fd, index: i}, ol.Get(i).Message(), nl.Get(i).Message(), ob, nb)
			continue
		}
		if !scalarEqual(fd, ol.Get(i), nl.Get(i)) {
			b, err := encodeElems(w.d, n, fd, nl, i, i+1)
			w.emit(propsyncpb.Op_SET, pathStep{fd: fd, index: i}.step(), b, err)
		}
	}
	switch {
	case nl.Len() < ol.Len():
		w.ops = append(w.ops, &propsyncpb.Op{Kind: propsyncpb.Op_LIST_TRUNCATE, Path: w.at(step(fd)), Length: uint32(nl.Len())})
	case nl.Len() > ol.Len():
		b, err := encodeElems(w.d, n, fd, nl, common, nl.Len())
		w.emit(propsyncpb.Op_LIST_APPEND, step(fd), b, err)
	}
}

// mapField diffs a map field. The entries of a map of scalars that
// changed are SET in the order of their keys; the entries of a map of
// messages are recursed into in no fixed order (ops on different keys
// commute).
func (w *differ) mapField(o, n protoreflect.Message, fd protoreflect.FieldDescriptor) {
	om, nm := o.Get(fd).Map(), n.Get(fd).Map()
	if nm.Len() == 0 {
		if om.Len() > 0 {
			w.emit(propsyncpb.Op_CLEAR, step(fd), nil, nil)
		}
		return
	}
	vd := fd.MapValue()
	var set []protoreflect.MapKey
	nm.Range(func(k protoreflect.MapKey, nv protoreflect.Value) bool {
		if !om.Has(k) {
			set = append(set, k)
			return true
		}
		ov := om.Get(k)
		if vd.Message() != nil {
			w.descend(pathStep{fd: fd, key: k}, ov.Message(), nv.Message(), nil, nil)
		} else if !scalarEqual(vd, ov, nv) {
			set = append(set, k)
		}
		return true
	})
	sortKeys(set)
	for _, k := range set {
		b, err := encodeEntry(n, fd, k, w.d.visible(vd, nm.Get(k)))
		w.emit(propsyncpb.Op_SET, keyStep(fd, k), b, err)
	}
	if om.Len()+len(set) == nm.Len() {
		return // every old key is still there
	}
	var gone []protoreflect.MapKey
	om.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		if !nm.Has(k) {
			gone = append(gone, k)
		}
		return true
	})
	sortKeys(gone)
	for _, k := range gone {
		w.ops = append(w.ops, &propsyncpb.Op{Kind: propsyncpb.Op_MAP_DELETE, Path: w.at(keyStep(fd, k))})
	}
}

// sortKeys sorts map keys of one kind.
func sortKeys(keys []protoreflect.MapKey) {
	if len(keys) < 2 {
		return
	}
	slices.SortFunc(keys, func(a, b protoreflect.MapKey) int {
		switch av := a.Interface().(type) {
		case string:
			return cmp.Compare(av, b.Interface().(string))
		case bool:
			return cmp.Compare(boolInt(av), boolInt(b.Interface().(bool)))
		case int32, int64:
			return cmp.Compare(a.Int(), b.Int())
		default:
			return cmp.Compare(a.Uint(), b.Uint())
		}
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
