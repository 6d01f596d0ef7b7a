package propsync

import (
	"cmp"
	"fmt"
	"slices"

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
// the fields' declarations, map keys sorted, so equal inputs give equal
// ops.
func (d *Differ) Diff(old, new proto.Message) ([]*propsyncpb.Op, error) {
	o, n := old.ProtoReflect(), new.ProtoReflect()
	if o.Descriptor().FullName() != n.Descriptor().FullName() {
		return nil, fmt.Errorf("%w: %s and %s", ErrMismatch, o.Descriptor().FullName(), n.Descriptor().FullName())
	}
	w := &differ{d: d}
	w.message(o, n)
	return w.ops, w.err
}

// differ is one Diff's walk: the path to the message it is in, and the
// ops found so far.
type differ struct {
	d    *Differ
	path []*propsyncpb.Step
	ops  []*propsyncpb.Op
	err  error
}

// at returns the path to the message so far followed by last.
func (w *differ) at(last *propsyncpb.Step) []*propsyncpb.Step {
	p := make([]*propsyncpb.Step, len(w.path)+1)
	copy(p, w.path)
	p[len(w.path)] = last
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

// descend runs f with step pushed on the path.
func (w *differ) descend(step *propsyncpb.Step, f func()) {
	w.path = append(w.path, step)
	f()
	w.path = w.path[:len(w.path)-1]
}

// message diffs two messages of one type.
func (w *differ) message(o, n protoreflect.Message) {
	fields := o.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if w.d.IsPrivate(fd) {
			continue
		}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			if od.Fields().Get(0) == fd {
				w.oneof(o, n, od)
			}
			continue
		}
		switch {
		case fd.IsList():
			w.list(o, n, fd)
		case fd.IsMap():
			w.mapField(o, n, fd)
		default:
			w.singular(o, n, fd)
		}
	}
}

func step(fd protoreflect.FieldDescriptor) *propsyncpb.Step {
	return &propsyncpb.Step{Field: uint32(fd.Number())}
}

// oneof diffs a oneof: the case that stayed is diffed as a field; a new
// case is SET whole; a case that went without another is CLEARed.
func (w *differ) oneof(o, n protoreflect.Message, od protoreflect.OneofDescriptor) {
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
		w.singular(o, n, nf)
	default:
		b, err := encodeField(n, nf, w.d.visible(nf, n.Get(nf)))
		w.emit(propsyncpb.Op_SET, step(nf), b, err)
	}
}

// singular diffs a field that is neither repeated nor a map.
func (w *differ) singular(o, n protoreflect.Message, fd protoreflect.FieldDescriptor) {
	if fd.Message() != nil {
		oh, nh := o.Has(fd), n.Has(fd)
		switch {
		case oh && nh:
			w.descend(step(fd), func() { w.message(o.Get(fd).Message(), n.Get(fd).Message()) })
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
func (w *differ) list(o, n protoreflect.Message, fd protoreflect.FieldDescriptor) {
	ol, nl := o.Get(fd).List(), n.Get(fd).List()
	if nl.Len() == 0 {
		if ol.Len() > 0 {
			w.emit(propsyncpb.Op_CLEAR, step(fd), nil, nil)
		}
		return
	}
	common := min(ol.Len(), nl.Len())
	for i := 0; i < common; i++ {
		at := &propsyncpb.Step{Field: uint32(fd.Number()), At: &propsyncpb.Step_Index{Index: uint32(i)}}
		if fd.Message() != nil {
			w.descend(at, func() { w.message(ol.Get(i).Message(), nl.Get(i).Message()) })
			continue
		}
		if !scalarEqual(fd, ol.Get(i), nl.Get(i)) {
			b, err := encodeElems(w.d, n, fd, nl, i, i+1)
			w.emit(propsyncpb.Op_SET, at, b, err)
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

// mapField diffs a map field.
func (w *differ) mapField(o, n protoreflect.Message, fd protoreflect.FieldDescriptor) {
	om, nm := o.Get(fd).Map(), n.Get(fd).Map()
	if nm.Len() == 0 {
		if om.Len() > 0 {
			w.emit(propsyncpb.Op_CLEAR, step(fd), nil, nil)
		}
		return
	}
	vd := fd.MapValue()
	for _, k := range sortedKeys(nm) {
		nv := nm.Get(k)
		at := keyStep(fd, k)
		if !om.Has(k) {
			b, err := encodeEntry(n, fd, k, w.d.visible(vd, nv))
			w.emit(propsyncpb.Op_SET, at, b, err)
			continue
		}
		ov := om.Get(k)
		if vd.Message() != nil {
			w.descend(at, func() { w.message(ov.Message(), nv.Message()) })
			continue
		}
		if !scalarEqual(vd, ov, nv) {
			b, err := encodeEntry(n, fd, k, nv)
			w.emit(propsyncpb.Op_SET, at, b, err)
		}
	}
	if om.Len() == 0 {
		return
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

// sortedKeys returns the keys of m in order.
func sortedKeys(m protoreflect.Map) []protoreflect.MapKey {
	keys := make([]protoreflect.MapKey, 0, m.Len())
	m.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		keys = append(keys, k)
		return true
	})
	sortKeys(keys)
	return keys
}

func sortKeys(keys []protoreflect.MapKey) {
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
