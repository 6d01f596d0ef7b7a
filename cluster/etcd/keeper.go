package etcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrLeaseLost is the error of a Keeper whose lease etcd no longer has
// (it expired, or was revoked).
var ErrLeaseLost = errors.New("cluster/etcd: lease lost")

// Keeper keeps one etcd lease alive and knows until when the lease is
// surely still valid: its fence. Everything a node holds under a lease (its
// member record, global names, grain claims, an idgen machine ID) is safe
// to act on only while the fence holds, because once the lease may have
// expired another node may hold the same thing.
//
// The fence is measured from when each renewal was sent, not from when its
// answer came: etcd counts the TTL from when it receives the renewal, which
// is later, so the lease is valid at least until send time + TTL. The
// Keeper subtracts a margin (a tenth of the TTL) for the difference in
// clock rates, and reads time with the monotonic clock, so a process that
// was frozen (SIGSTOP, a long GC, a starved scheduler) sees its fence
// lapse the moment it runs again, before it can act: whatever delayed the
// renewals delays the actions too, and the check comes first.
//
// A lapsed fence is not a lost lease: the Keeper keeps renewing, and when a
// renewal succeeds the lease was alive all along (nobody else can have
// taken what it holds) and the fence holds again. The lease is lost when
// etcd says it no longer exists; Done is then closed and Err says why.
//
// A Keeper owns one goroutine, and the renewals it has waiting on etcd
// (up to four, each a goroutine of its own); Stop ends them all.
type Keeper struct {
	cli    *clientv3.Client
	id     clientv3.LeaseID
	ttl    time.Duration
	margin time.Duration
	log    *slog.Logger

	base  time.Time    // a reading with a monotonic clock
	until atomic.Int64 // the fence: nanoseconds after base

	done   chan struct{}
	once   sync.Once
	err    atomic.Pointer[error]
	cancel context.CancelFunc
	wg     sync.WaitGroup

	renewals, failures atomic.Uint64 // renewals answered, and failed
	renewNanos         atomic.Uint64 // the answered renewals' round trips, summed
}

// KeeperStats counts a Keeper's renewals.
type KeeperStats struct {
	// Renewals counts the renewals etcd answered.
	Renewals uint64
	// Failures counts the renewals that failed (etcd unreachable, or no
	// answer in time).
	Failures uint64
	// RenewTime is the time the answered renewals took, summed: divided
	// by Renewals, the mean round trip to etcd.
	RenewTime time.Duration
}

// Stats returns the Keeper's counters.
func (k *Keeper) Stats() KeeperStats {
	return KeeperStats{Renewals: k.renewals.Load(), Failures: k.failures.Load(), RenewTime: time.Duration(k.renewNanos.Load())}
}

// add returns the sum of s and o.
func (s KeeperStats) add(o KeeperStats) KeeperStats {
	return KeeperStats{Renewals: s.Renewals + o.Renewals, Failures: s.Failures + o.Failures, RenewTime: s.RenewTime + o.RenewTime}
}

// KeepLease starts keeping lease id alive. sent is when the request that
// granted it (or last renewed it) was sent, and ttl the TTL etcd granted:
// the fence starts at sent + ttl - margin. log may be nil.
func KeepLease(cli *clientv3.Client, id clientv3.LeaseID, ttl time.Duration, sent time.Time, log *slog.Logger) *Keeper {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	k := &Keeper{
		cli:    cli,
		id:     id,
		ttl:    ttl,
		margin: ttl / 10,
		log:    log,
		base:   sent,
		done:   make(chan struct{}),
		cancel: cancel,
	}
	k.until.Store(int64(ttl - k.margin))
	k.wg.Add(1)
	go k.run(ctx)
	return k
}

// ID returns the lease.
func (k *Keeper) ID() clientv3.LeaseID { return k.id }

// TTL returns the lease's TTL as etcd granted it.
func (k *Keeper) TTL() time.Duration { return k.ttl }

// Valid reports whether the lease is surely still valid now. It costs an
// atomic load and a reading of the clock.
func (k *Keeper) Valid() bool {
	select {
	case <-k.done:
		return false
	default:
	}
	return int64(time.Since(k.base)) < k.until.Load()
}

// ValidUntil returns the fence: the time until which the lease is surely
// valid unless it is renewed again.
func (k *Keeper) ValidUntil() time.Time {
	return k.base.Add(time.Duration(k.until.Load()))
}

// Done is closed when the lease is lost or the Keeper stopped.
func (k *Keeper) Done() <-chan struct{} { return k.done }

// Err returns nil while the lease is kept, then why it ended: an error
// matching ErrLeaseLost, or context.Canceled after Stop.
func (k *Keeper) Err() error {
	if p := k.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Stop ends the renewals (the lease then expires within its TTL unless it
// is revoked) and waits for the goroutine. Safe to call twice.
func (k *Keeper) Stop() {
	k.end(context.Canceled)
	k.wg.Wait()
}

func (k *Keeper) end(err error) {
	k.once.Do(func() {
		k.err.Store(&err)
		close(k.done)
		k.cancel()
	})
}

// extend moves the fence to sent + ttl - margin, if that is later.
func (k *Keeper) extend(sent time.Time, ttl time.Duration) {
	d := int64(sent.Sub(k.base) + ttl - k.margin)
	for {
		old := k.until.Load()
		if d <= old || k.until.CompareAndSwap(old, d) {
			return
		}
	}
}

// renewEvery is how often the Keeper renews: four renewals per TTL, so
// that three can fail or be late before the fence lapses.
func (k *Keeper) renewEvery() time.Duration { return max(k.ttl/4, 10*time.Millisecond) }

// maxInFlight bounds the renewals a Keeper has waiting on etcd at once.
const maxInFlight = 4

// run is the Keeper's goroutine. It sends a renewal every renewEvery
// without waiting for the previous one's answer (up to maxInFlight at
// once): when etcd is slow, renewals overlap, and each answer that comes
// back extends the fence from when its request was sent. A renewal waits
// at most TTL - margin, after which its answer could not extend the fence.
func (k *Keeper) run(ctx context.Context) {
	defer k.wg.Done()
	var renewals sync.WaitGroup
	defer renewals.Wait()
	slots := make(chan struct{}, maxInFlight)
	t := time.NewTicker(k.renewEvery())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		select {
		case slots <- struct{}{}:
		default:
			continue // maxInFlight renewals are waiting on etcd already
		}
		renewals.Add(1)
		go func() {
			defer renewals.Done()
			defer func() { <-slots }()
			k.renew(ctx)
		}()
	}
}

// renew sends one renewal and extends the fence by its answer, or ends
// the Keeper when etcd says the lease is gone.
func (k *Keeper) renew(ctx context.Context) {
	sent := time.Now()
	rctx, cancel := context.WithTimeout(ctx, k.ttl-k.margin)
	resp, err := k.cli.KeepAliveOnce(rctx, k.id)
	cancel()
	switch {
	case ctx.Err() != nil:
	case err == nil && resp.TTL > 0:
		k.renewals.Add(1)
		k.renewNanos.Add(uint64(time.Since(sent)))
		k.extend(sent, time.Duration(resp.TTL)*time.Second)
	case err == nil || errors.Is(err, rpctypes.ErrLeaseNotFound):
		k.end(fmt.Errorf("%w: lease %x is gone", ErrLeaseLost, int64(k.id)))
	default:
		k.failures.Add(1)
		if !k.Valid() {
			k.log.Warn("cluster/etcd: lease not renewed before its fence; retrying", "lease", fmt.Sprintf("%x", int64(k.id)), "err", err)
		}
	}
}
