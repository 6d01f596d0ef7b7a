package propsync

import (
	"bytes"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Diff is fast because most of a state does not change in a turn: it
// compares the deterministic encodings of the two versions field by
// field, and walks by reflection only the fields whose bytes differ.
// Equal bytes mean equal values (the encoding of a type is one-to-one
// when deterministic); a field whose records are not contiguous, or bytes
// that do not parse, are simply walked.

// segment is the bytes of all the records of one field in an encoded
// message.
type segment struct {
	num   protowire.Number
	bytes []byte
	split bool // the field's records are not contiguous: do not trust bytes
}

// segments splits an encoded message by field. ok is false when b does
// not parse.
func segments(b []byte) (segs []segment, ok bool) {
	for off := 0; off < len(b); {
		num, typ, n := protowire.ConsumeTag(b[off:])
		if n < 0 {
			return nil, false
		}
		m := protowire.ConsumeFieldValue(num, typ, b[off+n:])
		if m < 0 {
			return nil, false
		}
		end := off + n + m
		if k := len(segs) - 1; k >= 0 && segs[k].num == num {
			segs[k].bytes = segs[k].bytes[:len(segs[k].bytes)+n+m]
		} else {
			for i := range segs {
				if segs[i].num == num {
					segs[i].split = true
				}
			}
			// b[off:end] keeps b's capacity: the records of the field
			// that follow extend it.
			segs = append(segs, segment{num: num, bytes: b[off:end]})
		}
		off = end
	}
	return segs, true
}

// find returns the segment of field num.
func find(segs []segment, num protoreflect.FieldNumber) (segment, bool) {
	for _, s := range segs {
		if s.num == protowire.Number(num) {
			return s, true
		}
	}
	return segment{}, false
}

// wireMessage is a message with its encoding split by field (nil when
// unknown: every field is walked).
type wireMessage struct {
	segs []segment
	ok   bool
}

func wireOf(b []byte) wireMessage {
	if b == nil {
		return wireMessage{}
	}
	segs, ok := segments(b)
	return wireMessage{segs: segs, ok: ok}
}

// same reports whether field num is certainly equal in o and n.
func same(o, n wireMessage, num protoreflect.FieldNumber) bool {
	if !o.ok || !n.ok {
		return false
	}
	so, okO := find(o.segs, num)
	sn, okN := find(n.segs, num)
	switch {
	case !okO && !okN:
		return true
	case okO != okN, so.split, sn.split:
		return false
	}
	return bytes.Equal(so.bytes, sn.bytes)
}

// payloads returns the payloads of field num's records, which hold
// messages; nil when not known.
func payloads(w wireMessage, num protoreflect.FieldNumber) [][]byte {
	if !w.ok {
		return nil
	}
	s, ok := find(w.segs, num)
	if !ok || s.split {
		return nil
	}
	var out [][]byte
	for b := s.bytes; len(b) > 0; {
		_, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType {
			return nil
		}
		v, m := protowire.ConsumeBytes(b[n:])
		if m < 0 {
			return nil
		}
		out = append(out, v)
		b = b[n+m:]
	}
	return out
}
