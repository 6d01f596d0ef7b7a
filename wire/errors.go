package wire

import "errors"

// Sentinel errors. Match them with errors.Is: the package wraps them with
// detail (which field, which type, how large).
var (
	// ErrFrameTooLarge: a frame's length prefix is larger than the reader's
	// maxFrame. The stream cannot be resynchronised after it; the transport
	// closes the connection.
	ErrFrameTooLarge = errors.New("wire: frame too large")
	// ErrMalformed: bytes that do not decode: a truncated or overlong varint,
	// a length beyond the buffer, a known field with the wrong wire type,
	// invalid UTF-8 in a string field, an envelope with two targets, or
	// payload bytes that do not decode as their type.
	ErrMalformed = errors.New("wire: malformed")
	// ErrNotEncodable: MarshalPayload was given a value that cannot cross a
	// process boundary (only proto.Message and []byte can). Nothing was sent,
	// and the connection is unaffected.
	ErrNotEncodable = errors.New("wire: value cannot be sent to another node")
	// ErrUnknownType: UnmarshalPayload was given a payload type name that the
	// registry does not know (or an empty one).
	ErrUnknownType = errors.New("wire: unknown payload type")
)
