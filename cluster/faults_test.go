package cluster_test

// Fault injection for the tests of cluster's promises, on real nodes: a TCP
// relay in front of a node (to cut its connections, or to see the system
// envelopes it exchanges) and nodes that can be killed, so that their record
// stays in etcd until its lease expires. clustertest's nodes cannot do
// either yet, so these nodes are started by hand on an embedded etcd.

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/cluster/etcd"
	"github.com/guildkit/guild/wire"
)

// sysEnvelope is a KIND_SYSTEM envelope seen by a proxy.
type sysEnvelope struct {
	op             string
	target, sender actor.PID
	code           uint32
	dropped        bool // swallowed by the proxy (setDrop), never delivered
}

// proxy relays TCP connections to one node's listener, frame by frame.
// The node advertises the proxy's address, so every connection another
// node dials to it passes through the proxy, which can cut them all (both
// ends see the connection drop) and records the system envelopes they
// carry, in both directions.
type proxy struct {
	ln net.Listener
	wg sync.WaitGroup

	mu       sync.Mutex
	target   string // the node's own listener; set once the node runs
	conns    map[net.Conn]struct{}
	closed   bool
	sys      []sysEnvelope
	drop     bool // swallow every frame instead of relaying it
	refuse   bool // close new connections at once
	accepted int  // connections relayed since the start
}

func newProxy(t testing.TB) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return &proxy{ln: ln, conns: make(map[net.Conn]struct{})}
}

// start relays accepted connections to target.
func (p *proxy) start(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
	p.wg.Add(1)
	go p.acceptLoop()
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		target, refuse := p.target, p.refuse
		p.mu.Unlock()
		if refuse {
			_ = in.Close()
			continue
		}
		out, err := net.DialTimeout("tcp", target, 2*time.Second)
		if err != nil {
			_ = in.Close()
			continue
		}
		if !p.track(in, out) {
			return
		}
		p.mu.Lock()
		p.accepted++
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pump(in, out)
		go p.pump(out, in)
	}
}

func (p *proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		for _, c := range cs {
			_ = c.Close()
		}
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

// pump copies frames from src to dst until either fails, then closes
// both. The first frame each way is the hello; the others are envelopes.
func (p *proxy) pump(src, dst net.Conn) {
	defer p.wg.Done()
	defer func() {
		_ = src.Close()
		_ = dst.Close()
	}()
	fr := wire.NewFrameReader(src, 0)
	var env wire.Envelope
	buf := []byte(nil)
	for first := true; ; first = false {
		body, err := fr.Next()
		if err != nil {
			return
		}
		p.mu.Lock()
		drop := p.drop && !first
		if !first && len(body) > 0 && env.Unmarshal(body) == nil && env.Kind == wire.KindSystem {
			p.sys = append(p.sys, sysEnvelope{
				op:      env.PayloadType,
				target:  actor.PID{Node: actor.Addr(env.Target.Node), Serial: env.Target.Serial},
				sender:  actor.PID{Node: actor.Addr(env.Sender.Node), Serial: env.Sender.Serial},
				code:    env.ErrorCode,
				dropped: drop,
			})
		}
		p.mu.Unlock()
		if drop {
			continue // lost in the network
		}
		buf = wire.AppendFrame(buf[:0], body)
		if _, err := dst.Write(buf); err != nil {
			return
		}
	}
}

// cut closes every connection relayed so far: both nodes see it drop. New
// connections are relayed again.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

// setDrop makes the proxy swallow (on) or relay (off) the frames of the
// connections it relays, as a network that loses packets while the
// connection stays up.
func (p *proxy) setDrop(on bool) {
	p.mu.Lock()
	p.drop = on
	p.mu.Unlock()
}

// setRefuse makes the proxy close (on) or relay (off) new connections, as
// an unreachable host.
func (p *proxy) setRefuse(on bool) {
	p.mu.Lock()
	p.refuse = on
	p.mu.Unlock()
}

// seen returns the system envelopes of operation op relayed so far.
func (p *proxy) seen(op string) []sysEnvelope {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(p.sys), func(e sysEnvelope) bool { return e.op != op })
}

// close stops relaying: the listener and every connection close, so the
// node can no longer be reached. Safe to call twice.
func (p *proxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	_ = p.ln.Close()
	p.wg.Wait()
}

// faultNode is a cluster node started by hand, behind a proxy, with its
// own membership.
type faultNode struct {
	*cluster.Node
	addr actor.Addr
	m    *etcd.Membership
	px   *proxy
	dead bool
}

