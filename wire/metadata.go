package wire

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// ErrBadMetadata is the error of ParseMetadata for bytes that are not a
// well-formed Metadata message within its bounds.
var ErrBadMetadata = errors.New("wire: bad metadata")

// fieldPair is the one field of a Metadata message.
const fieldPair protowire.Number = 1

// AppendMetadata appends to dst the key-values pairs (key, value, key,
// value...) encoded as the Metadata message of envelope.proto:
//
//	message Metadata {
//	  repeated string pairs = 1; // key, value, key, value...
//	}
//
// for Envelope.Metadata. Nothing is appended for no pairs; an odd count
// gets an empty last value.
func AppendMetadata(dst []byte, pairs []string) []byte {
	for i, s := range pairs {
		dst = protowire.AppendTag(dst, fieldPair, protowire.BytesType)
		dst = protowire.AppendString(dst, s)
		if i == len(pairs)-1 && i%2 == 0 {
			dst = protowire.AppendTag(dst, fieldPair, protowire.BytesType)
			dst = protowire.AppendString(dst, "")
		}
	}
	return dst
}

// AppendMetadataPair appends one key-value to a Metadata message being
// built in dst: AppendMetadata of a whole list, one pair at a time.
func AppendMetadataPair(dst []byte, key, value string) []byte {
	dst = protowire.AppendTag(dst, fieldPair, protowire.BytesType)
	dst = protowire.AppendString(dst, key)
	dst = protowire.AppendTag(dst, fieldPair, protowire.BytesType)
	return protowire.AppendString(dst, value)
}

// ParseMetadata decodes an Envelope.Metadata into its key-value pairs (key,
// value, key, value...), copied out of b. It fails, with an error matching
// ErrBadMetadata, on bytes that are not a Metadata message, an odd number
// of strings, more than maxPairs pairs or more than maxBytes bytes of keys
// and values together. Unknown fields are skipped, as protobuf's rules
// want; empty b is no pairs.
func ParseMetadata(b []byte, maxPairs, maxBytes int) ([]string, error) {
	var pairs []string
	size := 0
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("%w: %w", ErrBadMetadata, protowire.ParseError(n))
		}
		b = b[n:]
		if num != fieldPair || typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return nil, fmt.Errorf("%w: field %d: %w", ErrBadMetadata, num, protowire.ParseError(n))
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil, fmt.Errorf("%w: %w", ErrBadMetadata, protowire.ParseError(n))
		}
		b = b[n:]
		if size += len(v); size > maxBytes {
			return nil, fmt.Errorf("%w: more than %d bytes", ErrBadMetadata, maxBytes)
		}
		if len(pairs) >= 2*maxPairs {
			return nil, fmt.Errorf("%w: more than %d pairs", ErrBadMetadata, maxPairs)
		}
		pairs = append(pairs, string(v))
	}
	if len(pairs)%2 != 0 {
		return nil, fmt.Errorf("%w: a key without a value", ErrBadMetadata)
	}
	return pairs, nil
}
