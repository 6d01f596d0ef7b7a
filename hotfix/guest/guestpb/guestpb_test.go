package guestpb_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/guildkit/guild/hotfix/guest"
	"github.com/guildkit/guild/hotfix/guest/guestpb"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestRoute runs typed handlers natively through guest.Call, as a fix's
// tests would: the state decoded and encoded again, the reply named,
// an unknown type refused, an error leaving the state alone.
func TestRoute(t *testing.T) {
	guestpb.Route(func(st *wrapperspb.Int64Value, in *wrapperspb.Int64Value) (*wrapperspb.StringValue, error) {
		if in.GetValue() < 0 {
			return nil, errors.New("negative")
		}
		st.Value += 2 * in.GetValue()
		return wrapperspb.String("ok"), nil
	})
	guestpb.Route(func(st *wrapperspb.Int64Value, _ *emptypb.Empty) (*wrapperspb.StringValue, error) {
		st.Value = 0
		return nil, nil // no reply
	})
	msg, _ := proto.Marshal(wrapperspb.Int64(5))
	res, err := guest.Call(nil, "google.protobuf.Int64Value", msg)
	if err != nil {
		t.Fatal(err)
	}
	var st wrapperspb.Int64Value
	if err := proto.Unmarshal(res.State, &st); err != nil || st.GetValue() != 10 {
		t.Fatalf("state %v, %v", &st, err)
	}
	if res.ReplyType != "google.protobuf.StringValue" {
		t.Fatalf("reply type %q", res.ReplyType)
	}
	var reply wrapperspb.StringValue
	if err := proto.Unmarshal(res.Reply, &reply); err != nil || reply.GetValue() != "ok" {
		t.Fatalf("reply %v, %v", &reply, err)
	}

	res, err = guest.Call(res.State, "google.protobuf.Empty", nil)
	if err != nil || res.Reply != nil || res.State == nil || len(res.State) != 0 {
		t.Fatalf("reset: %+v, %v", res, err)
	}

	neg, _ := proto.Marshal(wrapperspb.Int64(-1))
	if _, err := guest.Call(nil, "google.protobuf.Int64Value", neg); err == nil || err.Error() != "negative" {
		t.Fatalf("the handler's error: %v", err)
	}
	if _, err := guest.Call(nil, "game.Unknown", nil); err == nil || !strings.Contains(err.Error(), "no route") {
		t.Fatalf("unknown type: %v", err)
	}
	if _, err := guest.Call([]byte{0xff}, "google.protobuf.Int64Value", msg); err == nil || !strings.Contains(err.Error(), "the state as") {
		t.Fatalf("bad state: %v", err)
	}
}
