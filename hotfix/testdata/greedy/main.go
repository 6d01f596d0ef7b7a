// Command greedy is a test fix whose self-check needs more memory than
// the test's limit allows.
package main

import "github.com/guildkit/guild/hotfix/guest"

var big []byte

func init() {
	guest.Handle(func(state []byte, msgType string, msg []byte) (guest.Result, error) {
		return guest.Result{}, nil
	})
	guest.Check(func() error {
		big = make([]byte, 96<<20)
		return nil
	})
}

func main() {}
