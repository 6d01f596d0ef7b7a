package grain_test

// Multi-process tests: the test binary runs itself again as grain nodes
// (TestGrainNodeChild) and as their etcd (TestGrainEtcdChild), with one
// Redis server, and the parent, a node that hosts no kind, calls the
// grains while it kills, freezes or restarts the children. Every child
// reports each activation, each write its store took (with the version),
// each call it answered and each claim release on its stdout, so the
// parent can check that the activations of a grain never interleaved.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/cluster/etcd"
	"github.com/guildkit/guild/grain"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/internal/heavytest"
	"github.com/guildkit/guild/store"
	"github.com/guildkit/guild/store/redisstore"
)

// Environment of a child node process (TestGrainNodeChild).
const (
	mpChildEnv     = "GUILD_GRAIN_CHILD"      // the node's index: its address is 1.1.<index>
	mpEtcdChildEnv = "GUILD_GRAIN_ETCD_CHILD" // set in the etcd process
	mpEtcdEnv      = "GUILD_GRAIN_ETCD"       // etcd endpoints, comma-separated
	mpPfxEnv       = "GUILD_GRAIN_PREFIX"
	mpHostsEnv     = "GUILD_GRAIN_HOSTS" // hosts of "player" to wait for before "ready"
)

const (
	mpRedisAddr = "127.0.0.1:6379"
	// mpTTL is the children's lease TTL: short, so a kill is noticed
	// quickly, yet long enough that the renewals of a race-built child on
	// a 2-core machine with CPU hogs beside it keep up (at 1s they lapsed
	// now and then, which is safe but moves grains the tests expect to
	// stay).
	mpTTL       = 2 * time.Second
	mpKind      = "player"
	mpEvPrefix  = "grainev "
	mpParentIdx = 100
)

// mpEvent is one line a child writes on its stdout.
type mpEvent struct {
	Ev   string `json:"ev"` // ready, activate, served, stopping, claim, release, closed
	Key  string `json:"key,omitempty"`
	Node string `json:"node"`
	T    int64  `json:"t"` // wall clock, UnixNano
	N    int64  `json:"n,omitempty"`
	Act  int64  `json:"act,omitempty"` // activate, served: which activation of the process
	V    uint64 `json:"v,omitempty"`   // wrote: the version the store took

	inc int // set by the parent: which child process wrote it
}

// mpOut serialises the child's event lines: each is one write, made before
// the grain goes on, so a SIGKILL loses none that happened before it.
var mpOut sync.Mutex

func mpEmit(ev mpEvent) {
	ev.T = time.Now().UnixNano()
	b, _ := json.Marshal(ev)
	mpOut.Lock()
	defer mpOut.Unlock()
	_, _ = os.Stdout.Write(append(append([]byte(mpEvPrefix), b...), '\n'))
}

// loggingClaimer reports successful claims, and the start of every
// release: the end of an activation, as the grain has handled its last
// message and made its last flush by then.
type loggingClaimer struct {
	grain.Claimer
	node string
}

func (l loggingClaimer) TryClaim(ctx context.Context, id grain.Identity, self actor.Addr) (actor.Addr, error) {
	h, err := l.Claimer.TryClaim(ctx, id, self)
	if err == nil && h == self {
		mpEmit(mpEvent{Ev: "claim", Key: id.Key, Node: l.node})
	}
	return h, err
}

func (l loggingClaimer) Release(ctx context.Context, id grain.Identity, self actor.Addr) error {
	mpEmit(mpEvent{Ev: "release", Key: id.Key, Node: l.node})
	return l.Claimer.Release(ctx, id, self)
}

// loggingStore reports every write that took effect ("wrote"): the last
// flush of an activation that is handing over is one, and a flush that
// the store refused (a version conflict) is not.
type loggingStore struct {
	store.Store
	node string
}

func (l loggingStore) Save(ctx context.Context, kind, key string, data []byte, expected uint64) (uint64, error) {
	v, err := l.Store.Save(ctx, kind, key, data, expected)
	if err == nil {
		mpEmit(mpEvent{Ev: "wrote", Key: key, Node: l.node, V: v})
	}
	return v, err
}

// mpKindOf is the player kind of a child node: its state is the list of
// sequence numbers it was sent, and it flushes after each one, so a write
// it acknowledged is in Redis.
//
//	Int64Value v  append v, flush; reply N, or a StringValue with the flush error
//	"get"         reply the state as JSON
//
// Each activation has a number (Act) in its process; it reports its
// activation and every write it made (after its flush succeeded) and every
// read it answered ("served"), which is what checkActivations reads.
func mpKindOf(node string) grain.Kind {
	var acts atomic.Int64
	return grain.Kind{
		Name:        mpKind,
		IdleTimeout: time.Hour,
		FlushEvery:  -1,
		State:       func() any { return new(seqState) },
		New: func(id grain.Identity) grain.Actor {
			act := acts.Add(1)
			mpEmit(mpEvent{Ev: "activate", Key: id.Key, Node: node, Act: act})
			return grain.ActorFunc(func(c *grain.Context) {
				st := c.State().(*seqState)
				switch m := c.Message().(type) {
				case actor.Started:
					mpEmit(mpEvent{Ev: "started", Key: id.Key, Node: node, N: st.N})
				case actor.Stopping:
					mpEmit(mpEvent{Ev: "stopping", Key: id.Key, Node: node, N: st.N})
				case *wrapperspb.Int64Value:
					st.Seqs = append(st.Seqs, m.Value)
					st.N++
					if err := c.Flush(context.Background()); err != nil {
						c.Respond(wrapperspb.String("flush: " + err.Error()))
						return
					}
					mpEmit(mpEvent{Ev: "served", Key: id.Key, Node: node, Act: act})
					c.Respond(wrapperspb.Int64(st.N))
				case *wrapperspb.StringValue:
					if m.Value == "get" {
						mpEmit(mpEvent{Ev: "served", Key: id.Key, Node: node, Act: act})
						b, _ := json.Marshal(st)
						c.Respond(wrapperspb.String(string(b)))
					}
				}
			})
		},
	}
}

