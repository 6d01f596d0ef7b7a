// Package rolltest is the game and the checks of guild's rolling restart
// tests, which restart every backend node in turn while bots play through
// a gateway: app.TestRollingRestart runs the nodes in one process with
// app.Start, cmd/guild's TestRollingRestartProcesses runs the backends
// as guild run processes, stopped with SIGTERM, and its
// TestRollingUpgradeProcesses replaces them by processes of another build.
//
// The game is one module, "player" (Register), which hosts the player
// grains of a node and the gateway service "player" that passes each
// client's request to the client's own grain:
//
//	player.Write StringValue(id)  append id, flush, then answer "<version>|ok"
//	player.Read  Empty            answer "<version>|" and the ids, comma-separated
//
// where <version> is the version of the build that runs the grain's node
// (app.Env.Version, "" without app.WithVersion): a rolling upgrade test
// sees which build served each request (Bots.Replies).
//
// A grain's state is the list of ids written to it, kept in Redis (the
// module's settings say where: Settings). A write is acknowledged only
// once it is stored; a write whose flush fails is rolled back and fails.
//
// Bots (StartBots) are Go clients, each its own user (token "bot-<i>"),
// that write unique ids and read them back until stopped, recording every
// request. Check then compares what they saw with the store: every
// request answered, every acknowledged write stored exactly once, no read
// missing a write acknowledged before it.
//
// The package is for tests only.
package rolltest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/grain"
	"github.com/guildkit/guild/store/redisstore"
)

// Module is the name the player module is registered under, and Kind the
// name of its grain kind.
const (
	Module = "player"
	Kind   = "player"
)

// CallTimeout bounds one request of a bot, and one grain call of the
// player service.
const CallTimeout = 15 * time.Second

// RedisAddr is the Redis server the tests use.
const RedisAddr = "127.0.0.1:6379"

// Redis returns a client of the Redis server on RedisAddr and a fresh key
// prefix, whose keys are deleted (and the client closed) at cleanup. When
// the server does not answer, the test skips, or fails on CI (CI=true).
func Redis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: RedisAddr})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := rc.Ping(ctx).Err(); err != nil {
		_ = rc.Close()
		msg := "Redis not reachable on " + RedisAddr + " (" + err.Error() + "); run `bash scripts/services.sh` (or install and start Redis) to run this test"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	prefix := fmt.Sprintf("guildroll-%d-%d", os.Getpid(), time.Now().UnixNano())
	t.Cleanup(func() {
		defer rc.Close()
		ctx := context.Background()
		iter := rc.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			if err := rc.Del(ctx, iter.Val()).Err(); err != nil {
				t.Errorf("rolltest: cleanup: %v", err)
			}
		}
		if err := iter.Err(); err != nil {
			t.Errorf("rolltest: cleanup: %v", err)
		}
	})
	return rc, prefix
}

// Settings are the player module's settings (modules.player in the
// cluster file).
type Settings struct {
	// Redis is the address of the Redis server that keeps the grains'
	// state.
	Redis string `yaml:"redis"`
	// Prefix is the key prefix of the state in Redis.
	Prefix string `yaml:"prefix"`
}

// Register registers the player module in reg.
func Register(reg *app.Registry) {
	reg.Register(Module, func() app.Module { return &module{} })
}

// state is a player grain's state: the ids written to it, in order.
type state struct {
	Writes []string `json:"writes"`
}

// module is the player module of one node.
type module struct {
	rc  *redis.Client
	sys *grain.System
}

func kind(version string) grain.Kind {
	return grain.Kind{
		Name:        Kind,
		IdleTimeout: time.Hour,
		FlushEvery:  -1,
		State:       func() any { return new(state) },
		New: func(grain.Identity) grain.Actor {
			return grain.ActorFunc(func(c *grain.Context) {
				m, ok := c.Message().(*wrapperspb.StringValue)
				if !ok {
					return
				}
				st := c.State().(*state)
				op, arg, _ := strings.Cut(m.GetValue(), "|")
				switch op {
				case "w":
					st.Writes = append(st.Writes, arg)
					c.MarkDirty()
					if err := c.Flush(context.Background()); err != nil {
						st.Writes = st.Writes[:len(st.Writes)-1]
						c.Respond(fmt.Errorf("rolled back: %w", err))
						return
					}
					c.Respond(wrapperspb.String(version + "|ok"))
				case "r":
					c.Respond(wrapperspb.String(version + "|" + strings.Join(st.Writes, ",")))
				}
			})
		},
	}
}

