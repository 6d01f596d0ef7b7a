package hostile_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode"

	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/examples/arena"
	"github.com/guildkit/guild/examples/arena/arenapb"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/internal/hostile"
	"github.com/guildkit/guild/rpc"
)

// plan sizes a run: the short one of go test, or the full one that
// GUILD_HOSTILE (a duration, such as 60s) asks for.
type plan struct {
	full         bool
	latency      bool // assert the latency goal (the full run, or GUILD_HOSTILE_LATENCY=1)
	bots         int
	every        time.Duration // each bot's request period
	round        time.Duration // one measuring window
	baseRounds   int
	attackRounds int
	ramp         time.Duration // the attack runs this long before it is measured
	floor        time.Duration // p99 may exceed 2× the baseline by this much
	heapLimit    uint64        // the process's peak heap, bots and attackers included
}

func newPlan(t *testing.T) plan {
	p := plan{bots: 20, every: 50 * time.Millisecond, round: time.Second, baseRounds: 3, attackRounds: 3,
		ramp: 500 * time.Millisecond, floor: 10 * time.Millisecond, heapLimit: 512 << 20}
	p.latency = os.Getenv("GUILD_HOSTILE_LATENCY") == "1"
	if s := os.Getenv("GUILD_HOSTILE"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 10*time.Second {
			t.Fatalf("GUILD_HOSTILE=%q: want a duration of 10s or more, such as 60s", s)
		}
		p = plan{full: true, latency: true, bots: 50, every: 100 * time.Millisecond, round: 5 * time.Second, baseRounds: 4,
			attackRounds: int(d / (5 * time.Second)), ramp: 5 * time.Second, floor: 5 * time.Millisecond, heapLimit: 4 << 30}
	}
	return p
}

// TestHostile runs each attack of package hostile against the arena demo,
// in-process on real sockets, beside well-behaved bots, and asserts the
// goal of issue 19: under the attack the gateway stays up (a new player
// can still join), no good bot is disconnected or gets an error, the
// bots' p99 (the median over rounds) stays within 2× the baseline
// measured in the same run (the lowest of its trials' baselines, so
// that a burst of other work in a baseline cannot loosen the goal) plus
// a floor (10 ms in the short run, 5 ms in the full one: this is a
// shared 2-core machine, and the attacker runs in the same process) in
// one of maxTrials trials (asserted in the full run and with
// GUILD_HOSTILE_LATENCY=1; the short run of go test reports it), the
// process's peak heap stays under the plan's limit, and the game lets no
// hostile input through. The short run takes about 6 s an attack (20
// bots, 20 requests/s each); GUILD_HOSTILE=60s runs each attack for 60 s
// beside 50 bots. Every trial prints its figures. The attackers
// dial from 127.0.0.2 and the good bots from 127.0.0.1, and the demo's
// gateway applies its per-source limits to loopback (see startDemo).
func TestHostile(t *testing.T) {
	if testing.Short() {
		t.Skip("the hostile-client suite takes about a minute")
	}
	p := newPlan(t)
	for _, a := range hostile.Attacks() {
		t.Run(a.Name, func(t *testing.T) {
			runAttack(t, p, a)
		})
	}
}

