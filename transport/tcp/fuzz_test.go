package tcp

import (
	"bytes"
	"testing"

	"github.com/guildkit/guild/actor"
)

// FuzzHello checks that the hello decoder never panics, accepts only
// well-formed hellos, and that every accepted hello re-encodes to the same
// first 12 bytes.
func FuzzHello(f *testing.F) {
	f.Add(appendHello(nil, actor.MustAddr(1, 2, 3), 0)[4:])
	f.Add(appendHello(nil, 0, flagReject)[4:])
	f.Add([]byte("GUILD1"))
	f.Add([]byte("GUILD1\x02\x00\x00\x00\x00\x01extra"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHello(b)
		if err != nil {
			if h != (hello{}) {
				t.Fatalf("error %v with a non-zero hello %+v", err, h)
			}
			return
		}
		if h.version != protocolVersion {
			t.Fatalf("accepted version %d", h.version)
		}
		if got := appendHello(nil, h.addr, h.flags)[4:]; !bytes.Equal(got, b[:helloSize]) {
			t.Fatalf("re-encoded %x, decoded from %x", got, b[:helloSize])
		}
		// Framed, it reads back the same way through readHello.
		if len(b) <= maxHelloSize {
			framed := append([]byte{0, 0, 0, byte(len(b))}, b...)
			h2, err := readHello(bytes.NewReader(framed))
			if err != nil || h2 != h {
				t.Fatalf("readHello = %+v, %v; decodeHello = %+v", h2, err, h)
			}
		}
	})
}
