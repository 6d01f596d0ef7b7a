//go:build unix

package tcp

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// canTryWrite: this platform has tryWrite.
const canTryWrite = true

// tryWrite writes b to the socket with one non-blocking write and returns
// how much it took: all of b, part of it, or nothing when the socket's
// buffer is full. It never waits. Only the holder of the outbox's busy
// flag calls it, so the conn's try fields are its own.
func (c *conn) tryWrite(b []byte) (int, error) {
	// RawConn.Write does not call fn on a closed socket: what fn left
	// from the last write must not be taken for this one's.
	c.try.b, c.try.n, c.try.err = b, 0, nil
	err := c.rawConn.Write(c.try.fn)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The deadline the writer set for its last write has passed
		// (writes since were direct): it says nothing of this socket, and
		// a write that never waits needs none. Clear it and try again.
		_ = c.nc.SetWriteDeadline(time.Time{})
		c.try.n, c.try.err = 0, nil
		err = c.rawConn.Write(c.try.fn)
	}
	n, werr := min(c.try.n, len(b)), c.try.err
	c.try.b, c.try.err = nil, nil
	if err != nil {
		return n, err
	}
	return n, werr
}

// tryState is tryWrite's: the function given to RawConn.Write, made once
// (a closure per write would allocate), and what it passes back.
type tryState struct {
	fn  func(fd uintptr) bool
	b   []byte
	n   int
	err error
}

// initTry makes c.try.fn.
func (c *conn) initTry() {
	c.try.fn = func(fd uintptr) bool {
		for {
			c.try.n, c.try.err = syscall.Write(int(fd), c.try.b)
			if c.try.err != syscall.EINTR {
				break
			}
		}
		if c.try.err == syscall.EAGAIN {
			c.try.n, c.try.err = 0, nil
		}
		if c.try.n < 0 {
			c.try.n = 0
		}
		return true // one attempt: never wait for the socket
	}
}
