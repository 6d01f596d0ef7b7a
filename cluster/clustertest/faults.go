package clustertest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster/clustertest/faultnet"
	"github.com/guildkit/guild/transport/nats/natsembed"
)

// The fault methods below are safe to call from any goroutine (a chaos
// loop, say), but an invalid argument fails the test with t.Fatalf, which
// must happen on the test goroutine; Restart must be called from it.

// Partition splits the nodes into groups: from now on, nodes of different
// groups exchange no byte, while nodes of one group, and every node and
// etcd, talk as before. Nodes that no group lists form one more group
// together, so c.Partition([]int{0}) isolates node 0 from the rest. A
// second Partition replaces the first; Heal ends it. See the package doc
// for what a cut link does to the connections on it and to new ones. A
// node the Cluster did not start (one a test started by hand) is in no
// group: it still reaches every node.
func (c *Cluster) Partition(groups ...[]int) {
	c.t.Helper()
	c.checkFault("Partition")
	group := make([]int, len(c.Addrs))
	for i := range group {
		group[i] = len(groups)
	}
	seen := make(map[int]bool)
	for g, nodes := range groups {
		for _, i := range nodes {
			c.check(i)
			if seen[i] {
				c.t.Fatalf("clustertest: Partition: node %d is in two groups", i)
			}
			seen[i] = true
			group[i] = g
		}
	}
	c.mu.Lock()
	c.group = group
	c.applyLocked()
	c.mu.Unlock()
	c.logf("fault: partition %s: links between groups blackholed", c.describeGroups(group))
}

// Heal ends the partition: every link it cut passes bytes again, and what
// the link held is delivered. It does not resume paused nodes, restore
// etcd or revive killed nodes.
func (c *Cluster) Heal() {
	c.t.Helper()
	c.checkFault("Heal")
	c.mu.Lock()
	clear(c.group)
	c.applyLocked()
	c.mu.Unlock()
	c.logf("fault: heal: the partition is over")
}

// Pause freezes node i's network, as if its process were stopped: its
// links to every node and to etcd are blackholed until Resume(i). Its lease
// expires within the TTL, so the other nodes see it leave. Node i's
// goroutines keep running in the test process. Pausing a paused node does
// nothing; pausing a killed one fails t.
func (c *Cluster) Pause(i int) {
	c.t.Helper()
	c.checkFault("Pause")
	c.check(i)
	c.mu.Lock()
	if c.killed[i] != nil {
		c.mu.Unlock()
		c.t.Fatalf("clustertest: Pause(%d): node %d is killed", i, i)
	}
	c.paused[i] = true
	c.applyLocked()
	c.mu.Unlock()
	c.applyOthers()
	c.logf("fault: pause node %d (%v): its links to every node and to etcd are blackholed; its lease expires within %v", i, c.Addrs[i], c.TTL)
}

// Resume ends Pause(i): node i's links pass bytes again, so what it and
// others sent meanwhile is delivered late, and if its lease expired its
// keeper joins again with a new one. Resuming a node that is not paused
// does nothing.
func (c *Cluster) Resume(i int) {
	c.t.Helper()
	c.checkFault("Resume")
	c.check(i)
	c.mu.Lock()
	was := c.paused[i]
	c.paused[i] = false
	c.applyLocked()
	c.mu.Unlock()
	c.applyOthers()
	if was {
		c.logf("fault: resume node %d (%v): its links pass again", i, c.Addrs[i])
	}
}

// Kill makes node i disappear as if its process had been killed: every
// connection to or from it is reset at once, new ones are reset too, and
// its etcd connection is cut before anything else, so its lease is not
// revoked: the others see it leave only when the lease expires, within the
// TTL. Kill then closes node i and its membership in the background (the
// Leave in its Close fails after a few seconds, without reaching etcd) and
// returns at once; Restart and the cleanup wait for that close. Killing a
// killed node fails t. Use Restart to bring node i back.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	c.checkFault("Kill")
	c.check(i)
	c.mu.Lock()
	if c.killed[i] != nil {
		c.mu.Unlock()
		c.t.Fatalf("clustertest: Kill(%d): node %d is killed already", i, i)
	}
	k := &killing{done: make(chan struct{})}
	c.killed[i] = k
	c.paused[i] = false
	c.applyLocked()
	n, m, hm := c.Nodes[i], c.Members[i], c.harborMembers[i]
	c.bg.Add(1)
	c.mu.Unlock()
	c.applyOthers()
	c.logf("fault: kill node %d (%v): its connections are reset and its etcd link is cut; its lease expires within %v", i, c.Addrs[i], c.TTL)
	go func() {
		defer c.bg.Done()
		defer close(k.done)
		k.err = errors.Join(n.Close(), m.Close())
		if hm != nil {
			k.err = errors.Join(k.err, hm.Close())
		}
	}()
}

