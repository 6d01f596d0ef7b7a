package gate_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/rpc"
)

// TestValidateHook: Config.Validate sees each routed request before its
// service does; its refusal answers InvalidArgument with its message (or
// the code of an rpc.Status), its panic answers Internal, and the session
// goes on serving either way.
func TestValidateHook(t *testing.T) {
	gw := startOneNode(t, gate.Config{
		Public: []string{"chat.Echo"},
		Validate: func(ctx context.Context, s *gate.SessionInfo, route string, body []byte) error {
			if s == nil || s.ID == "" {
				return errors.New("no session")
			}
			var arg wrapperspb.StringValue
			if err := proto.Unmarshal(body, &arg); err != nil {
				return err
			}
			switch arg.Value {
			case "bad":
				return errors.New("name: control characters are not allowed")
			case "slow down":
				return rpc.Error(rpc.ResourceExhausted, "too fast")
			case "panic":
				panic("validator bug")
			}
			return nil
		},
	})
	c := dial(t, client.Config{Addr: gw.url})
	mustCall(t, c, "chat.Echo", "hello", "echo:hello")
	_, err := call(t, c, "chat.Echo", "bad")
	wantCode(t, "refused", err, rpc.InvalidArgument)
	if !strings.Contains(err.Error(), "control characters") {
		t.Errorf("refusal %v does not carry the hook's message", err)
	}
	_, err = call(t, c, "chat.Echo", "slow down")
	wantCode(t, "rpc.Status", err, rpc.ResourceExhausted)
	_, err = call(t, c, "chat.Echo", "panic")
	wantCode(t, "panic", err, rpc.Internal)
	mustCall(t, c, "chat.Echo", "still here", "echo:still here")
	// A route with no service is answered before the hook.
	_, err = call(t, c, "nowhere.Echo", "bad")
	wantCode(t, "no route", err, rpc.Unimplemented)
}
