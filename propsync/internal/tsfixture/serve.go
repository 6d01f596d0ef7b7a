package main

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/gate"
	gatews "github.com/guildkit/guild/gate/websocket"
	"github.com/guildkit/guild/grain"
	"github.com/guildkit/guild/propsync"
	"github.com/guildkit/guild/propsync/internal/mutate"
	"github.com/guildkit/guild/propsync/internal/testpb"
	"github.com/guildkit/guild/rpc/rpcpb"
)

// serve runs a synced player grain (a testpb.Player state) behind a
// WebSocket gateway, for the TypeScript SDK's end-to-end test of
// subscribeReplica. A session's user is its token. Its routes, both to the
// caller's own player grain:
//
//	sync.Subscribe, sync.Unsubscribe  propsync.Service (the grain runtime answers)
//	game.Mutate                       Stats{hp: n, mp: seed} makes n seeded random changes; replies Stats{}
//
// It prints "ready <ws URL>" once it listens, then answers each command
// line on stdin:
//
//	state <user>       "state <the player's state, private fields removed, base64>"
//	deactivate <user>  "ok": the grain deactivates (its subscribers get the end notice)
//
// or "error <why>". It ends when stdin closes.
func serve() error {
	n, err := actor.NewNode(actor.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sys, err := grain.Start(ctx, grain.Config{
		Node:  n,
		Kinds: []grain.Kind{playerKind()},
		Push: func(session, route string, msg proto.Message) error {
			return gate.Push(n, session, route, msg)
		},
	})
	if err != nil {
		return err
	}
	defer sys.Close(context.Background())
	g, err := gate.New(gate.Config{
		Node:   n,
		Grains: sys,
		Routes: map[string]gate.Route{
			"sync": gate.UserGrain("player", propsync.Service),
			"game": gate.UserGrain("player", "guild.propsync.test.Game"),
		},
		Auth:   func(_ context.Context, token string) (string, error) { return token, nil },
		Limits: gate.Limits{Rate: 100000, Burst: 100000},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return err
	}
	defer g.Close()
	addr, err := gatews.Listen(g, "127.0.0.1:0", "/ws", nil)
	if err != nil {
		return err
	}
	fmt.Printf("ready ws://%s/ws\n", addr)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		out, err := command(sys, strings.Fields(in.Text()))
		if err != nil {
			out = "error " + err.Error()
		}
		fmt.Println(out)
	}
	return nil
}

func command(sys *grain.System, args []string) (string, error) {
	if len(args) != 2 {
		return "", fmt.Errorf("unknown command %q", strings.Join(args, " "))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id := grain.Identity{Kind: "player", Key: args[1]}
	switch args[0] {
	case "state":
		r, err := sys.Call(ctx, id, getState{})
		if err != nil {
			return "", err
		}
		s, err := encode(r.(proto.Message))
		return "state " + s, err
	case "deactivate":
		_, err := sys.Call(ctx, id, deactivate{})
		return "ok", err
	}
	return "", fmt.Errorf("unknown command %q", strings.Join(args, " "))
}

// The messages the player grain takes from serve itself.
type (
	getState   struct{}
	deactivate struct{}
)

// gameMutate is the method a client calls to change its player.
const gameMutate = "/guild.propsync.test.Game/Mutate"

// playerKind is a synced kind of grain whose state is a testpb.Player.
func playerKind() grain.Kind {
	return grain.Kind{
		Name:        "player",
		IdleTimeout: time.Hour,
		State:       func() any { return &testpb.Player{} },
		Sync:        &grain.SyncOptions{},
		New: func(grain.Identity) grain.Actor {
			return grain.ActorFunc(func(c *grain.Context) {
				st := c.State().(*testpb.Player)
				switch m := c.Message().(type) {
				case *rpcpb.Call:
					var req testpb.Stats
					if m.GetMethod() != gameMutate || proto.Unmarshal(m.GetBody(), &req) != nil {
						c.Respond(&rpcpb.Status{Code: 3, Message: "bad request"})
						return
					}
					mu := mutate.Mutator{R: rand.New(rand.NewPCG(uint64(req.GetMp()), 2))}
					for range req.GetHp() {
						mu.Mutate(st)
					}
					c.Respond(&testpb.Stats{})
				case getState:
					c.Respond(propsync.Redact(st))
				case deactivate:
					c.Deactivate()
					c.Respond(m)
				}
			})
		},
	}
}
