// Command spininit is a test fix whose initialization (its package init,
// run by _initialize) never returns: a load must still end with its
// context. It writes "spininit: initializing" to its stdout before it
// loops, so that a test can tell when a load is stuck in it.
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
	os.Stdout.WriteString("spininit: initializing\n")
	for {
		spins++
	}
}

func main() {}
