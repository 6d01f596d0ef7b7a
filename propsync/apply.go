package propsync

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/guildkit/guild/propsync/propsyncpb"
)

// Apply applies ops, in order, to m (a client's replica) and returns the
// paths of the fields they changed (see the package doc's Paths), each
// once, in the order of the ops. An op whose path names a field number
// m's type does not have (at any step) is skipped: it comes from a newer
// build of the state's .proto (a server that added a field, during a
// rolling upgrade), and, as protobuf does with unknown fields, an older
// client goes on without it. Any other op that does not fit m (a step of
// the wrong kind, an index or key that is not there, a value that does
// not decode) stops Apply with an error that matches ErrBadOp; the ops
// before it are applied. Apply never panics, whatever the ops.
func Apply(m proto.Message, ops []*propsyncpb.Op) (changed []string, err error) {
	root := m.ProtoReflect()
	seen := make(map[string]bool, len(ops))
	for i, op := range ops {
		path, err := applyOp(root, op)
		if errors.Is(err, errNewerField) {
			continue
		}
		if err != nil {
			return changed, fmt.Errorf("op %d (%v): %w", i, op.GetKind(), err)
		}
		if !seen[path] {
			seen[path] = true
			changed = append(changed, path)
		}
	}
	return changed, nil
}

// applyOp applies one op to root and returns the path it changed.
func applyOp(root protoreflect.Message, op *propsyncpb.Op) (string, error) {
	steps := op.GetPath()
	if len(steps) == 0 {
		return "", fmt.Errorf("%w: an empty path", ErrBadOp)
	}
	var path strings.Builder
	cur := root
	for _, s := range steps[:len(steps)-1] {
		fd, err := field(cur, s)
		if err != nil {
			return "", err
		}
		writeName(&path, fd)
		if cur, err = into(cur, fd, s); err != nil {
			return "", err
		}
	}
	last := steps[len(steps)-1]
	fd, err := field(cur, last)
	if err != nil {
		return "", err
	}
	writeName(&path, fd)
	switch op.GetKind() {
	case propsyncpb.Op_SET:
		err = set(cur, fd, last, op.GetValue())
	case propsyncpb.Op_CLEAR:
		if last.At != nil {
			return "", fmt.Errorf("%w: field %s: CLEAR names an element or key", ErrBadOp, fd.FullName())
		}
		cur.Clear(fd)
	case propsyncpb.Op_MAP_DELETE:
		err = mapDelete(cur, fd, last)
	case propsyncpb.Op_LIST_TRUNCATE:
		err = truncate(cur, fd, last, op.GetLength())
	case propsyncpb.Op_LIST_APPEND:
		err = appendElems(cur, fd, last, op.GetValue())
	default:
		err = fmt.Errorf("%w: unknown kind %d", ErrBadOp, op.GetKind())
	}
	return path.String(), err
}

func writeName(b *strings.Builder, fd protoreflect.FieldDescriptor) {
	if b.Len() > 0 {
		b.WriteByte('.')
	}
	b.WriteString(fd.JSONName())
}

// errNewerField says that an op's path names a field number its message
// type does not have here: Apply skips the op.
var errNewerField = errors.New("propsync: a field of a newer build")

// field returns the field of cur that step s names, or errNewerField.
func field(cur protoreflect.Message, s *propsyncpb.Step) (protoreflect.FieldDescriptor, error) {
	fd := cur.Descriptor().Fields().ByNumber(protoreflect.FieldNumber(s.GetField()))
	if fd == nil {
		return nil, fmt.Errorf("%w: %s has no field %d", errNewerField, cur.Descriptor().FullName(), s.GetField())
	}
	return fd, nil
}

// into returns the message that a step which is not the last selects: a
// singular message field (set if it was unset), an element of a repeated
// message field or the value of a map of messages.
func into(cur protoreflect.Message, fd protoreflect.FieldDescriptor, s *propsyncpb.Step) (protoreflect.Message, error) {
	switch {
	case fd.IsList():
		i, ok := s.At.(*propsyncpb.Step_Index)
		if !ok || fd.Message() == nil {
			return nil, fmt.Errorf("%w: field %s: a step into a repeated field needs an index, and messages", ErrBadOp, fd.FullName())
		}
		l := cur.Get(fd).List()
		if int64(i.Index) >= int64(l.Len()) {
			return nil, fmt.Errorf("%w: field %s: index %d of %d elements", ErrBadOp, fd.FullName(), i.Index, l.Len())
		}
		return cur.Mutable(fd).List().Get(int(i.Index)).Message(), nil
	case fd.IsMap():
		if fd.MapValue().Message() == nil {
			return nil, fmt.Errorf("%w: field %s: a step into a map of scalars", ErrBadOp, fd.FullName())
		}
		k, err := mapKey(fd, s)
		if err != nil {
			return nil, err
		}
		if !cur.Get(fd).Map().Has(k) {
			return nil, fmt.Errorf("%w: field %s: no key %v", ErrBadOp, fd.FullName(), k)
		}
		return cur.Mutable(fd).Map().Mutable(k).Message(), nil
	case fd.Message() != nil:
		if s.At != nil {
			return nil, fmt.Errorf("%w: field %s: a step into a singular field names an element", ErrBadOp, fd.FullName())
		}
		return cur.Mutable(fd).Message(), nil
	}
	return nil, fmt.Errorf("%w: field %s is not a message, yet the path goes on", ErrBadOp, fd.FullName())
}

