// Command counter2 is a test fix: version 2 of counter1, which doubles
// the increments (each message adds 2) and answers with a typed reply, a
// google.protobuf.StringValue "v2:<count>" (encoded by hand, so that the
// module needs no protobuf library).
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
		n += 2
		s := "v2:" + strconv.FormatUint(n, 10)
		reply := append([]byte{0x0a, byte(len(s))}, s...) // field 1 (value), length-delimited
		return guest.Result{
			State:     binary.LittleEndian.AppendUint64(nil, n),
			Reply:     reply,
			ReplyType: "google.protobuf.StringValue",
		}, nil
	})
}

func main() {}
