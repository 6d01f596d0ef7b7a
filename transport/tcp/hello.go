package tcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/wire"
)

// The hello is the first frame each side writes on a new connection: a
// fixed 12-byte body (see PROTOCOL.md).
const (
	helloMagic      = "GUILD1"
	protocolVersion = 1
	helloSize       = 12 // magic, version, flags, address
	maxHelloSize    = 64 // a longer hello is refused without reading it
	// flagReject, set in the acceptor's hello, says that it keeps another
	// connection to the dialler and closes this one.
	flagReject = 1 << 0
)

// errHello is the cause of every hello that cannot be decoded.
var errHello = errors.New("tcp: bad hello")

// hello is the decoded handshake frame.
type hello struct {
	version uint8
	flags   uint8
	addr    actor.Addr
}

// appendHello appends the framed hello of a node at addr.
func appendHello(dst []byte, addr actor.Addr, flags uint8) []byte {
	dst = binary.BigEndian.AppendUint32(dst, helloSize)
	dst = append(dst, helloMagic...)
	dst = append(dst, protocolVersion, flags)
	return binary.BigEndian.AppendUint32(dst, uint32(addr))
}

// decodeHello decodes a hello body. Bytes after the 12th are ignored, so a
// later version may extend the hello.
func decodeHello(b []byte) (hello, error) {
	if len(b) < helloSize {
		return hello{}, fmt.Errorf("%w: %d bytes, want at least %d", errHello, len(b), helloSize)
	}
	if string(b[:len(helloMagic)]) != helloMagic {
		return hello{}, fmt.Errorf("%w: magic %q is not %q", errHello, b[:len(helloMagic)], helloMagic)
	}
	h := hello{version: b[6], flags: b[7], addr: actor.Addr(binary.BigEndian.Uint32(b[8:12]))}
	if h.version != protocolVersion {
		return hello{}, fmt.Errorf("%w: protocol version %d, this node speaks %d", errHello, h.version, protocolVersion)
	}
	return h, nil
}

// readHello reads one framed hello from r without reading past it, so that
// the frames after it stay in r for the connection's FrameReader.
func readHello(r io.Reader) (hello, error) {
	var buf [wire.FrameHeaderSize + maxHelloSize]byte
	if _, err := io.ReadFull(r, buf[:wire.FrameHeaderSize]); err != nil {
		return hello{}, fmt.Errorf("reading hello: %w", err)
	}
	n := binary.BigEndian.Uint32(buf[:wire.FrameHeaderSize])
	if n < helloSize || n > maxHelloSize {
		return hello{}, fmt.Errorf("%w: frame of %d bytes, want %d to %d", errHello, n, helloSize, maxHelloSize)
	}
	body := buf[wire.FrameHeaderSize : wire.FrameHeaderSize+int(n)]
	if _, err := io.ReadFull(r, body); err != nil {
		return hello{}, fmt.Errorf("reading hello: %w", err)
	}
	return decodeHello(body)
}
