package bus

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/wire"
)

// The frame header: magic, kind, the sender's address (4 bytes, big
// endian) and its incarnation (8 bytes, big endian).
const (
	frameMagic  = 0x67 // 'g'
	headerSize  = 1 + 1 + 4 + 8
	maxInboxLen = 1024
)

// frameKind says what a frame is for.
type frameKind byte

const (
	kindData frameKind = 1 // an envelope follows
	kindPing frameKind = 2 // the sender's inbox follows; answer with a pong
	kindPong frameKind = 3 // the sender's inbox follows
	kindBye  frameKind = 4 // the sender is closing
	kindPack frameKind = 5 // several envelopes follow, each after its 4-byte length
)

// packLimit bounds the body of a pack frame: a writer packs the data
// frames it publishes together into packs of at most min(MaxFrame,
// packLimit) bytes (a larger envelope goes alone).
const packLimit = 256 << 10

// CarriesData reports whether msg, a message a Broker was given to
// publish, is a frame that carries envelopes (a data or pack frame), as
// opposed to a ping, pong or bye. A Broker told that a message did not
// reach its inbox uses it to tell lost data, which must make the peer
// lost, from a lost control frame, which may predate the peer's return.
func CarriesData(msg []byte) bool {
	if len(msg) < headerSize || msg[0] != frameMagic {
		return false
	}
	k := frameKind(msg[1])
	return k == kindData || k == kindPack
}

// header is a decoded frame header.
type header struct {
	kind frameKind
	from actor.Addr
	inc  uint64
}

// appendHeader appends a frame header to dst.
func appendHeader(dst []byte, h header) []byte {
	dst = append(dst, frameMagic, byte(h.kind))
	dst = binary.BigEndian.AppendUint32(dst, uint32(h.from))
	return binary.BigEndian.AppendUint64(dst, h.inc)
}

// errBadFrame is the cause of every frame that does not decode.
var errBadFrame = errors.New("bus: bad frame")

// parseFrame splits msg into its header and body. The body aliases msg.
// It checks what does not depend on the kind's body: the magic, a known
// kind, a non-zero sender, and for a ping or pong an inbox name of a
// sane length.
func parseFrame(msg []byte) (header, []byte, error) {
	if len(msg) < headerSize {
		return header{}, nil, fmt.Errorf("%w: %d bytes, shorter than a header", errBadFrame, len(msg))
	}
	if msg[0] != frameMagic {
		return header{}, nil, fmt.Errorf("%w: magic %#x", errBadFrame, msg[0])
	}
	h := header{
		kind: frameKind(msg[1]),
		from: actor.Addr(binary.BigEndian.Uint32(msg[2:6])),
		inc:  binary.BigEndian.Uint64(msg[6:14]),
	}
	body := msg[headerSize:]
	switch h.kind {
	case kindData, kindBye, kindPack:
	case kindPing, kindPong:
		if len(body) == 0 || len(body) > maxInboxLen {
			return header{}, nil, fmt.Errorf("%w: an inbox name of %d bytes", errBadFrame, len(body))
		}
	default:
		return header{}, nil, fmt.Errorf("%w: kind %d", errBadFrame, h.kind)
	}
	if h.from == 0 {
		return header{}, nil, fmt.Errorf("%w: no sender", errBadFrame)
	}
	return h, body, nil
}

// decode checks a message read from the inbox of self and decodes it: its
// header, its body (an inbox name for a ping or pong) and, for a data
// frame, its envelope into env (aliasing msg). A frame from self itself,
// or whose envelope is above maxFrame or does not decode, is an error.
func decode(msg []byte, self actor.Addr, maxFrame int, env *wire.Envelope) (header, []byte, error) {
	h, body, err := parseFrame(msg)
	if err != nil {
		return h, nil, err
	}
	if h.from == self {
		return h, nil, fmt.Errorf("%w: from this node itself", errBadFrame)
	}
	if h.kind == kindPack {
		if len(body) > maxFrame {
			return h, nil, fmt.Errorf("%w: a pack of %d bytes, above MaxFrame %d: %w", errBadFrame, len(body), maxFrame, wire.ErrFrameTooLarge)
		}
		n := 0
		for rest := body; len(rest) > 0; n++ {
			if len(rest) < 4 || int(binary.BigEndian.Uint32(rest)) > len(rest)-4 {
				return h, nil, fmt.Errorf("%w: envelope %d of a pack is cut", errBadFrame, n)
			}
			rest = rest[4+binary.BigEndian.Uint32(rest):]
		}
		if n == 0 {
			return h, nil, fmt.Errorf("%w: an empty pack", errBadFrame)
		}
	}
	if h.kind == kindData {
		if len(body) > maxFrame {
			return h, nil, fmt.Errorf("%w: an envelope of %d bytes, above MaxFrame %d: %w", errBadFrame, len(body), maxFrame, wire.ErrFrameTooLarge)
		}
		if err := env.Unmarshal(body); err != nil {
			return h, nil, fmt.Errorf("%w: %w", errBadFrame, err)
		}
	}
	return h, body, nil
}

// appendPacked appends the envelope of data frame f (its body, after the
// header) to a pack body, after its length.
func appendPacked(pack, f []byte) []byte {
	pack = binary.BigEndian.AppendUint32(pack, uint32(len(f)-headerSize))
	return append(pack, f[headerSize:]...)
}

// nextPacked splits the first envelope off a pack body that decode
// checked.
func nextPacked(body []byte) (env, rest []byte) {
	n := binary.BigEndian.Uint32(body)
	return body[4 : 4+n], body[4+n:]
}
