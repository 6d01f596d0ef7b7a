// Command players shows guild's grains and persistence: every player is a
// grain (a virtual actor that always exists) with a persistent inventory,
// reached by the player's own client through a gateway route and
// generated RPC. The inventory is kept in the embedded store (a bbolt
// file), so it survives the whole server stopping and starting again:
//
//	go run ./examples/players
//
// It runs the server twice in one process, with the same store file, and a
// Go client that logs in as "ana" each time.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/examples/players/playerspb"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/grain"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/store/embedded"
)

// errNoGold is the game's own error: code 1001.
var errNoGold = rpc.Error(1001, "not enough gold")

func main() {
	dir := flag.String("data", "", "directory of the store file (default: a temporary one)")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if *dir == "" {
		d, err := os.MkdirTemp("", "guild-players-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "players:", err)
			os.Exit(1)
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	if err := run(ctx, filepath.Join(*dir, "players.db"), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "players:", err)
		os.Exit(1)
	}
}

// player is one player grain: its state is a playerspb.PlayerState that
// the grain runtime loads on activation and flushes when it changed.
type player struct {
	id    grain.Identity
	state *playerspb.PlayerState
	rpc   *rpc.Dispatcher
}

func newPlayer(id grain.Identity) grain.Actor {
	p := &player{id: id}
	p.rpc = rpc.NewDispatcher(playerspb.PlayerServiceDesc(), p)
	return p
}

func (p *player) Receive(c *grain.Context) {
	if p.state == nil {
		p.state = c.State().(*playerspb.PlayerState)
		if p.state.Items == nil {
			p.state.Items = map[string]int32{}
			p.state.Gold = 100 // a new player's purse
		}
	}
	p.rpc.Handle(c.Actor())
}

func (p *player) inventory() *playerspb.InventoryReply {
	return &playerspb.InventoryReply{Player: p.id.Key, Gold: p.state.Gold, Items: p.state.Items, Visits: p.state.Visits}
}

func (p *player) Inventory(*rpc.Context, *emptypb.Empty) (*playerspb.InventoryReply, error) {
	p.state.Visits++
	return p.inventory(), nil
}

func (p *player) AddItem(_ *rpc.Context, req *playerspb.AddItemRequest) (*playerspb.InventoryReply, error) {
	if req.GetItem() == "" || req.GetCount() <= 0 {
		return nil, rpc.Error(rpc.InvalidArgument, "an item and a positive count, please")
	}
	p.state.Items[req.GetItem()] += req.GetCount()
	return p.inventory(), nil
}

func (p *player) Buy(_ *rpc.Context, req *playerspb.BuyRequest) (*playerspb.InventoryReply, error) {
	if req.GetPrice() > p.state.Gold {
		return nil, errNoGold
	}
	p.state.Gold -= req.GetPrice()
	p.state.Items[req.GetItem()]++
	return p.inventory(), nil
}

// server is one run of the game server: a node with the player grains and
// a gateway.
type server struct {
	node *actor.Node
	st   *embedded.Store
	sys  *grain.System
	gw   *gate.Gateway
	addr string
}

func startServer(ctx context.Context, storePath string) (*server, error) {
	quiet := slog.New(slog.DiscardHandler)
	n, err := actor.NewNode(actor.Config{Addr: actor.MustAddr(1, 1, 1), Logger: quiet})
	if err != nil {
		return nil, err
	}
	st, err := embedded.Open(storePath)
	if err != nil {
		n.Close()
		return nil, err
	}
	s := &server{node: n, st: st}
	s.sys, err = grain.Start(ctx, grain.Config{
		Node:  n,
		Store: st,
		Kinds: []grain.Kind{{
			Name:       "player",
			New:        newPlayer,
			State:      func() any { return &playerspb.PlayerState{} },
			FlushEvery: time.Second,
		}},
	})
	if err != nil {
		st.Close()
		n.Close()
		return nil, err
	}
	// Logging in binds the session to the player: from then on, player.*
	// routes reach that player's grain, and only that one.
	auth := gate.NewService("auth")
	gate.Handle(auth, "Login", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		if req.GetValue() == "" {
			return nil, rpc.Error(rpc.InvalidArgument, "a name, please")
		}
		s.Bind(req.GetValue())
		return wrapperspb.String("welcome, " + req.GetValue()), nil
	})
	authPID, err := auth.Serve(ctx, n)
	if err != nil {
		return nil, errors.Join(err, s.stop(ctx))
	}
	s.gw, err = gate.New(gate.Config{
		Node:   n,
		Grains: s.sys,
		Routes: map[string]gate.Route{
			"auth":   gate.To(rpc.To(authPID)),
			"player": gate.UserGrain("player", playerspb.Player_ServiceName),
		},
		Public: []string{"auth.Login"},
		Logger: quiet,
	})
	if err != nil {
		return nil, errors.Join(err, s.stop(ctx))
	}
	ln, err := s.gw.ListenTCP("127.0.0.1:0", nil)
	if err != nil {
		return nil, errors.Join(err, s.stop(ctx))
	}
	s.addr = "tcp://" + ln.String()
	return s, nil
}

