// Command scale is the multi-process scale run of the gateway
// (docs/SCALE.md): `scripts/scale.sh` starts its nodes and its bots as
// separate processes.
//
//	scale node -c cluster.yaml -node gw1      a node of the cluster file, with the "scale" module
//	scale bots -addrs tcp://..,tcp://.. -n N  clients that log in and hold their sessions
//
// The "scale" module serves the gate service "scale": Login binds the
// session to a user, Join puts it in a group, Echo answers at once. On
// the node that hosts it with broadcast set (modules.scale.broadcast), it
// broadcasts a tick to the group "room" every second, carrying its
// sequence number and the time it was sent.
//
// Bots log in as users u<offset+i>. The first -active of them send one
// scale.Echo a second each (jittered) and record the latency; the first
// -room of them join "room" and record when each tick reaches them. At
// the end a bots process prints one JSON line: the clients connected,
// the requests, their p50/p99, the errors, and per tick how many members
// got it and how long until the last did.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/config"
	"github.com/guildkit/guild/gate"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: scale node|bots [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "node":
		err = runNode(os.Args[2:])
	case "bots":
		err = runBots(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

// runNode runs one node of the cluster file until SIGTERM or SIGINT.
func runNode(args []string) error {
	fs := flag.NewFlagSet("node", flag.ExitOnError)
	file := fs.String("c", "cluster.yaml", "the cluster file")
	name := fs.String("node", "", "the node to run")
	_ = fs.Parse(args)
	reg := app.NewRegistry()
	reg.Register("scale", func() app.Module { return &scaleModule{} })
	cfg, err := config.Load(*file, os.Environ(), reg.Names())
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	n, err := app.Start(ctx, cfg, *name, reg, app.WithLogger(log))
	if err != nil {
		return err
	}
	b, _ := json.Marshal(n.Ready())
	fmt.Println(string(b))
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return n.Shutdown(sctx)
}

// scaleModule serves the "scale" gate service, and broadcasts the ticks
// when its settings say so.
type scaleModule struct {
	stop chan struct{}
	done chan struct{}
}

type scaleSettings struct {
	Broadcast bool `yaml:"broadcast"`
}

func (m *scaleModule) Start(ctx context.Context, env *app.Env) error {
	var s scaleSettings
	if err := env.Settings(&s); err != nil {
		return err
	}
	svc := gate.NewService("scale")
	gate.Handle(svc, "Login", func(ss *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		ss.Bind(req.GetValue())
		return wrapperspb.String(ss.ID()), nil
	})
	gate.Handle(svc, "Join", func(ss *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return wrapperspb.String("joined"), gate.JoinGroup(ctx, ss.Actor().Node(), req.GetValue(), ss.ID())
	})
	gate.Handle(svc, "Echo", func(_ *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return req, nil
	})
	if _, err := svc.Serve(ctx, env.Actor); err != nil {
		return err
	}
	m.stop, m.done = make(chan struct{}), make(chan struct{})
	if !s.Broadcast {
		close(m.done)
		return nil
	}
	go func() {
		defer close(m.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for seq := 1; ; seq++ {
			select {
			case <-m.stop:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			body := wrapperspb.String(strconv.Itoa(seq) + ":" + strconv.FormatInt(time.Now().UnixNano(), 10))
			if err := gate.Broadcast(ctx, env.Actor, "room", "scale.Tick", body); err != nil {
				env.Logger.Warn("broadcast", "seq", seq, "err", err)
			}
			cancel()
		}
	}()
	return nil
}

func (m *scaleModule) Stop(context.Context) error {
	close(m.stop)
	<-m.done
	return nil
}

// report is what a bots process prints at its end.
type report struct {
	Clients     int     `json:"clients"`      // connected and logged in
	DialErrors  int64   `json:"dial_errors"`  // clients that could not connect (3 tries) or log in
	Requests    int     `json:"requests"`     // Echo requests answered
	ReqErrors   int64   `json:"req_errors"`   // Echo requests that failed
	P50Micros   float64 `json:"p50_us"`       // their latency
	P99Micros   float64 `json:"p99_us"`       //
	Ticks       int     `json:"ticks"`        // broadcasts seen, counted once each
	TickMembers int     `json:"tick_members"` // the room members here
	FullTicks   int     `json:"full_ticks"`   // ticks every member here got
	FanoutP50   float64 `json:"fanout_p50_ms"`
	FanoutMax   float64 `json:"fanout_max_ms"` // until the last member got a tick: median and worst over the ticks
	// Errors counts the failures by message (at most 8 kinds, then
	// "other"), each failed try of a dial too.
	Errors map[string]int `json:"errors,omitempty"`
}

// runBots runs -n clients until -duration ends, then prints a report.
func runBots(args []string) error {
	fs := flag.NewFlagSet("bots", flag.ExitOnError)
	addrs := fs.String("addrs", "", "the gateways, comma-separated: bot i connects to the (i mod len)th")
	n := fs.Int("n", 1000, "clients")
	offset := fs.Int("offset", 0, "the first user number")
	active := fs.Int("active", 0, "clients that send one request a second")
	room := fs.Int("room", 0, "clients that join the group room")
	ramp := fs.Duration("ramp", 10*time.Second, "time over which the clients connect")
	measure := fs.Duration("measure", 30*time.Second, "how long requests and ticks are recorded, after the ramp and a settling second")
	hold := fs.Duration("hold", 0, "how long to hold the connections after the measurement")
	_ = fs.Parse(args)
	gates := strings.Split(*addrs, ",")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	var (
		mu        sync.Mutex
		latencies []time.Duration
		ticks     = map[int][]time.Duration{} // seq → each member's delay
		recording atomic.Bool
		connected atomic.Int64
		dialErrs  atomic.Int64
		reqErrs   atomic.Int64
		errMu     sync.Mutex
		errs      = map[string]int{}
	)
	noteErr := func(what string, err error) {
		msg := what + ": " + err.Error()
		if len(msg) > 160 {
			msg = msg[:160]
		}
		errMu.Lock()
		defer errMu.Unlock()
		if _, ok := errs[msg]; !ok && len(errs) >= 8 {
			msg = "other"
		}
		errs[msg]++
	}
	clients := make([]*client.Client, *n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range *n {
		at := start.Add(time.Duration(int64(*ramp) * int64(i) / int64(max(*n, 1))))
		time.Sleep(time.Until(at))
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			// A real client tries again: up to 3 times, a failure each
			// counted (a gateway too busy to see the handshake within its
			// HandshakeTimeout closes the connection).
			var c *client.Client
			var err error
			for attempt := 0; attempt < 3; attempt++ {
				if c, err = client.Dial(dctx, client.Config{Addr: gates[i%len(gates)], DialTimeout: 20 * time.Second}); err == nil {
					break
				}
				noteErr("dial", err)
			}
			if err != nil {
				dialErrs.Add(1)
				return
			}
			var reply wrapperspb.StringValue
			if err := c.Request(dctx, "scale.Login", wrapperspb.String(fmt.Sprint("u", *offset+i)), &reply); err != nil {
				dialErrs.Add(1)
				noteErr("login", err)
				_ = c.Close()
				return
			}
			if i < *room {
				c.OnPush("scale.Tick", func(body []byte) {
					var v wrapperspb.StringValue
					if err := proto.Unmarshal(body, &v); err != nil {
						return
					}
					seqS, tsS, _ := strings.Cut(v.GetValue(), ":")
					seq, _ := strconv.Atoi(seqS)
					ts, _ := strconv.ParseInt(tsS, 10, 64)
					if !recording.Load() {
						return
					}
					d := time.Since(time.Unix(0, ts))
					mu.Lock()
					ticks[seq] = append(ticks[seq], d)
					mu.Unlock()
				})
				if err := c.Request(dctx, "scale.Join", wrapperspb.String("room"), &reply); err != nil {
					dialErrs.Add(1)
					noteErr("join", err)
					_ = c.Close()
					return
				}
			}
			clients[i] = c
			connected.Add(1)
		}()
	}
	wg.Wait()
	fmt.Fprintf(os.Stderr, "bots: %d connected, %d failed, in %v\n", connected.Load(), dialErrs.Load(), time.Since(start).Round(time.Millisecond))

	// The measurement: the active clients send one request a second each.
	time.Sleep(time.Second)
	recording.Store(true)
	mctx, mcancel := context.WithTimeout(ctx, *measure)
	var aw sync.WaitGroup
	for i := range min(*active, *n) {
		c := clients[i]
		if c == nil {
			continue
		}
		aw.Add(1)
		go func() {
			defer aw.Done()
			time.Sleep(time.Duration(rand.Int64N(int64(time.Second))))
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-mctx.Done():
					return
				case <-t.C:
				}
				var reply wrapperspb.StringValue
				rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				t0 := time.Now()
				err := c.Request(rctx, "scale.Echo", wrapperspb.String("x"), &reply)
				d := time.Since(t0)
				cancel()
				if err != nil {
					if mctx.Err() == nil {
						reqErrs.Add(1)
						noteErr("echo", err)
					}
					continue
				}
				mu.Lock()
				latencies = append(latencies, d)
				mu.Unlock()
			}
		}()
	}
	<-mctx.Done()
	mcancel()
	aw.Wait()
	recording.Store(false)

	r := report{Clients: int(connected.Load()), DialErrors: dialErrs.Load(), ReqErrors: reqErrs.Load(), TickMembers: min(*room, *n)}
	errMu.Lock()
	if len(errs) > 0 {
		r.Errors = errs
	}
	errMu.Unlock()
	mu.Lock()
	slices.Sort(latencies)
	r.Requests = len(latencies)
	if len(latencies) > 0 {
		r.P50Micros = float64(latencies[len(latencies)/2].Microseconds())
		r.P99Micros = float64(latencies[len(latencies)*99/100].Microseconds())
	}
	var fanouts []time.Duration
	for _, ds := range ticks {
		r.Ticks++
		if len(ds) == r.TickMembers {
			r.FullTicks++
			fanouts = append(fanouts, slices.Max(ds))
		}
	}
	mu.Unlock()
	slices.Sort(fanouts)
	if len(fanouts) > 0 {
		r.FanoutP50 = float64(fanouts[len(fanouts)/2].Microseconds()) / 1000
		r.FanoutMax = float64(fanouts[len(fanouts)-1].Microseconds()) / 1000
	}
	b, _ := json.Marshal(r)
	fmt.Println(string(b))

	if *hold > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(*hold):
		}
	}
	for _, c := range clients {
		if c != nil {
			_ = c.Close()
		}
	}
	return nil
}
