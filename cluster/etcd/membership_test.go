package etcd

import (
	"crypto/tls"
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
)

func TestJoinLeaveUpdate(t *testing.T) {
	e := startEtcd(t)
	ctx := ctxT(t)
	const ttl = 5 * time.Second
	addrs := []actor.Addr{actor.MustAddr(1, 2, 1), actor.MustAddr(1, 2, 2), actor.MustAddr(1, 3, 1)}
	var ms []*Membership
	var recs []*recorder
	for range addrs {
		m := newMembership(t, e, ttl)
		r := &recorder{}
		m.Subscribe(r.add)
		ms, recs = append(ms, m), append(recs, r)
	}
	for i, m := range ms {
		if err := m.Join(ctx, cluster.Member{Addr: addrs[i], Endpoint: "127.0.0.1:1", Available: true, Services: []string{"chat"}}); err != nil {
			t.Fatal(err)
		}
	}
	d := waitFor(t, 5*time.Second, "all views have 3 members", func() bool {
		for _, m := range ms {
			if len(m.Members()) != 3 {
				return false
			}
		}
		return true
	})
	t.Logf("3 views converged in %v", d)
	waitFor(t, 5*time.Second, "every subscriber sees 3 joins", func() bool {
		for _, r := range recs {
			for _, a := range addrs {
				if r.count(cluster.Join, a) != 1 {
					return false
				}
			}
		}
		return true
	})
	got, _ := find(ms[0].Members(), addrs[2])
	if got.Endpoint != "127.0.0.1:1" || !got.Available || len(got.Services) != 1 || got.Started.IsZero() {
		t.Fatalf("record seen by another node: %+v", got)
	}
	if err := ms[0].Join(ctx, cluster.Member{Addr: addrs[0]}); !errors.Is(err, cluster.ErrAlreadyJoined) {
		t.Fatalf("second Join: %v; want ErrAlreadyJoined", err)
	}

	// Update: member 1 becomes unavailable; the others see it and the
	// Selector skips it.
	if err := ms[1].Update(ctx, cluster.Member{Addr: addrs[0]}); !errors.Is(err, cluster.ErrBadMember) {
		t.Fatalf("Update of another address: %v; want ErrBadMember", err)
	}
	if err := ms[1].Update(ctx, cluster.Member{Addr: addrs[1], Endpoint: "127.0.0.1:1", Available: false}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the update reaches node 0", func() bool {
		return recs[0].count(cluster.Update, addrs[1]) == 1
	})
	var sel cluster.Selector
	for range 20 {
		m, err := sel.Pick(ms[0].Members(), addrs[0], 2, cluster.RoundRobin, "")
		if err != nil {
			t.Fatal(err)
		}
		if m.Addr == addrs[1] {
			t.Fatal("Selector picked the unavailable member")
		}
	}

	// Graceful leave: gone from the other views well under the TTL.
	start := time.Now()
	if err := ms[2].Leave(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ttl/5, "the leave reaches nodes 0 and 1", func() bool {
		return !has(ms[0].Members(), addrs[2]) && !has(ms[1].Members(), addrs[2]) &&
			recs[0].count(cluster.Leave, addrs[2]) == 1 && recs[1].count(cluster.Leave, addrs[2]) == 1
	})
	t.Logf("graceful leave seen by the others in %v (TTL %v)", time.Since(start), ttl)
	if err := ms[2].Leave(ctx); err != nil {
		t.Fatalf("second Leave: %v", err)
	}
	if err := ms[2].Update(ctx, cluster.Member{Addr: addrs[2]}); !errors.Is(err, cluster.ErrNotJoined) {
		t.Fatalf("Update after Leave: %v; want ErrNotJoined", err)
	}
	// Join again after Leave works.
	if err := ms[2].Join(ctx, cluster.Member{Addr: addrs[2]}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the rejoin reaches node 0", func() bool { return has(ms[0].Members(), addrs[2]) })

	// Events arrive in order per member: join, then update, for node 1.
	for _, r := range recs {
		var kinds []cluster.EventKind
		for _, ev := range r.events() {
			if ev.Member.Addr == addrs[1] {
				kinds = append(kinds, ev.Kind)
			}
		}
		if len(kinds) != 2 || kinds[0] != cluster.Join || kinds[1] != cluster.Update {
			t.Fatalf("events for %v: %v; want join, update", addrs[1], kinds)
		}
	}

	// Close leaves.
	if err := ms[1].Close(); err != nil {
		t.Fatal(err)
	}
	if err := ms[1].Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := ms[1].Join(ctx, cluster.Member{Addr: addrs[1]}); !errors.Is(err, cluster.ErrClosed) {
		t.Fatalf("Join after Close: %v; want ErrClosed", err)
	}
	waitFor(t, ttl/5, "Close removes node 1 at once", func() bool { return !has(ms[0].Members(), addrs[1]) })
}

