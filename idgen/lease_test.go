package idgen

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/guildkit/guild/cluster/etcd"
)

const testPrefix = "/guildtest"

func startEtcd(t *testing.T) *etcd.Embedded {
	t.Helper()
	e, err := etcd.StartEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func newClient(t *testing.T, e *etcd.Embedded) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: e.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustLease(t *testing.T, cli *clientv3.Client) *Leased {
	t.Helper()
	l, err := Lease(ctxT(t), cli, testPrefix, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// waitDone waits for l to stop issuing IDs.
func waitDone(t *testing.T, l *Leased, timeout time.Duration) {
	t.Helper()
	select {
	case <-l.Done():
	case <-time.After(timeout):
		t.Fatalf("generator of machine %d still running after %v", l.Machine(), timeout)
	}
}

func TestLeaseDistinctMachinesAndNoDuplicates(t *testing.T) {
	e := startEtcd(t)
	clis := []*clientv3.Client{newClient(t, e), newClient(t, e), newClient(t, e)}

	// Three nodes lease at once.
	ls := make([]*Leased, len(clis))
	var wg sync.WaitGroup
	for i, cli := range clis {
		wg.Go(func() {
			l, err := Lease(ctxT(t), cli, testPrefix, 2*time.Second)
			if err != nil {
				t.Error(err)
				return
			}
			ls[i] = l
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	var machines []int
	for _, l := range ls {
		t.Cleanup(func() { l.Close() })
		machines = append(machines, int(l.Machine()))
	}
	slices.Sort(machines)
	if !slices.Equal(machines, []int{0, 1, 2}) {
		t.Fatalf("machine IDs %v, want [0 1 2]", machines)
	}

	// They generate at once.
	const per = 100_000
	out := make([][]ID, len(ls))
	for i, l := range ls {
		wg.Go(func() {
			ids := make([]ID, per)
			for j := range ids {
				id, err := l.Next()
				if err != nil {
					t.Error(err)
					return
				}
				if id.Machine() != l.Machine() {
					t.Errorf("ID %d has machine %d, want %d", id, id.Machine(), l.Machine())
					return
				}
				ids[j] = id
			}
			out[i] = ids
		})
	}
	wg.Wait()
	var all []ID
	for _, ids := range out {
		all = append(all, ids...)
	}
	slices.Sort(all)
	if len(all) != len(ls)*per {
		t.Fatalf("%d IDs, want %d", len(all), len(ls)*per)
	}
	for i := 1; i < len(all); i++ {
		if all[i] == all[i-1] {
			t.Fatalf("duplicate ID %d", all[i])
		}
	}

	// One releases; a new lease reuses its machine ID and starts after it.
	old := ls[1]
	last := out[1][per-1]
	if err := old.Release(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Next(); !errors.Is(err, ErrReleased) {
		t.Fatalf("Next after Release: %v, want ErrReleased", err)
	}
	if err := old.Release(ctxT(t)); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	n := mustLease(t, clis[1])
	if n.Machine() != old.Machine() {
		t.Fatalf("new lease got machine %d, want the released %d", n.Machine(), old.Machine())
	}
	id, err := n.Next()
	if err != nil {
		t.Fatal(err)
	}
	if id.Millis() <= last.Millis() {
		t.Fatalf("reused machine ID issued %d (ms %d), not after the last one %d (ms %d)", id, id.Millis(), last, last.Millis())
	}
}

func TestLeaseRevokedStopsGenerator(t *testing.T) {
	e := startEtcd(t)
	l := mustLease(t, newClient(t, e))
	if _, err := l.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := newClient(t, e).Revoke(ctxT(t), l.lease); err != nil {
		t.Fatal(err)
	}
	waitDone(t, l, 5*time.Second)
	if _, err := l.Next(); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Next after revoke: %v, want ErrLeaseLost", err)
	}
	if !errors.Is(l.Err(), ErrLeaseLost) {
		t.Fatalf("Err() = %v, want ErrLeaseLost", l.Err())
	}
	if err := l.Release(ctxT(t)); err != nil {
		t.Fatalf("Release after loss: %v", err)
	}
	if _, err := l.Next(); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Next after loss and Release: %v, want ErrLeaseLost still", err)
	}
}

func TestLeaseKeyTakenOverStopsGenerator(t *testing.T) {
	e := startEtcd(t)
	cli := newClient(t, e)
	l := mustLease(t, cli)
	if _, err := cli.Delete(ctxT(t), l.key); err != nil {
		t.Fatal(err)
	}
	waitDone(t, l, 5*time.Second)
	if _, err := l.Next(); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Next after the key was deleted: %v, want ErrLeaseLost", err)
	}
}

func TestLeaseKeptAlive(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for several TTLs")
	}
	e := startEtcd(t)
	l, err := Lease(ctxT(t), newClient(t, e), testPrefix, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	time.Sleep(3 * l.TTL()) // renewals must have run
	if _, err := l.Next(); err != nil {
		t.Fatalf("Next after 3 TTLs: %v", err)
	}
	if l.Err() != nil {
		t.Fatal(l.Err())
	}
}

func TestLeaseFenceStopsWithoutKeeper(t *testing.T) {
	e := startEtcd(t)
	l := mustLease(t, newClient(t, e))
	// As if no renewal had succeeded for a whole TTL: Next must refuse
	// even before the keeper notices.
	l.fence = lapsed{}
	if _, err := l.Next(); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Next past the fence: %v, want ErrLeaseLost", err)
	}
}

func TestLeaseExhausted(t *testing.T) {
	e := startEtcd(t)
	cli := newClient(t, e)
	ctx := ctxT(t)
	// Another "cluster" holds every machine ID.
	lr, err := cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	mp := machinesPrefix(testPrefix)
	for start := 0; start <= MaxMachine; start += 100 {
		var ops []clientv3.Op
		for n := start; n < min(start+100, MaxMachine+1); n++ {
			ops = append(ops, clientv3.OpPut(mp+strconv.Itoa(n), "other", clientv3.WithLease(lr.ID)))
		}
		if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Lease(ctx, cli, testPrefix, 2*time.Second); !errors.Is(err, ErrNoMachineID) {
		t.Fatalf("Lease with all IDs taken: %v, want ErrNoMachineID", err)
	}
	leases, err := cli.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(leases.Leases) != 1 {
		t.Fatalf("%d leases after the failed Lease, want 1 (its own was not revoked)", len(leases.Leases))
	}

	// One frees up.
	if _, err := cli.Delete(ctx, mp+"517"); err != nil {
		t.Fatal(err)
	}
	l := mustLease(t, cli)
	if l.Machine() != 517 {
		t.Fatalf("got machine %d, want 517", l.Machine())
	}
}

func TestLeaseBadArgs(t *testing.T) {
	if _, err := Lease(context.Background(), nil, testPrefix, time.Second); !errors.Is(err, ErrBadOption) {
		t.Fatalf("nil client: %v", err)
	}
	e := startEtcd(t)
	cli := newClient(t, e)
	if _, err := Lease(ctxT(t), cli, testPrefix, 0); !errors.Is(err, ErrBadOption) {
		t.Fatalf("zero TTL: %v", err)
	}
	if _, err := Lease(ctxT(t), cli, testPrefix, time.Second, WithClock(nil)); !errors.Is(err, ErrBadOption) {
		t.Fatalf("nil clock: %v", err)
	}
}

// lapsed is a fence that can no longer prove its lease valid.
type lapsed struct{}

func (lapsed) Valid() bool { return false }
