package gate_test

// A multi-process test of resume: the test binary runs itself again as
// gateway processes (TestResumeGatewayChild), each serving a listening
// socket the parent opened and passed on (so that a gateway restarted in
// a new process listens on the same port), while the parent runs the
// backend node, the etcd, a pusher and 200 bots. One gateway is restarted
// gracefully (SIGTERM, then a new process) and the other is killed
// (SIGKILL); the bots' histories are checked afterwards.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/cluster/etcd"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/internal/heavytest"
	"github.com/guildkit/guild/rpc"
)

// Environment of a gateway child process.
const (
	procChildEnv = "GUILD_GATE_CHILD" // the gateway's slot, 0 or 1: its node is 1.1.<slot+1>
	procEtcdEnv  = "GUILD_GATE_ETCD"  // etcd endpoints, comma-separated
	procTTLEnv   = "GUILD_GATE_TTL"   // the membership's lease TTL
	procKeyEnv   = "GUILD_GATE_KEY"   // the resume key, hex
)

// procWindow is the children's resume window: longer than the test.
const procWindow = time.Minute

// TestResumeGatewayChild is a gateway process of TestResumeProcesses: it
// serves the listening socket it inherited (descriptor 3) until SIGTERM
// (a graceful Shutdown, then exit) or SIGKILL, or until its stdin closes
// (the parent is gone).
func TestResumeGatewayChild(t *testing.T) {
	slot := os.Getenv(procChildEnv)
	if slot == "" {
		t.Skip("only runs as a gateway process of TestResumeProcesses")
	}
	index, err := strconv.Atoi(slot)
	if err != nil {
		t.Fatal(err)
	}
	ttl, err := time.ParseDuration(os.Getenv(procTTLEnv))
	if err != nil {
		t.Fatal(err)
	}
	key, err := hex.DecodeString(os.Getenv(procKeyEnv))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := etcd.New(etcd.Config{Endpoints: strings.Split(os.Getenv(procEtcdEnv), ","), TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	n, err := cluster.Start(ctx, cluster.NodeConfig{
		Actor:        actor.Config{Addr: actor.MustAddr(1, 1, index+1)},
		Listen:       "127.0.0.1:0",
		Membership:   m,
		Names:        m.Names(),
		LeaveTimeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	g, err := gate.New(gate.Config{
		Node:      n.Actor(),
		Members:   m,
		Routes:    map[string]gate.Route{"chat": gate.To(rpc.AnyOf(2, cluster.RoundRobin))},
		Public:    []string{"chat.Login"},
		Limits:    gate.Limits{ResumeWindow: procWindow},
		ResumeKey: key,
	})
	if err != nil {
		t.Fatal(err)
	}
	backend := func() bool {
		for _, mb := range m.Members() {
			if mb.Addr.Type() == 2 {
				return true
			}
		}
		return false
	}
	await.True(t, 30*time.Second, "the backend in the membership", backend)
	if err := g.ServeListener(ln, "tcp", false); err != nil {
		t.Fatal(err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	eof := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	fmt.Println("ready")
	select {
	case <-sig:
		sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer scancel()
		if err := g.Shutdown(sctx); err != nil {
			fmt.Fprintln(os.Stderr, "shutdown:", err)
		}
		_ = n.Close()
		_ = m.Close()
		fmt.Println("closed")
		os.Exit(0) // no goleak: the process ends
	case <-eof:
		os.Exit(0)
	case <-time.After(5 * time.Minute):
		t.Fatal("still running after 5 minutes")
	}
}

// procGateway is a gateway slot: its listening socket, kept open by the
// parent, and the process serving it now.
type procGateway struct {
	slot   int
	url    string
	file   *os.File // the listening socket, passed to each process
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string // the process's stdout lines; closed at its end
	stderr string
}

// start starts a new gateway process on the slot's socket and waits until
// it is ready.
func (p *procGateway) start(t *testing.T, env []string, dir string, inc int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestResumeGatewayChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), append(env, procChildEnv+"="+strconv.Itoa(p.slot))...)
	cmd.ExtraFiles = []*os.File{p.file}
	p.stderr = filepath.Join(dir, fmt.Sprintf("gateway%d-%d.stderr", p.slot, inc))
	ef, err := os.Create(p.stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	cmd.Stderr = ef
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.cmd = cmd
	lines := make(chan string, 16)
	p.lines = lines
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	p.expect(t, "ready")
}

// expect waits for the process's next line to be want.
func (p *procGateway) expect(t *testing.T, want string) {
	t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok || l != want {
			b, _ := os.ReadFile(p.stderr)
			t.Fatalf("gateway %d: %q (ok %v), want %q; its stderr:\n%s", p.slot, l, ok, want, b)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("gateway %d: no %q within 60s", p.slot, want)
	}
}

// procBot is one bot's history.
type procBot struct {
	user string
	cl   *client.Client

	mu      sync.Mutex
	got     []int64 // push numbers received, in order
	sent    []procPush
	reqs    []procReq
	reconns []procReconn
}

type procPush struct {
	n          int64
	sent, done time.Time
	err        error
}

type procReq struct {
	sent, done time.Time
	err        error
}

type procReconn struct {
	at              time.Time
	addr            string
	resumed, resync bool
}

// TestResumeProcesses: 200 bots on two gateway processes, A and B, log in
// once, set state and join a group, then send requests and get numbered
// pushes without pause. A is stopped with SIGTERM (its bots move to B and
// resume there, their kept pushes handed over) and a new process of A
// starts on the same socket; then B is killed with SIGKILL, and every bot
// resumes on the new A from the record sealed in its token. The history
// is checked: every reconnection resumed, nobody logged in twice, each
// bot's state and group survived both moves, pushes arrived in order
// without duplicates, none that PushUser accepted was lost except at the
// kill (those B held; the resume then said resync), and no request failed:
// those in flight on B when it was killed, whose outcome is unknown, were
// sent again on the new session (the bots' client marks the route
// idempotent, client.Config.Idempotent).
func TestResumeProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test; skipped with -short")
	}
	heavytest.Serialize(t)
	const bots = 200
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("GUILD_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (GUILD_SEED=%d replays the bots' pauses)", seed, seed)
	rng := mrand.New(mrand.NewPCG(seed, seed))

	c := clustertest.Start(t, clustertest.Options{Nodes: 1, Types: []int{2}})
	if k := c.TransportKind(); k != "tcp" {
		t.Skipf("the gateway processes join over the TCP mesh; this run's transport is %s", k)
	}
	back := c.Node(0)
	var logins atomic.Int64
	svc := chatService("chat")
	gate.Handle(svc, "Login", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		logins.Add(1)
		s.Bind(req.Value)
		return wrapperspb.String(s.UserID()), nil
	})
	serve(t, back, svc)

	key := make([]byte, 32)
	_, _ = rand.Read(key)
	env := []string{
		procEtcdEnv + "=" + strings.Join(c.Etcd.Endpoints(), ","),
		procTTLEnv + "=" + c.TTL.String(),
		procKeyEnv + "=" + hex.EncodeToString(key),
	}
	dir := t.TempDir()
	var gws [2]*procGateway
	for i := range gws {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		f, err := ln.(*net.TCPListener).File()
		_ = ln.Close() // f holds the socket
		if err != nil {
			t.Fatal(err)
		}
		gws[i] = &procGateway{slot: i, url: "tcp://" + ln.Addr().String(), file: f}
	}
	var procs []*procGateway // every process started, for the cleanup
	t.Cleanup(func() {
		for _, p := range procs {
			if p.cmd.ProcessState == nil {
				_ = p.cmd.Process.Kill()
				_ = p.cmd.Wait()
			}
		}
		for _, g := range gws {
			_ = g.file.Close()
		}
		if t.Failed() {
			for _, p := range procs {
				b, _ := os.ReadFile(p.stderr)
				t.Logf("%s, the end:\n%s", filepath.Base(p.stderr), b[max(0, len(b)-3000):])
			}
		}
	})
	startGateway := func(i, inc int) {
		p := &procGateway{slot: i, url: gws[i].url, file: gws[i].file}
		p.start(t, env, dir, inc)
		gws[i].cmd, gws[i].stdin, gws[i].lines, gws[i].stderr = p.cmd, p.stdin, p.lines, p.stderr
		procs = append(procs, p)
	}
	startGateway(0, 1)
	startGateway(1, 1)
	a, b := gws[0].url, gws[1].url

	// The bots: even ones start on A, odd ones on B, each with both
	// addresses.
	bs := make([]*procBot, bots)
	for i := range bots {
		bt := &procBot{user: fmt.Sprint("bot", i)}
		addrs := []string{a, b}
		if i%2 == 1 {
			addrs = []string{b, a}
		}
		bt.cl = dial(t, client.Config{
			Addrs: addrs, Reconnect: true, BackoffMin: 20 * time.Millisecond, BackoffMax: 500 * time.Millisecond,
			// Echo may run twice: a request in flight on the killed
			// gateway is sent again on the next session.
			Idempotent: func(route string) bool { return route == "chat.Echo" },
			OnReconnect: func(r client.Reconnection) {
				bt.mu.Lock()
				bt.reconns = append(bt.reconns, procReconn{at: time.Now(), addr: r.Addr, resumed: r.Resumed, resync: r.Resync})
				bt.mu.Unlock()
			},
		})
		bt.cl.OnPush("chat.N", func(body []byte) {
			n, _ := strconv.ParseInt(decodeString(body), 10, 64)
			bt.mu.Lock()
			bt.got = append(bt.got, n)
			bt.mu.Unlock()
		})
		mustCall(t, bt.cl, "chat.Login", bt.user, bt.user)
		mustCall(t, bt.cl, "chat.Set", "bot="+strconv.Itoa(i), "")
		jctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := gate.JoinGroup(jctx, back, "all", bt.cl.SessionID())
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		bs[i] = bt
	}

	// Traffic: each bot sends requests with random pauses; the pusher
	// sends numbered pushes to the bots in turn.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, bt := range bs {
		pause := time.Duration(100+rng.IntN(100)) * time.Millisecond
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(pause):
				}
				rctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				sent := time.Now()
				err := bt.cl.Request(rctx, "chat.Echo", wrapperspb.String("x"), &wrapperspb.StringValue{})
				cancel()
				bt.mu.Lock()
				bt.reqs = append(bt.reqs, procReq{sent: sent, done: time.Now(), err: err})
				bt.mu.Unlock()
			}
		})
	}
	wg.Go(func() {
		var n int64
		for {
			for _, bt := range bs {
				select {
				case <-stop:
					return
				default:
				}
				n++
				pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				sent := time.Now()
				err := gate.PushUser(pctx, back, bt.user, "chat.N", wrapperspb.String(strconv.FormatInt(n, 10)))
				cancel()
				bt.mu.Lock()
				bt.sent = append(bt.sent, procPush{n: n, sent: sent, done: time.Now(), err: err})
				bt.mu.Unlock()
				time.Sleep(time.Millisecond)
			}
		}
	})
	traffic := func(what string, d time.Duration) {
		// Traffic flows for d, however long the machine takes: the bots
		// must have sent requests meanwhile.
		before := countReqs(bs)
		start := time.Now()
		await.True(t, d+60*time.Second, what, func() bool {
			return time.Since(start) >= d && countReqs(bs) >= before+bots
		})
	}
	onAll := func(addr, what string) {
		await.True(t, 60*time.Second, what, func() bool {
			for _, bt := range bs {
				if bt.cl.Addr() != addr {
					return false
				}
			}
			return true
		})
	}
	traffic("traffic before the restart", time.Second)

	// A: SIGTERM, its bots resume on B; then a new process of A.
	tTerm := time.Now()
	if err := gws[0].cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	onAll(b, "every bot on B after A's SIGTERM")
	gws[0].expect(t, "closed")
	if err := gws[0].cmd.Wait(); err != nil {
		t.Fatalf("A after SIGTERM: %v", err)
	}
	startGateway(0, 2)
	const lossSlack = 3 * time.Second
	traffic("traffic after the restart", lossSlack+time.Second)

	// B: SIGKILL; every bot resumes on the new A.
	tKill := time.Now()
	if err := gws[1].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = gws[1].cmd.Wait()
	onAll(a, "every bot on the new A after B's SIGKILL")
	traffic("traffic after the kill", 2*time.Second)
	close(stop)
	wg.Wait()
	// A last push to every bot, sent again until PushUser takes it, marks
	// the end of each bot's pushes: it must arrive, last.
	last := int64(1 << 40)
	for _, bt := range bs {
		await.True(t, 30*time.Second, "PushUser to take the last push to "+bt.user, func() bool {
			pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			sent := time.Now()
			err := gate.PushUser(pctx, back, bt.user, "chat.N", wrapperspb.String(strconv.FormatInt(last, 10)))
			if err == nil {
				bt.mu.Lock()
				bt.sent = append(bt.sent, procPush{n: last, sent: sent, done: time.Now()})
				bt.mu.Unlock()
			}
			return err == nil
		})
	}
	await.True(t, 30*time.Second, "the last pushes to arrive", func() bool {
		for _, bt := range bs {
			bt.mu.Lock()
			got := len(bt.got) > 0 && bt.got[len(bt.got)-1] == last
			bt.mu.Unlock()
			if !got {
				return false
			}
		}
		return true
	})

	// The checks.
	if n := logins.Load(); n != bots {
		t.Errorf("%d logins, want %d: some bot logged in again", n, bots)
	}
	var reqs, reqFails, lost, pushes, reconns, resyncs int
	for i, bt := range bs {
		bt.mu.Lock()
		wantMoves := 1 // B's kill
		if i%2 == 0 {
			wantMoves = 2 // A's restart too
		}
		var killResume time.Time
		for _, r := range bt.reconns {
			reconns++
			if !r.resumed {
				t.Errorf("%s: a reconnection to %s at %v did not resume", bt.user, r.addr, r.at.Sub(tTerm))
			}
			switch {
			case r.at.Before(tKill) && r.resync:
				t.Errorf("%s: the resume on %s after A's SIGTERM said resync: pushes were dropped", bt.user, r.addr)
			case !r.at.Before(tKill):
				killResume = r.at
				if r.resync {
					resyncs++
				}
			}
		}
		if len(bt.reconns) != wantMoves {
			t.Errorf("%s: %d reconnections, want %d", bt.user, len(bt.reconns), wantMoves)
		}
		for k := 1; k < len(bt.got); k++ {
			if bt.got[k] <= bt.got[k-1] {
				t.Errorf("%s: push %d after push %d: out of order or twice", bt.user, bt.got[k], bt.got[k-1])
				break
			}
		}
		got := make(map[int64]bool, len(bt.got))
		for _, n := range bt.got {
			got[n] = true
		}
		for _, p := range bt.sent {
			if p.err != nil || got[p.n] {
				continue
			}
			lost++
			// Lost: only what B held when it was killed.
			if p.sent.Before(tKill.Add(-lossSlack)) || killResume.IsZero() || p.sent.After(killResume) {
				t.Errorf("%s: push %d, sent at %v (B killed at %v, resumed at %v), accepted and never received",
					bt.user, p.n, p.sent.Sub(tTerm), tKill.Sub(tTerm), killResume.Sub(tTerm))
			}
		}
		pushes += len(bt.got)
		for _, r := range bt.reqs {
			if r.err != nil {
				reqFails++
				t.Errorf("%s: a request sent at %v failed at %v: %v", bt.user, r.sent.Sub(tTerm), r.done.Sub(tTerm), r.err)
			}
			reqs++
		}
		bt.mu.Unlock()
		if v, err := call(t, bt.cl, "chat.Get", "bot"); err != nil || v != strconv.Itoa(i) {
			t.Errorf("%s: state bot=%q, %v after both moves, want %d", bt.user, v, err, i)
		}
	}
	var size int
	var sizeErr error
	await.True(t, 30*time.Second, "the group to count every bot again (GroupSize)", func() bool {
		gctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		size, sizeErr = gate.GroupSize(gctx, back, "all")
		return sizeErr == nil && size == bots
	})
	t.Logf("%d bots: %d reconnections, all resumed (%d after the kill said resync); %d pushes received, %d lost at the kill; %d requests, %d failed",
		bots, reconns, resyncs, pushes, lost, reqs, reqFails)
}

// countReqs counts the requests the bots have finished.
func countReqs(bs []*procBot) int {
	n := 0
	for _, bt := range bs {
		bt.mu.Lock()
		n += len(bt.reqs)
		bt.mu.Unlock()
	}
	return n
}
