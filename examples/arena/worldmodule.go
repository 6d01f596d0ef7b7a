package arena

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolterrors "go.etcd.io/bbolt/errors"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/examples/arena/arenapb"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/grain"
	"github.com/guildkit/guild/propsync/propsyncpb"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/store"
	"github.com/guildkit/guild/store/embedded"
)

// callTimeout bounds the calls a handler makes to another actor.
const callTimeout = 5 * time.Second

// ErrStoreInUse is returned by the world module's Start when another
// process has its store (WorldSettings.Store) open.
var ErrStoreInUse = errors.New("arena: the store is in use by another process")

// WorldModule is the "world" module: the world actor that owns the
// players and orbs, the generated arenapb.World rpc service in front of it
// (for the other modules), the "arena" gate service that clients reach
// (arena.Join, arena.Move, arena.Leave), and the grains that keep the
// records and the leaderboard (KindPlayer, KindLeaderboard) in the store
// of WorldSettings.Store. The world is one actor: host the module on one
// node. The grains run on the nodes that host the module, that is on the
// world's node.
type WorldModule struct {
	node   *actor.Node
	pids   []actor.PID // the actors it started, in start order
	world  actor.PID
	grains *grain.System
	store  *embedded.Store // nil: the grains' state is in memory
	log    *slog.Logger
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
	m.node, m.log = env.Actor, env.Logger
	if m.log == nil {
		m.log = env.Actor.Logger()
	}
	if err := m.startGrains(ctx, env, s.Store); err != nil {
		return err
	}
	w := newWorldActor(s, m.grains)
	// The leaderboard before the first player: a join's reply holds it.
	if b, err := m.grains.Call(ctx, leaderboardID, &arenapb.BoardRequest{}); err != nil {
		m.log.Warn("arena: could not load the leaderboard; the world asks again", "err", err)
	} else if b, ok := b.(*arenapb.Leaderboard); ok {
		w.board = b
	}
	// The producer hands back the same value: a panic in the world
	// restarts its timer, and the players stay.
	pid, err := env.Actor.Spawn(func() actor.Actor { return w })
	if err != nil {
		m.stop()
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
	gatePID, err := arenaService(pid, m.grains, m.log).Serve(ctx, env.Actor)
	if err != nil {
		m.stop()
		return err
	}
	m.pids = append(m.pids, gatePID)
	return nil
}

// startGrains opens the store at path ("": none, the state in memory)
// and starts the grains of the records and the leaderboard.
func (m *WorldModule) startGrains(ctx context.Context, env *app.Env, path string) error {
	var st store.Store
	if path != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("arena: the store's directory: %w", err)
		}
		es, err := embedded.Open(path)
		if err != nil {
			if errors.Is(err, bolterrors.ErrTimeout) { // the file's lock, after embedded.LockTimeout
				return fmt.Errorf("%w: %s (another guild demo or world node? stop it, or give this one another file: guild demo -data DIR)", ErrStoreInUse, path)
			}
			return fmt.Errorf("arena: open the store: %w", err)
		}
		m.store, st = es, es
	}
	push := env.PushSession
	if push == nil { // an Env made by hand
		push = func(session, route string, msg proto.Message) error {
			return gate.Push(env.Actor, session, route, msg)
		}
	}
	sys, err := grain.Start(ctx, grain.Config{
		Node:       env.Actor,
		Membership: env.Members,
		Kinds:      grainKinds(),
		Store:      st,
		Logger:     m.log,
		Observe:    env.ObserveGrain, // a span per activation when the node traces
		// The player records are synced (KindPlayer): their deltas go to
		// the subscribed sessions, on whichever gateway node they live.
		Push: push,
	})
	if err != nil {
		m.closeStore()
		return fmt.Errorf("arena: start the grains: %w", err)
	}
	if env.Admin != nil { // the admin dashboard shows the leaderboard's grains
		if err := env.Admin.AddGrains(sys); err != nil {
			m.log.Warn("arena: show the grains on the admin dashboard", "err", err)
		}
	}
	m.grains = sys
	return nil
}

