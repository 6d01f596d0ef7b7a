package guildbench

import (
	"io"
	"net"
	"testing"

	"github.com/guildkit/guild/bench/internal/benchkit"
)

// pingPongFrame is the size of the frame BenchmarkTCPPingPong exchanges:
// about what a small request envelope takes on the wire.
const pingPongFrame = 64

// BenchmarkTCPPingPong is the physical anchor of the remote benchmarks:
// two goroutines exchange a 64-byte frame over a loopback TCP connection
// with plain net.Conn reads and writes, one in flight at a time, as
// BenchmarkRemoteRequest does with envelopes. No framework is involved:
// its p50 is the floor a remote round trip on this machine can reach, and
// the remote goals are ratios to it measured in the same run.
func BenchmarkTCPPingPong(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	echoed := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			echoed <- err
			return
		}
		defer c.Close()
		buf := make([]byte, pingPongFrame)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				echoed <- nil // the client closed
				return
			}
			if _, err := c.Write(buf); err != nil {
				echoed <- err
				return
			}
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	frame := make([]byte, pingPongFrame)
	frame[0] = benchkit.RemotePingValue
	reply := make([]byte, pingPongFrame)
	roundTrip := func() (any, error) {
		if _, err := c.Write(frame); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(c, reply); err != nil {
			return nil, err
		}
		return reply[0], nil
	}
	for range benchkit.RemoteWarmup {
		if _, err := roundTrip(); err != nil {
			b.Fatal(err)
		}
	}
	benchkit.RunRequestsCheck(b, func(r any) bool { return r == byte(benchkit.RemotePingValue) }, roundTrip)
	c.Close()
	if err := <-echoed; err != nil {
		b.Fatal(err)
	}
}
