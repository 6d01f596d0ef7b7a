package arena

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/examples/arena/arenapb"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/rpc"
)

// MaxChatLen bounds a chat line, in characters, after CleanChat.
const MaxChatLen = 200

// ChatModule is the "chat" module: the "chat" gate service (chat.Say). It
// asks the world module for the sender's name with the generated World
// client, wherever the world runs, then broadcasts the line to the room's
// group, which every player joined with arena.Join. A session logged in by
// a token that has not joined speaks as "@" and its user ID.
type ChatModule struct {
	node *actor.Node
	pid  actor.PID
}

// NewChat returns the chat module, for app.Registry.Register.
func NewChat() app.Module { return &ChatModule{} }

// Start serves the chat service. It needs the world module's node type
// from the configuration.
func (m *ChatModule) Start(ctx context.Context, env *app.Env) error {
	if env.NodeType == nil || env.RPC == nil {
		return fmt.Errorf("arena: chat needs Env.NodeType and Env.RPC")
	}
	worldType, ok := env.NodeType(ModuleWorld)
	if !ok {
		return fmt.Errorf("arena: chat needs the %q module on some node of the configuration", ModuleWorld)
	}
	svc := chatService(arenapb.NewWorldClient(env.RPC), rpc.AnyOf(worldType, cluster.RoundRobin))
	pid, err := svc.Serve(ctx, env.Actor)
	if err != nil {
		return err
	}
	m.node, m.pid = env.Actor, pid
	return nil
}

// Stop stops the chat service.
func (m *ChatModule) Stop(ctx context.Context) error {
	if m.node != nil {
		_ = m.node.Stop(m.pid)
	}
	return nil
}

// chatService is the "chat" gate service.
func chatService(world arenapb.WorldClient, at rpc.Target) *gate.Service {
	svc := gate.NewService("chat")
	var budget speakers // per user: the service's handlers run one at a time
	gate.Handle(svc, "Say", func(s *gate.Session, req *arenapb.SayRequest) (*arenapb.SayReply, error) {
		if !budget.allow(s.UserID(), time.Now()) {
			return nil, rpc.Errorf(rpc.ResourceExhausted, "say: at most %d lines a second, %d at once", ChatRate, ChatBurst)
		}
		if len(req.GetText()) > 4*MaxChatLen*4 { // bound the work of cleaning it
			return nil, rpc.Errorf(rpc.InvalidArgument, "say: longer than %d characters", MaxChatLen)
		}
		text := CleanChat(req.GetText())
		switch {
		case text == "":
			return nil, rpc.Error(rpc.InvalidArgument, "say: nothing to say")
		case utf8.RuneCountInString(text) > MaxChatLen:
			return nil, rpc.Errorf(rpc.InvalidArgument, "say: longer than %d characters", MaxChatLen)
		}
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		from := ""
		who, err := world.Who(ctx, at, &arenapb.WhoRequest{PlayerId: s.UserID()})
		switch {
		case err == nil:
			from = who.GetName()
		case rpc.CodeOf(err) == rpc.NotFound:
			// A client logged in by its token (an MQTT client of guild
			// demo, say) that has not joined: it speaks as "@" and its
			// user ID, which no player's name is confused with.
			from = "@" + s.UserID()
		default:
			return nil, err
		}
		line := &arenapb.ChatLine{From: from, Text: text, UnixMs: time.Now().UnixMilli()}
		// Droppable: a player whose write queue is backed up misses chat
		// lines rather than being cut off for them.
		if err := gate.BroadcastWith(ctx, s.Actor().Node(), ChatGroup, PushChat, line, gate.PushOptions{Droppable: true}); err != nil {
			return nil, err
		}
		return &arenapb.SayReply{}, nil
	})
	return svc
}
