package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// seedEnvelopes returns valid encodings, plus a few with unknown fields, to
// seed the fuzzers.
func seedEnvelopes() [][]byte {
	full := fullEnvelope()
	named := *full
	named.TargetName, named.Target = ".lobby", PID{}
	seeds := [][]byte{
		nil,
		full.AppendTo(nil),
		named.AppendTo(nil),
		(&Envelope{Kind: KindError, CorrelationID: 1, ErrorCode: CodeNotFound, ErrorMessage: "no such actor"}).AppendTo(nil),
		(&Envelope{Kind: KindSend, Target: PID{Node: 1, Serial: 1}, PayloadType: RawBytesType, Payload: []byte("x")}).AppendTo(nil),
		appendUnknownFields(full.AppendTo(nil)),
		// A kind written as a 5-byte varint: protobuf truncates it to int32
		// (-1), which re-encodes sign-extended in 10 bytes.
		{0x08, 0xff, 0xff, 0xff, 0xff, 0x0f},
		// Repeated PIDs merge; repeated scalars keep the last value.
		appendPID(appendPID([]byte{0x28, 0x01, 0x28, 0x02}, fieldSender, PID{Node: 5}), fieldSender, PID{Serial: 6}),
	}
	return seeds
}

// FuzzEnvelopeUnmarshal: arbitrary bytes never panic, errors are always
// ErrMalformed, and whatever decodes re-encodes to bytes that decode to an
// equal envelope (and re-encode to the same bytes).
func FuzzEnvelopeUnmarshal(f *testing.F) {
	for _, s := range seedEnvelopes() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var e Envelope
		if err := e.Unmarshal(b); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			if !equalEnvelope(&e, &Envelope{}) {
				t.Fatalf("envelope not reset after error: %s", dump(&e))
			}
			return
		}
		enc := e.AppendTo(nil)
		if len(enc) != e.Size() {
			t.Fatalf("Size() = %d, AppendTo wrote %d", e.Size(), len(enc))
		}
		var again Envelope
		if err := again.Unmarshal(enc); err != nil {
			t.Fatalf("re-encoded %s as %x, which does not decode: %v", dump(&e), enc, err)
		}
		if !equalEnvelope(&e, &again) {
			t.Fatalf("round trip changed the envelope:\n%s\n%s", dump(&e), dump(&again))
		}
		if enc2 := again.AppendTo(nil); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable: %x then %x", enc, enc2)
		}
	})
}

// FuzzFrameReader: arbitrary streams never panic and never yield a body
// larger than maxFrame; errors are the documented ones.
func FuzzFrameReader(f *testing.F) {
	var all []byte
	for _, s := range seedEnvelopes() {
		f.Add(AppendFrame(nil, s), uint16(64), false)
		all = AppendFrame(all, s)
	}
	f.Add(all, uint16(1000), true)
	f.Add(all, uint16(10), false)
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 'x', 0, 0}, uint16(1), true)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, uint16(0), false)
	f.Fuzz(func(t *testing.T, stream []byte, max uint16, oneByte bool) {
		maxFrame := int(max)
		if maxFrame == 0 {
			maxFrame = 1 // 0 would select DefaultMaxFrame
		}
		var r io.Reader = bytes.NewReader(stream)
		if oneByte {
			r = iotest.OneByteReader(r)
		}
		fr := NewFrameReader(r, maxFrame)
		total := 0
		for {
			body, err := fr.Next()
			if err != nil {
				if body != nil {
					t.Fatalf("body %q returned with error %v", body, err)
				}
				if err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrFrameTooLarge) {
					t.Fatalf("unexpected error %v", err)
				}
				if err == io.EOF && total != len(stream) {
					t.Fatalf("io.EOF after %d of %d bytes", total, len(stream))
				}
				return
			}
			if len(body) > maxFrame {
				t.Fatalf("body of %d bytes, limit %d", len(body), maxFrame)
			}
			if want := stream[total+FrameHeaderSize : total+FrameHeaderSize+len(body)]; !bytes.Equal(body, want) {
				t.Fatalf("body %x, want %x", body, want)
			}
			total += FrameHeaderSize + len(body)
			// Whatever a frame holds, decoding it must not panic.
			var e Envelope
			_ = e.Unmarshal(body)
		}
	})
}