// stop closes the gateway, then the grains (flushing every player), the
// store and the node.
func (s *server) stop(ctx context.Context) error {
	var errs []error
	if s.gw != nil {
		errs = append(errs, s.gw.Close())
	}
	if s.sys != nil {
		errs = append(errs, s.sys.Close(ctx))
	}
	errs = append(errs, s.st.Close(), s.node.Close())
	return errors.Join(errs...)
}

// play logs in as name and plays a little, printing what happens.
func play(ctx context.Context, addr, name string, buy bool, out io.Writer) error {
	c, err := client.Dial(ctx, client.Config{Addr: addr})
	if err != nil {
		return err
	}
	defer c.Close()
	var inv playerspb.InventoryReply
	if round := c.Request(ctx, "player.Inventory", &emptypb.Empty{}, &inv); round != nil && buy {
		fmt.Fprintf(out, "before logging in: %v\n", round)
	}
	var welcome wrapperspb.StringValue
	if err := c.Request(ctx, "auth.Login", wrapperspb.String(name), &welcome); err != nil {
		return err
	}
	fmt.Fprintln(out, welcome.GetValue())
	if err := c.Request(ctx, "player.Inventory", &emptypb.Empty{}, &inv); err != nil {
		return err
	}
	fmt.Fprintf(out, "  inventory: gold %d, items %v, visit %d\n", inv.GetGold(), inv.GetItems(), inv.GetVisits())
	if !buy {
		return nil
	}
	if err := c.Request(ctx, "player.AddItem", &playerspb.AddItemRequest{Item: "potion", Count: 3}, &inv); err != nil {
		return err
	}
	fmt.Fprintf(out, "  found 3 potions: items %v\n", inv.GetItems())
	if err := c.Request(ctx, "player.Buy", &playerspb.BuyRequest{Item: "sword", Price: 80}, &inv); err != nil {
		return err
	}
	fmt.Fprintf(out, "  bought a sword: gold %d, items %v\n", inv.GetGold(), inv.GetItems())
	err = c.Request(ctx, "player.Buy", &playerspb.BuyRequest{Item: "castle", Price: 1000}, &inv)
	fmt.Fprintf(out, "  tried to buy a castle: %v (code %d)\n", err, rpc.CodeOf(err))
	return nil
}

func run(ctx context.Context, storePath string, out io.Writer) error {
	for round, buy := range []bool{true, false} {
		s, err := startServer(ctx, storePath)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "server run %d (store %s)\n", round+1, filepath.Base(storePath))
		perr := play(ctx, s.addr, "ana", buy, out)
		if err := errors.Join(perr, s.stop(ctx)); err != nil {
			return err
		}
	}
	return nil
}