// TestGrainEtcdChild is the etcd process of the multi-process tests: an
// embedded etcd server in a process of its own, as in production, so that
// the parent's load (the calls it makes, race-built) does not starve the
// leases' bookkeeping. It prints its endpoints and serves until its stdin
// closes. It does nothing unless started by them.
func TestGrainEtcdChild(t *testing.T) {
	if os.Getenv(mpEtcdChildEnv) == "" {
		t.Skip("only runs as the etcd process of the multi-process tests")
	}
	em, err := etcd.StartEmbeddedConfig(etcd.EmbeddedConfig{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	mpEmit(mpEvent{Ev: "etcd", Node: strings.Join(em.Endpoints(), ",")})
	eof := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	select {
	case <-eof:
	case <-time.After(10 * time.Minute):
		t.Error("stdin still open after 10 minutes")
	}
}

// startEtcdChild starts TestGrainEtcdChild and returns its endpoints; a
// cleanup stops it (after the node processes, whose cleanups run first).
func startEtcdChild(t *testing.T) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestGrainEtcdChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), mpEtcdChildEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		_ = stdin.Close()
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	endpoints := make(chan string, 1)
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), mpEvPrefix); ok {
				var ev mpEvent
				if json.Unmarshal([]byte(line), &ev) == nil && ev.Ev == "etcd" {
					endpoints <- ev.Node
				}
			}
		}
		_ = cmd.Wait()
	}()
	select {
	case e := <-endpoints:
		return strings.Split(e, ",")
	case <-exited:
		t.Fatalf("the etcd process ended before it was ready:\n%s", stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatal("the etcd process not ready after 60s")
	}
	return nil
}