// Restart starts a new node i in place of the old one: same address,
// options and advertised endpoint (its proxy stays; a new listener is
// behind it), with a new membership. It waits until every live node's view
// holds the new node and the new node's view holds every live node, and
// fails t (t.Fatal) on any error. The old node may have been killed (Kill:
// Restart waits until etcd drops its record, within the TTL), closed by the
// test, or still be running, in which case Restart closes it gracefully
// first; a paused node is killed first. Call it from the test goroutine: it
// replaces c.Nodes[i] and c.Members[i].
func (c *Cluster) Restart(t testing.TB, i int) {
	t.Helper()
	c.check(i)
	c.mu.Lock()
	paused := c.paused[i]
	c.mu.Unlock()
	if paused {
		c.Kill(i)
	}
	c.mu.Lock()
	k := c.killed[i]
	c.mu.Unlock()
	if k != nil {
		select {
		case <-k.done:
		case <-time.After(WaitTimeout):
			t.Fatalf("clustertest: Restart(%d): the killed node has not closed after %v", i, WaitTimeout)
		}
		c.logf("restart node %d (%v): the killed node is closed (%v)", i, c.Addrs[i], k.err)
	} else {
		err := errors.Join(c.Nodes[i].Close(), c.Members[i].Close())
		if hm := c.HarborMembership(i); hm != nil {
			err = errors.Join(err, hm.Close())
		}
		c.logf("restart node %d (%v): the old node is closed (%v)", i, c.Addrs[i], err)
	}
	if len(c.nodeProxies) > i && !c.onNATS {
		c.nodeProxies[i].SetTarget("") // new connections wait for the new node
	}
	c.mu.Lock()
	c.killed[i] = nil
	c.applyLocked()
	c.mu.Unlock()
	c.applyOthers()
	start := time.Now()
	// A killed node's record lives until its lease expires; the new node's
	// Join waits for it.
	n, m, err := c.startNode(i, 2*c.TTL+2*time.Second)
	if err != nil {
		t.Fatalf("clustertest: Restart(%d): %v", i, err)
	}
	c.mu.Lock() // Kill, perhaps on another goroutine, reads them under mu
	c.Nodes[i], c.Members[i] = n, m
	c.mu.Unlock()
	c.logf("restart node %d (%v): joined after %v", i, c.Addrs[i], time.Since(start).Round(time.Millisecond))
	c.WaitFor(t, fmt.Sprintf("node %d and the live nodes to see each other after its restart", i), func() bool {
		if !c.live(i) {
			return false
		}
		for j := range c.Nodes {
			if j != i && c.live(j) && (!c.holds(j, c.Addrs[i]) || !c.holds(i, c.Addrs[j])) {
				return false
			}
		}
		return true
	})
}

// BrokerStop stops the NATS server the nodes talk through, as a broker
// crash or restart looks to them: every node's connection to it closes,
// so each node reports all its peers lost at once (requests waiting on
// them fail) and its sends fail fast until BrokerStart. etcd is untouched,
// so the views do not change. On the TCP mesh there is no broker: the
// test is skipped.
func (c *Cluster) BrokerStop() {
	c.t.Helper()
	c.checkFault("BrokerStop")
	s := c.natsServer()
	if s == nil {
		c.t.Skip("clustertest: BrokerStop needs a broker transport (GUILD_TEST_TRANSPORT=nats or Options.Transport nats.Config)")
	}
	c.natsAddr = s.Addr()
	s.Close()
	c.logf("fault: broker stopped: the NATS server on %s is down", c.natsAddr)
}

