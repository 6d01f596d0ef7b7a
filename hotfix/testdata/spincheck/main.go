// Command spincheck is a test fix whose self-check never returns (review
// s10: a reload must still end within its context).
package main

import "github.com/guildkit/guild/hotfix/guest"

var spins int

func init() {
	guest.Handle(func(state []byte, msgType string, msg []byte) (guest.Result, error) {
		return guest.Result{}, nil
	})
	guest.Check(func() error {
		for {
			spins++
		}
	})
}

func main() {}
