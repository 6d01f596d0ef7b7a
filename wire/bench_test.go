package wire

import (
	"bytes"
	"testing"
)

func BenchmarkEnvelopeEncode(b *testing.B) {
	e := fullEnvelope()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	b.SetBytes(int64(e.Size()))
	for b.Loop() {
		buf = e.AppendTo(buf[:0])
	}
}

func BenchmarkEnvelopeDecode(b *testing.B) {
	enc := fullEnvelope().AppendTo(nil)
	var e Envelope
	b.ReportAllocs()
	b.SetBytes(int64(len(enc)))
	for b.Loop() {
		if err := e.Unmarshal(enc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFrameReader(b *testing.B) {
	// A stream of typical envelopes, replayed forever.
	enc := fullEnvelope().AppendTo(nil)
	var stream []byte
	for range 64 {
		stream = AppendFrame(stream, enc)
	}
	fr := NewFrameReader(&repeatReader{data: stream}, 1<<20)
	var e Envelope
	b.ReportAllocs()
	b.SetBytes(int64(FrameHeaderSize + len(enc)))
	for b.Loop() {
		body, err := fr.Next()
		if err != nil {
			b.Fatal(err)
		}
		if err := e.Unmarshal(body); err != nil {
			b.Fatal(err)
		}
	}
	if !bytes.Equal(e.Payload, fullEnvelope().Payload) {
		b.Fatal("wrong payload")
	}
}