// TestGrainNodeChild is a grain node process of TestGrainKill9 and
// TestGrainRollingRestart: it does nothing unless started by them. It
// serves until its stdin closes, then closes gracefully.
func TestGrainNodeChild(t *testing.T) {
	idx := os.Getenv(mpChildEnv)
	if idx == "" {
		t.Skip("only runs as a node process of TestGrainKill9 and TestGrainRollingRestart")
	}
	index, err := strconv.Atoi(idx)
	if err != nil {
		t.Fatal(err)
	}
	hosts, _ := strconv.Atoi(os.Getenv(mpHostsEnv))
	pfx := os.Getenv(mpPfxEnv)
	addr := actor.MustAddr(1, 1, index)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("node", addr.String())

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := etcd.New(etcd.Config{Endpoints: strings.Split(os.Getenv(mpEtcdEnv), ","), Prefix: "/" + pfx, TTL: mpTTL, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	n, err := cluster.Start(ctx, cluster.NodeConfig{
		Actor:      actor.Config{Addr: addr},
		Listen:     "127.0.0.1:0",
		Membership: m,
		Names:      m.Names(),
		Logger:     logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	rc := redis.NewClient(&redis.Options{Addr: mpRedisAddr})
	defer rc.Close()
	sys, err := grain.Start(ctx, grain.Config{
		Node:       n.Actor(),
		Membership: m,
		Kinds:      []grain.Kind{mpKindOf(addr.String())},
		Store:      loggingStore{redisstore.New(rc, pfx), addr.String()},
		Claims:     loggingClaimer{grain.NewEtcdClaimer(m, "/"+pfx), addr.String()},
		Logger:     logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	for sys.Hosts(mpKind) < hosts {
		if ctx.Err() != nil {
			t.Fatalf("only %d of %d hosts in the view", sys.Hosts(mpKind), hosts)
		}
		time.Sleep(5 * time.Millisecond)
	}
	mpEmit(mpEvent{Ev: "ready", Node: addr.String()})

	// Serve until the parent closes stdin (or dies), for 10 minutes at most.
	eof := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	select {
	case <-eof:
	case <-time.After(10 * time.Minute):
		t.Error("stdin still open after 10 minutes")
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer ccancel()
	if err := sys.Close(cctx); err != nil {
		t.Errorf("close the grain system: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Errorf("close the node: %v", err)
	}
	st := sys.Stats()
	mpEmit(mpEvent{Ev: "closed", Node: addr.String(), N: int64(st.Activations)})
	logger.Warn("closed", "stats", fmt.Sprintf("%+v", st))
}

// mpChild is one child node process, as the parent sees it.
type mpChild struct {
	index, inc int
	cmd        *exec.Cmd
	stdin      io.WriteCloser
	ready      chan struct{}
	eof        chan struct{} // stdout is drained
	stderr     string        // file
	closedAt   atomic.Int64  // UnixNano of its "closed" event
}

// mpCluster is the parent's side of a multi-process test: the etcd, the
// children, and the parent's own node and System (which hosts no kind).
type mpCluster struct {
	t    *testing.T
	etcd []string // the endpoints of the etcd process
	pfx  string
	rc   *redis.Client
	sys  *grain.System
	dir  string
	n    int // hosts

	mu       sync.Mutex
	events   []mpEvent
	children map[int]*mpChild // by index: the current process
	all      []*mpChild
	incs     int
}

// mpRedis skips the test (fails it on CI) when Redis does not answer.
func mpRedis(t *testing.T) *redis.Client {
	t.Helper()
	if testing.Short() {
		t.Skip("multi-process test; skipped with -short")
	}
	rc := redis.NewClient(&redis.Options{Addr: mpRedisAddr, MaxRetries: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := rc.Ping(ctx).Err(); err != nil {
		_ = rc.Close()
		msg := "Redis not reachable on " + mpRedisAddr + " (" + err.Error() + "); run `bash scripts/services.sh` (or install and start it) to run this test"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	_ = rc.Close()
	return redis.NewClient(&redis.Options{Addr: mpRedisAddr})
}

func startMP(t *testing.T, hosts int) *mpCluster {
	rc := mpRedis(t)
	heavytest.Serialize(t)
	c := &mpCluster{t: t, rc: rc, n: hosts, children: map[int]*mpChild{}, dir: t.TempDir(),
		pfx: "guildtest-grain-" + strings.ToLower(rand.Text()[:12])}
	t.Cleanup(func() {
		defer rc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := rc.Scan(ctx, 0, c.pfx+":*", 1000).Iterator()
		for iter.Next(ctx) {
			_ = rc.Del(ctx, iter.Val()).Err()
		}
	})
	c.etcd = startEtcdChild(t)
	// On failure, the end of every process's log says what the nodes saw.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		c.mu.Lock()
		all := slices.Clone(c.all)
		c.mu.Unlock()
		for _, ch := range all {
			t.Logf("node %d (process %d) stderr, the end:\n%s", ch.index, ch.inc, ch.tail())
		}
		b, _ := os.ReadFile(filepath.Join(c.dir, "parent.log"))
		t.Logf("the parent's log, the end:\n%s", b[max(0, len(b)-4000):])
	})
	// Children are killed before etcd closes (cleanups run last first).
	t.Cleanup(func() {
		c.mu.Lock()
		all := slices.Clone(c.all)
		c.mu.Unlock()
		for _, ch := range all {
			if ch.cmd.ProcessState == nil {
				_ = ch.cmd.Process.Kill()
				<-ch.eof
				_ = ch.cmd.Wait()
			}
		}
	})
	for i := 1; i <= hosts; i++ {
		c.start(i)
	}
	for i := 1; i <= hosts; i++ {
		c.waitReady(c.child(i))
	}

	plog, err := os.Create(filepath.Join(c.dir, "parent.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = plog.Close() })
	logger := slog.New(slog.NewTextHandler(plog, &slog.HandlerOptions{Level: slog.LevelWarn}))
	m, err := etcd.New(etcd.Config{Endpoints: c.etcd, Prefix: "/" + c.pfx, TTL: mpTTL, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := cluster.Start(ctx, cluster.NodeConfig{
		Actor:      actor.Config{Addr: actor.MustAddr(1, 1, mpParentIdx)},
		Listen:     "127.0.0.1:0",
		Membership: m,
		Names:      m.Names(),
		Logger:     logger,
	})
	if err != nil {
		_ = m.Close()
		t.Fatal(err)
	}
	// A System that hosts no kind: it only calls the children's grains.
	sys, err := grain.Start(ctx, grain.Config{Node: n.Actor(), Membership: m, Logger: logger})
	if err != nil {
		_ = n.Close()
		_ = m.Close()
		t.Fatal(err)
	}
	c.sys = sys
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := sys.Close(ctx); err != nil {
			t.Errorf("close the parent's system: %v", err)
		}
		_ = n.Close()
		_ = m.Close()
	})
	c.waitHosts(hosts)
	return c
}

func (c *mpCluster) child(i int) *mpChild {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.children[i]
}

// start starts a child process as node 1.1.<i>.
func (c *mpCluster) start(i int) *mpChild {
	t := c.t
	c.mu.Lock()
	c.incs++
	ch := &mpChild{index: i, inc: c.incs, ready: make(chan struct{}), eof: make(chan struct{}),
		stderr: filepath.Join(c.dir, fmt.Sprintf("node%d-inc%d.stderr", i, c.incs))}
	c.mu.Unlock()
	cmd := exec.Command(os.Args[0], "-test.run=^TestGrainNodeChild$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		mpChildEnv+"="+strconv.Itoa(i),
		mpEtcdEnv+"="+strings.Join(c.etcd, ","),
		mpPfxEnv+"="+c.pfx,
		mpHostsEnv+"="+strconv.Itoa(c.n),
	)
	ef, err := os.Create(ch.stderr)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = ef
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if ch.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = ef.Close() // the child has its own descriptor
	ch.cmd = cmd
	c.mu.Lock()
	c.children[i] = ch
	c.all = append(c.all, ch)
	c.mu.Unlock()
	go func() {
		defer close(ch.eof)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line, ok := strings.CutPrefix(sc.Text(), mpEvPrefix)
			if !ok {
				continue
			}
			var ev mpEvent
			if json.Unmarshal([]byte(line), &ev) != nil {
				continue
			}
			ev.inc = ch.inc
			c.mu.Lock()
			c.events = append(c.events, ev)
			c.mu.Unlock()
			switch ev.Ev {
			case "ready":
				close(ch.ready)
			case "closed":
				ch.closedAt.Store(ev.T)
			}
		}
	}()
	return ch
}

// leasesLapsed says which processes logged a lapsed or lost lease (the
// killed one aside), or "" if none did.
func (c *mpCluster) leasesLapsed() string {
	c.mu.Lock()
	all := slices.Clone(c.all)
	c.mu.Unlock()
	var who []string
	lapsed := func(b []byte) bool {
		return bytes.Contains(b, []byte("lease not renewed before its fence")) || bytes.Contains(b, []byte("lease lost"))
	}
	for _, ch := range all {
		if ch.cmd.ProcessState != nil && !ch.cmd.ProcessState.Success() {
			continue // killed
		}
		if b, _ := os.ReadFile(ch.stderr); lapsed(b) {
			who = append(who, fmt.Sprintf("node %d", ch.index))
		}
	}
	if b, _ := os.ReadFile(filepath.Join(c.dir, "parent.log")); lapsed(b) {
		who = append(who, "the parent")
	}
	return strings.Join(who, ", ")
}

// tail returns the end of a child's stderr.
func (ch *mpChild) tail() string {
	b, _ := os.ReadFile(ch.stderr)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func (c *mpCluster) waitReady(ch *mpChild) {
	c.t.Helper()
	select {
	case <-ch.ready:
	case <-ch.eof:
		c.t.Fatalf("node %d ended before it was ready:\n%s", ch.index, ch.tail())
	case <-time.After(60 * time.Second):
		c.t.Fatalf("node %d not ready after 60s:\n%s", ch.index, ch.tail())
	}
}

// waitHosts waits until the parent's view has n hosts of the kind.
func (c *mpCluster) waitHosts(n int) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for c.sys.Hosts(mpKind) != n {
		if time.Now().After(deadline) {
			c.t.Fatalf("the parent's view has %d hosts, want %d", c.sys.Hosts(mpKind), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// kill SIGKILLs node i and waits for the process to end.
func (c *mpCluster) kill(i int) time.Time {
	ch := c.child(i)
	at := time.Now()
	if err := ch.cmd.Process.Kill(); err != nil {
		c.t.Fatal(err)
	}
	<-ch.eof
	_ = ch.cmd.Wait()
	return at
}

// stop closes node i's stdin and waits (bounded) for it to close
// gracefully; a child that does not, or fails (goleak in its TestMain
// included), fails the test. It returns how long the child took to close
// its System and node, and to exit.
func (c *mpCluster) stop(i int) (closed, exited time.Duration) {
	t := c.t
	ch := c.child(i)
	start := time.Now()
	_ = ch.stdin.Close()
	select {
	case <-ch.eof:
	case <-time.After(45 * time.Second):
		_ = ch.cmd.Process.Kill()
		<-ch.eof
		_ = ch.cmd.Wait()
		t.Fatalf("node %d did not close within 45s:\n%s", i, ch.tail())
	}
	if err := ch.cmd.Wait(); err != nil {
		t.Errorf("node %d (process %d) ended with %v:\n%s", i, ch.inc, err, ch.tail())
	}
	return time.Duration(ch.closedAt.Load() - start.UnixNano()), time.Since(start)
}

func (c *mpCluster) snapshot() []mpEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.events)
}

// owners returns, for each key, the node of its latest activation.
func (c *mpCluster) owners() map[string]string {
	out := map[string]string{}
	for _, ev := range c.snapshot() {
		if ev.Ev == "activate" {
			out[ev.Key] = ev.Node
		}
	}
	return out
}

// checkActivations checks that the activations of a grain never
// interleaved: every version an older activation wrote is below every
// version a newer one wrote (the store's versions order the writes, so this
// needs no clocks; an activation is ordered by its "activate", Kind.New
// after the claim, and owns the writes its process reported until its next
// activation of the key). Two activations that both wrote on the same base
// state would break it: the duplicated item.
//
// It also logs the times an activation answered after a newer one had
// started: a call that had passed its lease check before its process froze
// and was answered after the freeze (its write, if any, landed before the
// new activation loaded, as the versions show). Reads are not checked
// here; the chaos test checks them (a linearizable history). It returns
// the number of activations per key.
func (c *mpCluster) checkActivations(skew time.Duration) map[string]int {
	t := c.t
	t.Helper()
	evs := c.snapshot()
	type actKey struct {
		inc int
		act int64
	}
	type span struct {
		inc        int
		node       string
		start, end int64 // activation, last write or read
		how        string
		released   int64  // the start of its claim's release, if any
		last       string // what it did at end
		firstWrite int64  // its first write the store took; 0 if none
		minV, maxV uint64 // the versions of its writes; 0 if none
	}
	byKey := map[string][]mpEvent{}
	for _, ev := range evs {
		if ev.Ev == "activate" || ev.Ev == "served" || ev.Ev == "wrote" || ev.Ev == "release" {
			byKey[ev.Key] = append(byKey[ev.Key], ev)
		}
	}
	acts := map[string]int{}
	var bad, near, late []string
	badKey := "" // the first grain found wrong: its events are printed
	closest := time.Duration(math.MaxInt64)
	for key, list := range byKey {
		slices.SortStableFunc(list, func(a, b mpEvent) int { return cmpInt(a.T, b.T) })
		var spans []span
		index := map[actKey]int{} // activation -> its span
		open := map[int]int{}     // process -> span of its activation not yet released
		for _, ev := range list {
			switch ev.Ev {
			case "activate":
				acts[key]++
				index[actKey{ev.inc, ev.Act}] = len(spans)
				open[ev.inc] = len(spans)
				spans = append(spans, span{inc: ev.inc, node: ev.Node, start: ev.T, end: ev.T})
			case "served":
				if j, ok := index[actKey{ev.inc, ev.Act}]; ok && ev.T >= spans[j].end {
					spans[j].end, spans[j].last = ev.T, "answered a call"
				}
			case "wrote": // by the process's latest activation of the key
				if j, ok := open[ev.inc]; ok {
					if spans[j].firstWrite == 0 {
						spans[j].firstWrite = ev.T
					}
					if spans[j].minV == 0 || ev.V < spans[j].minV {
						spans[j].minV = ev.V
					}
					spans[j].maxV = max(spans[j].maxV, ev.V)
					if ev.T >= spans[j].end {
						spans[j].end, spans[j].last = ev.T, "wrote"
					}
				}
			case "release":
				if j, ok := open[ev.inc]; ok {
					spans[j].how = "released"
					spans[j].released = ev.T
				}
			}
		}
		for i, a := range spans {
			for _, b := range spans[i+1:] { // b.start >= a.start
				if a.maxV != 0 && b.minV != 0 && a.maxV > b.minV {
					bad = append(bad, fmt.Sprintf("%s: activated on %s (process %d) at %s and wrote version %d, but %s (process %d), active since %s, wrote version %d",
						key, b.node, b.inc, stamp(b.start), b.minV, a.node, a.inc, stamp(a.start), a.maxV))
					if badKey == "" {
						badKey = key
					}
					continue
				}
				if b.start >= a.end {
					if a.how == "released" && a.inc != b.inc && b.start >= a.released {
						closest = min(closest, time.Duration(b.start-a.released))
					}
					continue
				}
				msg := fmt.Sprintf("%s: activated on %s (process %d) at %s while %s (process %d), active since %s, still %s at %s",
					key, b.node, b.inc, stamp(b.start), a.node, a.inc, stamp(a.start), a.last, stamp(a.end))
				if a.inc != b.inc && time.Duration(a.end-b.start) < skew {
					near = append(near, msg)
					continue
				}
				// The older activation finished a call it had begun
				// before its node froze: it passed the lease check before
				// the freeze and answered after it (its write, if any,
				// took a version below every version of the newer
				// activation: checked above).
				late = append(late, msg)
			}
		}
	}
	if len(near) > 0 {
		t.Logf("%d overlaps within the clock tolerance %v:\n%s", len(near), skew, strings.Join(near[:min(len(near), 10)], "\n"))
	}
	if len(late) > 0 {
		t.Logf("%d calls begun before a freeze were answered after another activation started:\n%s", len(late), strings.Join(late[:min(len(late), 10)], "\n"))
	}
	if badKey != "" {
		var lines []string
		for _, ev := range byKey[badKey] {
			lines = append(lines, fmt.Sprintf("  %s %s process %d act %d version %d", stamp(ev.T), ev.Ev, ev.inc, ev.Act, ev.V))
		}
		t.Logf("the events of grain %s (activate, served, wrote, release):\n%s", badKey, strings.Join(lines[max(0, len(lines)-80):], "\n"))
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		t.Errorf("%d duplicate activations; the first ones:\n%s", len(bad), strings.Join(bad[:min(len(bad), 20)], "\n"))
	}
	if closest != time.Duration(math.MaxInt64) {
		t.Logf("closest handover: an activation %v after the release on another node began", closest)
	}
	return acts
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func stamp(ns int64) string { return time.Unix(0, ns).Format("15:04:05.000000") }

// mpGrain is the parent's record of one grain: the seqs it sent, the ones
// acknowledged, and the N of each acknowledgement.
type mpGrain struct {
	id      grain.Identity
	mu      sync.Mutex
	next    int64
	acked   []int64
	lastN   int64
	regress []string // acknowledged N that went down: a lost write
	fails   int
	failed  []int64 // seqs whose call failed: applied or not
	lastErr string
	firstOK int64 // UnixNano of the first ack of a call started after since
	since   int64
	errs    *mpErrors
}

// mpErrors counts the failed calls by error, across grains.
type mpErrors struct {
	mu sync.Mutex
	n  map[string]int
}

func (e *mpErrors) add(err error) {
	msg := err.Error()
	if i := strings.Index(msg, " tcp 127.0.0.1"); i >= 0 {
		msg = msg[:i] + " tcp ..." // ports differ
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n[msg]++
}

// take returns the counts since the last take, most frequent first.
func (e *mpErrors) take() string {
	e.mu.Lock()
	n := e.n
	e.n = map[string]int{}
	e.mu.Unlock()
	var out []string
	for msg, k := range n {
		out = append(out, fmt.Sprintf("%6d × %s", k, msg))
	}
	slices.Sort(out)
	slices.Reverse(out)
	if len(out) == 0 {
		return "none"
	}
	return "\n" + strings.Join(out, "\n")
}

// call sends the next seq (every attempt gets a new one, so a duplicate
// in the state is the framework's).
func (g *mpGrain) call(sys *grain.System, timeout time.Duration) bool {
	g.mu.Lock()
	g.next++
	seq := g.next
	g.mu.Unlock()
	start := time.Now().UnixNano()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	r, err := sys.Call(ctx, g.id, wrapperspb.Int64(seq))
	cancel()
	g.mu.Lock()
	defer g.mu.Unlock()
	if err == nil {
		if v, ok := r.(*wrapperspb.Int64Value); ok {
			g.acked = append(g.acked, seq)
			if v.Value <= g.lastN {
				g.regress = append(g.regress, fmt.Sprintf("seq %d acknowledged with N %d after N %d", seq, v.Value, g.lastN))
			}
			g.lastN = v.Value
			if g.since != 0 && g.firstOK == 0 && start > g.since {
				g.firstOK = time.Now().UnixNano()
			}
			return true
		}
		err = fmt.Errorf("reply %v", r)
	}
	g.fails++
	g.errs.add(err)
	g.failed = append(g.failed, seq)
	g.lastErr = err.Error()
	return false
}

func mpGrains(n int) ([]*mpGrain, *mpErrors) {
	errs := &mpErrors{n: map[string]int{}}
	gs := make([]*mpGrain, n)
	for i := range gs {
		gs[i] = &mpGrain{id: grain.Identity{Kind: mpKind, Key: fmt.Sprintf("%d", i)}, errs: errs}
	}
	return gs, errs
}

// create calls every grain once, with some concurrency.
func (c *mpCluster) create(gs []*mpGrain) {
	t := c.t
	t.Helper()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for _, g := range gs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			// Calls that fail fast (a lease lapsed under load, a grain
			// moving) are made again, for a minute at most.
			for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
				if g.call(c.sys, 10*time.Second) {
					return
				}
				time.Sleep(20 * time.Millisecond) // a pause between attempts, not a wait for a condition
			}
		}()
	}
	wg.Wait()
	for _, g := range gs {
		if len(g.acked) == 0 {
			t.Fatalf("%v: no call answered: %s", g.id, g.lastErr)
		}
	}
}

// load keeps calling every grain, each from a goroutine of its own, with
// a pause of about pace between calls, until stop closes.
func load(gs []*mpGrain, sys *grain.System, pace, timeout time.Duration, stop <-chan struct{}) (wait func()) {
	var wg sync.WaitGroup
	for _, g := range gs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := time.Duration(mrand.Int64N(int64(pace)))
			for {
				select {
				case <-stop:
					return
				case <-time.After(p):
				}
				if g.call(sys, timeout) {
					p = pace/2 + time.Duration(mrand.Int64N(int64(pace)))
				} else {
					p = 20 * time.Millisecond
				}
			}
		}()
	}
	return wg.Wait
}

// checkState checks one grain's state: every acknowledged seq exactly
// once, no seq twice, none that was never sent, and N = len(Seqs). It
// returns how many seqs whose call failed were applied nonetheless.
func checkState(g *mpGrain, st seqState) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	seen := make(map[int64]int, len(st.Seqs))
	var dup []int64
	for _, s := range st.Seqs {
		seen[s]++
		if seen[s] == 2 {
			dup = append(dup, s)
		}
		if s < 1 || s > g.next {
			return 0, fmt.Errorf("%v: seq %d was never sent (sent up to %d)", g.id, s, g.next)
		}
	}
	applied := 0
	for _, s := range g.failed {
		if seen[s] > 0 {
			applied++
		}
	}
	var lost []int64
	for _, s := range g.acked {
		if seen[s] == 0 {
			lost = append(lost, s)
		}
	}
	var errs []error
	if len(dup) > 0 {
		errs = append(errs, fmt.Errorf("%v: seqs applied twice: %v", g.id, dup))
	}
	if len(lost) > 0 {
		errs = append(errs, fmt.Errorf("%v: acknowledged seqs lost: %v (of %d acknowledged, %d stored)", g.id, lost, len(g.acked), len(st.Seqs)))
	}
	if st.N != int64(len(st.Seqs)) {
		errs = append(errs, fmt.Errorf("%v: N %d for %d seqs", g.id, st.N, len(st.Seqs)))
	}
	if len(g.regress) > 0 {
		errs = append(errs, fmt.Errorf("%v: acknowledged N went down: %v", g.id, g.regress))
	}
	return applied, errors.Join(errs...)
}

// checkLive asks every grain for its state and checks it.
func (c *mpCluster) checkLive(gs []*mpGrain) {
	t := c.t
	t.Helper()
	var errs []error
	applied := 0
	// A call that fails fast (a peer lost a moment ago, a grain moving) is
	// tried again, for 60 s in all: this reads the state, it does not time
	// the recovery.
	deadline := time.Now().Add(60 * time.Second)
	for _, g := range gs {
		var r any
		var err error
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			r, err = c.sys.Call(ctx, g.id, wrapperspb.String("get"))
			cancel()
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond) // a pause between attempts, not a wait for a condition
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("get %v: %w", g.id, err))
			continue
		}
		var st seqState
		if err := json.Unmarshal([]byte(r.(*wrapperspb.StringValue).Value), &st); err != nil {
			t.Fatal(err)
		}
		n, err := checkState(g, st)
		if err != nil {
			errs = append(errs, err)
		}
		applied += n
	}
	t.Logf("live state: %d grains checked; %d calls that failed were applied nonetheless", len(gs), applied)
	if len(errs) > 0 {
		t.Errorf("%d grains wrong (live state); the first ones:\n%v", len(errs), errors.Join(errs[:min(len(errs), 20)]...))
	}
}

// checkStored reads every grain's state from Redis and checks it.
func (c *mpCluster) checkStored(gs []*mpGrain) {
	t := c.t
	t.Helper()
	st := redisstore.New(c.rc, c.pfx)
	var errs []error
	applied := 0
	for _, g := range gs {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		data, _, err := st.Load(ctx, mpKind, g.id.Key)
		cancel()
		if errors.Is(err, store.ErrNotFound) {
			errs = append(errs, fmt.Errorf("%v: not in Redis", g.id))
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var s seqState
		if err := json.Unmarshal(data, &s); err != nil {
			t.Fatal(err)
		}
		n, err := checkState(g, s)
		if err != nil {
			errs = append(errs, err)
		}
		applied += n
	}
	t.Logf("stored state: %d grains checked; %d calls that failed were applied nonetheless", len(gs), applied)
	if len(errs) > 0 {
		t.Errorf("%d grains wrong in Redis; the first ones:\n%v", len(errs), errors.Join(errs[:min(len(errs), 20)]...))
	}
}

// failSummary counts the calls made, acknowledged and failed.
func failSummary(gs []*mpGrain) (calls, acked, failed int) {
	for _, g := range gs {
		g.mu.Lock()
		calls += int(g.next)
		acked += len(g.acked)
		failed += g.fails
		g.mu.Unlock()
	}
	return calls, acked, failed
}

func TestGrainKill9(t *testing.T) {
	c := startMP(t, 3)
	gs, errs := mpGrains(1000)
	begin := time.Now()
	c.create(gs)
	t.Logf("1000 grains created in %v", time.Since(begin).Round(time.Millisecond))
	var owners map[string]string
	deadline := time.Now().Add(10 * time.Second)
	for owners = c.owners(); len(owners) < len(gs); owners = c.owners() {
		if time.Now().After(deadline) {
			t.Fatalf("activation events for %d of %d grains", len(owners), len(gs))
		}
		time.Sleep(5 * time.Millisecond)
	}
	per := map[string]int{}
	for _, n := range owners {
		per[n]++
	}
	victim := 0
	for i := 1; i <= 3; i++ {
		if victim == 0 || per[actor.MustAddr(1, 1, i).String()] > per[actor.MustAddr(1, 1, victim).String()] {
			victim = i
		}
	}
	victimAddr := actor.MustAddr(1, 1, victim).String()
	t.Logf("grains per node: %v; killing %s", per, victimAddr)

	stop := make(chan struct{})
	wait := load(gs, c.sys, 300*time.Millisecond, time.Second, stop)
	stopped := false
	defer func() {
		if !stopped {
			close(stop)
			wait()
		}
	}()
	time.Sleep(time.Second)
	calls0, acked0, failed0 := failSummary(gs)
	t.Logf("before the kill: %d calls, %d acknowledged, %d failed: %s", calls0, acked0, failed0, errs.take())

	killed := time.Now()
	for _, g := range gs {
		g.mu.Lock()
		g.since = killed.UnixNano()
		g.mu.Unlock()
	}
	c.kill(victim)
	killDone := time.Since(killed)

	// Every grain must answer again, from a survivor, within TTL + 10s:
	// the lease expires after the TTL, then the survivors claim and load
	// the victim's grains. With two CPU hogs beside the four race-built
	// processes it took 3.5-7 s in most runs and 11.2 s at worst (when
	// even the survivors' own grains took 6 s to answer the starved
	// parent); on an idle machine, about TTL + 1 s.
	limit := mpTTL + 10*time.Second
	var missing []*mpGrain
	for {
		missing = missing[:0]
		for _, g := range gs {
			g.mu.Lock()
			if g.firstOK == 0 {
				missing = append(missing, g)
			}
			g.mu.Unlock()
		}
		if len(missing) == 0 || time.Since(killed) > limit+25*time.Second {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	var worst time.Duration
	var victimWorst, othersWorst time.Duration
	for _, g := range gs {
		g.mu.Lock()
		if g.firstOK != 0 {
			d := time.Duration(g.firstOK - killed.UnixNano())
			worst = max(worst, d)
			if owners[g.id.Key] == victimAddr {
				victimWorst = max(victimWorst, d)
			} else {
				othersWorst = max(othersWorst, d)
			}
		}
		g.mu.Unlock()
	}
	t.Logf("kill took %v; the victim's grains were all back after %v (the others answered within %v)", killDone.Round(time.Millisecond), victimWorst.Round(time.Millisecond), othersWorst.Round(time.Millisecond))
	// A survivor (or the parent) whose lease lapsed under load stops
	// serving for a while, and grains move for good reasons then: the
	// checks of timing and placement hold only when no lease lapsed. The
	// checks of safety (activations, writes) hold always.
	lapsed := c.leasesLapsed()
	if lapsed != "" {
		t.Logf("a lease lapsed under load (%s): the checks of recovery time and placement are skipped", lapsed)
	}
	if len(missing) > 0 {
		t.Errorf("%d grains did not answer within %v of the kill; e.g. %v: %s", len(missing), time.Since(killed).Round(time.Millisecond), missing[0].id, missing[0].lastErr)
	} else if worst > limit && lapsed == "" {
		t.Errorf("the last grain answered %v after the kill, more than TTL + 10s = %v", worst.Round(time.Millisecond), limit)
	}
	time.Sleep(time.Second) // some more calls on the new owners
	close(stop)
	wait()
	stopped = true
	calls, acked, failed := failSummary(gs)
	t.Logf("in all: %d calls, %d acknowledged, %d failed; the failures since the kill: %s", calls, acked, failed, errs.take())

	// Where the grains are now.
	now := c.owners()
	moved, movedOthers := 0, 0
	for key, was := range owners {
		if now[key] == was {
			continue
		}
		if was == victimAddr {
			moved++
		} else {
			movedOthers++
		}
		if now[key] == victimAddr {
			t.Errorf("grain %s still on the killed node", key)
		}
	}
	t.Logf("%d of the victim's %d grains moved to survivors; %d other grains moved", moved, per[victimAddr], movedOthers)
	if moved != per[victimAddr] && lapsed == "" {
		t.Errorf("%d of the victim's %d grains moved", moved, per[victimAddr])
	}
	if movedOthers != 0 && lapsed == "" {
		t.Errorf("%d grains of the survivors moved", movedOthers)
	}
	c.checkLive(gs)
	acts := c.checkActivations(5 * time.Millisecond)
	twice := 0
	for _, g := range gs {
		if acts[g.id.Key] > 2 && lapsed == "" {
			t.Errorf("%v activated %d times", g.id, acts[g.id.Key])
		}
		if acts[g.id.Key] == 2 {
			twice++
		}
	}
	t.Logf("%d grains activated twice", twice)

	// Close the survivors gracefully: every state is then in Redis.
	for i := 1; i <= 3; i++ {
		if i != victim {
			closed, exited := c.stop(i)
			t.Logf("node %d closed in %v, exited after %v", i, closed.Round(time.Millisecond), exited.Round(time.Millisecond))
		}
	}
	c.checkStored(gs)
	c.checkActivations(5 * time.Millisecond)
}

func TestGrainRollingRestart(t *testing.T) {
	c := startMP(t, 3)
	gs, errs := mpGrains(200)
	c.create(gs)
	stop := make(chan struct{})
	wait := load(gs, c.sys, 50*time.Millisecond, 2*time.Second, stop)
	stopped := false
	defer func() {
		if !stopped {
			close(stop)
			wait()
		}
	}()
	time.Sleep(time.Second)
	for i := 1; i <= 3; i++ {
		addr := actor.MustAddr(1, 1, i).String()
		before := c.owners()
		on := 0
		for _, n := range before {
			if n == addr {
				on++
			}
		}
		_, _, failed0 := failSummary(gs)
		took, exited := c.stop(i)
		// Its grains move off as the load calls them (every 50 ms or so)
		// and the children report the activations: wait for that, on a
		// busy machine too, before the node comes back.
		var mid map[string]string
		movedOff := 0
		await.True(t, 10*time.Second, fmt.Sprintf("node %d's grains to move off", i), func() bool {
			mid = c.owners()
			movedOff = 0
			for k, n := range before {
				if n == addr && mid[k] != addr {
					movedOff++
				}
			}
			return movedOff == on || c.leasesLapsed() != ""
		})
		start := time.Now()
		ch := c.start(i)
		c.waitReady(ch)
		c.waitHosts(3)
		back := time.Since(start)
		time.Sleep(time.Second)
		after := c.owners()
		movedBack := 0
		for k, n := range after {
			if n == addr && mid[k] != addr {
				movedBack++
			}
		}
		_, _, failed1 := failSummary(gs)
		t.Logf("node %d: %d grains; closed in %v, exited after %v (%d moved off); restarted and ready in %v (%d moved back); %d failed calls meanwhile: %s",
			i, on, took.Round(time.Millisecond), exited.Round(time.Millisecond), movedOff, back.Round(time.Millisecond), movedBack, failed1-failed0, errs.take())
		if movedOff != on && c.leasesLapsed() == "" {
			t.Errorf("node %d: %d of its %d grains moved off while it was down", i, movedOff, on)
		}
	}
	close(stop)
	wait()
	stopped = true
	calls, acked, failed := failSummary(gs)
	t.Logf("in all: %d calls, %d acknowledged, %d failed", calls, acked, failed)
	c.checkLive(gs)
	acts := c.checkActivations(5 * time.Millisecond)
	n := 0
	for _, v := range acts {
		n += v
	}
	t.Logf("%d activations of %d grains", n, len(gs))
	for i := 1; i <= 3; i++ {
		c.stop(i)
	}
	c.checkStored(gs)
}
