package gatepb

import (
	"encoding/binary"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"
)

// Version is the protocol version this package speaks.
const Version = 1

// HeaderSize is the size of the length prefix of a frame on a stream
// (TCP, KCP): 4 bytes, big-endian, counting the bytes that follow.
const HeaderSize = 4

// DefaultMaxFrame is the largest frame body a gateway accepts by default.
const DefaultMaxFrame = 64 << 10

// ErrBadFrame is returned by Decode for bytes that are not a valid Frame.
var ErrBadFrame = errors.New("gatepb: bad frame")

// Encode returns f encoded, without a length prefix (a WebSocket message).
func Encode(f *Frame) ([]byte, error) {
	return proto.Marshal(f)
}

// AppendStream appends f to dst as a stream frame: the length prefix, then
// the encoded frame.
func AppendStream(dst []byte, f *Frame) ([]byte, error) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst, err := proto.MarshalOptions{}.MarshalAppend(dst, f)
	if err != nil {
		return dst[:start], err
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-HeaderSize))
	return dst, nil
}

// Decode decodes one frame body into f. A body that is not a Frame, or a
// Frame with no body set, is an error matching ErrBadFrame.
func Decode(b []byte, f *Frame) error {
	if err := proto.Unmarshal(b, f); err != nil {
		return fmt.Errorf("%w: %v", ErrBadFrame, err)
	}
	if f.Body == nil {
		return fmt.Errorf("%w: no message in the frame", ErrBadFrame)
	}
	return nil
}
