package stream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/guildkit/guild/actor"
)

// FuzzOpenHeader feeds arbitrary bytes to the open header's decoder and
// reader: they never panic, never read past the header, and what decodes
// encodes back to the same bytes.
func FuzzOpenHeader(f *testing.F) {
	f.Add(appendOpen(nil, openHeader{}))
	f.Add(appendOpen(nil, openHeader{service: "chat", info: "10.0.0.1:5555"}))
	f.Add(append(appendOpen(nil, openHeader{service: "x"}), "payload"...))
	f.Add([]byte{openVersion, 200})
	f.Add([]byte{openVersion, 0, 0xff, 0xff})
	f.Add([]byte{2, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := decodeOpen(b)
		if err != nil {
			if !errors.Is(err, errBadOpen) {
				t.Fatalf("decodeOpen error %v does not match errBadOpen", err)
			}
			if _, rerr := readOpen(bytes.NewReader(b)); rerr == nil {
				t.Fatalf("decodeOpen failed (%v) but readOpen did not", err)
			}
			return
		}
		r := bytes.NewReader(b)
		rh, rerr := readOpen(r)
		if n == 0 { // incomplete
			if rerr == nil {
				t.Fatalf("decodeOpen says incomplete, readOpen decoded %+v", rh)
			}
			if !errors.Is(rerr, io.ErrUnexpectedEOF) && !errors.Is(rerr, io.EOF) && !errors.Is(rerr, errBadOpen) {
				t.Fatalf("readOpen of an incomplete header: %v", rerr)
			}
			return
		}
		if rerr != nil {
			t.Fatalf("decodeOpen decoded, readOpen failed: %v", rerr)
		}
		if rh != h {
			t.Fatalf("readOpen %+v, decodeOpen %+v", rh, h)
		}
		if r.Len() != len(b)-n {
			t.Fatalf("readOpen read %d bytes, the header is %d", len(b)-r.Len(), n)
		}
		if len(h.service) > MaxServiceLen || len(h.info) > MaxInfoLen {
			t.Fatalf("decoded past the bounds: %d, %d", len(h.service), len(h.info))
		}
		if enc := appendOpen(nil, h); !bytes.Equal(enc, b[:n]) {
			t.Fatalf("re-encoded %x, decoded from %x", enc, b[:n])
		}
	})
}

// FuzzHello feeds arbitrary bytes to the connection hello's reader.
func FuzzHello(f *testing.F) {
	f.Add(appendHello(nil, actor.MustAddr(1, 2, 3)))
	f.Add(append(appendHello(nil, 7), 1, 2, 3))
	f.Add([]byte("\x00\x00\x00\x0cGUILD1\x01\x00\x00\x00\x00\x01"))
	f.Add([]byte("\x00\x00\x00\x40" + strings.Repeat("x", 64)))
	f.Add([]byte("\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		a, err := readHello(r)
		if err != nil {
			return
		}
		if len(b) < frameHeaderSize+helloSize || string(b[4:10]) != helloMagic {
			t.Fatalf("accepted %x as a hello", b)
		}
		if a != actor.Addr(binary.BigEndian.Uint32(b[12:16])) || b[10] != protocolVersion {
			t.Fatalf("hello %x decoded as %v", b, a)
		}
		if read := len(b) - r.Len(); read != frameHeaderSize+int(binary.BigEndian.Uint32(b)) {
			t.Fatalf("read %d bytes of a hello framed as %d", read, binary.BigEndian.Uint32(b))
		}
	})
}

func TestOpenHeaderRoundTrip(t *testing.T) {
	for _, h := range []openHeader{{}, {service: "s"}, {info: "i"}, {service: strings.Repeat("s", MaxServiceLen), info: strings.Repeat("i", MaxInfoLen)}} {
		b := appendOpen(nil, h)
		for cut := range len(b) {
			if _, n, err := decodeOpen(b[:cut]); n != 0 || err != nil {
				t.Fatalf("%+v cut at %d: n %d, err %v", h, cut, n, err)
			}
		}
		got, err := readOpen(bytes.NewReader(b))
		if err != nil || got != h {
			t.Fatalf("round trip of %+v: %+v, %v", h, got, err)
		}
	}
	if err := checkOpen(openHeader{service: strings.Repeat("s", MaxServiceLen+1)}); !errors.Is(err, ErrBadOption) {
		t.Fatalf("a long service: %v", err)
	}
	if err := checkOpen(openHeader{info: strings.Repeat("i", MaxInfoLen+1)}); !errors.Is(err, ErrBadOption) {
		t.Fatalf("a long info: %v", err)
	}
}