func (m *module) Start(ctx context.Context, env *app.Env) error {
	var s Settings
	if err := env.Settings(&s); err != nil {
		return err
	}
	if s.Redis == "" || s.Prefix == "" {
		return errors.New("rolltest: modules.player needs redis and prefix")
	}
	m.rc = redis.NewClient(&redis.Options{Addr: s.Redis})
	sys, err := grain.Start(ctx, grain.Config{
		Node:       env.Actor,
		Membership: env.Members,
		Kinds:      []grain.Kind{kind(env.Version)},
		Store:      redisstore.New(m.rc, s.Prefix),
		Logger:     env.Logger,
	})
	if err != nil {
		_ = m.rc.Close()
		return err
	}
	m.sys = sys
	call := func(s *gate.Session, msg string) (*wrapperspb.StringValue, error) {
		ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
		defer cancel()
		reply, err := sys.Call(ctx, grain.Identity{Kind: Kind, Key: s.UserID()}, wrapperspb.String(msg))
		if err != nil {
			return nil, err
		}
		r, ok := reply.(*wrapperspb.StringValue)
		if !ok {
			return nil, fmt.Errorf("the grain answered a %T", reply)
		}
		return r, nil
	}
	svc := gate.NewService(Module)
	gate.Handle(svc, "Write", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return call(s, "w|"+req.GetValue())
	})
	gate.Handle(svc, "Read", func(s *gate.Session, _ *emptypb.Empty) (*wrapperspb.StringValue, error) {
		return call(s, "r|")
	})
	if _, err := svc.Serve(ctx, env.Actor); err != nil {
		return errors.Join(err, sys.Close(ctx), m.rc.Close())
	}
	return nil
}

// Stop hands the node's grains over (grain.System.Close). The player
// service stays until the node's actors drain: requests that reach it
// meanwhile call the grains on their new nodes.
func (m *module) Stop(ctx context.Context) error {
	return errors.Join(m.sys.Close(ctx), m.rc.Close())
}

// Auth is the gateway's auth of the bots: a token "bot-<i>" is the user
// "bot-<i>".
func Auth(_ context.Context, token string) (string, error) {
	if !strings.HasPrefix(token, "bot-") {
		return "", errors.New("not a bot")
	}
	return token, nil
}

// Bots are clients that play until stopped.
type Bots struct {
	acked atomic.Int64
	stop  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
	bots  []*bot
}

// Reply is one answered request of a bot: when it was sent and answered,
// and the version of the build whose grain answered it.
type Reply struct {
	Sent, Received time.Time
	Version        string
}

// bot is what one bot saw. Its goroutine alone writes it until Stop.
type bot struct {
	user     string
	requests int
	replies  []Reply  // every answered request, in order
	failures []string // each failed request, with its error
	acked    []string // acknowledged write ids, in order
	sent     []string // every write id sent
	missed   []string // reads that lacked an acknowledged write
}

// StartBots dials n clients to the gateway at addr ("tcp://..."), each
// logged in as its own user with a token, and starts them playing: three
// writes of unique ids, then a read, and again, pausing pace between
// requests. Stop them with Stop.
func StartBots(ctx context.Context, addr string, n int, pace time.Duration) (*Bots, error) {
	b := &Bots{stop: make(chan struct{})}
	for i := range n {
		bt := &bot{user: fmt.Sprintf("bot-%d", i)}
		c, err := client.Dial(ctx, client.Config{Addrs: []string{addr}, Token: bt.user, Reconnect: true})
		if err != nil {
			b.Stop()
			return nil, fmt.Errorf("rolltest: dial %s as %s: %w", addr, bt.user, err)
		}
		b.bots = append(b.bots, bt)
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			defer c.Close()
			bt.play(c, &b.acked, b.stop, pace)
		}()
	}
	return b, nil
}

// Acked returns how many writes have been acknowledged so far.
func (b *Bots) Acked() int64 { return b.acked.Load() }

// Replies stops the bots and returns every request they had answered,
// sorted by the time of the answer.
func (b *Bots) Replies() []Reply {
	b.Stop()
	var all []Reply
	for _, bt := range b.bots {
		all = append(all, bt.replies...)
	}
	slices.SortFunc(all, func(x, y Reply) int { return x.Received.Compare(y.Received) })
	return all
}

// Stop stops the bots and waits for them. It is safe to call twice.
func (b *Bots) Stop() {
	b.once.Do(func() {
		close(b.stop)
		b.wg.Wait()
	})
}

