//go:build !unix

package tcp

// canTryWrite: this platform has no tryWrite, and senders never write
// directly.
const canTryWrite = false

// tryState is empty here.
type tryState struct{}

func (c *conn) initTry() {}

// tryWrite is never called here (rawConn stays nil).
func (c *conn) tryWrite(b []byte) (int, error) { return 0, nil }
