package arena

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/examples/arena/arenapb"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/rpc"
)

// callTimeout bounds the calls a handler makes to another actor.
const callTimeout = 5 * time.Second

// WorldModule is the "world" module: the world actor that owns the
// players, the generated arenapb.World rpc service in front of it (for the
// other modules), and the "arena" gate service that clients reach
// (arena.Join, arena.Move, arena.Leave). The world is one actor: host the
// module on one node.
type WorldModule struct {
	node  *actor.Node
	pids  []actor.PID // the actors it started, in start order
	world actor.PID
}

// NewWorld returns the world module, for app.Registry.Register.
func NewWorld() app.Module { return &WorldModule{} }

// Start starts the world actor with the module's settings (WorldSettings),
// and serves the World rpc service and the arena gate service.
func (m *WorldModule) Start(ctx context.Context, env *app.Env) error {
	var s WorldSettings
	if env.Settings != nil {
		if err := env.Settings(&s); err != nil {
			return fmt.Errorf("arena: world settings: %w", err)
		}
	}
	if err := s.Validate(); err != nil {
		return err
	}
	s = s.withDefaults()
	m.node = env.Actor
	w := newWorldActor(s)
	// The producer hands back the same value: a panic in the world
	// restarts its timer, and the players stay.
	pid, err := env.Actor.Spawn(func() actor.Actor { return w })
	if err != nil {
		return fmt.Errorf("arena: start the world: %w", err)
	}
	m.world = pid
	m.pids = append(m.pids, pid)
	rpcPID, err := arenapb.RegisterWorldServer(ctx, env.Actor, worldServer{world: pid})
	if err != nil {
		m.stop()
		return err
	}
	m.pids = append(m.pids, rpcPID)
	gatePID, err := arenaService(pid).Serve(ctx, env.Actor)
	if err != nil {
		m.stop()
		return err
	}
	m.pids = append(m.pids, gatePID)
	return nil
}

// Stop stops the module's actors.
func (m *WorldModule) Stop(ctx context.Context) error {
	m.stop()
	return nil
}

func (m *WorldModule) stop() {
	for i := len(m.pids) - 1; i >= 0; i-- {
		_ = m.node.Stop(m.pids[i])
	}
	m.pids = nil
}

// worldServer implements arenapb.WorldServer by asking the world actor.
type worldServer struct{ world actor.PID }

func (s worldServer) Enter(ctx *rpc.Context, req *arenapb.EnterRequest) (*arenapb.JoinReply, error) {
	return ask[arenapb.JoinReply](ctx, ctx.Actor(), s.world, req)
}

func (s worldServer) Leave(ctx *rpc.Context, req *arenapb.LeaveRequest) (*emptypb.Empty, error) {
	return ask[emptypb.Empty](ctx, ctx.Actor(), s.world, req)
}

func (s worldServer) Steer(ctx *rpc.Context, req *arenapb.SteerRequest) (*arenapb.MoveReply, error) {
	return ask[arenapb.MoveReply](ctx, ctx.Actor(), s.world, req)
}

func (s worldServer) Who(ctx *rpc.Context, req *arenapb.WhoRequest) (*arenapb.Player, error) {
	return ask[arenapb.Player](ctx, ctx.Actor(), s.world, req)
}

// ask calls the world actor from actor c and returns its typed reply.
func ask[T any](ctx context.Context, c *actor.Context, world actor.PID, req any) (*T, error) {
	reply, err := c.Call(ctx, world, req)
	if err != nil {
		return nil, rpc.StatusOf(err)
	}
	r, ok := reply.(*T)
	if !ok {
		return nil, rpc.Errorf(rpc.Internal, "the world answered a %T", reply)
	}
	return r, nil
}

// arenaService is the "arena" gate service: the clients' way into the
// world. Its handlers run in its actor, one request at a time, and ask the
// world actor on the same node.
func arenaService(world actor.PID) *gate.Service {
	svc := gate.NewService("arena")
	call := func(s *gate.Session, req any) (any, context.CancelFunc, error) {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		reply, err := s.Actor().Call(ctx, world, req)
		if err != nil {
			err = rpc.StatusOf(err)
		}
		return reply, cancel, err
	}
	gate.Handle(svc, "Join", func(s *gate.Session, req *arenapb.JoinRequest) (*arenapb.JoinReply, error) {
		id := s.UserID()
		if id == "" {
			id = newPlayerID()
		}
		reply, cancel, err := call(s, &arenapb.EnterRequest{PlayerId: id, Name: req.GetName(), SessionId: s.ID()})
		defer cancel()
		if err != nil {
			return nil, err
		}
		ctx, cancelJoin := context.WithTimeout(context.Background(), callTimeout)
		defer cancelJoin()
		if err := gate.JoinGroup(ctx, s.Actor().Node(), ChatGroup, s.ID()); err != nil {
			return nil, err
		}
		s.Bind(id)
		return reply.(*arenapb.JoinReply), nil
	})
	gate.Handle(svc, "Move", func(s *gate.Session, req *arenapb.MoveRequest) (*arenapb.MoveReply, error) {
		reply, cancel, err := call(s, &arenapb.SteerRequest{PlayerId: s.UserID(), Dx: req.GetDx(), Dy: req.GetDy()})
		defer cancel()
		if err != nil {
			return nil, err
		}
		return reply.(*arenapb.MoveReply), nil
	})
	gate.Handle(svc, "Leave", func(s *gate.Session, req *emptypb.Empty) (*emptypb.Empty, error) {
		_, cancel, err := call(s, &arenapb.LeaveRequest{PlayerId: s.UserID()})
		defer cancel()
		if err != nil {
			return nil, err
		}
		ctx, cancelLeave := context.WithTimeout(context.Background(), callTimeout)
		defer cancelLeave()
		if err := gate.LeaveGroup(ctx, s.Actor().Node(), ChatGroup, s.ID()); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
		return &emptypb.Empty{}, nil
	})
	return svc
}

// newPlayerID returns a fresh random player ID ("p-" and 12 hex digits):
// unique without coordination between world restarts.
func newPlayerID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "p-" + strings.ToLower(hex.EncodeToString(b[:]))
}