// nodeOpts configures a faultNode.
type nodeOpts struct {
	ttl  time.Duration // etcd lease TTL; default 1s
	link time.Duration // NodeConfig.WatchLinkTimeout; default the package's
}

// faultCluster is an embedded etcd and faultNodes.
type faultCluster struct {
	t     *testing.T
	etcd  *etcd.Embedded
	nodes []*faultNode
}

// startFaultCluster starts an embedded etcd and n nodes, and waits until
// every node sees every other.
func startFaultCluster(t *testing.T, n int, o nodeOpts) *faultCluster {
	t.Helper()
	e, err := etcd.StartEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	fc := &faultCluster{t: t, etcd: e}
	for range n {
		fc.add(o)
	}
	fc.waitView()
	return fc
}

// add starts one more node; the caller waits for the views (waitView).
func (fc *faultCluster) add(o nodeOpts) *faultNode {
	t := fc.t
	t.Helper()
	if o.ttl == 0 {
		o.ttl = time.Second
	}
	addr := actor.MustAddr(1, 1, len(fc.nodes)+1)
	m, err := etcd.New(etcd.Config{Endpoints: fc.etcd.Endpoints(), TTL: o.ttl, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	px := newProxy(t)
	n, err := cluster.Start(context.Background(), cluster.NodeConfig{
		Actor:            actor.Config{Addr: addr, Logger: quiet},
		Listen:           "127.0.0.1:0",
		Advertise:        px.addr(),
		Membership:       m,
		Names:            m.Names(),
		Logger:           quiet,
		WatchLinkTimeout: o.link,
	})
	if err != nil {
		px.close()
		_ = m.Close()
		t.Fatal(err)
	}
	px.start(n.Endpoint())
	fn := &faultNode{Node: n, addr: addr, m: m, px: px}
	t.Cleanup(func() {
		if fn.dead {
			// Its etcd client is closed: fail the leave fast rather than
			// let the client retry it for seconds.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
			_ = m.Leave(ctx)
			cancel()
		}
		errN := n.Close()
		errM := m.Close()
		px.close()
		if !fn.dead {
			if err := errors.Join(errN, errM); err != nil {
				t.Errorf("close node %v: %v", addr, err)
			}
		}
	})
	fc.nodes = append(fc.nodes, fn)
	return fn
}

// node returns the actor node of node i.
func (fc *faultCluster) node(i int) *actor.Node { return fc.nodes[i].Actor() }

// waitView waits until every live node's view holds exactly the live nodes.
func (fc *faultCluster) waitView() {
	fc.t.Helper()
	var want []actor.Addr
	for _, n := range fc.nodes {
		if !n.dead {
			want = append(want, n.addr)
		}
	}
	waitFor(fc.t, 10*time.Second, "the views to hold the live nodes", func() bool {
		for _, n := range fc.nodes {
			if n.dead {
				continue
			}
			var got []actor.Addr
			for _, m := range n.m.Members() {
				got = append(got, m.Addr)
			}
			if !slices.Equal(got, want) {
				return false
			}
		}
		return true
	})
}

// cutAll cuts the connections of every node's proxy.
func (fc *faultCluster) cutAll() {
	for _, n := range fc.nodes {
		if !n.dead {
			n.px.cut()
		}
	}
}

// accepted returns how many connections the proxies have relayed.
func (fc *faultCluster) accepted() int {
	total := 0
	for _, n := range fc.nodes {
		n.px.mu.Lock()
		total += n.px.accepted
		n.px.mu.Unlock()
	}
	return total
}

// setDrop makes every proxy swallow (on) or relay (off) frames.
func (fc *faultCluster) setDrop(on bool) {
	for _, n := range fc.nodes {
		n.px.setDrop(on)
	}
}

// seen returns the system envelopes of operation op that every proxy
// relayed so far.
func (fc *faultCluster) seen(op string) []sysEnvelope {
	var out []sysEnvelope
	for _, n := range fc.nodes {
		out = append(out, n.px.seen(op)...)
	}
	return out
}

// kill makes n vanish at once, as a crashed process does: its connections
// drop, nobody can connect to it any more, and its keepalives stop, so its
// membership record and names stay in etcd until its lease expires (its
// TTL). Its actors are closed without telling anyone.
func (n *faultNode) kill() {
	n.dead = true
	_ = cluster.CloseTransport(n.Node) // nothing leaves any more
	n.px.close()                       // peers' connections drop; new dials are refused
	_ = n.m.Client().Close()           // no keepalive, no leave: the record outlives the node
	_ = n.Actor().Close()
}
