package etcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/cluster/internal/fanout"
)

// joinRetry is the pause between Join's attempts while the address is held.
const joinRetry = 250 * time.Millisecond

// ErrAddrInUse is returned by Join when another live node holds the same
// address. A crashed node's record lasts until its lease expires (at most
// Config.TTL).
var ErrAddrInUse = errors.New("cluster/etcd: address in use by another node")

// Membership is a cluster.Membership (and, through Names, an
// actor.NameRegistry) kept in etcd. Create it with New; it is safe for
// concurrent use. See the package doc for the goroutines it owns.
type Membership struct {
	cfg        Config
	log        *slog.Logger
	cli        *clientv3.Client
	membersPfx string
	namesPfx   string
	fan        *fanout.Queue[cluster.Event]

	// life is the lifetime of the Membership, not a request's ctx: every
	// goroutine it owns derives its ctx from it, and Close cancels it.
	life      context.Context
	stop      context.CancelFunc
	wg        sync.WaitGroup
	closeDone chan struct{}

	// sem serializes Join, Update, Leave, Register, Unregister and the
	// keeper's re-grant. It is taken before mu, never while holding mu.
	sem chan struct{}

	mu     sync.Mutex // guards view, sess and closed; held while publishing, which orders events
	view   map[actor.Addr]cluster.Member
	sess   *session // non-nil while joined; written under sem and mu
	closed bool

	namesMu sync.RWMutex
	names   map[string]actor.PID // global-name cache; written only by the names watcher

	// held is the lease this node holds now, with its epoch, for
	// LeaseValid (read on hot paths, so without a lock); nil when not
	// joined. Written under sem.
	held   atomic.Pointer[heldLease]
	epochs uint64 // leases granted so far; under sem

	ownedMu sync.RWMutex // guards session.owned of the current session; taken after sem

	lookupGets atomic.Int64 // Lookups that missed the cache (for tests)

	retired KeeperStats // the renewals of the keepers replaced so far; under mu
	grants  atomic.Uint64
}

// Stats counts a Membership's work with etcd, for monitoring.
type Stats struct {
	KeeperStats // the lease renewals, of every lease this Membership held
	// Grants counts the leases granted: one per Join, and one each time
	// a lost lease was replaced.
	Grants uint64
}

// Stats returns the Membership's counters.
func (m *Membership) Stats() Stats {
	m.mu.Lock()
	ks := m.retired
	m.mu.Unlock()
	if h := m.held.Load(); h != nil {
		ks = ks.add(h.keeper.Stats())
	}
	return Stats{KeeperStats: ks, Grants: m.grants.Load()}
}

// session is one Join: its lease and keeper. The fields below done are
// guarded by sem.
// session returns the current session, or nil when the node has not joined.
func (m *Membership) session() *session {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sess
}

type session struct {
	cancel context.CancelFunc // ends the keeper goroutine
	done   chan struct{}      // closed when the keeper goroutine has returned

	member cluster.Member
	lease  clientv3.LeaseID
	keeper *Keeper // keeps lease alive and knows its fence
	// owned are the global names this node registered, with the epoch of
	// the lease they are held under now (an older epoch: not registered
	// again since the lease was lost). Written under sem and ownedMu;
	// read under ownedMu (Held, for every message sent to a name).
	owned map[string]ownedName
}

// ownedName is a global name a node registered: the actor, and the epoch
// of the lease the name is held under.
type ownedName struct {
	pid   actor.PID
	epoch uint64
}

// heldLease is the lease a node holds, with its epoch.
type heldLease struct {
	keeper *Keeper
	epoch  uint64
	sess   *session
}

