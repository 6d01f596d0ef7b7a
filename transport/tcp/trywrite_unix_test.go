//go:build unix

package tcp

import (
	"net"
	"syscall"
	"testing"
	"time"
)

// TestTryWriteAfterClose: on a closed socket tryWrite reports an error and
// that nothing was written, whatever the write before it took (RawConn.Write
// does not call its function then; a stale count once made writeDirect
// slice past its buffer and panic with the outbox locked).
func TestTryWriteAfterClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	rc, err := nc.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	c := &conn{raw: nc, rawConn: rc}
	c.initTry()
	if n, err := c.tryWrite(make([]byte, 100)); n != 100 || err != nil {
		t.Fatalf("tryWrite of 100 bytes = %d, %v", n, err)
	}
	nc.Close()
	if n, err := c.tryWrite(make([]byte, 10)); n != 0 || err == nil {
		t.Fatalf("tryWrite on a closed socket = %d, %v; want 0 and an error", n, err)
	}
}

// TestTryWriteAfterStaleDeadline: a write deadline the writer left on the
// socket, now past, does not fail a direct write (it once did, with a
// timeout that closed a healthy connection on a busy machine).
func TestTryWriteAfterStaleDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	peer, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	rc, err := nc.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	c := &conn{raw: nc, nc: nc, rawConn: rc}
	c.initTry()
	_ = nc.SetWriteDeadline(time.Now().Add(-time.Second)) // as the writer leaves it, DeadAfter later
	if n, err := c.tryWrite(make([]byte, 100)); n != 100 || err != nil {
		t.Fatalf("tryWrite after a stale deadline = %d, %v; want 100 and no error", n, err)
	}
}
