// Command faulty is a test fix: a counter like counter1 (answers
// "faulty:<count>") whose messages can also fail: "panic" panics (the
// guest recovers it: an error, the instance lives), "error" returns an
// error, "exit" ends the instance (a trap: os.Exit is what the Go runtime
// does on a fatal error), "oom" allocates past any memory limit (a fatal
// error of the Go runtime) and "spin" never returns.
package main

import (
	"encoding/binary"
	"errors"
	"os"
	"strconv"

	"github.com/guildkit/guild/hotfix/guest"
)

var sink [][]byte

func init() {
	guest.Handle(func(state []byte, msgType string, msg []byte) (guest.Result, error) {
		var n uint64
		if len(state) == 8 {
			n = binary.LittleEndian.Uint64(state)
		}
		n++
		st := binary.LittleEndian.AppendUint64(nil, n)
		switch msgType {
		case "panic":
			var m map[string]int
			m["boom"] = 1 // a nil map: a runtime panic
		case "error":
			return guest.Result{State: st}, errors.New("no such item")
		case "exit":
			os.Stderr.WriteString("faulty: giving up\n")
			os.Exit(3)
		case "oom":
			for {
				sink = append(sink, make([]byte, 16<<20))
			}
		case "spin":
			for n > 0 {
				n = n*3 + 1
			}
		}
		return guest.Result{State: st, Reply: []byte("faulty:" + strconv.FormatUint(n, 10))}, nil
	})
}

func main() {}
