// Command spincheck is a test fix whose self-check never returns: a
// reload must still end with its context, and the old version serve on.
// It writes "spincheck: checking" to its stdout as its check starts, so
// that a test can tell when a reload is stuck in it.
package main

import (
	"os"

	"github.com/guildkit/guild/hotfix/guest"
)

var spins int

func init() {
	guest.Handle(func(state []byte, msgType string, msg []byte) (guest.Result, error) {
		return guest.Result{}, nil
	})
	guest.Check(func() error {
		os.Stdout.WriteString("spincheck: checking\n")
		for {
			spins++
		}
	})
}

func main() {}