// BrokerStart starts the NATS server again on the address it had, after
// BrokerStop: the nodes reconnect by themselves (within about a second)
// and reach each other again. It fails t if the address cannot be taken
// again within WaitTimeout.
func (c *Cluster) BrokerStart() {
	c.t.Helper()
	c.checkFault("BrokerStart")
	if c.natsAddr == "" {
		c.t.Fatal("clustertest: BrokerStart without BrokerStop")
	}
	var err error
	for deadline := time.Now().Add(WaitTimeout); ; {
		var s *natsembed.Server
		if s, err = natsembed.Start(c.natsAddr); err == nil {
			c.mu.Lock()
			c.nats = s
			c.mu.Unlock()
			break
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("clustertest: BrokerStart: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // the port is released a moment after the close
	}
	c.logf("fault: broker started again on %s", c.natsAddr)
	c.natsAddr = ""
}

// EtcdOutage blackholes every node's etcd connection, existing and new,
// until EtcdRestore: etcd requests, watches and lease keepalives stall. The
// etcd server itself keeps running, so a lease whose keepalives stay away
// longer than the TTL expires.
func (c *Cluster) EtcdOutage() {
	c.t.Helper()
	c.checkFault("EtcdOutage")
	c.mu.Lock()
	c.etcdDown = true
	c.applyLocked()
	c.mu.Unlock()
	c.logf("fault: etcd outage: every node's etcd link is blackholed (leases expire after %v without keepalives)", c.TTL)
}

// EtcdRestore ends EtcdOutage: what the nodes sent meanwhile reaches etcd,
// and watches deliver what they missed. A paused node's etcd link stays
// blackholed.
func (c *Cluster) EtcdRestore() {
	c.t.Helper()
	c.checkFault("EtcdRestore")
	c.mu.Lock()
	c.etcdDown = false
	c.applyLocked()
	c.mu.Unlock()
	c.logf("fault: etcd restored")
}

// checkFault fails the test if the cluster has no fault proxies.
func (c *Cluster) checkFault(fault string) {
	c.t.Helper()
	if c.opts.Direct {
		c.t.Fatalf("clustertest: %s: the cluster was started with Options.Direct, without fault proxies", fault)
	}
	if c.onNATS && (fault == "Partition" || fault == "Heal") {
		c.t.Skipf("clustertest: %s cuts links between nodes; on NATS every node talks through the broker, with no link of its own to another node to cut", fault)
	}
	switch fault {
	case "Partition", "Heal", "Pause", "Resume", "Kill":
		if len(c.nodeProxies) == 0 && len(c.Addrs) > 0 {
			c.t.Fatalf("clustertest: %s: the cluster's transport (%T) runs without fault proxies between its nodes", fault, c.opts.Transport)
		}
	}
}

// check fails the test if i is not a node index.
func (c *Cluster) check(i int) {
	c.t.Helper()
	if i < 0 || i >= len(c.Addrs) {
		c.t.Fatalf("clustertest: no node %d: the cluster has %d nodes", i, len(c.Addrs))
	}
}

// linkMode is the mode of the links between nodes i and j. c.mu must be
// held.
func (c *Cluster) linkMode(i, j int) faultnet.Mode {
	switch {
	case c.killed[i] != nil || c.killed[j] != nil:
		return faultnet.Reset
	case c.paused[i] || c.paused[j] || c.group[i] != c.group[j]:
		return faultnet.Blackhole
	}
	return faultnet.Pass
}

// nodeMode is the mode of every link of node i to outside the cluster:
// its etcd link before an outage, and connections to it from peers it does
// not know. c.mu must be held.
func (c *Cluster) nodeMode(i int) faultnet.Mode {
	switch {
	case c.killed[i] != nil:
		return faultnet.Reset
	case c.paused[i]:
		return faultnet.Blackhole
	}
	return faultnet.Pass
}

// applyLocked sets every proxy's modes from the fault state, etcd proxies
// first (so a killed node loses etcd before its other links). c.mu must be
// held; the proxies take their own locks and call nothing back.
func (c *Cluster) applyLocked() {
	if c.grp != nil {
		for i, a := range c.Addrs {
			c.grp.set(a, c.nodeMode(i))
		}
	}
	for i, p := range slices.Concat(c.etcdProxies, c.harborProxies) {
		if p == nil {
			continue
		}
		m := c.nodeMode(i % len(c.Addrs))
		if m == faultnet.Pass && c.etcdDown {
			m = faultnet.Blackhole
		}
		p.SetDefault(m)
	}
	for j, p := range c.nodeProxies {
		c.applyNodeLocked(j, p)
	}
	for j, ps := range c.frontProxies {
		for _, p := range ps {
			c.applyNodeLocked(j, p)
		}
	}
}

// applyNodeLocked sets the modes of p, a proxy in front of a listener of
// node j. c.mu must be held.
func (c *Cluster) applyNodeLocked(j int, p *faultnet.Proxy) {
	p.SetDefault(c.nodeMode(j))
	for i, a := range c.Addrs {
		if i != j {
			p.Set(a.String(), c.linkMode(i, j))
		}
	}
	if c.grp != nil {
		for a, m := range c.grp.others(c) {
			p.Set(a.String(), max(m, c.nodeMode(j))) // Pass < Blackhole < Reset
		}
	}
}

// applyOthers applies, to the proxies of the other clusters of a
// StartClusters group, the modes of this one's nodes (a node killed here
// must be cut off from them too: its goroutines still run until its
// background close ends). c.mu must not be held: it takes each other
// cluster's mu in turn, never two at once.
func (c *Cluster) applyOthers() {
	if c.grp == nil {
		return
	}
	for _, o := range c.grp.all {
		if o == c {
			continue
		}
		o.mu.Lock()
		o.applyLocked()
		o.mu.Unlock()
	}
}

// FrontProxy puts a fault proxy in front of another listener of node i
// than its transport's, such as its stream host's (package stream), so
// that the faults act on that listener's connections as on the mesh's:
// Kill resets them, Pause and Partition blackhole them. The proxy learns
// which node dialled from the connection's first bytes, a hello of the
// mesh's form (the TCP mesh's, magic "GUILD1", or a stream connection's,
// "GSTRM1"). Advertise the proxy's Addr, point it at the listener with
// SetTarget (again after a Restart), and leave its closing to the
// Cluster's cleanup. Call it from the test goroutine; it fails t on a
// cluster started with Options.Direct.
func (c *Cluster) FrontProxy(i int, name string) *faultnet.Proxy {
	c.t.Helper()
	c.check(i)
	if c.opts.Direct {
		c.t.Fatalf("clustertest: FrontProxy: the cluster was started with Options.Direct, without fault proxies")
	}
	p, err := faultnet.Listen(faultnet.Config{
		Name:     fmt.Sprintf("%s proxy of node %d (%v)", name, i, c.Addrs[i]),
		Identify: helloPeer,
		Logf:     c.proxyLogf,
	})
	if err != nil {
		c.t.Fatalf("clustertest: FrontProxy(%d): %v", i, err)
	}
	c.mu.Lock()
	if c.frontProxies == nil {
		c.frontProxies = make([][]*faultnet.Proxy, len(c.Addrs))
	}
	c.frontProxies[i] = append(c.frontProxies[i], p)
	c.applyNodeLocked(i, p)
	c.mu.Unlock()
	return p
}

// describeGroups formats a partition: "{0 1} | {2}", with addresses.
func (c *Cluster) describeGroups(group []int) string {
	byGroup := make(map[int][]string)
	last := 0
	for i, g := range group {
		byGroup[g] = append(byGroup[g], fmt.Sprintf("%d(%v)", i, c.Addrs[i]))
		last = max(last, g)
	}
	var parts []string
	for g := range last + 1 {
		if len(byGroup[g]) > 0 {
			parts = append(parts, "{"+strings.Join(byGroup[g], " ")+"}")
		}
	}
	return strings.Join(parts, " | ")
}

// stamp is the time of day in the fault log.
func stamp() string { return time.Now().Format("15:04:05.000") }

// logf logs a line of the fault history with a timestamp.
func (c *Cluster) logf(format string, args ...any) {
	c.t.Helper()
	c.t.Logf("%s clustertest: "+format, append([]any{stamp()}, args...)...)
}

// proxyLogf is the proxies' Logf.
func (c *Cluster) proxyLogf(format string, args ...any) {
	c.t.Logf("%s "+format, append([]any{stamp()}, args...)...)
}

// The transport's hello (transport/tcp/PROTOCOL.md): a frame of 12 to 64
// bytes, the first 12 being the magic, the version, the flags and the
// sender's address.
const (
	helloMagic = "GUILD1"
	// streamHelloMagic starts the hello of package stream's connections,
	// which has the same form.
	streamHelloMagic = "GSTRM1"
	helloSize        = 12
	maxHelloSize     = 64
)

// helloPeer is the node proxies' faultnet.Config.Identify: it reads the
// dialler's hello and names the peer by its address (actor.Addr.String).
func helloPeer(r io.Reader) (string, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return "", fmt.Errorf("reading hello: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < helloSize || n > maxHelloSize {
		return "", fmt.Errorf("not a guild hello: a frame of %d bytes", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return "", fmt.Errorf("reading hello: %w", err)
	}
	if m := string(body[:len(helloMagic)]); m != helloMagic && m != streamHelloMagic {
		return "", fmt.Errorf("not a guild hello: magic %q", body[:len(helloMagic)])
	}
	return actor.Addr(binary.BigEndian.Uint32(body[8:12])).String(), nil
}
