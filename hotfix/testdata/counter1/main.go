// Command counter1 is a test fix: version 1 of a counter. Its state is
// the count (8 bytes, little endian); each message adds 1 and answers
// "v1:<count>".
package main

import (
	"encoding/binary"
	"strconv"

	"github.com/guildkit/guild/hotfix/guest"
)

func init() {
	guest.Handle(func(state []byte, msgType string, msg []byte) (guest.Result, error) {
		var n uint64
		if len(state) == 8 {
			n = binary.LittleEndian.Uint64(state)
		}
		n++
		return guest.Result{State: binary.LittleEndian.AppendUint64(nil, n), Reply: []byte("v1:" + strconv.FormatUint(n, 10))}, nil
	})
}

func main() {}