// Stop stops the module's actors, then its grains (which write their
// state to the store) and the store.
func (m *WorldModule) Stop(ctx context.Context) error {
	m.stop()
	var err error
	if m.grains != nil {
		err = m.grains.Close(ctx)
		m.grains = nil
	}
	return errors.Join(err, m.closeStore())
}

func (m *WorldModule) stop() {
	for i := len(m.pids) - 1; i >= 0; i-- {
		_ = m.node.Stop(m.pids[i])
	}
	m.pids = nil
}

func (m *WorldModule) closeStore() error {
	if m.store == nil {
		return nil
	}
	err := m.store.Close()
	m.store = nil
	return err
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
// world actor on the same node; arena.Join also asks the player's record
// (a grain) for the player's best score.
func arenaService(world actor.PID, grains *grain.System, log *slog.Logger) *gate.Service {
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
		r, cancel, err := call(s, &arenapb.EnterRequest{PlayerId: id, Name: req.GetName(), SessionId: s.ID(), Resume: req.GetResume()})
		defer cancel()
		if err != nil {
			return nil, err
		}
		reply := r.(*arenapb.JoinReply)
		ctx, cancelJoin := context.WithTimeout(context.Background(), callTimeout)
		defer cancelJoin()
		if err := gate.JoinGroup(ctx, s.Actor().Node(), ChatGroup, s.ID()); err != nil {
			return nil, err
		}
		// A resumed player keeps its ID, which may not be the one offered.
		s.Bind(reply.GetPlayerId())
		if grains != nil {
			name, _ := checkName(req.GetName()) // the world accepted it
			if rec, err := grains.Call(ctx, playerID(name), &arenapb.VisitRequest{Name: name, PlayerId: reply.GetPlayerId()}); err != nil {
				// The game goes on without the records.
				log.Warn("arena: a player's record is unavailable", "name", name, "err", err)
			} else if rec, ok := rec.(*arenapb.PlayerRecord); ok {
				reply.Best = rec.GetBest()
			}
		}
		return reply, nil
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
	gate.Handle(svc, "Stats", func(s *gate.Session, req *propsyncpb.Subscribe) (*propsyncpb.Delta, error) {
		return statsSubscribe(s, world, grains, req)
	})
	return svc
}

// statsSubscribe subscribes the session s to the record of the name its
// player plays (arena.Stats): it answers the record's snapshot, and the
// grain pushes the session a delta on propsync.DefaultRoute after each
// change. The session's user is its player's ID, not the name the record
// is keyed by, so no gate.UserGrain route reaches the record: the service
// asks the world which name the session plays, then subscribes it with
// grain.System.Subscribe as the user of that key, which the grain's
// default check (SyncOptions.MaySubscribe nil) accepts. A session
// subscribes to its own record only.
func statsSubscribe(s *gate.Session, world actor.PID, grains *grain.System, req *propsyncpb.Subscribe) (*propsyncpb.Delta, error) {
	if grains == nil {
		return nil, rpc.Errorf(rpc.Unavailable, "arena.Stats: the world keeps no records")
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	who, err := ask[arenapb.Player](ctx, s.Actor(), world, &arenapb.WhoRequest{PlayerId: s.UserID()})
	if err != nil {
		return nil, err
	}
	id := playerID(who.GetName())
	if e := req.GetEntity(); e != "" && e != id.String() {
		return nil, rpc.Errorf(rpc.PermissionDenied, "arena.Stats: %q is not your record (%s)", e, id)
	}
	d, err := grains.Subscribe(ctx, id.String(), s.ID(), id.Key)
	if err != nil {
		return nil, rpc.StatusOf(err)
	}
	return d, nil
}

// newPlayerID returns a fresh random player ID ("p-" and 12 hex digits):
// unique without coordination between world restarts.
func newPlayerID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "p-" + strings.ToLower(hex.EncodeToString(b[:]))
}
