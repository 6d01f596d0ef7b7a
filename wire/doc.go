// Package wire is the byte layer of guild's node-to-node traffic: the frames
// a connection carries, the envelope each frame holds, and the payload
// codec. It opens no sockets: the cluster transports (the TCP mesh, NATS)
// use it to turn messages into bytes and back. docs/PROTOCOL-NODE.md
// describes the same format for implementers in other languages.
//
// # Frames
//
// A connection is a sequence of frames. Each frame is a 4-byte big-endian
// unsigned length followed by that many bytes of body; a body may be empty.
// AppendFrame writes one. A FrameReader reads them from an io.Reader,
// refusing any frame longer than its limit (ErrFrameTooLarge) and reporting
// a stream that ends inside a frame as io.ErrUnexpectedEOF. The body it
// returns is only valid until the next call to Next: the reader reuses its
// memory, so it does not allocate per frame.
//
// # Envelope
//
// Every frame body is one Envelope encoded as a protobuf message, so any
// language with a protobuf library can read it. The schema (also in
// envelope.proto, which is documentation and is not compiled):
//
//	enum Kind { KIND_UNSPECIFIED = 0; KIND_SEND = 1; KIND_REQUEST = 2;
//	            KIND_RESPONSE = 3; KIND_ERROR = 4; KIND_SYSTEM = 5; }
//	message PID { uint32 node = 1; uint64 serial = 2; }
//	message Envelope {
//	  Kind kind = 1;
//	  oneof target { PID target_pid = 2; string target_name = 3; }
//	  PID sender = 4;
//	  uint64 correlation_id = 5;
//	  sfixed64 deadline = 6;       // unix nanoseconds, 0 = none
//	  bytes metadata = 7;          // key-values: a Metadata message (below)
//	  string payload_type = 8;     // protobuf full name, or "guild.raw"
//	  bytes payload = 9;
//	  uint32 error_code = 10;      // KIND_ERROR
//	  string error_message = 11;   // KIND_ERROR
//	}
//
// The package encodes and decodes it by hand with protowire: no reflection
// and no generated code. Envelope.Unmarshal follows protobuf's rules
// (unknown fields are skipped, so newer peers can add fields) and allocates
// nothing: Metadata and Payload alias the decoded buffer, and a string equal to
// the one the Envelope held before is reused (see Envelope.Unmarshal). An
// envelope's PIDs are wire.PID values; the cluster layer converts them to
// and from actor.PID, since wire does not import actor.
//
// A request (KindRequest) carries a non-zero CorrelationID and its sender;
// its answer goes back to that sender with the same CorrelationID, as
// KindResponse with the reply as payload, or as KindError with ErrorCode
// (one of the Code constants, or an application's code from 1000 up) and
// ErrorMessage, plus an optional payload with details.
//
// # Payloads
//
// What crosses a process boundary is a protobuf message or raw bytes
// (guild's design principle "typed at the wire"). MarshalPayload encodes a
// proto.Message under its full name, so no registration order matters, or a
// []byte under RawBytesType. Any other value is refused at the sender with
// ErrNotEncodable, before anything is written. UnmarshalPayload resolves the
// name in a protoregistry.Types (the global one by default) and returns a
// new message, or a copy of the raw bytes: a decoded payload never aliases
// the frame.
//
// # Bad input
//
// Decoding errors match the package's sentinel errors with errors.Is. A
// transport that reads a frame it cannot use reacts by the scope of the
// damage:
//
//   - ErrFrameTooLarge or io.ErrUnexpectedEOF from a FrameReader, or an
//     envelope that fails Unmarshal with ErrMalformed: the peer is broken or
//     hostile and the stream cannot be trusted. The transport logs the
//     reason with the peer's address and closes that one connection
//     (reconnection follows the usual backoff); the node and its other
//     connections stay up. It never panics.
//   - A well-formed envelope whose payload fails UnmarshalPayload
//     (ErrUnknownType, ErrMalformed): only that message is bad. The
//     transport answers a request with KindError (CodeUnknownType or
//     CodeBadPayload), drops anything else to dead letters, and keeps the
//     connection.
//   - A Kind the node does not know: dropped and logged; the connection
//     stays up.
//
// On the sending side, ErrNotEncodable is returned to the caller of Send,
// Request or Call: the value is never written, so one bad message cannot
// poison the connection for the others.
package wire
