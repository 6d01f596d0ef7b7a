// Command gobot is the Go player of the arena's browser test
// (examples/arena/web/test/browser.spec.mjs). It joins the arena through the
// gateway with package client, walks to a point (and to a named player once
// that player is in view), then plays there: it goes for the orbs within
// -reach of that spot, and paces left and right when there are none, so
// that a browser watching the spot sees it move and score. It prints what
// it sees as JSON lines on standard output:
//
//	{"event":"joined","id":"…","x":812,"y":340,"width":2000,"height":2000}
//	{"event":"pos","x":830.5,"y":340,"near":true,"score":2}  about once a second
//	{"event":"score","score":3}                              when its score changes
//	{"event":"chat","from":"ada","text":"hello","unix_ms":…} every chat.Line
//
// and stops after -duration, or when standard input closes or reads "quit".
//
//	go run ./examples/arena/web/test/gobot -addr ws://127.0.0.1:8080/ws -goto 500,500 -seek ada
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/examples/arena/arenapb"
)

// Steering: how close to the goal counts as arrived, how long each pacing
// leg lasts (the world's default speed is 200 units/s), and where the bot
// stands relative to the -seek player (below it, so both stay visible).
const (
	nearEnough = 150.0
	legTime    = 500 * time.Millisecond
	steerEvery = 100 * time.Millisecond
	seekBelow  = 60.0
)

func main() {
	addr := flag.String("addr", "ws://127.0.0.1:8080/ws", "the gateway: ws://host:port/ws or tcp://host:port")
	name := flag.String("name", "gobot", "the player's name")
	target := flag.String("goto", "", "x,y: the point to walk to; empty: stay near the spawn point")
	seek := flag.String("seek", "", "a player's name: once in view, walk to it instead")
	reach := flag.Float64("reach", 250, "once there, go for the orbs this close to the spot (0: only pace)")
	duration := flag.Duration("duration", 2*time.Minute, "stop after this long")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	go func() { // stdin closing (the test ended) or "quit" stops the bot
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			if strings.TrimSpace(sc.Text()) == "quit" {
				break
			}
		}
		cancel()
	}()

	var goal *[2]float64
	if *target != "" {
		x, y, err := parsePoint(*target)
		if err != nil {
			fmt.Fprintf(os.Stderr, "gobot: -goto %q: %v\n", *target, err)
			os.Exit(2)
		}
		goal = &[2]float64{x, y}
	}
	if err := run(ctx, *addr, *name, *seek, *reach, goal); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		fmt.Fprintf(os.Stderr, "gobot: %v\n", err)
		os.Exit(1)
	}
}

func parsePoint(s string) (x, y float64, err error) {
	xs, ys, ok := strings.Cut(s, ",")
	if !ok {
		return 0, 0, errors.New("want x,y")
	}
	if x, err = strconv.ParseFloat(strings.TrimSpace(xs), 64); err == nil {
		y, err = strconv.ParseFloat(strings.TrimSpace(ys), 64)
	}
	return x, y, err
}

// out prints one JSON line; pushes and the main loop both print.
var outMu sync.Mutex

func out(v map[string]any) {
	b, _ := json.Marshal(v)
	outMu.Lock()
	defer outMu.Unlock()
	os.Stdout.Write(append(b, '\n'))
}

// view is what the latest arena.World push showed.
type view struct {
	mu         sync.Mutex
	x, y       float64 // the bot itself
	score      uint32
	seen       bool    // the bot was in an update
	seekX      float64 // the -seek player, when in view
	seekY      float64
	seekInView bool
	orbs       [][2]float64
}