// New connects to etcd, reads the current members and names, and starts
// watching them. It returns an error when cfg is invalid (ErrBadConfig),
// when etcd refuses the credentials, or when etcd does not answer within
// cfg.DialTimeout; in that last case New then spends at most a second
// connecting to the first endpoint itself, to say why (nothing listening,
// a TLS handshake refused, an unknown certificate authority).
func New(cfg Config) (*Membership, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: cfg.DialTimeout,
		TLS:         cfg.TLS,
		Username:    cfg.Username,
		Password:    cfg.Password,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("cluster/etcd: connect to %v%s: %w", cfg.Endpoints, cfg.as(), cfg.explain(err))
	}
	life, stop := context.WithCancel(context.Background())
	m := &Membership{
		cfg:        cfg,
		log:        cfg.Logger,
		cli:        cli,
		membersPfx: cfg.Prefix + "/members/",
		namesPfx:   cfg.Prefix + "/names/",
		life:       life,
		stop:       stop,
		closeDone:  make(chan struct{}),
		sem:        make(chan struct{}, 1),
		view:       make(map[actor.Addr]cluster.Member),
		names:      make(map[string]actor.PID),
	}
	ctx, cancel := context.WithTimeout(life, cfg.DialTimeout)
	defer cancel()
	mresp, err := cli.Get(ctx, m.membersPfx, clientv3.WithPrefix())
	var nresp *clientv3.GetResponse
	if err == nil {
		nresp, err = cli.Get(ctx, m.namesPfx, clientv3.WithPrefix())
	}
	if err != nil {
		stop()
		cli.Close()
		return nil, fmt.Errorf("cluster/etcd: read from %v%s: %w", cfg.Endpoints, cfg.as(), cfg.explain(err))
	}
	m.fan = fanout.New[cluster.Event](m.log)
	m.resetMembers(mresp.Kvs)
	m.resetNames(nresp.Kvs)
	m.wg.Add(2)
	go m.watchLoop(m.membersPfx, mresp.Header.Revision, m.resetMembers, m.applyMember)
	go m.watchLoop(m.namesPfx, nresp.Header.Revision, m.resetNames, m.applyName)
	return m, nil
}

var _ cluster.Membership = (*Membership)(nil)

func (m *Membership) memberKey(a actor.Addr) string { return m.membersPfx + a.String() }

// acquire takes sem, failing with ctx's error or ErrClosed.
func (m *Membership) acquire(ctx context.Context) error {
	select {
	case m.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-m.life.Done():
		return cluster.ErrClosed
	}
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		m.release()
		return cluster.ErrClosed
	}
	return nil
}

func (m *Membership) release() { <-m.sem }

// Join grants a lease of Config.TTL, puts mem under the lease and keeps the
// lease alive until Leave or Close. If the lease is lost (etcd unreachable
// for longer than the TTL), the keeper grants a new one and puts the record
// again. Members includes this node once the watch delivers the put,
// normally within milliseconds.
//
// While another live record holds the address (ErrAddrInUse), Join keeps
// trying for Config.JoinWait.
func (m *Membership) Join(ctx context.Context, mem cluster.Member) error {
	if mem.Started.IsZero() {
		mem.Started = time.Now()
	}
	mem = mem.Clone()
	if err := m.acquire(ctx); err != nil {
		return err
	}
	defer m.release()
	m.mu.Lock()
	joined := m.sess != nil
	m.mu.Unlock()
	if joined {
		return cluster.ErrAlreadyJoined
	}
	sctx, cancel := context.WithCancel(m.life)
	s := &session{cancel: cancel, done: make(chan struct{}), member: mem, owned: make(map[string]ownedName)}
	err := m.grant(ctx, s)
	for deadline := time.Now().Add(m.cfg.JoinWait); errors.Is(err, ErrAddrInUse) && time.Now().Before(deadline); {
		m.log.Warn("cluster/etcd: address still held, waiting for the old lease to expire", "addr", mem.Addr.String(), "err", err)
		select {
		case <-time.After(joinRetry):
		case <-ctx.Done():
			cancel()
			return fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		}
		err = m.grant(ctx, s)
	}
	if err != nil {
		cancel()
		return err
	}
	m.mu.Lock()
	m.sess = s
	m.mu.Unlock()
	m.wg.Add(1)
	go m.keep(sctx, s)
	return nil
}

// grant grants a lease, creates the member record under it (failing with
// ErrAddrInUse if someone else holds the key) and starts its Keeper. It
// sets s.lease and s.keeper, stopping the keeper of the lease it replaces,
// and publishes the new lease for LeaseValid. Called with sem held.
func (m *Membership) grant(ctx context.Context, s *session) error {
	val, err := encodeMember(s.member)
	if err != nil {
		return fmt.Errorf("cluster/etcd: encode member: %w", err)
	}
	sent := time.Now()
	lr, err := m.cli.Grant(ctx, m.cfg.ttlSeconds())
	if err != nil {
		return fmt.Errorf("cluster/etcd: grant lease: %w", err)
	}
	fail := func(err error) error {
		rctx, cancel := context.WithTimeout(m.life, m.cfg.DialTimeout)
		defer cancel()
		m.cli.Revoke(rctx, lr.ID) //nolint:errcheck // best effort: the lease expires anyway
		return err
	}
	key := m.memberKey(s.member.Addr)
	tr, err := m.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(val), clientv3.WithLease(lr.ID))).
		Commit()
	if err != nil {
		return fail(fmt.Errorf("cluster/etcd: put member: %w", err))
	}
	if !tr.Succeeded {
		return fail(fmt.Errorf("%w: %v", ErrAddrInUse, s.member.Addr))
	}
	k := KeepLease(m.cli, lr.ID, time.Duration(lr.TTL)*time.Second, sent, m.log)
	m.grants.Add(1)
	old := s.keeper
	if old != nil {
		old.Stop()
	}
	m.epochs++
	m.mu.Lock() // Lease reads s.lease under mu
	s.lease, s.keeper = lr.ID, k
	if old != nil {
		m.retired = m.retired.add(old.Stats())
	}
	m.held.Store(&heldLease{keeper: k, epoch: m.epochs, sess: s}) // with retired, under mu: Stats counts each keeper once
	m.mu.Unlock()
	return nil
}

