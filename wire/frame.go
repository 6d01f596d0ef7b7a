package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// FrameHeaderSize is the size of a frame's length prefix: a 4-byte
// big-endian unsigned length of the body that follows.
const FrameHeaderSize = 4

// DefaultMaxFrame is the frame size limit NewFrameReader uses when it is
// given a maxFrame of zero or less: 16 MiB.
const DefaultMaxFrame = 16 << 20

// frameReaderBufSize is the size of the FrameReader's bufio.Reader. A body
// that fits is returned straight out of its buffer, without a copy.
const frameReaderBufSize = 64 << 10

// AppendFrame appends one frame carrying body to dst and returns the extended
// slice: the 4-byte big-endian length of body, then body.
//
// A body must be shorter than 4 GiB, the largest length the prefix can
// express; AppendFrame panics on a longer one, which is a bug in the caller
// (a transport bounds its frames far below that). To frame an envelope
// without the extra copy, append the prefix yourself:
//
//	dst = binary.BigEndian.AppendUint32(dst, uint32(e.Size()))
//	dst = e.AppendTo(dst)
func AppendFrame(dst, body []byte) []byte {
	if uint64(len(body)) > math.MaxUint32 {
		panic(fmt.Sprintf("wire: frame body of %d bytes does not fit a 4-byte length", len(body)))
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)))
	return append(dst, body...)
}

// FrameReader reads length-prefixed frames from a stream, as AppendFrame
// writes them. It buffers the stream and reuses its memory, so reading a
// frame does not allocate in steady state.
//
// A FrameReader is not safe for concurrent use: one goroutine (a
// connection's read loop) owns it.
type FrameReader struct {
	br       *bufio.Reader
	max      uint64
	hdr      [FrameHeaderSize]byte
	buf      []byte // bodies too large for br's buffer are read here
	err      error  // sticky: once set, Next returns it forever
	consumed int    // bytes of the last body still to be discarded from br
}

// NewFrameReader returns a FrameReader that reads frames from r and refuses
// any frame whose body is larger than maxFrame bytes (maxFrame <= 0 means
// DefaultMaxFrame).
func NewFrameReader(r io.Reader, maxFrame int) *FrameReader {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	return &FrameReader{br: bufio.NewReaderSize(r, frameReaderBufSize), max: uint64(maxFrame)}
}

// Next reads the next frame and returns its body. The body is valid only
// until the next call to Next: it may point into the reader's buffer. A
// zero-length frame returns an empty, non-nil body.
//
// Next returns io.EOF when the stream ends cleanly between frames, an error
// matching io.ErrUnexpectedEOF when it ends inside a frame, an error matching
// ErrFrameTooLarge when a frame's length exceeds the limit (without reading
// the body), and the underlying reader's error otherwise. After an error the
// stream's framing is lost, so every later call returns the same error.
func (fr *FrameReader) Next() ([]byte, error) {
	if fr.err != nil {
		return nil, fr.err
	}
	if fr.consumed > 0 {
		// The previous body was returned out of br's buffer; drop it now
		// that the caller is done with it. Discard of buffered bytes cannot
		// fail.
		_, _ = fr.br.Discard(fr.consumed)
		fr.consumed = 0
	}
	body, err := fr.next()
	if err != nil {
		fr.err = err
		return nil, err
	}
	return body, nil
}

func (fr *FrameReader) next() ([]byte, error) {
	if n, err := io.ReadFull(fr.br, fr.hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("wire: stream ended inside a frame header (%d of %d bytes): %w", n, FrameHeaderSize, io.ErrUnexpectedEOF)
		}
		return nil, err // io.EOF between frames, or the reader's own error
	}
	size := uint64(binary.BigEndian.Uint32(fr.hdr[:]))
	if size > fr.max {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, size, fr.max)
	}
	n := int(size)
	if n <= fr.br.Size() {
		body, err := fr.br.Peek(n)
		if err != nil {
			return nil, fr.bodyErr(len(body), n, err)
		}
		fr.consumed = n
		return body[:n:n], nil
	}
	if cap(fr.buf) < n {
		fr.buf = make([]byte, n)
	}
	body := fr.buf[:n]
	if got, err := io.ReadFull(fr.br, body); err != nil {
		return nil, fr.bodyErr(got, n, err)
	}
	return body, nil
}

func (fr *FrameReader) bodyErr(got, want int, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("wire: stream ended inside a frame body (%d of %d bytes): %w", got, want, io.ErrUnexpectedEOF)
	}
	return err
}
