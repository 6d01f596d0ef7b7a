package idgen

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/guildkit/guild/cluster/etcd"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrNoMachineID is returned by Lease when all 1024 machine IDs are held.
var ErrNoMachineID = errors.New("idgen: all 1024 machine IDs are taken")

// releaseTimeout bounds Close's Release.
const releaseTimeout = 5 * time.Second

// Leased is a Generator whose machine ID is held under an etcd lease; see
// the package doc. Create it with Lease and end it with Release or Close.
// It is safe for concurrent use.
//
// Leased owns three goroutines, started by Lease and stopped by Release:
// the lease's etcd.Keeper renews it (and keeps its fence, which Next checks
// for every ID), a guard stops the Generator when the Keeper finds the
// lease lost, and the watcher watches the machine key and stops the
// Generator when it is deleted or taken over. None tries to lease again:
// call Lease for a new machine ID.
type Leased struct {
	*Generator

	cli     *clientv3.Client
	lease   clientv3.LeaseID
	ttl     time.Duration // as granted
	keeper  *etcd.Keeper
	key     string
	lastKey string

	cancel context.CancelFunc // ends the goroutines
	wg     sync.WaitGroup
	done   chan struct{} // closed when the Generator stops
	once   sync.Once     // closes done

	relOnce sync.Once
	relDone chan struct{}
	relErr  error
}

func machinesPrefix(prefix string) string { return prefix + "/idgen/machines/" }
func lastPrefix(prefix string) string     { return prefix + "/idgen/last/" }

// Lease claims the lowest free machine ID under prefix in etcd with a new
// lease of ttl (rounded up to whole seconds; etcd may grant more) and
// returns a Generator for it. It fails with ErrNoMachineID when all 1024 are
// held. The caller keeps ownership of cli, which must stay open until
// Release returns. ctx bounds only the claim.
//
// The lease is kept alive until Release. If it is lost, Next fails with
// ErrLeaseLost from then on and Done is closed.
func Lease(ctx context.Context, cli *clientv3.Client, prefix string, ttl time.Duration, opts ...Option) (*Leased, error) {
	if cli == nil {
		return nil, fmt.Errorf("%w: nil etcd client", ErrBadOption)
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("%w: lease TTL %v", ErrBadOption, ttl)
	}
	cfg := defaultConfig()
	for _, o := range opts {
		o.apply(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	base := time.Now()
	lr, err := cli.Grant(ctx, int64(math.Ceil(ttl.Seconds())))
	if err != nil {
		return nil, fmt.Errorf("idgen: grant lease: %w", err)
	}
	l := &Leased{
		cli:     cli,
		lease:   lr.ID,
		ttl:     time.Duration(lr.TTL) * time.Second,
		done:    make(chan struct{}),
		relDone: make(chan struct{}),
	}
	machine, rev, last, err := l.claim(ctx, prefix)
	if err != nil {
		rctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
		defer cancel()
		cli.Revoke(rctx, lr.ID) //nolint:errcheck // best effort: the lease expires anyway
		return nil, err
	}
	g := newGenerator(machine, cfg)
	// etcd granted the lease after base, so it expires after base+TTL.
	l.keeper = etcd.KeepLease(cli, lr.ID, l.ttl, base, nil)
	g.fence = l.keeper
	if last > 0 {
		g.floor(last)
	}
	l.Generator = g
	wctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.wg.Add(2)
	go l.guard(wctx)
	go l.watch(wctx, rev)
	return l, nil
}

// claim creates the key of the lowest free machine ID under l.lease. It
// returns the machine ID, the revision of the creation and the last Unix
// millisecond that a previous holder recorded (0 if none).
func (l *Leased) claim(ctx context.Context, prefix string) (uint16, int64, int64, error) {
	mp := machinesPrefix(prefix)
	resp, err := l.cli.Get(ctx, mp, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return 0, 0, 0, fmt.Errorf("idgen: list machine IDs: %w", err)
	}
	var used [MaxMachine + 1]bool
	for _, kv := range resp.Kvs {
		n, err := strconv.ParseUint(strings.TrimPrefix(string(kv.Key), mp), 10, 16)
		if err == nil && n <= MaxMachine {
			used[n] = true
		}
	}
	host, _ := os.Hostname()
	val := fmt.Sprintf("host=%s pid=%d lease=%x", host, os.Getpid(), int64(l.lease))
	for n := range used {
		if used[n] {
			continue
		}
		key := mp + strconv.Itoa(n)
		lastKey := lastPrefix(prefix) + strconv.Itoa(n)
		tr, err := l.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, val, clientv3.WithLease(l.lease)), clientv3.OpGet(lastKey)).
			Commit()
		if err != nil {
			return 0, 0, 0, fmt.Errorf("idgen: claim machine ID %d: %w", n, err)
		}
		if !tr.Succeeded {
			continue // taken since the listing
		}
		var last int64
		if kvs := tr.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
			last, _ = strconv.ParseInt(string(kvs[0].Value), 10, 64)
		}
		l.key, l.lastKey = key, lastKey
		return uint16(n), tr.Header.Revision, last, nil
	}
	return 0, 0, 0, ErrNoMachineID
}

