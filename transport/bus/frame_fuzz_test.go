package bus

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/wire"
)

// FuzzDecode feeds arbitrary messages to what a node does with every
// message read from its inbox: it must never panic, and anything it
// accepts must be a frame that encodes back to the same bytes.
func FuzzDecode(f *testing.F) {
	self := actor.MustAddr(1, 1, 1)
	from := actor.MustAddr(1, 1, 2)
	env := &wire.Envelope{Kind: wire.KindRequest, Target: wire.PID{Node: uint32(self), Serial: 7}, CorrelationID: 9, PayloadType: "x.Y", Payload: []byte("hi")}
	data := env.AppendTo(appendHeader(nil, header{kind: kindData, from: from, inc: 5}))
	f.Add(data)
	f.Add(append(appendHeader(nil, header{kind: kindPing, from: from, inc: 5}), "guild.node.1.1.2"...))
	f.Add(append(appendHeader(nil, header{kind: kindPong, from: from, inc: 5}), "guild.node.1.1.2"...))
	f.Add(appendHeader(nil, header{kind: kindBye, from: from, inc: 5}))
	f.Add(appendPacked(appendPacked(appendHeader(nil, header{kind: kindPack, from: from, inc: 5}), data), data))
	f.Add(appendHeader(nil, header{kind: kindData, from: self, inc: 5}))
	f.Add([]byte{})
	f.Add([]byte{frameMagic})
	f.Add(bytes.Repeat([]byte{0xff}, 40))
	f.Fuzz(func(t *testing.T, msg []byte) {
		var env wire.Envelope
		h, body, err := decode(msg, self, 1<<16, &env)
		if err != nil {
			if !errors.Is(err, errBadFrame) {
				t.Fatalf("an error that is not errBadFrame: %v", err)
			}
			return
		}
		if h.from == self || h.from == 0 {
			t.Fatalf("accepted a frame from %v", h.from)
		}
		again := appendHeader(nil, h)
		switch h.kind {
		case kindData:
			if len(body) > 1<<16 {
				t.Fatalf("accepted an envelope of %d bytes", len(body))
			}
			again = append(again, body...)
		case kindPing, kindPong:
			if len(body) == 0 || len(body) > maxInboxLen {
				t.Fatalf("accepted an inbox name of %d bytes", len(body))
			}
			again = append(again, body...)
		case kindBye:
			again = append(again, body...)
		case kindPack:
			for rest := body; len(rest) > 0; {
				var one []byte
				one, rest = nextPacked(rest)
				again = binary.BigEndian.AppendUint32(again, uint32(len(one)))
				again = append(again, one...)
			}
		default:
			t.Fatalf("accepted kind %d", h.kind)
		}
		if !bytes.Equal(again, msg) {
			t.Fatalf("the frame does not encode back to its bytes")
		}
	})
}

// TestFrameRoundTrip: a header reads back as written.
func TestFrameRoundTrip(t *testing.T) {
	h := header{kind: kindPong, from: actor.MustAddr(3, 4, 5), inc: 1<<63 | 42}
	got, body, err := parseFrame(append(appendHeader(nil, h), "inbox"...))
	if err != nil || got != h || string(body) != "inbox" {
		t.Fatalf("parseFrame: %+v %q %v, want %+v", got, body, err, h)
	}
}
