//go:build unix

package proc_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/guildkit/guild/cluster/clustertest/proc"
)

// A node process, the test binary run again as TestNodeChild (a test that
// skips unless MY_NODE is set), frozen and thawed with real signals, then
// crashed. This is the body of a test function, so it is not run as an
// example.
func ExampleStart() {
	var t *testing.T // the test's: func TestFreeze(t *testing.T) { ... }
	cfg := proc.Self("TestNodeChild", "MY_NODE=1.1.3")
	cfg.Ready = `"event":"ready"`
	p := proc.Start(t, cfg) // waits for the ready line
	fmt.Println(p.ReadyLine())

	p.Stop() // SIGSTOP: the node's lease keepalives stop
	// ... the other nodes should drop it within its TTL ...
	p.Cont() // SIGCONT: it finds its lease lost and joins again

	fmt.Fprintln(p.Stdin(), "ping 1")
	p.WaitLine(5*time.Second, "pong 1")

	p.Kill() // SIGKILL, and reaped; the cleanup would do it anyway
}