// runAttack measures a baseline, then attack a, and checks the goal.
func runAttack(t *testing.T, p plan, a hostile.Attack) {
	target := startDemo(t)
	var chatLines atomic.Int64 // chat lines pushed to the good bots
	var (
		mu     sync.Mutex
		unsafe []string // what the bots were pushed that the game should have cleaned
	)
	bots, err := hostile.StartBots(testCtx(t, 30*time.Second), target, hostile.BotConfig{
		N: p.bots, Every: p.every, Name: "good",
		OnPush: func(route string, body []byte) {
			if route != arena.PushChat {
				return
			}
			chatLines.Add(1)
			var line arenapb.ChatLine
			if proto.Unmarshal(body, &line) != nil {
				return
			}
			if bad := unclean(line.GetFrom()) + unclean(line.GetText()); bad != "" {
				mu.Lock()
				if len(unsafe) < 5 {
					unsafe = append(unsafe, fmt.Sprintf("%q: %q has %s", line.GetFrom(), line.GetText(), bad))
				}
				mu.Unlock()
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer bots.Close()

	size := a.Short
	if p.full {
		size = a.Full
	}
	// Up to maxTrials trials of a baseline then the attack: the latency
	// goal holds if it holds in one (a machine shared with other work has
	// bursts that no median over a few rounds hides; a real regression
	// fails every trial); every other goal must hold in every trial.
	var tr trial
	var ref time.Duration // the lowest baseline p99 of the trials so far
	for n := 1; n <= maxTrials; n++ {
		tr = measure(t, p, a, target, bots, size)
		// A burst of other work during a baseline would loosen the goal:
		// it is judged against the quietest baseline of the run.
		if n == 1 || tr.base.P99 < ref {
			ref = tr.base.P99
		}
		t.Logf("%-17s (item %d, trial %d) base p50 %v p99 %v | under attack p50 %v p99 %v, %d requests, %d errors, %d disconnects | attacker: %d %s (%.0f/s), %d held | peak heap %d MiB | process CPU %.2f → %.2f cores",
			a.Name, a.Problem, n, round(tr.base.P50), round(tr.base.P99), round(tr.under.P50), round(tr.under.P99), tr.under.N,
			tr.errors, tr.disconnects, tr.rep.Ops, tr.rep.Unit, float64(tr.rep.Ops)/tr.elapsed.Seconds(), tr.rep.Held, tr.peak>>20, tr.cpuBase, tr.cpuUnder)
		if tr.upErr != nil {
			t.Errorf("a new player could not join under the attack: %v", tr.upErr)
		}
		if tr.errors > 0 {
			t.Errorf("the good bots got %d errors", tr.errors)
		}
		if tr.disconnects > 0 {
			t.Errorf("%d good bots were disconnected", tr.disconnects)
		}
		if tr.under.N == 0 {
			t.Error("the good bots got no answer under the attack")
		}
		if tr.peak > p.heapLimit {
			t.Errorf("peak heap %d MiB, over the limit of %d MiB", tr.peak>>20, p.heapLimit>>20)
		}
		if t.Failed() || tr.under.P99 <= 2*ref+p.floor {
			break
		}
		if !p.latency {
			// The short run (go test, CI) shares two cores with the other
			// packages' tests, and the attacker runs in this process: its
			// p99 ratio measures the machine more than the gateway. It is
			// reported; the full run and GUILD_HOSTILE_LATENCY=1 assert it.
			t.Logf("%s: the latency goal is missed in this short run (p99 %v, over 2 × %v + %v); not asserted here: GUILD_HOSTILE_LATENCY=1 or the full run asserts it", a.Name, tr.under.P99, ref, p.floor)
			break
		}
		if n == maxTrials {
			t.Errorf("the good bots' p99 is %v under the attack, over 2 × the quietest baseline's %v + %v, in %d trials out of %d", tr.under.P99, ref, p.floor, n, n)
		}
	}
	rep, elapsed := tr.rep, tr.elapsed
	if n := chatLines.Load(); n > 0 {
		t.Logf("%s: each good bot was pushed %d chat lines", a.Name, n/int64(p.bots))
	}
	for _, v := range rep.Violations {
		t.Errorf("let through: %s", v)
	}
	mu.Lock()
	for _, u := range unsafe {
		t.Errorf("a good bot was pushed an unclean chat line: %s", u)
	}
	mu.Unlock()
	if a.Name == "slowloris-headers" && !p.full && tr.peak > slowlorisHeap {
		t.Errorf("peak heap %d MiB with %d unfinished HTTP headers, over %d MiB: the header limit is not well under their 1 MiB",
			tr.peak>>20, size, slowlorisHeap>>20)
	}
	// The floods' own goals: heartbeats count toward the rate limits, and
	// a session refused more than MaxRefused times in 10 s is closed, so
	// what the gateway answers the flooding source stays within what its
	// sessions' refusals before the close and the source's request rate
	// allow, and the source opens sessions no faster than ConnRate allows.
	if a.Name == "heartbeat-flood" || a.Name == "refused-flood" {
		secs := elapsed.Seconds()
		if most := gate.DefaultConnBurst + gate.DefaultConnRate*secs; float64(rep.Sessions) > most*1.1 {
			t.Errorf("the attacker opened %d sessions in %.1fs from one source, over the %.0f that ConnRate and ConnBurst allow", rep.Sessions, secs, most)
		}
		most := float64(rep.Sessions)*(gate.DefaultMaxRefused+1) + gate.DefaultSourceBurst + gate.DefaultSourceRate*secs
		if float64(rep.Answered) > most*1.1 {
			t.Errorf("the gateway answered the flooding source %d frames in %.1fs, over the %.0f that MaxRefused (a session), SourceRate and SourceBurst allow: heartbeats or refusals are not inside the limits",
				rep.Answered, secs, most)
		}
	}
	if rep.Sessions > 0 {
		t.Logf("%s: the gateway answered %d frames (%.0f/s); the attacker opened %d sessions (%.1f/s)",
			a.Name, rep.Answered, float64(rep.Answered)/elapsed.Seconds(), rep.Sessions, float64(rep.Sessions)/elapsed.Seconds())
	}
	if rep.CPU > 0 {
		t.Logf("%s: the attacker's own goroutines used %.2f cores (%v of CPU in %v); the process used %.2f cores under the attack, %.2f in the baseline",
			a.Name, rep.CPU.Seconds()/elapsed.Seconds(), rep.CPU.Round(time.Millisecond), elapsed.Round(time.Millisecond), tr.cpuUnder, tr.cpuBase)
	}
	// The goals owned by a fix whose own assertion the common ones above
	// do not make.
	switch a.Name {
	case "idle-keepalive":
		// Every idle keep-alive connection was closed by the HTTP idle
		// timeout (1 s here) long before the attack ended.
		if rep.Ops == 0 {
			t.Error("no keep-alive request was answered: the attack did not run")
		}
		if rep.Held > 0 {
			t.Errorf("%d of %d idle keep-alive connections were still open after %v: the HTTP idle timeout of %v did not close them",
				rep.Held, rep.Ops, elapsed.Round(time.Second), httpIdleTimeout)
		}
	case "idle-sessions":
		// Sessions that never log in are closed by the login deadline (2 s
		// here), and a new player could join (checked above).
		if rep.Sessions == 0 {
			t.Error("no idle session was opened: the attack did not run")
		}
		if rep.Held > 0 {
			t.Errorf("%d of %d sessions that never logged in were still open after %v: the login deadline of %v did not close them",
				rep.Held, rep.Sessions, elapsed.Round(time.Second), loginTimeout)
		}
	case "non-reading":
		// A client that never reads costs the gateway what it was sent and
		// could not take: at most WriteQueueBytes in its queue (coalesced
		// world updates replace each other there) and the kernel's send
		// buffer, bounded by Limits.SendBuffer; the heap bound above holds
		// it. It is cut off once its backlog passes those bounds
		// (gate.TestSendBufferBoundsTheKernel: 2.4 s at 100 KiB/s). At the
		// demo's push rate to a player that never reads (a few hundred
		// bytes a second) that takes minutes, and nothing is owed to it
		// meanwhile: the run logs how many were cut off and how much each
		// left unread.
		if rep.Ops == 0 {
			t.Error("no non-reading client joined: the attack did not run")
		}
		if rep.Held > 0 {
			t.Logf("non-reading: %d of %d clients still connected after %v, each with %d bytes unread in its receive queue",
				rep.Held, rep.Ops, elapsed.Round(time.Second), rep.Unread/rep.Held)
		}
	case "cross-origin":
		t.Logf("cross-origin: %d upgrades refused with 403, %d connections refused first by the per-source limits (429)", rep.Ops, rep.Refused)
	case "chat-flood":
		// The receivers were not disconnected (checked above), and the
		// chat budget refused the flood's excess.
		if rep.Refused == 0 {
			t.Errorf("the chat budget refused none of %d lines", rep.Ops)
		}
		t.Logf("chat-flood: %d lines said, %d refused by the chat budget", rep.Ops, rep.Refused)
	}
	if a.Name == "reconnect-reset" {
		// Its sessions never log in, so they share their source's bucket
		// (SourceRate, SourceBurst), which reconnecting does not refill:
		// without it, each session's full Burst made this grow with the
		// reconnections (45 000/s from 20 workers, issue 19 item 5).
		secs := elapsed.Seconds()
		if most := gate.DefaultSourceBurst + gate.DefaultSourceRate*secs; float64(rep.Ops) > most*1.1 {
			t.Errorf("one source got %d requests (%.0f/s) past the rate limits in %.1fs by reconnecting %d times, over the %.0f that SourceRate and SourceBurst allow",
				rep.Ops, float64(rep.Ops)/secs, secs, rep.Sessions, most)
		}
	}
}

// slowlorisHeap bounds the short run's peak heap under slowloris-headers:
// its 40 connections' headers would take 40 MiB at Go's default header
// limit of 1 MiB (more, as the buffers grow by doubling).
const slowlorisHeap = 32 << 20

// maxTrials bounds the trials of runAttack's latency goal.
const maxTrials = 3

// trial is one baseline and one attack's figures.
type trial struct {
	base, under         hostile.Window
	errors, disconnects int
	upErr               error
	rep                 hostile.Report
	elapsed             time.Duration
	peak                uint64
	cpuBase, cpuUnder   float64 // the process's CPU, in cores
}

// measure measures a baseline, then runs attack a (of size) and measures
// under it, and stops it.
func measure(t *testing.T, p plan, a hostile.Attack, target hostile.Target, bots *hostile.Bots, size int) trial {
	rounds := func(n int) []hostile.Window {
		var ws []hostile.Window
		for range n {
			time.Sleep(p.round) // a measuring window (not a wait for a condition): the bots run meanwhile
			ws = append(ws, bots.Window())
		}
		return ws
	}
	var tr trial
	bots.Window() // what came before (the joins, an earlier trial) is not the baseline
	cpu0, t0 := hostile.ProcessCPU(), time.Now()
	base := rounds(p.baseRounds)
	tr.base = hostile.Median(base)
	tr.cpuBase = (hostile.ProcessCPU() - cpu0).Seconds() / time.Since(t0).Seconds()

	heap := hostile.StartHeapPeak(50 * time.Millisecond)
	actx, stop := context.WithCancel(context.Background())
	done := make(chan hostile.Report, 1)
	start := time.Now()
	go func() { done <- a.Run(actx, target, size) }()
	time.Sleep(p.ramp) // the attack builds up before it is measured
	ramp := bots.Window()
	cpu0, t0 = hostile.ProcessCPU(), time.Now()
	under := rounds(p.attackRounds)
	tr.under = hostile.Median(under)
	tr.cpuUnder = (hostile.ProcessCPU() - cpu0).Seconds() / time.Since(t0).Seconds()
	// The gateway is up: a new player can join, under the attack.
	tr.upErr = joinOnce(target)
	stop()
	select {
	case tr.rep = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the attack did not stop within 30s of its end")
	}
	tr.elapsed = time.Since(start)
	tr.peak = heap.Stop()
	after := bots.Window()
	for _, w := range append(append(base, ramp, after), under...) {
		tr.errors += w.Errors
		tr.disconnects += w.Disconnects
	}
	return tr
}

func round(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }

// TestOversizedFrameBeforeHandshake: a frame over MaxFrame before the
// handshake gets the Close frame docs/PROTOCOL.md gives it, 8
// ResourceExhausted, not a silent close (issue 19 item 10).
func TestOversizedFrameBeforeHandshake(t *testing.T) {
	target := startDemo(t)
	c, err := hostile.PreHandshakeOversize(testCtx(t, 15*time.Second), target)
	if err != nil {
		t.Fatal(err)
	}
	if c == nil || rpc.Code(c.GetCode()) != rpc.ResourceExhausted || c.GetReason() == "" {
		t.Fatalf("the gateway answered %v, want a Close frame with 8 ResourceExhausted and a reason", c)
	}
}

// unclean says what a string pushed to players has that the game should
// have removed: a control character or a bidi control.
func unclean(s string) string {
	for _, r := range s {
		if unicode.IsControl(r) || r >= 0x202A && r <= 0x202E || r >= 0x2066 && r <= 0x2069 {
			return fmt.Sprintf("%U", r)
		}
	}
	return ""
}

// joinOnce dials the gateway and joins as a new player.
func joinOnce(t hostile.Target) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{Addr: "tcp://" + t.TCP})
	if err != nil {
		return err
	}
	defer c.Close()
	return t.Join(ctx, c, "newcomer")
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// startDemo runs the arena demo in-process on random ports, stopped when
// the test ends, and returns it as a target.
func startDemo(t *testing.T) hostile.Target {
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan arena.DemoAddrs, 1)
	ended := make(chan error, 1)
	go func() {
		ended <- arena.RunDemo(ctx, arena.DemoOptions{
			Addr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", MQTTAddr: "-",
			Limits: demoLimits,
			Ready:  func(a arena.DemoAddrs) { ready <- a },
		})
	}()
	var addrs arena.DemoAddrs
	select {
	case addrs = <-ready:
	case err := <-ended:
		cancel()
		t.Fatalf("the demo did not start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("the demo did not start within 30s")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-ended:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("the demo: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("the demo did not stop within 30s")
		}
	})
	return hostile.Target{
		TCP: addrs.TCP, HTTP: addrs.HTTP, WSPath: arena.WebSocketPath,
		Join: func(ctx context.Context, c *client.Client, name string) error {
			return c.Request(ctx, arena.RouteJoin, &arenapb.JoinRequest{Name: name}, &arenapb.JoinReply{})
		},
		Step: func(ctx context.Context, c *client.Client) error {
			return c.Request(ctx, arena.RouteMove, &arenapb.MoveRequest{Dx: 1}, &arenapb.MoveReply{})
		},
		Say: func(ctx context.Context, c *client.Client, text string) error {
			return c.Request(ctx, arena.RouteSay, &arenapb.SayRequest{Text: text}, &arenapb.SayReply{})
		},
		JoinRequest: func(name string) (string, []byte) {
			b, _ := proto.Marshal(&arenapb.JoinRequest{Name: name})
			return arena.RouteJoin, b
		},
		Refused: "nope.Nothing",
		Dialer:  &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(attackerIP)}},
	}
}

// attackerIP is the attackers' source address; the good bots come from
// 127.0.0.1. Linux routes all of 127.0.0.0/8 to the loopback interface.
const attackerIP = "127.0.0.2"

// demoLimits are the demo gateway's limits in the suite: the defaults,
// with the per-source limits applied to loopback (so that they tell the
// attackers at 127.0.0.2 from the good bots at 127.0.0.1), and the two
// deadlines whose default (30 s, 60 s) is longer than a short run
// shortened, so that the run sees them close what they should.
var demoLimits = gate.Limits{
	LimitLoopback:   true,
	LoginTimeout:    loginTimeout,
	HTTPIdleTimeout: httpIdleTimeout,
}

const (
	loginTimeout    = 2 * time.Second
	httpIdleTimeout = time.Second
)
