// Command badinit is a test fix that panics while it initializes (in
// _initialize, before any call): a trap at load time.
package main

import "github.com/guildkit/guild/hotfix/guest"

func init() {
	guest.Handle(func(state []byte, msgType string, msg []byte) (guest.Result, error) {
		return guest.Result{}, nil
	})
	panic("badinit: the tables do not parse")
}

func main() {}
