package wire_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/wire"
)

// A sender encodes a payload, wraps it in an envelope and frames it; the
// receiver reads the frame, decodes the envelope and then the payload.
func Example() {
	// Sender.
	typ, payload, err := wire.MarshalPayload(nil, wrapperspb.String("hello"))
	if err != nil {
		panic(err)
	}
	out := wire.Envelope{
		Kind:          wire.KindRequest,
		Target:        wire.PID{Node: 1<<20 | 2<<12 | 3, Serial: 7},
		Sender:        wire.PID{Node: 1<<20 | 2<<12 | 4, Serial: 9},
		CorrelationID: 1,
		PayloadType:   typ,
		Payload:       payload,
	}
	var conn bytes.Buffer // stands in for a TCP connection
	conn.Write(wire.AppendFrame(nil, out.AppendTo(nil)))

	// Receiver.
	fr := wire.NewFrameReader(&conn, wire.DefaultMaxFrame)
	var in wire.Envelope
	for {
		body, err := fr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			panic(err) // a transport closes the connection instead
		}
		if err := in.Unmarshal(body); err != nil {
			panic(err) // likewise
		}
		msg, err := wire.UnmarshalPayload(in.PayloadType, in.Payload, nil)
		if err != nil {
			panic(err) // a transport answers with a KindError envelope
		}
		fmt.Println(in.Kind, in.Target.Serial, in.CorrelationID, msg.(*wrapperspb.StringValue).GetValue())
	}
	// Output: request 7 1 hello
}

// Only protobuf messages and raw bytes can go to another node; anything else
// is refused at the sender.
func ExampleMarshalPayload() {
	type move struct{ X, Y int }
	_, _, err := wire.MarshalPayload(nil, move{1, 2})
	fmt.Println(errors.Is(err, wire.ErrNotEncodable))
	fmt.Println(err)

	typ, b, _ := wire.MarshalPayload(nil, []byte{1, 2})
	fmt.Println(typ, b)
	// Output:
	// true
	// wire: value cannot be sent to another node: wire_test.move is neither a proto.Message nor []byte
	// guild.raw [1 2]
}

// An error reply carries a code and a message.
func ExampleEnvelope_error() {
	reply := wire.Envelope{
		Kind:          wire.KindError,
		Target:        wire.PID{Node: 1, Serial: 9},
		CorrelationID: 1,
		ErrorCode:     wire.CodeNotFound,
		ErrorMessage:  "actor not found",
	}
	var got wire.Envelope
	if err := got.Unmarshal(reply.AppendTo(nil)); err != nil {
		panic(err)
	}
	fmt.Println(got.Kind, got.ErrorCode == wire.CodeNotFound, got.ErrorMessage)
	// Output: error true actor not found
}
