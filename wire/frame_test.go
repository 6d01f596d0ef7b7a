package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestAppendFrame(t *testing.T) {
	got := AppendFrame([]byte("x"), []byte("abc"))
	if want := []byte{'x', 0, 0, 0, 3, 'a', 'b', 'c'}; !bytes.Equal(got, want) {
		t.Fatalf("AppendFrame = %x, want %x", got, want)
	}
	if got := AppendFrame(nil, nil); !bytes.Equal(got, []byte{0, 0, 0, 0}) {
		t.Fatalf("empty frame = %x", got)
	}
	body := bytes.Repeat([]byte{7}, 70000)
	if got := AppendFrame(nil, body); binary.BigEndian.Uint32(got) != 70000 || !bytes.Equal(got[4:], body) {
		t.Fatal("large frame mis-encoded")
	}
}

// testBodies covers an empty body, small ones, and bodies larger than the
// reader's internal buffer (which take the copying path).
func testBodies() [][]byte {
	return [][]byte{
		[]byte("hello"),
		{},
		fullEnvelope().AppendTo(nil),
		bytes.Repeat([]byte("a"), frameReaderBufSize-FrameHeaderSize),
		bytes.Repeat([]byte("b"), frameReaderBufSize),
		bytes.Repeat([]byte("c"), 3*frameReaderBufSize+17),
		{0},
		bytes.Repeat([]byte("d"), 200000),
		[]byte("end"),
	}
}

func framed(bodies [][]byte) []byte {
	var stream []byte
	for _, b := range bodies {
		stream = AppendFrame(stream, b)
	}
	return stream
}

func readAll(t *testing.T, fr *FrameReader, want [][]byte) {
	t.Helper()
	for i, w := range want {
		got, err := fr.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(got, w) {
			t.Fatalf("frame %d: got %d bytes %.20q, want %d bytes %.20q", i, len(got), got, len(w), w)
		}
		if got == nil {
			t.Fatalf("frame %d: nil body, want non-nil", i)
		}
	}
	for range 2 { // io.EOF is sticky
		if got, err := fr.Next(); err != io.EOF || got != nil {
			t.Fatalf("after the last frame: %q, %v; want nil, io.EOF", got, err)
		}
	}
}

func TestFrameReaderReadsFrames(t *testing.T) {
	bodies := testBodies()
	stream := framed(bodies)
	readers := map[string]func() io.Reader{
		"whole":    func() io.Reader { return bytes.NewReader(stream) },
		"one byte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(stream)) },
		"half":     func() io.Reader { return iotest.HalfReader(bytes.NewReader(stream)) },
		"data+EOF": func() io.Reader { return iotest.DataErrReader(bytes.NewReader(stream)) },
	}
	for name, r := range readers {
		t.Run(name, func(t *testing.T) {
			readAll(t, NewFrameReader(r(), 1<<20), bodies)
		})
	}
}

func TestFrameReaderEmptyStream(t *testing.T) {
	if _, err := NewFrameReader(strings.NewReader(""), 10).Next(); err != io.EOF {
		t.Fatalf("empty stream: %v, want io.EOF", err)
	}
}

func TestFrameReaderBodyIsolation(t *testing.T) {
	// Appending to a returned body must not scribble on the next frame.
	fr := NewFrameReader(bytes.NewReader(framed([][]byte{[]byte("one"), []byte("two")})), 100)
	b, err := fr.Next()
	if err != nil {
		t.Fatal(err)
	}
	_ = append(b, "XXXXXXXX"...)
	if b, err = fr.Next(); err != nil || string(b) != "two" {
		t.Fatalf("second frame = %q, %v", b, err)
	}
}

