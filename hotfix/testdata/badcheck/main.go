// Command badcheck is a test fix whose self-check fails.
package main

import (
	"errors"

	"github.com/guildkit/guild/hotfix/guest"
)

var price = -1 // the bug that the check catches

func init() {
	guest.Handle(func(state []byte, msgType string, msg []byte) (guest.Result, error) {
		return guest.Result{}, nil
	})
	guest.Check(func() error {
		if price <= 0 {
			return errors.New("price must be positive")
		}
		return nil
	})
}

func main() {}
