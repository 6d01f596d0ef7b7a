package wire

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

func TestMetadataRoundTrip(t *testing.T) {
	for _, pairs := range [][]string{
		nil,
		{"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		{"guild-user-id", "u1", "guild-session-id", "s1", "empty", ""},
		{"binary", "\x00\xff\x80"},
	} {
		b := AppendMetadata(nil, pairs)
		got, err := ParseMetadata(b, 32, 4096)
		if err != nil {
			t.Fatalf("%q: %v", pairs, err)
		}
		if !slices.Equal(got, pairs) {
			t.Fatalf("round trip of %q gave %q", pairs, got)
		}
	}
	// An odd count gets an empty last value.
	got, err := ParseMetadata(AppendMetadata(nil, []string{"k"}), 32, 4096)
	if err != nil || !slices.Equal(got, []string{"k", ""}) {
		t.Fatalf("odd pairs: %q, %v", got, err)
	}
}

func TestMetadataParseRefuses(t *testing.T) {
	many := make([]string, 0, 66)
	for range 33 {
		many = append(many, "k", "v")
	}
	oneString := protowire.AppendString(protowire.AppendTag(nil, fieldPair, protowire.BytesType), "lonely")
	for _, c := range []struct {
		name string
		b    []byte
	}{
		{"too many pairs", AppendMetadata(nil, many)},
		{"too many bytes", AppendMetadata(nil, []string{"k", strings.Repeat("v", 4096)})},
		{"a key without a value", oneString},
		{"a truncated string", oneString[:len(oneString)-2]},
		{"a bad tag", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
	} {
		if _, err := ParseMetadata(c.b, 32, 4096); !errors.Is(err, ErrBadMetadata) {
			t.Errorf("%s: %v, want ErrBadMetadata", c.name, err)
		}
	}
	// Unknown fields are skipped.
	b := protowire.AppendVarint(protowire.AppendTag(nil, 9, protowire.VarintType), 5)
	b = AppendMetadata(b, []string{"k", "v"})
	if got, err := ParseMetadata(b, 32, 4096); err != nil || !slices.Equal(got, []string{"k", "v"}) {
		t.Fatalf("with an unknown field: %q, %v", got, err)
	}
}

// FuzzParseMetadata: ParseMetadata never panics, stays within its bounds,
// and what it accepts encodes back to something it parses the same.
func FuzzParseMetadata(f *testing.F) {
	f.Add(AppendMetadata(nil, []string{"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}))
	f.Add(AppendMetadata(nil, []string{"a", "b", "c", ""}))
	f.Add([]byte{0x0a, 0x01})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		pairs, err := ParseMetadata(b, 4, 64)
		if err != nil {
			if !errors.Is(err, ErrBadMetadata) {
				t.Fatalf("error %v does not match ErrBadMetadata", err)
			}
			return
		}
		size := 0
		for _, s := range pairs {
			size += len(s)
		}
		if len(pairs)%2 != 0 || len(pairs) > 8 || size > 64 {
			t.Fatalf("accepted %q past the bounds", pairs)
		}
		again, err := ParseMetadata(AppendMetadata(nil, pairs), 4, 64)
		if err != nil || !slices.Equal(again, pairs) {
			t.Fatalf("re-encoded %q parsed as %q, %v", pairs, again, err)
		}
	})
}
