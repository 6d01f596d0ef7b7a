package propsync

import (
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/guildkit/guild/propsync/propsyncpb"
)

// Differ finds the changes between two versions of a state (Diff) and
// strips a state of its private fields (Redact). It knows which fields
// are private: those marked (guild.propsync.private) in their .proto,
// and those named to NewDiffer. The zero Differ knows only the .proto
// marks. A Differ is safe for concurrent use; it caches what it learns of
// each field, so keep one per state type rather than one per diff.
type Differ struct {
	private map[protoreflect.FullName]bool // the Go-side marks
	cache   sync.Map                       // protoreflect.FieldDescriptor -> bool
	infos   sync.Map                       // protoreflect.FullName of a message -> *msgInfo
	privs   sync.Map                       // protoreflect.FullName of a message -> bool (hasPrivate)
	skips   sync.Map                       // protoreflect.FullName of a message -> []bool (goPrivate)
	// reflectOnly keeps the generated code out (tests and benchmarks
	// compare it with reflection).
	reflectOnly bool
}

// goPrivate returns which fields of md, by index, are marked private on
// the Go side; nil when none is.
func (d *Differ) goPrivate(md protoreflect.MessageDescriptor) []bool {
	if v, ok := d.skips.Load(md.FullName()); ok {
		return v.([]bool)
	}
	var skip []bool
	fields := md.Fields()
	for i := range fields.Len() {
		if d.private[fields.Get(i).FullName()] {
			if skip == nil {
				skip = make([]bool, fields.Len())
			}
			skip[i] = true
		}
	}
	d.skips.Store(md.FullName(), skip)
	return skip
}

// hasPrivate reports whether md has a private field at any depth: a
// message without one is sent as it is, with no redacted copy.
func (d *Differ) hasPrivate(md protoreflect.MessageDescriptor) bool {
	if v, ok := d.privs.Load(md.FullName()); ok {
		return v.(bool)
	}
	p := d.findPrivate(md, map[protoreflect.FullName]bool{})
	d.privs.Store(md.FullName(), p)
	return p
}

func (d *Differ) findPrivate(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) bool {
	if seen[md.FullName()] {
		return false // a recursive type: its fields are being looked at
	}
	seen[md.FullName()] = true
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if d.IsPrivate(fd) {
			return true
		}
		if fd.IsMap() {
			fd = fd.MapValue()
		}
		if fd.Message() != nil && d.findPrivate(fd.Message(), seen) {
			return true
		}
	}
	return false
}

// msgInfo is what Diff needs to know of a message type: how to diff each
// of its fields, by index.
type msgInfo struct{ how []uint8 }

// How Diff handles a field.
const (
	howSingular uint8 = iota
	howSkip           // private, or a oneof's field other than its first
	howOneof          // the first field of a oneof: diff the oneof
	howList
	howMap
)

// info returns what Diff needs to know of md.
func (d *Differ) info(md protoreflect.MessageDescriptor) *msgInfo {
	if v, ok := d.infos.Load(md.FullName()); ok {
		return v.(*msgInfo)
	}
	fields := md.Fields()
	info := &msgInfo{how: make([]uint8, fields.Len())}
	for i := range info.how {
		fd := fields.Get(i)
		od := fd.ContainingOneof()
		switch {
		case od != nil && !od.IsSynthetic():
			info.how[i] = howSkip
			if od.Fields().Get(0) == fd {
				info.how[i] = howOneof
			}
		case d.IsPrivate(fd):
			info.how[i] = howSkip
		case fd.IsList():
			info.how[i] = howList
		case fd.IsMap():
			info.how[i] = howMap
		}
	}
	d.infos.Store(md.FullName(), info)
	return info
}

// NewDiffer returns a Differ that also treats the fields named in
// private as private, by their full names ("game.v1.Player.email").
func NewDiffer(private ...protoreflect.FullName) *Differ {
	d := &Differ{}
	if len(private) > 0 {
		d.private = make(map[protoreflect.FullName]bool, len(private))
		for _, n := range private {
			d.private[n] = true
		}
	}
	return d
}

// IsPrivate reports whether fd is private: marked in its .proto or named
// to NewDiffer.
func (d *Differ) IsPrivate(fd protoreflect.FieldDescriptor) bool {
	if v, ok := d.cache.Load(fd); ok {
		return v.(bool)
	}
	p := d.private[fd.FullName()]
	if !p {
		if opts, ok := fd.Options().(*descriptorpb.FieldOptions); ok && opts != nil {
			p, _ = proto.GetExtension(opts, propsyncpb.E_Private).(bool)
		}
	}
	d.cache.Store(fd, p)
	return p
}

// Redact returns a copy of m without its private fields, at any depth:
// what a client may see of it.
func (d *Differ) Redact(m proto.Message) proto.Message {
	c := clone(m)
	d.redact(c.ProtoReflect())
	return c
}

// Redact is Differ.Redact with the .proto's private marks only.
func Redact(m proto.Message) proto.Message { return new(Differ).Redact(m) }

// redact clears m's private fields in place, at any depth.
func (d *Differ) redact(m protoreflect.Message) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case d.IsPrivate(fd):
			m.Clear(fd)
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				d.redact(l.Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, e protoreflect.Value) bool {
				d.redact(e.Message())
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			d.redact(v.Message())
		}
		return true
	})
}
