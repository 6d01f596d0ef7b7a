package gate_test

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/gate/gatepb"
)

// framedAdapter is the smallest adapter: its protocol is the framed one
// (length-prefixed frames), so package client speaks it. It records the
// Ending its Finish gets.
type framedAdapter struct {
	nc       net.Conn
	hdr      [gatepb.HeaderSize]byte
	finished chan<- gate.Ending
}

func (c *framedAdapter) Read(deadline time.Time) ([]byte, error) {
	if err := c.nc.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(c.nc, c.hdr[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint32(c.hdr[:]))
	if _, err := io.ReadFull(c.nc, b); err != nil {
		return nil, err
	}
	return b, nil
}

func (c *framedAdapter) WriteFrames(frames [][]byte) error {
	for _, f := range frames {
		if _, err := c.nc.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(f))), f...)); err != nil {
			return err
		}
	}
	return nil
}

func (c *framedAdapter) Finish(e gate.Ending) bool {
	c.finished <- e
	if e.Code == 0 || e.Told {
		return false
	}
	b, err := gatepb.Encode(&gatepb.Frame{Body: &gatepb.Frame_Close{Close: &gatepb.Close{Code: uint32(e.Code), Reason: e.Reason}}})
	return err == nil && c.WriteFrames([][]byte{b}) == nil
}

// TestAdapterConns: an adapter's listener (ListenConns) serves sessions
// named by its network, and its Finish gets the gateway's ending (here
// GoingAway, at Close); a name of the framed protocol's listeners is
// refused.
func TestAdapterConns(t *testing.T) {
	opened := make(chan string, 1)
	finished := make(chan gate.Ending, 4)
	f := startOneNode(t, gate.Config{Public: []string{"chat.Echo"}, OnOpen: func(s *gate.SessionInfo) { opened <- s.Listener }})
	for _, network := range []string{"", "tcp", "ws", "kcp"} {
		if _, err := f.g.ListenConns(network, "127.0.0.1:0", nil, nil); err == nil || !strings.Contains(err.Error(), "gate: adapter network") {
			t.Errorf("network %q: %v, want an error naming it", network, err)
		}
	}
	addr, err := f.g.ListenConns("framed-adapter", "127.0.0.1:0", nil, func(s gate.Stream) gate.Conn {
		return &framedAdapter{nc: s.Conn, finished: finished}
	})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, client.Config{Addr: "tcp://" + addr.String()})
	if got, err := call(t, c, "chat.Echo", "hi"); err != nil || got != "echo:hi" {
		t.Fatalf("chat.Echo: %q, %v", got, err)
	}
	if l := recv(t, opened, "the session"); l != "framed-adapter" {
		t.Errorf("SessionInfo.Listener %q, want framed-adapter", l)
	}
	if err := f.g.Close(); err != nil {
		t.Fatal(err)
	}
	if e := recv(t, finished, "Finish"); e.Code != gate.GoingAway || e.Reason != gate.GoingAwayReason || e.Told || e.Refused {
		t.Errorf("Finish got %+v, want GoingAway", e)
	}
	if _, err := f.g.ListenConns("framed-adapter", "127.0.0.1:0", nil, nil); !errors.Is(err, gate.ErrClosed) {
		t.Errorf("ListenConns after Close: %v, want ErrClosed", err)
	}
}
