package propsync

import (
	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/propsync/propsyncpb"
)

// DiffByWalk is Diff without the encodings: every field is walked by
// reflection, which Diff does only where bytes differ.
func (d *Differ) DiffByWalk(old, new proto.Message) ([]*propsyncpb.Op, error) {
	return d.diff(old.ProtoReflect(), new.ProtoReflect(), nil, nil)
}

// ReflectOnly makes d find changes by reflection only, even for types
// with generated code.
func (d *Differ) ReflectOnly() *Differ {
	d.reflectOnly = true
	return d
}

// Segments splits an encoded message by field: each segment's field
// number, and whether its records were not contiguous.
func Segments(b []byte) (nums []int32, split []bool, ok bool) {
	segs, ok := segments(b)
	for _, s := range segs {
		nums = append(nums, int32(s.num))
		split = append(split, s.split)
	}
	return nums, split, ok
}
