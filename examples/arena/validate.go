package arena

import (
	"context"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/examples/arena/arenapb"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/rpc"
)

// Validate is the arena's request check for its gateway
// (gate.Config.Validate, app.WithGatewayValidate): it refuses a join
// whose name checkName would refuse, and a chat line too long to clean,
// before they leave the gateway. The world and chat services check again:
// this is the first line, not the only one. It is safe for concurrent
// use.
func Validate(_ context.Context, _ *gate.SessionInfo, route string, body []byte) error {
	switch route {
	case RouteJoin:
		var req arenapb.JoinRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			return rpc.Errorf(rpc.InvalidArgument, "join: the request does not decode: %v", err)
		}
		_, err := checkName(req.GetName())
		return err
	case RouteSay:
		var req arenapb.SayRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			return rpc.Errorf(rpc.InvalidArgument, "say: the request does not decode: %v", err)
		}
		if len(req.GetText()) > 4*MaxChatLen*4 || utf8.RuneCountInString(req.GetText()) > 4*MaxChatLen {
			return rpc.Errorf(rpc.InvalidArgument, "say: longer than %d characters", MaxChatLen)
		}
	}
	return nil
}