func run(ctx context.Context, addr, name, seek string, reach float64, goal *[2]float64) error {
	c, err := client.Dial(ctx, client.Config{Addr: addr})
	if err != nil {
		return err
	}
	defer c.Close()

	var me string
	var v view
	c.OnPush("chat.Line", func(body []byte) {
		var l arenapb.ChatLine
		if err := proto.Unmarshal(body, &l); err != nil {
			fmt.Fprintf(os.Stderr, "gobot: chat.Line: %v\n", err)
			return
		}
		out(map[string]any{"event": "chat", "from": l.GetFrom(), "text": l.GetText(), "unix_ms": l.GetUnixMs()})
	})
	c.OnPush("arena.World", func(body []byte) {
		var w arenapb.WorldUpdate
		if err := proto.Unmarshal(body, &w); err != nil {
			fmt.Fprintf(os.Stderr, "gobot: arena.World: %v\n", err)
			return
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		v.seekInView = false
		v.orbs = v.orbs[:0]
		for _, o := range w.GetOrbs() {
			v.orbs = append(v.orbs, [2]float64{float64(o.GetX()), float64(o.GetY())})
		}
		for _, p := range w.GetPlayers() {
			switch {
			case p.GetId() == me:
				if p.GetScore() != v.score {
					out(map[string]any{"event": "score", "score": p.GetScore()})
				}
				v.x, v.y, v.seen, v.score = float64(p.GetX()), float64(p.GetY()), true, p.GetScore()
			case seek != "" && p.GetName() == seek:
				v.seekX, v.seekY, v.seekInView = float64(p.GetX()), float64(p.GetY()), true
			}
		}
	})

	var joined arenapb.JoinReply
	if err := c.Request(ctx, "arena.Join", &arenapb.JoinRequest{Name: name}, &joined); err != nil {
		return fmt.Errorf("arena.Join: %w", err)
	}
	v.mu.Lock()
	me = joined.GetPlayerId()
	v.x, v.y = float64(joined.GetX()), float64(joined.GetY())
	v.mu.Unlock()
	out(map[string]any{"event": "joined", "id": me, "x": joined.GetX(), "y": joined.GetY(),
		"width": joined.GetWidth(), "height": joined.GetHeight()})
	if goal == nil {
		goal = &[2]float64{v.x, v.y}
	}

	tick := time.NewTicker(steerEvery)
	defer tick.Stop()
	var lastDx, lastDy float32
	lastSent := time.Time{}
	lastPos := time.Time{}
	legStart := time.Time{}
	leg := float32(1)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		v.mu.Lock()
		x, y, score := v.x, v.y, v.score
		gx, gy := goal[0], goal[1]
		if v.seekInView {
			gx, gy = v.seekX, v.seekY+seekBelow
		}
		// The orb within reach of the goal that is nearest the bot.
		orb, orbD := [2]float64{}, math.Inf(1)
		for _, o := range v.orbs {
			if d := math.Hypot(o[0]-x, o[1]-y); math.Hypot(o[0]-gx, o[1]-gy) <= reach && d < orbD {
				orb, orbD = o, d
			}
		}
		v.mu.Unlock()

		// Walk to the goal; once there, go for the orbs near it, or pace
		// left and right across it.
		var dx, dy float32
		ex, ey := gx-x, gy-y
		near := math.Hypot(ex, ey) < nearEnough
		switch {
		// On the way to an orb within reach of the goal, the bot stays
		// within reach of it (a disc holds the segment between two of its
		// points).
		case math.Hypot(ex, ey) < reach+nearEnough/4 && !math.IsInf(orbD, 1):
			dx, dy = float32((orb[0]-x)/orbD), float32((orb[1]-y)/orbD)
			legStart = time.Time{}
		case !near:
			d := math.Hypot(ex, ey)
			dx, dy = float32(ex/d), float32(ey/d)
			legStart = time.Time{}
		default:
			if legStart.IsZero() || time.Since(legStart) > legTime {
				legStart = time.Now()
				// Turn back towards the goal's side, so pacing stays near it.
				if x > gx+nearEnough/2 {
					leg = -1
				} else if x < gx-nearEnough/2 {
					leg = 1
				} else {
					leg = -leg
				}
			}
			dx = leg
		}
		// Send on a change, and every 2 s anyway: idle players are dropped.
		if math.Abs(float64(dx-lastDx)) > 0.02 || math.Abs(float64(dy-lastDy)) > 0.02 || time.Since(lastSent) > 2*time.Second {
			var mv arenapb.MoveReply
			rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
			err := c.Request(rctx, "arena.Move", &arenapb.MoveRequest{Dx: dx, Dy: dy}, &mv)
			rcancel()
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("arena.Move: %w", err)
			}
			lastDx, lastDy, lastSent = dx, dy, time.Now()
		}
		if time.Since(lastPos) >= time.Second {
			lastPos = time.Now()
			out(map[string]any{"event": "pos", "x": x, "y": y, "near": near, "score": score})
		}
	}
}