// set applies a SET to field fd of cur, or to its element or entry.
func set(cur protoreflect.Message, fd protoreflect.FieldDescriptor, s *propsyncpb.Step, value []byte) error {
	p, err := decodeParent(cur, value)
	if err != nil {
		return err
	}
	switch at := s.At.(type) {
	case nil:
		if p.Has(fd) {
			cur.Set(fd, p.Get(fd))
		} else {
			cur.Clear(fd)
		}
		return nil
	case *propsyncpb.Step_Index:
		if !fd.IsList() {
			return fmt.Errorf("%w: field %s: an index into a field that is not repeated", ErrBadOp, fd.FullName())
		}
		pl := p.Get(fd).List()
		if pl.Len() != 1 {
			return fmt.Errorf("%w: field %s: SET of an element holds %d elements", ErrBadOp, fd.FullName(), pl.Len())
		}
		if int64(at.Index) >= int64(cur.Get(fd).List().Len()) {
			return fmt.Errorf("%w: field %s: index %d of %d elements", ErrBadOp, fd.FullName(), at.Index, cur.Get(fd).List().Len())
		}
		cur.Mutable(fd).List().Set(int(at.Index), pl.Get(0))
		return nil
	default:
		if !fd.IsMap() {
			return fmt.Errorf("%w: field %s: a key into a field that is not a map", ErrBadOp, fd.FullName())
		}
		k, err := mapKey(fd, s)
		if err != nil {
			return err
		}
		pm := p.Get(fd).Map()
		if pm.Len() != 1 {
			return fmt.Errorf("%w: field %s: SET of an entry holds %d entries", ErrBadOp, fd.FullName(), pm.Len())
		}
		var v protoreflect.Value
		pm.Range(func(_ protoreflect.MapKey, e protoreflect.Value) bool {
			v = e
			return false
		})
		cur.Mutable(fd).Map().Set(k, v)
		return nil
	}
}

func mapDelete(cur protoreflect.Message, fd protoreflect.FieldDescriptor, s *propsyncpb.Step) error {
	if !fd.IsMap() {
		return fmt.Errorf("%w: field %s: MAP_DELETE of a field that is not a map", ErrBadOp, fd.FullName())
	}
	k, err := mapKey(fd, s)
	if err != nil {
		return err
	}
	if !cur.Get(fd).Map().Has(k) {
		return fmt.Errorf("%w: field %s: MAP_DELETE of key %v, which is not there", ErrBadOp, fd.FullName(), k)
	}
	cur.Mutable(fd).Map().Clear(k)
	return nil
}

func truncate(cur protoreflect.Message, fd protoreflect.FieldDescriptor, s *propsyncpb.Step, n uint32) error {
	if !fd.IsList() || s.At != nil {
		return fmt.Errorf("%w: field %s: LIST_TRUNCATE needs a whole repeated field", ErrBadOp, fd.FullName())
	}
	l := cur.Get(fd).List()
	if int64(n) > int64(l.Len()) {
		return fmt.Errorf("%w: field %s: LIST_TRUNCATE to %d of %d elements", ErrBadOp, fd.FullName(), n, l.Len())
	}
	if int(n) < l.Len() {
		cur.Mutable(fd).List().Truncate(int(n))
	}
	return nil
}

func appendElems(cur protoreflect.Message, fd protoreflect.FieldDescriptor, s *propsyncpb.Step, value []byte) error {
	if !fd.IsList() || s.At != nil {
		return fmt.Errorf("%w: field %s: LIST_APPEND needs a whole repeated field", ErrBadOp, fd.FullName())
	}
	p, err := decodeParent(cur, value)
	if err != nil {
		return err
	}
	pl := p.Get(fd).List()
	if pl.Len() == 0 {
		return nil
	}
	l := cur.Mutable(fd).List()
	for i := 0; i < pl.Len(); i++ {
		l.Append(pl.Get(i))
	}
	return nil
}