func TestAddrInUse(t *testing.T) {
	e := startEtcd(t)
	ctx := ctxT(t)
	a, b := newMembership(t, e, time.Second), newMembership(t, e, time.Second)
	addr := actor.MustAddr(0, 1, 1)
	if err := a.Join(ctx, cluster.Member{Addr: addr}); err != nil {
		t.Fatal(err)
	}
	if err := b.Join(ctx, cluster.Member{Addr: addr}); !errors.Is(err, ErrAddrInUse) {
		t.Fatalf("Join of a taken address: %v; want ErrAddrInUse", err)
	}
	if err := a.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Join(ctx, cluster.Member{Addr: addr}); err != nil {
		t.Fatalf("Join after the holder left: %v", err)
	}
}

// TestJoinWaitsForTheHolder: with JoinWait, Join keeps trying while the
// address is held, and succeeds once the holder is gone.
func TestJoinWaitsForTheHolder(t *testing.T) {
	e := startEtcd(t)
	ctx := ctxT(t)
	a := newMembership(t, e, time.Second)
	b, err := New(Config{Endpoints: e.Endpoints(), TTL: time.Second, DialTimeout: 2 * time.Second, JoinWait: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	addr := actor.MustAddr(0, 1, 1)
	if err := a.Join(ctx, cluster.Member{Addr: addr}); err != nil {
		t.Fatal(err)
	}
	left := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		left <- a.Leave(ctx)
	}()
	start := time.Now()
	if err := b.Join(ctx, cluster.Member{Addr: addr}); err != nil {
		t.Fatalf("Join with JoinWait: %v", err)
	}
	if err := <-left; err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 250*time.Millisecond {
		t.Fatalf("Join returned after %v, before the holder left", waited)
	}
}

func TestCrashedMemberExpires(t *testing.T) {
	e := startEtcd(t)
	ctx := ctxT(t)
	const ttl = time.Second
	watcher := newMembership(t, e, ttl)
	victim := newMembership(t, e, ttl)
	var r recorder
	watcher.Subscribe(r.add)
	addr := actor.MustAddr(1, 1, 7)
	if err := victim.Join(ctx, cluster.Member{Addr: addr, Available: true}); err != nil {
		t.Fatal(err)
	}
	pid := actor.PID{Node: addr, Serial: 1}
	if err := victim.Names().Register(ctx, "boss", pid); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the victim joins", func() bool { return has(watcher.Members(), addr) })
	// The victim stays while its keepalive runs, well past the TTL.
	time.Sleep(2 * ttl)
	if !has(watcher.Members(), addr) {
		t.Fatal("a live member expired")
	}
	start := time.Now()
	victim.crash()
	// etcd checks expiry every 500 ms; the lease may have just been renewed.
	waitFor(t, ttl+2*time.Second, "the crashed member expires", func() bool {
		return !has(watcher.Members(), addr) && r.count(cluster.Leave, addr) == 1
	})
	t.Logf("crashed member gone after %v (TTL %v)", time.Since(start), ttl)
	waitFor(t, time.Second, "its name is released", func() bool {
		_, err := watcher.Names().Lookup(ctx, "boss")
		return errors.Is(err, actor.ErrNameNotFound)
	})
}

// TestLeaseLostRejoins revokes a node's lease behind its back, as etcd does
// when it cannot reach the node for longer than the TTL: the keeper grants a
// new lease, puts the record again and takes its names back.
func TestLeaseLostRejoins(t *testing.T) {
	e := startEtcd(t)
	ctx := ctxT(t)
	m := newMembership(t, e, time.Second)
	other := newMembership(t, e, time.Second)
	addr := actor.MustAddr(2, 2, 2)
	if err := m.Join(ctx, cluster.Member{Addr: addr}); err != nil {
		t.Fatal(err)
	}
	pid := actor.PID{Node: addr, Serial: 9}
	if err := m.Names().Register(ctx, "svc", pid); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a renewal of the first lease", func() bool { return m.Stats().Renewals >= 1 })
	var r recorder
	other.Subscribe(r.add)
	waitFor(t, 5*time.Second, "join seen", func() bool { return r.count(cluster.Join, addr) == 1 })

	m.mu.Lock()
	old := m.sess.lease
	m.mu.Unlock()
	if _, err := other.cli.Revoke(ctx, old); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the node leaves and joins again", func() bool {
		return r.count(cluster.Leave, addr) == 1 && r.count(cluster.Join, addr) == 2
	})
	waitFor(t, 5*time.Second, "its name is back", func() bool {
		got, err := other.Names().Lookup(ctx, "svc")
		return err == nil && got == pid
	})
	if err := m.sem2(func() error {
		if m.sess.lease == old {
			return errors.New("lease not replaced")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The stats count both leases' renewals, and the two grants.
	before := m.Stats()
	if before.Grants != 2 || before.Renewals < 1 || before.RenewTime <= 0 {
		t.Fatalf("stats after the re-grant: %+v", before)
	}
	waitFor(t, 5*time.Second, "a renewal of the new lease", func() bool { return m.Stats().Renewals > before.Renewals })
}

// sem2 runs f holding sem, where session fields may be read.
func (m *Membership) sem2(f func() error) error {
	m.sem <- struct{}{}
	defer m.release()
	return f()
}

// TestResync checks that a fresh read replaces the view and publishes only
// the differences.
func TestResync(t *testing.T) {
	e := startEtcd(t)
	ctx := ctxT(t)
	m := newMembership(t, e, time.Second)
	put := func(mem cluster.Member) {
		b, _ := encodeMember(mem)
		if _, err := m.cli.Put(ctx, m.memberKey(mem.Addr), string(b)); err != nil {
			t.Fatal(err)
		}
	}
	a, b, c := actor.MustAddr(0, 1, 1), actor.MustAddr(0, 1, 2), actor.MustAddr(0, 1, 3)
	put(cluster.Member{Addr: a})
	put(cluster.Member{Addr: b})
	waitFor(t, 5*time.Second, "two members", func() bool { return len(m.Members()) == 2 })
	var r recorder
	m.Subscribe(r.add)
	waitFor(t, time.Second, "initial joins", func() bool { return len(r.events()) == 2 })

	// Change the store without the watch seeing it, then resync from it.
	enc := func(mem cluster.Member) []byte { v, _ := encodeMember(mem); return v }
	m.resetMembers(kvs(m, map[actor.Addr][]byte{
		b: enc(cluster.Member{Addr: b, Available: true}),
		c: enc(cluster.Member{Addr: c}),
	}))
	waitFor(t, time.Second, "three more events", func() bool { return len(r.events()) == 5 })
	evs := r.events()[2:]
	want := []struct {
		k cluster.EventKind
		a actor.Addr
	}{{cluster.Leave, a}, {cluster.Update, b}, {cluster.Join, c}}
	for i, w := range want {
		if evs[i].Kind != w.k || evs[i].Member.Addr != w.a {
			t.Fatalf("resync event %d = %v %v; want %v %v", i, evs[i].Kind, evs[i].Member.Addr, w.k, w.a)
		}
	}
}

func TestConfig(t *testing.T) {
	bad := []Config{
		{},
		{Endpoints: []string{""}},
		{Endpoints: []string{"x"}, Prefix: "guild"},
		{Endpoints: []string{"x"}, Prefix: "/"},
		{Endpoints: []string{"x"}, TTL: 500 * time.Millisecond},
		{Endpoints: []string{"x"}, TTL: -time.Second},
		{Endpoints: []string{"x"}, DialTimeout: -1},
		{Endpoints: []string{"x"}, Password: "pw"},
		{Endpoints: []string{"x"}, Username: "guild"},
		{Endpoints: []string{"http://a:2379"}, TLS: &tls.Config{}},
		{Endpoints: []string{"https://a:2379", "http://b:2379"}},
	}
	for _, c := range bad {
		if err := c.Validate(); !errors.Is(err, ErrBadConfig) {
			t.Errorf("Validate(%+v) = %v; want ErrBadConfig", c, err)
		}
		if _, err := New(c); !errors.Is(err, ErrBadConfig) {
			t.Errorf("New(%+v) = %v; want ErrBadConfig", c, err)
		}
	}
	c := Config{Endpoints: []string{"x"}, Prefix: "/game/", TTL: 1200 * time.Millisecond}.withDefaults()
	if c.Prefix != "/game" || c.ttlSeconds() != 2 || c.DialTimeout != DefaultDialTimeout || c.Logger == nil {
		t.Errorf("withDefaults = %+v, ttl %ds", c, c.ttlSeconds())
	}
	if d := (Config{Endpoints: []string{"x"}}).withDefaults(); d.Prefix != DefaultPrefix || d.ttlSeconds() != 5 {
		t.Errorf("defaults = %+v", d)
	}
}

func TestNewUnreachable(t *testing.T) {
	e, err := StartEmbedded("") // temp dir, removed by Close
	if err != nil {
		t.Fatal(err)
	}
	eps := e.Endpoints()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	start := time.Now()
	if _, err := New(Config{Endpoints: eps, DialTimeout: 300 * time.Millisecond}); err == nil {
		t.Fatal("New with no etcd succeeded")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("New took %v to fail", d)
	}
}

func TestPIDEncoding(t *testing.T) {
	p := actor.PID{Node: actor.MustAddr(4095, 255, 4095), Serial: 1<<64 - 1}
	s := encodePID(p)
	if s != "4095.255.4095/18446744073709551615" {
		t.Fatalf("encodePID = %q", s)
	}
	if got, err := decodePID(s); err != nil || got != p {
		t.Fatalf("decodePID = %v, %v", got, err)
	}
	for _, bad := range []string{"", "1.2.3", "1.2.3/0", "1.2/5", "1.2.3/x", "1.2.3/-1"} {
		if _, err := decodePID(bad); err == nil {
			t.Errorf("decodePID(%q) succeeded", bad)
		}
	}
}

// kvs builds key-values under m's member prefix.
func kvs(m *Membership, vals map[actor.Addr][]byte) []*mvccpb.KeyValue {
	var out []*mvccpb.KeyValue
	for a, v := range vals {
		out = append(out, &mvccpb.KeyValue{Key: []byte(m.memberKey(a)), Value: v})
	}
	return out
}