// Done is closed when the Generator stops issuing IDs: the lease was lost,
// or Release was called. Err then says which.
func (l *Leased) Done() <-chan struct{} { return l.done }

// Err returns nil while the Generator issues IDs, and then the error that
// Next returns (matching ErrLeaseLost or ErrReleased).
func (l *Leased) Err() error {
	if p := l.stopErr.Load(); p != nil {
		return *p
	}
	return nil
}

// TTL returns the lease's TTL as etcd granted it.
func (l *Leased) TTL() time.Duration { return l.ttl }

// lost stops the Generator with err and ends the goroutines.
func (l *Leased) lost(err error) {
	l.stop(err)
	l.finish()
}

// finish closes done and ends the goroutines; the Generator is stopped.
func (l *Leased) finish() {
	l.once.Do(func() { close(l.done) })
	l.cancel()
}

// guard stops the Generator when the Keeper finds the lease lost.
func (l *Leased) guard(ctx context.Context) {
	defer l.wg.Done()
	select {
	case <-ctx.Done():
	case <-l.keeper.Done():
		if errors.Is(l.keeper.Err(), etcd.ErrLeaseLost) {
			l.lost(fmt.Errorf("%w: machine %d: %w", ErrLeaseLost, l.machine, l.keeper.Err()))
		}
	}
}

// watch is the watcher goroutine: it stops the Generator when the machine
// key is deleted or put under another lease. When the watch breaks it reads
// the key again and watches from there.
func (l *Leased) watch(ctx context.Context, rev int64) {
	defer l.wg.Done()
	for {
		if !l.watchFrom(ctx, rev) {
			return
		}
		for {
			if ctx.Err() != nil {
				return
			}
			gctx, cancel := context.WithTimeout(ctx, l.ttl/3)
			resp, err := l.cli.Get(gctx, l.key)
			cancel()
			if err == nil {
				if len(resp.Kvs) == 0 || resp.Kvs[0].Lease != int64(l.lease) {
					l.lost(fmt.Errorf("%w: machine %d: key %s deleted or taken over", ErrLeaseLost, l.machine, l.key))
					return
				}
				rev = resp.Header.Revision
				break
			}
			t := time.NewTimer(100 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

// watchFrom watches the machine key after rev until the watch breaks
// (true) or the lease is found lost (false).
func (l *Leased) watchFrom(ctx context.Context, rev int64) bool {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for wr := range l.cli.Watch(wctx, l.key, clientv3.WithRev(rev+1)) {
		if wr.Err() != nil || wr.Canceled {
			return true
		}
		for _, ev := range wr.Events {
			if ev.Type == clientv3.EventTypeDelete || ev.Kv.Lease != int64(l.lease) {
				l.lost(fmt.Errorf("%w: machine %d: key %s deleted or taken over", ErrLeaseLost, l.machine, l.key))
				return false
			}
		}
	}
	return true
}

// Release stops the Generator (Next fails with ErrReleased from then on
// unless the lease was lost first), stops the goroutines, and then, if the
// lease still holds the machine key, deletes it and records the last
// millisecond used so that the next holder starts after it. Finally it
// revokes the lease. It is safe to call more than once; later calls wait
// for the first and return its result.
func (l *Leased) Release(ctx context.Context) error {
	l.relOnce.Do(func() {
		defer close(l.relDone)
		st := l.stop(fmt.Errorf("%w: machine %d", ErrReleased, l.machine))
		l.finish()
		l.wg.Wait()
		l.keeper.Stop()
		lastUnix := l.epochMs + int64(st>>SeqBits)
		_, err := l.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.LeaseValue(l.key), "=", int64(l.lease))).
			Then(clientv3.OpPut(l.lastKey, strconv.FormatInt(lastUnix, 10)), clientv3.OpDelete(l.key)).
			Commit()
		if err != nil {
			l.relErr = fmt.Errorf("idgen: release machine ID %d: %w (the lease expires within %v)", l.machine, err, l.ttl)
		}
		if _, err := l.cli.Revoke(ctx, l.lease); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) && l.relErr == nil {
			l.relErr = fmt.Errorf("idgen: revoke lease: %w (it expires within %v)", err, l.ttl)
		}
	})
	<-l.relDone
	return l.relErr
}

// Close is Release with a timeout of 5 seconds.
func (l *Leased) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	return l.Release(ctx)
}
