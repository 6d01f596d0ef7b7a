// Command typed is a test fix written with guestpb: its state is a
// google.protobuf.Int64Value, and an Int64Value message adds its value
// to it and answers a StringValue "total <n>".
package main

import (
	"strconv"

	"github.com/guildkit/guild/hotfix/guest/guestpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func init() {
	guestpb.Route(func(st *wrapperspb.Int64Value, in *wrapperspb.Int64Value) (*wrapperspb.StringValue, error) {
		st.Value += in.GetValue()
		return wrapperspb.String("total " + strconv.FormatInt(st.GetValue(), 10)), nil
	})
}

func main() {}