// keep is the keeper goroutine of session s: when the lease is lost, it
// joins again with a new one.
func (m *Membership) keep(sctx context.Context, s *session) {
	defer m.wg.Done()
	defer close(s.done)
	for {
		m.mu.Lock()
		k := s.keeper
		m.mu.Unlock()
		select {
		case <-sctx.Done():
			return
		case <-k.Done():
		}
		m.log.Warn("cluster/etcd: lease lost; joining again", "addr", s.member.Addr.String(), "err", k.Err())
		backoff := 50 * time.Millisecond
		for {
			err := m.regrant(sctx, s)
			if err == nil {
				break
			}
			if sctx.Err() != nil {
				return
			}
			m.log.Warn("cluster/etcd: join again failed; retrying", "addr", s.member.Addr.String(), "err", err, "in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-sctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, m.cfg.TTL)
		}
	}
}

// regrant replaces s's lost lease: revoke the old one (in case it still
// lives), grant a new one, put the record, and register the names s held
// again. A name someone else took meanwhile is dropped and logged.
func (m *Membership) regrant(sctx context.Context, s *session) error {
	select {
	case m.sem <- struct{}{}:
	case <-sctx.Done():
		return sctx.Err()
	}
	defer m.release()
	ctx, cancel := context.WithTimeout(sctx, m.cfg.DialTimeout)
	defer cancel()
	if _, err := m.cli.Revoke(ctx, s.lease); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return fmt.Errorf("cluster/etcd: revoke lost lease: %w", err)
	}
	if err := m.grant(ctx, s); err != nil {
		return err
	}
	m.ownedMu.RLock()
	names := maps.Clone(s.owned)
	m.ownedMu.RUnlock()
	for name, o := range names {
		ok, holder, err := m.putName(ctx, name, o.pid, s.lease)
		if err != nil {
			// Start over with a fresh lease; this one dies with its keeper.
			s.keeper.end(fmt.Errorf("%w: names not registered again: %w", ErrLeaseLost, err))
			return err
		}
		m.ownedMu.Lock()
		if ok {
			s.owned[name] = ownedName{pid: o.pid, epoch: m.epochs}
		} else {
			delete(s.owned, name)
		}
		m.ownedMu.Unlock()
		if !ok {
			m.log.Warn("cluster/etcd: global name lost with the lease: another node took it", "name", name, "pid", o.pid.String(), "holder", holder)
		}
	}
	m.log.Info("cluster/etcd: joined again with a new lease", "addr", s.member.Addr.String())
	return nil
}

// Update replaces this node's record; see cluster.Membership.
func (m *Membership) Update(ctx context.Context, mem cluster.Member) error {
	mem = mem.Clone()
	if err := m.acquire(ctx); err != nil {
		return err
	}
	defer m.release()
	s := m.session()
	if s == nil {
		return cluster.ErrNotJoined
	}
	if mem.Addr != s.member.Addr {
		return fmt.Errorf("%w: address %v is not the joined %v", cluster.ErrBadMember, mem.Addr, s.member.Addr)
	}
	if mem.Started.IsZero() {
		mem.Started = s.member.Started
	}
	val, err := encodeMember(mem)
	if err != nil {
		return fmt.Errorf("cluster/etcd: encode member: %w", err)
	}
	// The keeper puts s.member again after a lost lease, so record the
	// change even if this put fails.
	s.member = mem
	if _, err := m.cli.Put(ctx, m.memberKey(mem.Addr), string(val), clientv3.WithLease(s.lease)); err != nil {
		return fmt.Errorf("cluster/etcd: put member: %w", err)
	}
	return nil
}

