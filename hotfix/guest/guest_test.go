package guest

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// TestCallAndEncode runs a handler natively, as a fix's own tests would,
// and checks the encoding of its results.
func TestCallAndEncode(t *testing.T) {
	defer func() { handler, checks = nil, nil }()
	if _, err := Call(nil, "x", nil); !errors.Is(err, ErrNoHandler) {
		t.Fatalf("no handler: %v", err)
	}
	if err := RunChecks(); !errors.Is(err, ErrNoHandler) {
		t.Fatalf("checks without a handler: %v", err)
	}
	Handle(func(state []byte, msgType string, msg []byte) (Result, error) {
		switch msgType {
		case "panic":
			panic("boom")
		case "error":
			return Result{}, errors.New("bad")
		}
		return Result{State: append(state, msg...), Reply: []byte("ok"), ReplyType: "t.R"}, nil
	})
	Check(func() error { return nil })
	if err := RunChecks(); err != nil {
		t.Fatal(err)
	}
	if _, err := Call(nil, "panic", nil); err == nil || !strings.Contains(err.Error(), "panic: boom") {
		t.Fatalf("panic: %v", err)
	}

	// Through the buffers, as the exports use them.
	in := alloc(6)
	copy(in, "abtyxy") // state "ab", type "ty", message "xy"
	out := handle(2, 2, 2)
	if out[0] != flagState|flagReply {
		t.Fatalf("flags %b", out[0])
	}
	tl, sl, dl := binary.LittleEndian.Uint32(out[1:]), binary.LittleEndian.Uint32(out[5:]), binary.LittleEndian.Uint32(out[9:])
	if got := string(out[13:]); tl != 3 || sl != 4 || dl != 2 || got != "t.Rabxyok" {
		t.Fatalf("result %d %d %d %q", tl, sl, dl, got)
	}
	copy(alloc(5), "error")
	out = handle(0, 5, 0)
	if out[0] != flagError || string(out[13:]) != "bad" {
		t.Fatalf("error result %v", out)
	}
	alloc(1)
	if out = handle(2, 2, 2); out[0] != flagError || !strings.Contains(string(out[13:]), "exceed") {
		t.Fatalf("lengths past the buffer: %q", out[13:])
	}

	Check(func() error { panic("bad table") })
	if err := RunChecks(); err == nil || !strings.Contains(err.Error(), "bad table") {
		t.Fatalf("a check that panics: %v", err)
	}
	if out := check(); out[0] != flagError {
		t.Fatalf("check's result %v", out)
	}
}
