package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/guildkit/guild/actor"
)

// The bytes of the stream connection that are guild's own (the rest is
// yamux's framing): the hello each side writes first on a new connection,
// and the open header and its status at the start of every stream. See
// docs/PROTOCOL-NODE.md, section "Streams".
const (
	// helloMagic starts the hello of a stream connection. It differs from
	// the TCP mesh's "GUILD1" so that a stream connection dialled to a
	// mesh listener (or the other way round) fails its handshake at once.
	helloMagic      = "GSTRM1"
	protocolVersion = 1
	helloSize       = 12 // magic, version, flags, address
	maxHelloSize    = 64 // a longer hello is refused without reading it
	frameHeaderSize = 4

	openVersion = 1
	// MaxServiceLen bounds the service name of an open header.
	MaxServiceLen = 64
	// MaxInfoLen bounds the info of an open header.
	MaxInfoLen = 1024
)

// The status a stream's acceptor answers its open header with.
const (
	statusOK        byte = 0 // accepted: the handler runs
	statusNoService byte = 1 // no handler for the service
	statusTooMany   byte = 2 // the peer holds MaxStreamsPerPeer streams of this node's
	statusClosing   byte = 3 // the peer is shutting down
	statusBadHeader byte = 4 // the header did not decode
)

// errBadHello and errBadOpen are the causes of bytes that do not decode.
var (
	errBadHello = errors.New("stream: bad hello")
	errBadOpen  = errors.New("stream: bad open header")
)

// appendHello appends the framed hello of the node at addr.
func appendHello(dst []byte, addr actor.Addr) []byte {
	dst = binary.BigEndian.AppendUint32(dst, helloSize)
	dst = append(dst, helloMagic...)
	dst = append(dst, protocolVersion, 0)
	return binary.BigEndian.AppendUint32(dst, uint32(addr))
}

// decodeHello decodes a hello body and returns the sender's address.
// Bytes after the 12th are ignored, so a later version may extend it.
func decodeHello(b []byte) (actor.Addr, error) {
	if len(b) < helloSize {
		return 0, fmt.Errorf("%w: %d bytes, want at least %d", errBadHello, len(b), helloSize)
	}
	if string(b[:len(helloMagic)]) != helloMagic {
		return 0, fmt.Errorf("%w: magic %q is not %q", errBadHello, b[:len(helloMagic)], helloMagic)
	}
	if b[6] != protocolVersion {
		return 0, fmt.Errorf("%w: version %d, this node speaks %d", errBadHello, b[6], protocolVersion)
	}
	return actor.Addr(binary.BigEndian.Uint32(b[8:12])), nil
}

// readHello reads one framed hello from r, and not a byte past it.
func readHello(r io.Reader) (actor.Addr, error) {
	var buf [frameHeaderSize + maxHelloSize]byte
	if _, err := io.ReadFull(r, buf[:frameHeaderSize]); err != nil {
		return 0, fmt.Errorf("reading hello: %w", err)
	}
	n := binary.BigEndian.Uint32(buf[:frameHeaderSize])
	if n < helloSize || n > maxHelloSize {
		return 0, fmt.Errorf("%w: frame of %d bytes, want %d to %d", errBadHello, n, helloSize, maxHelloSize)
	}
	body := buf[frameHeaderSize : frameHeaderSize+int(n)]
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, fmt.Errorf("reading hello: %w", err)
	}
	return decodeHello(body)
}

// openHeader is what the opener of a stream writes first on it.
type openHeader struct {
	service string // the handler the opener asks for ("" is the default one)
	info    string // free text for the handler, such as a gateway client's address
}

// appendOpen appends h encoded: version (1 byte), service length (1),
// service, info length (2, big-endian), info.
func appendOpen(dst []byte, h openHeader) []byte {
	dst = append(dst, openVersion, byte(len(h.service)))
	dst = append(dst, h.service...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(h.info)))
	return append(dst, h.info...)
}

// checkOpen returns an error when h cannot be encoded.
func checkOpen(h openHeader) error {
	if len(h.service) > MaxServiceLen {
		return fmt.Errorf("%w: service name of %d bytes, at most %d", ErrBadOption, len(h.service), MaxServiceLen)
	}
	if len(h.info) > MaxInfoLen {
		return fmt.Errorf("%w: info of %d bytes, at most %d", ErrBadOption, len(h.info), MaxInfoLen)
	}
	return nil
}

// decodeOpen decodes the open header at the start of b. It returns the
// header and its length, or n == 0 and no error when b holds only part of
// one (read more), or an error when b cannot start a valid header.
func decodeOpen(b []byte) (h openHeader, n int, err error) {
	if len(b) < 2 {
		return h, 0, nil
	}
	if b[0] != openVersion {
		return h, 0, fmt.Errorf("%w: version %d, this node speaks %d", errBadOpen, b[0], openVersion)
	}
	sl := int(b[1])
	if sl > MaxServiceLen {
		return h, 0, fmt.Errorf("%w: service name of %d bytes, at most %d", errBadOpen, sl, MaxServiceLen)
	}
	if len(b) < 2+sl+2 {
		return h, 0, nil
	}
	il := int(binary.BigEndian.Uint16(b[2+sl:]))
	if il > MaxInfoLen {
		return h, 0, fmt.Errorf("%w: info of %d bytes, at most %d", errBadOpen, il, MaxInfoLen)
	}
	end := 2 + sl + 2 + il
	if len(b) < end {
		return h, 0, nil
	}
	return openHeader{service: string(b[2 : 2+sl]), info: string(b[4+sl : end])}, end, nil
}

// maxOpenSize is the longest open header.
const maxOpenSize = 2 + MaxServiceLen + 2 + MaxInfoLen

// readOpen reads one open header from r, and not a byte past it (the
// bytes after it are the stream's).
func readOpen(r io.Reader) (openHeader, error) {
	var buf [maxOpenSize]byte
	have := 0
	need := 2
	for {
		if _, err := io.ReadFull(r, buf[have:need]); err != nil {
			return openHeader{}, fmt.Errorf("reading the open header: %w", err)
		}
		have = need
		h, n, err := decodeOpen(buf[:have])
		if err != nil {
			return openHeader{}, err
		}
		if n > 0 {
			return h, nil
		}
		// The header is incomplete: the fixed fields say how much is left.
		sl := int(buf[1])
		need = 2 + sl + 2
		if have >= need {
			need += int(binary.BigEndian.Uint16(buf[2+sl:]))
		}
	}
}