// Leave deletes this node's record and revokes its lease, which also
// releases every global name it holds. Other nodes see it leave within
// milliseconds.
func (m *Membership) Leave(ctx context.Context) error {
	s := m.session()
	if s == nil {
		return nil
	}
	s.cancel() // stop the keepalive and any re-grant first
	if err := m.acquire(ctx); err != nil {
		// Another operation holds etcd (a slow one, on a busy machine):
		// the record stays until the lease, no longer kept alive, expires.
		return fmt.Errorf("cluster/etcd: leave: waiting for another membership operation: %w (the lease expires within %v)", err, m.cfg.TTL)
	}
	defer m.release()
	return m.leaveLocked(ctx, s)
}

// leaveLocked ends session s. Called with sem held.
func (m *Membership) leaveLocked(ctx context.Context, s *session) error {
	m.mu.Lock()
	if m.sess != s {
		m.mu.Unlock()
		return nil
	}
	m.sess = nil
	if s.keeper != nil {
		m.retired = m.retired.add(s.keeper.Stats()) // before held forgets it: Stats counts it once
	}
	m.held.Store(nil)
	m.mu.Unlock()
	s.cancel()
	<-s.done
	if s.keeper != nil {
		s.keeper.Stop()
	}
	key := m.memberKey(s.member.Addr)
	_, err := m.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.LeaseValue(key), "=", s.lease)).
		Then(clientv3.OpDelete(key)).
		Commit()
	if err != nil {
		return fmt.Errorf("cluster/etcd: delete member: %w (its lease expires within %v)", err, m.cfg.TTL)
	}
	if _, err := m.cli.Revoke(ctx, s.lease); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return fmt.Errorf("cluster/etcd: revoke lease: %w (it expires within %v)", err, m.cfg.TTL)
	}
	return nil
}

// Prefix returns the cluster's key prefix (Config.Prefix, with its
// default), under which other coordination keys go (package grain's claims).
func (m *Membership) Prefix() string { return m.cfg.Prefix }

// Client returns the Membership's etcd client, for other coordination
// under the same connection (package grain's claims). It must not be
// closed: Close closes it.
func (m *Membership) Client() *clientv3.Client { return m.cli }

// Lease returns the lease of this node's record, under which keys that
// should vanish with the node are put; 0 when the node has not joined. It
// changes when the keeper joins again after a lost lease.
func (m *Membership) Lease() clientv3.LeaseID {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sess == nil {
		return 0
	}
	return m.sess.lease
}

// LeaseValid implements cluster.Fence: the epoch of the lease this node
// holds (counted from 1, one more each time the lease was lost and granted
// anew; 0 when not joined) and whether the lease is surely still valid now
// (see Keeper). It takes no lock: grains and name traffic check it for
// every message.
func (m *Membership) LeaseValid() (epoch uint64, valid bool) {
	h := m.held.Load()
	if h == nil {
		return 0, false
	}
	return h.epoch, h.keeper.Valid()
}

// Members returns a copy of the local view, sorted by Addr.
func (m *Membership) Members() []cluster.Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	return cluster.SortedView(m.view)
}

// Subscribe calls fn for every change of the view, on the delivery
// goroutine; see cluster.Membership.
func (m *Membership) Subscribe(fn func(cluster.Event)) (unsubscribe func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var initial []cluster.Event
	for _, mem := range cluster.SortedView(m.view) {
		initial = append(initial, cluster.Event{Kind: cluster.Join, Member: mem})
	}
	return m.fan.Subscribe(fn, initial)
}

// Close leaves (best effort, within Config.DialTimeout), stops every
// goroutine, waits for them and closes the etcd client. Events still queued
// for subscribers are dropped. It is safe to call twice.
func (m *Membership) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		<-m.closeDone
		return nil
	}
	m.closed = true
	s := m.sess
	m.mu.Unlock()
	var err error
	if s != nil {
		s.cancel()
		ctx, cancel := context.WithTimeout(context.Background(), m.cfg.DialTimeout)
		select {
		case m.sem <- struct{}{}:
			err = m.leaveLocked(ctx, s)
			m.release()
		case <-ctx.Done():
			err = fmt.Errorf("cluster/etcd: leave on close: %w", ctx.Err())
		}
		cancel()
	}
	m.stop()
	m.wg.Wait()
	m.fan.Close()
	if cerr := m.cli.Close(); cerr != nil && err == nil && !errors.Is(cerr, context.Canceled) {
		err = cerr
	}
	close(m.closeDone)
	return err
}

