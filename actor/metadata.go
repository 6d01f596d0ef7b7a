package actor

import (
	"errors"
	"fmt"
	"iter"
)

// Bounds of a Metadata that crosses nodes: a message whose metadata is
// larger is refused with ErrBadMetadata when it is sent, and a node drops
// (and reports) one that arrives larger.
const (
	// MaxMetadataEntries bounds the key-values of one message.
	MaxMetadataEntries = 32
	// MaxMetadataSize bounds the bytes of all keys and values of one
	// message together.
	MaxMetadataSize = 4096
)

// ErrBadMetadata is the error of a Metadata past its bounds, or with an
// empty key.
var ErrBadMetadata = errors.New("actor: bad metadata")

// Metadata is a small, immutable set of string key-values that travels
// with a message: across nodes, through Forward, and into the handler's
// Context (Context.Metadata). It is where trace context (W3C traceparent
// and tracestate), the user and session a gateway request comes from, and
// keys of your own go. The zero Metadata is empty, and a message sent
// without metadata pays nothing for the feature.
//
// Keys are compared as they are (byte for byte); use lower case, as HTTP/2
// and gRPC do. Each key appears at most once. Values of Metadata are safe
// to share between goroutines: With returns a copy.
type Metadata struct {
	kv []string // key, value, key, value...
}

// NewMetadata returns the metadata of the given key-value pairs ("k1",
// "v1", "k2", "v2"...). A later pair replaces an earlier one of the same
// key; a key without a value (an odd count) gets the empty value.
func NewMetadata(pairs ...string) Metadata {
	if len(pairs) == 0 {
		return Metadata{}
	}
	kv := make([]string, 0, len(pairs)+len(pairs)%2)
next:
	for i := 0; i < len(pairs); i += 2 {
		k, v := pairs[i], ""
		if i+1 < len(pairs) {
			v = pairs[i+1]
		}
		for j := 0; j < len(kv); j += 2 {
			if kv[j] == k {
				kv[j+1] = v
				continue next
			}
		}
		kv = append(kv, k, v)
	}
	return Metadata{kv: kv}
}

// Len returns the number of keys.
func (m Metadata) Len() int { return len(m.kv) / 2 }

// Get returns the value of key, or "" when there is none.
func (m Metadata) Get(key string) string {
	v, _ := m.Lookup(key)
	return v
}

// Lookup returns the value of key and whether it is there.
func (m Metadata) Lookup(key string) (string, bool) {
	for i := 0; i < len(m.kv); i += 2 {
		if m.kv[i] == key {
			return m.kv[i+1], true
		}
	}
	return "", false
}

// With returns a copy of m with key set to value (replacing its value when
// m has key already). m itself does not change.
func (m Metadata) With(key, value string) Metadata {
	kv := make([]string, len(m.kv), len(m.kv)+2)
	copy(kv, m.kv)
	for i := 0; i < len(kv); i += 2 {
		if kv[i] == key {
			kv[i+1] = value
			return Metadata{kv: kv}
		}
	}
	return Metadata{kv: append(kv, key, value)}
}

// All iterates over the key-values, in the order they were first set.
func (m Metadata) All() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for i := 0; i < len(m.kv); i += 2 {
			if !yield(m.kv[i], m.kv[i+1]) {
				return
			}
		}
	}
}

// Pairs returns the key-values as a new slice: key, value, key, value...
func (m Metadata) Pairs() []string {
	return append([]string(nil), m.kv...)
}

// Validate reports whether m is within MaxMetadataEntries and
// MaxMetadataSize and has no empty key, as an error matching
// ErrBadMetadata.
func (m Metadata) Validate() error {
	if m.Len() > MaxMetadataEntries {
		return fmt.Errorf("%w: %d keys, more than %d", ErrBadMetadata, m.Len(), MaxMetadataEntries)
	}
	size := 0
	for i := 0; i < len(m.kv); i += 2 {
		if m.kv[i] == "" {
			return fmt.Errorf("%w: an empty key", ErrBadMetadata)
		}
		size += len(m.kv[i]) + len(m.kv[i+1])
	}
	if size > MaxMetadataSize {
		return fmt.Errorf("%w: %d bytes, more than %d", ErrBadMetadata, size, MaxMetadataSize)
	}
	return nil
}

// String returns the metadata as "{k1=v1 k2=v2}", for logs.
func (m Metadata) String() string {
	s := "{"
	for i := 0; i < len(m.kv); i += 2 {
		if i > 0 {
			s += " "
		}
		s += m.kv[i] + "=" + m.kv[i+1]
	}
	return s + "}"
}

// withMetadata is a message carrying metadata, as WithMetadata wraps it.
// The runtime unwraps it before the handler, dead letters or a codec see
// the message.
type withMetadata struct {
	msg any
	md  Metadata
}

// WithMetadata returns msg carrying md, to pass to any Send, Request, Call
// or SendName of a Node or a Context: the handler finds msg in
// Context.Message and md in Context.Metadata, on this node or another.
// Metadata with no keys returns msg itself. A SendInterceptor may wrap
// Envelope.Message this way to add metadata to what a node sends.
func WithMetadata(msg any, md Metadata) any {
	if md.Len() == 0 {
		return msg
	}
	if w, ok := msg.(*withMetadata); ok {
		msg = w.msg // the new metadata replaces the old
	}
	return &withMetadata{msg: msg, md: md}
}

// SplitMetadata returns the message that msg carries and its metadata, if
// msg came from WithMetadata, or msg itself and no metadata. A
// SendInterceptor uses it to read (or extend) what is being sent.
func SplitMetadata(msg any) (any, Metadata) {
	if w, ok := msg.(*withMetadata); ok {
		return w.msg, w.md
	}
	return msg, Metadata{}
}