func (bt *bot) play(c *client.Client, acked *atomic.Int64, stop <-chan struct{}, pace time.Duration) {
	tick := time.NewTicker(pace)
	defer tick.Stop()
	for seq := 0; ; seq++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
		var reply wrapperspb.StringValue
		t0 := time.Now()
		bt.requests++
		if seq%4 == 3 {
			err := c.Request(ctx, Module+".Read", &emptypb.Empty{}, &reply)
			cancel()
			if err != nil {
				bt.failures = append(bt.failures, fmt.Sprintf("[%s] read after %v: %v", t0.Format("15:04:05.000"), time.Since(t0).Round(time.Millisecond), err))
				continue
			}
			ver, ids, _ := strings.Cut(reply.GetValue(), "|")
			bt.replies = append(bt.replies, Reply{Sent: t0, Received: time.Now(), Version: ver})
			have := make(map[string]bool)
			for _, id := range strings.Split(ids, ",") {
				have[id] = true
			}
			for _, id := range bt.acked {
				if !have[id] {
					bt.missed = append(bt.missed, fmt.Sprintf("[%s] read %d lacks acknowledged write %s", t0.Format("15:04:05.000"), seq, id))
				}
			}
			continue
		}
		id := fmt.Sprintf("%s-%d", bt.user, seq)
		bt.sent = append(bt.sent, id)
		err := c.Request(ctx, Module+".Write", wrapperspb.String(id), &reply)
		cancel()
		if err != nil {
			bt.failures = append(bt.failures, fmt.Sprintf("[%s] write %s after %v: %v", t0.Format("15:04:05.000"), id, time.Since(t0).Round(time.Millisecond), err))
			continue
		}
		ver, _, _ := strings.Cut(reply.GetValue(), "|")
		bt.replies = append(bt.replies, Reply{Sent: t0, Received: time.Now(), Version: ver})
		bt.acked = append(bt.acked, id)
		acked.Add(1)
	}
}

// Report is what Check found.
type Report struct {
	Requests   int // requests the bots made
	Failed     int // requests that failed
	Acked      int // writes acknowledged
	Lost       int // acknowledged writes missing from the store
	Duplicated int // acknowledged writes stored more than once
	Unacked    int // writes stored although their request failed (outcome unknown)
	Missed     int // reads that lacked a write acknowledged before them
	// Problems describes every violation: a failed request, a lost or
	// duplicated write, a write stored but never sent, a read that missed
	// a write, a state that does not load.
	Problems []string
}

// String returns the figures on one line.
func (r Report) String() string {
	return fmt.Sprintf("requests %d, failed %d, writes acknowledged %d, lost %d, duplicated %d, stored but unacknowledged %d, reads missing a write %d",
		r.Requests, r.Failed, r.Acked, r.Lost, r.Duplicated, r.Unacked, r.Missed)
}

// Check stops the bots and checks what they saw against the grains' state
// in Redis (rc, under prefix).
func (b *Bots) Check(ctx context.Context, rc *redis.Client, prefix string) Report {
	b.Stop()
	st := redisstore.New(rc, prefix)
	var r Report
	for _, bt := range b.bots {
		r.Requests += bt.requests
		r.Failed += len(bt.failures)
		r.Acked += len(bt.acked)
		r.Missed += len(bt.missed)
		for _, f := range bt.failures {
			r.Problems = append(r.Problems, bt.user+": failed request: "+f)
		}
		for _, m := range bt.missed {
			r.Problems = append(r.Problems, bt.user+": "+m)
		}
		data, _, err := st.Load(ctx, Kind, bt.user)
		if err != nil {
			r.Problems = append(r.Problems, fmt.Sprintf("%s: load the stored state: %v", bt.user, err))
			continue
		}
		var ps state
		if err := json.Unmarshal(data, &ps); err != nil {
			r.Problems = append(r.Problems, fmt.Sprintf("%s: decode the stored state: %v", bt.user, err))
			continue
		}
		count := make(map[string]int, len(ps.Writes))
		for _, id := range ps.Writes {
			count[id]++
		}
		ackedSet := make(map[string]bool, len(bt.acked))
		for _, id := range bt.acked {
			ackedSet[id] = true
			switch count[id] {
			case 0:
				r.Lost++
				r.Problems = append(r.Problems, fmt.Sprintf("%s: acknowledged write %s is not in the store", bt.user, id))
			case 1:
			default:
				r.Duplicated++
				r.Problems = append(r.Problems, fmt.Sprintf("%s: acknowledged write %s is in the store %d times", bt.user, id, count[id]))
			}
		}
		sentSet := make(map[string]bool, len(bt.sent))
		for _, id := range bt.sent {
			sentSet[id] = true
		}
		for id, n := range count {
			switch {
			case !sentSet[id]:
				r.Problems = append(r.Problems, fmt.Sprintf("%s: the store holds %q, which was never written", bt.user, id))
			case !ackedSet[id]:
				r.Unacked++
				if n > 1 {
					r.Problems = append(r.Problems, fmt.Sprintf("%s: unacknowledged write %s is in the store %d times", bt.user, id, n))
				}
			}
		}
	}
	return r
}
