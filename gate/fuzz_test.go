package gate_test

import (
	"encoding/binary"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/gate/gatepb"
	"github.com/guildkit/guild/rpc"
)

// seedFrames are one frame of each kind, for the seed corpora.
func seedFrames() []*gatepb.Frame {
	return []*gatepb.Frame{
		handshakeFrame("tok"),
		{Body: &gatepb.Frame_HandshakeAck{HandshakeAck: &gatepb.HandshakeAck{Code: 3, Message: "m", SessionId: "1.1.1/2", UserId: "u", HeartbeatMs: 100, Version: 1}}},
		{Body: &gatepb.Frame_Heartbeat{Heartbeat: &gatepb.Heartbeat{}}},
		requestFrame(7, "chat.Echo", "x"),
		{Body: &gatepb.Frame_Response{Response: &gatepb.Response{Id: 7, Code: 8, Message: "slow down", Body: []byte{1, 2}}}},
		{Body: &gatepb.Frame_Push{Push: &gatepb.Push{Route: "chat.Pushed", Body: []byte("p")}}},
		{Body: &gatepb.Frame_Close{Close: &gatepb.Close{Code: 14, Reason: "bye"}}},
	}
}

func mustEncode(tb testing.TB, f *gatepb.Frame) []byte {
	b, err := gatepb.Encode(f)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// FuzzDecodeFrame: Decode never panics, and what decodes re-encodes to a
// frame that decodes the same.
func FuzzDecodeFrame(f *testing.F) {
	for _, fr := range seedFrames() {
		f.Add(mustEncode(f, fr))
	}
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Add([]byte{0x0a, 0x00})       // an empty handshake
	f.Add([]byte{0x0a, 0x05, 0x08}) // a truncated handshake
	f.Fuzz(func(t *testing.T, b []byte) {
		var fr gatepb.Frame
		if err := gatepb.Decode(b, &fr); err != nil {
			return
		}
		if fr.Body == nil {
			t.Fatal("Decode succeeded with no body")
		}
		again, err := gatepb.Encode(&fr)
		if err != nil {
			t.Fatalf("a decoded frame does not encode: %v", err)
		}
		var fr2 gatepb.Frame
		if err := gatepb.Decode(again, &fr2); err != nil {
			t.Fatalf("a re-encoded frame does not decode: %v", err)
		}
		if !proto.Equal(&fr, &fr2) {
			t.Fatalf("the round trip changed the frame: %v != %v", &fr, &fr2)
		}
		stream, err := gatepb.AppendStream([]byte("prefix"), &fr)
		if err != nil || string(stream[:6]) != "prefix" || int(binary.BigEndian.Uint32(stream[6:10])) != len(stream)-10 {
			t.Fatalf("AppendStream: %v, length prefix wrong", err)
		}
	})
}

// FuzzParseSessionID: ParseSessionID never panics, and a valid ID names a
// PID whose String parses back to it.
func FuzzParseSessionID(f *testing.F) {
	for _, s := range []string{"1.1.1/1", "1.1.1/3.1", "1.1.1/3.0", "1.2.3/18446744073709551615", "1.1.1/0", "1.1.1/01", "1.1.1/-1", "", "/", "a/b", "1.1.1", "1.1.1/1/1", "0.0.0/5", "1.1.1/18446744073709551616"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		pid, err := gate.ParseSessionID(id)
		if err != nil {
			if rpc.CodeOf(err) != rpc.InvalidArgument {
				t.Fatalf("ParseSessionID(%q): %v, want InvalidArgument", id, err)
			}
			return
		}
		if pid.Serial == 0 {
			t.Fatalf("ParseSessionID(%q) = %v: serial 0", id, pid)
		}
		again, err := gate.ParseSessionID(pid.String())
		if err != nil || again != pid {
			t.Fatalf("ParseSessionID(%q) = %v, whose String %q parses as %v, %v", id, pid, pid.String(), again, err)
		}
	})
}

// FuzzStreamFrames feeds arbitrary bytes to a TCP gateway after a valid
// handshake. The gateway must end or keep the connection without
// stalling, release it once the client is gone, and keep serving.
func FuzzStreamFrames(f *testing.F) {
	gw := startOneNode(f, gate.Config{
		Public: []string{"chat.Echo", "chat.PushMe", "chat.Panic", "chat.Kick"},
		Limits: gate.Limits{MaxFrame: 4096, HandshakeTimeout: time.Second},
	})
	stream := func(frames ...*gatepb.Frame) []byte {
		var b []byte
		for _, fr := range frames {
			b, _ = gatepb.AppendStream(b, fr)
		}
		return b
	}
	seeds := [][]byte{
		{},
		stream(&gatepb.Frame{Body: &gatepb.Frame_Heartbeat{Heartbeat: &gatepb.Heartbeat{}}}),
		stream(requestFrame(1, "chat.Echo", "x"), requestFrame(2, "chat.PushMe", "y"), requestFrame(3, "chat.Panic", "")),
		stream(requestFrame(1, "chat.Kick", "out"), requestFrame(2, "chat.Echo", "late")),
		stream(requestFrame(1, "chat.Echo", "x"), &gatepb.Frame{Body: &gatepb.Frame_Close{Close: &gatepb.Close{}}}),
		stream(handshakeFrame("")),
		stream(&gatepb.Frame{Body: &gatepb.Frame_Push{Push: &gatepb.Push{Route: "x"}}}),
		{0, 0, 0, 0},
		{0, 0, 0, 3, 0xff, 0xff, 0xff},
		{0xff, 0xff, 0xff, 0xff, 1},
		{0, 0, 0x10, 0x01},  // 4097: one byte over the limit
		{0, 0, 0, 10, 0x22}, // truncated
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := rawDial(t, gw.addr)
		r.handshake()
		written := make(chan struct{})
		go func() {
			defer close(written)
			_ = r.nc.SetWriteDeadline(time.Now().Add(waitTimeout))
			_, _ = r.nc.Write(data) // fails when the gateway closed first
			_ = r.nc.(interface{ CloseWrite() error }).CloseWrite()
		}()
		r.wantEnd() // fails t if the gateway keeps the connection open
		<-written
		r.nc.Close()
		deadline := time.Now().Add(waitTimeout)
		for gw.g.Conns() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("the gateway still holds %d connections", gw.g.Conns())
			}
			time.Sleep(100 * time.Microsecond)
		}
		// A fresh client is served.
		fresh := rawDial(t, gw.addr)
		fresh.handshake()
		fresh.send(requestFrame(1, "chat.Echo", "ok"))
		for {
			fr := fresh.mustNext()
			if resp := fr.GetResponse(); resp != nil {
				if resp.GetId() != 1 || resp.GetCode() != 0 {
					t.Fatalf("a fresh client's request: %v", resp)
				}
				break
			}
		}
		fresh.nc.Close()
	})
}