// watchLoop is a watcher goroutine: it watches prefix from rev+1, applying
// each event; when the watch ends (cancelled, compacted, leader lost) it
// reads prefix afresh, resets from it, and watches again.
func (m *Membership) watchLoop(prefix string, rev int64, reset func([]*mvccpb.KeyValue), apply func(*clientv3.Event)) {
	defer m.wg.Done()
	for {
		m.watch(prefix, rev, apply)
		backoff := 50 * time.Millisecond
		for {
			if m.life.Err() != nil {
				return
			}
			ctx, cancel := context.WithTimeout(m.life, m.cfg.DialTimeout)
			resp, err := m.cli.Get(ctx, prefix, clientv3.WithPrefix())
			cancel()
			if err == nil {
				reset(resp.Kvs)
				rev = resp.Header.Revision
				m.log.Info("cluster/etcd: resynced", "prefix", prefix, "revision", rev)
				break
			}
			m.log.Warn("cluster/etcd: resync failed; retrying", "prefix", prefix, "err", err, "in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-m.life.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, time.Second)
		}
	}
}

// watch applies the events under prefix after rev until the watch ends.
func (m *Membership) watch(prefix string, rev int64, apply func(*clientv3.Event)) {
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(m.life))
	defer cancel()
	for wr := range m.cli.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
		if wr.CompactRevision != 0 {
			m.log.Warn("cluster/etcd: watch compacted; resyncing", "prefix", prefix, "compacted", wr.CompactRevision)
			return
		}
		if err := wr.Err(); err != nil {
			m.log.Warn("cluster/etcd: watch failed; resyncing", "prefix", prefix, "err", err)
			return
		}
		for _, ev := range wr.Events {
			apply(ev)
		}
	}
	if m.life.Err() == nil {
		m.log.Warn("cluster/etcd: watch closed; resyncing", "prefix", prefix)
	}
}

// addrOf parses the address at the end of a member key.
func (m *Membership) addrOf(key []byte) (actor.Addr, bool) {
	a, err := actor.ParseAddr(strings.TrimPrefix(string(key), m.membersPfx))
	return a, err == nil
}

// decodeKV decodes a member record, checking it against its key.
func (m *Membership) decodeKV(kv *mvccpb.KeyValue) (cluster.Member, bool) {
	addr, ok := m.addrOf(kv.Key)
	if !ok {
		m.log.Warn("cluster/etcd: ignoring a member key that is not an address", "key", string(kv.Key))
		return cluster.Member{}, false
	}
	mem, err := decodeMember(kv.Value)
	if err != nil || mem.Addr != addr {
		m.log.Warn("cluster/etcd: ignoring a bad member record", "key", string(kv.Key), "err", err)
		return cluster.Member{}, false
	}
	return mem, true
}

// applyMember applies one watch event to the view and publishes the change.
func (m *Membership) applyMember(ev *clientv3.Event) {
	var mem cluster.Member
	if ev.Type == clientv3.EventTypePut {
		var ok bool
		if mem, ok = m.decodeKV(ev.Kv); !ok { // decoded (and logged) before locking
			return
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch ev.Type {
	case clientv3.EventTypePut:
		m.setLocked(mem)
	case clientv3.EventTypeDelete:
		addr, ok := m.addrOf(ev.Kv.Key)
		if !ok {
			return
		}
		if old, ok := m.view[addr]; ok {
			delete(m.view, addr)
			m.fan.Publish(cluster.Event{Kind: cluster.Leave, Member: old})
		}
	}
}

// setLocked puts mem in the view, publishing Join or Update. Called with mu
// held.
func (m *Membership) setLocked(mem cluster.Member) {
	old, ok := m.view[mem.Addr]
	switch {
	case !ok:
		m.view[mem.Addr] = mem
		m.fan.Publish(cluster.Event{Kind: cluster.Join, Member: mem.Clone()})
	case !old.Equal(mem):
		m.view[mem.Addr] = mem
		m.fan.Publish(cluster.Event{Kind: cluster.Update, Member: mem.Clone()})
	}
}

// resetMembers replaces the view with kvs and publishes the differences:
// leaves first, then joins and updates, each in Addr order.
func (m *Membership) resetMembers(kvs []*mvccpb.KeyValue) {
	next := make(map[actor.Addr]cluster.Member, len(kvs))
	for _, kv := range kvs {
		if mem, ok := m.decodeKV(kv); ok {
			next[mem.Addr] = mem
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, old := range cluster.SortedView(m.view) {
		if _, ok := next[old.Addr]; !ok {
			delete(m.view, old.Addr)
			m.fan.Publish(cluster.Event{Kind: cluster.Leave, Member: old})
		}
	}
	addrs := make([]actor.Addr, 0, len(next))
	for a := range next {
		addrs = append(addrs, a)
	}
	slices.Sort(addrs)
	for _, a := range addrs {
		m.setLocked(next[a])
	}
}

var _ cluster.Fence = (*Membership)(nil)