func TestFrameReaderTooLarge(t *testing.T) {
	stream := framed([][]byte{[]byte("ok"), bytes.Repeat([]byte("x"), 11), []byte("after")})
	fr := NewFrameReader(bytes.NewReader(stream), 10)
	if b, err := fr.Next(); err != nil || string(b) != "ok" {
		t.Fatalf("first frame = %q, %v", b, err)
	}
	for range 2 { // the error is sticky: the stream has lost its framing
		b, err := fr.Next()
		if !errors.Is(err, ErrFrameTooLarge) || b != nil {
			t.Fatalf("Next = %q, %v; want ErrFrameTooLarge", b, err)
		}
		if !strings.Contains(err.Error(), "11") || !strings.Contains(err.Error(), "10") {
			t.Fatalf("error %q does not give the size and the limit", err)
		}
	}
	// Exactly maxFrame is fine.
	fr = NewFrameReader(bytes.NewReader(framed([][]byte{bytes.Repeat([]byte("x"), 10)})), 10)
	if b, err := fr.Next(); err != nil || len(b) != 10 {
		t.Fatalf("frame of exactly maxFrame = %d bytes, %v", len(b), err)
	}
	// The largest length the prefix allows is refused without reading.
	fr = NewFrameReader(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff}), 0)
	if _, err := fr.Next(); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("4 GiB frame with the default limit: %v", err)
	}
}

func TestFrameReaderDefaultLimit(t *testing.T) {
	for _, max := range []int{0, -1} {
		fr := NewFrameReader(strings.NewReader(""), max)
		if fr.max != DefaultMaxFrame {
			t.Fatalf("NewFrameReader(r, %d) limit = %d, want DefaultMaxFrame", max, fr.max)
		}
	}
}

func TestFrameReaderTruncated(t *testing.T) {
	big := bytes.Repeat([]byte("z"), 2*frameReaderBufSize)
	tests := []struct {
		name   string
		stream []byte
	}{
		{"header", []byte{0, 0}},
		{"header after a frame", append(AppendFrame(nil, []byte("ok")), 0, 0, 1)},
		{"small body", AppendFrame(nil, []byte("hello"))[:7]},
		{"empty body", []byte{0, 0, 0, 1}},
		{"large body", AppendFrame(nil, big)[:frameReaderBufSize+100]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, oneByte := range []bool{false, true} {
				var r io.Reader = bytes.NewReader(tt.stream)
				if oneByte {
					r = iotest.OneByteReader(r)
				}
				fr := NewFrameReader(r, 1<<20)
				var err error
				for err == nil {
					_, err = fr.Next()
				}
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("truncated stream: %v, want io.ErrUnexpectedEOF", err)
				}
			}
		})
	}
}

func TestFrameReaderPassesReadErrors(t *testing.T) {
	boom := errors.New("connection reset")
	r := io.MultiReader(bytes.NewReader(AppendFrame(nil, []byte("ok"))[:5]), iotest.ErrReader(boom))
	fr := NewFrameReader(r, 100)
	if _, err := fr.Next(); !errors.Is(err, boom) {
		t.Fatalf("read error mid-frame: %v, want %v", err, boom)
	}
	fr = NewFrameReader(iotest.ErrReader(boom), 100)
	if _, err := fr.Next(); !errors.Is(err, boom) {
		t.Fatalf("read error between frames: %v, want %v", err, boom)
	}
	if _, err := fr.Next(); !errors.Is(err, boom) {
		t.Fatalf("the error is not sticky: %v", err)
	}
}

// repeatReader replays a stream forever.
type repeatReader struct {
	data []byte
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := copy(p, r.data[r.off:])
	r.off = (r.off + n) % len(r.data)
	return n, nil
}

func TestFrameReaderDoesNotAllocate(t *testing.T) {
	bodies := [][]byte{fullEnvelope().AppendTo(nil), {}, bytes.Repeat([]byte("q"), 100000)}
	fr := NewFrameReader(&repeatReader{data: framed(bodies)}, 1<<20)
	for range 10 { // warm up: the large-body buffer grows once
		if _, err := fr.Next(); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(300, func() {
		if _, err := fr.Next(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Next allocates %v times per frame in steady state, want 0", allocs)
	}
}
