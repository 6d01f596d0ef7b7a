//go:build unix

package grain_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/internal/await"
)

// TestGrainFreeze freezes the node that owns the most grains (SIGSTOP) for
// three lease TTLs while calls go on, then thaws it (SIGCONT). Its lease
// expires meanwhile and the survivors take its grains over; when it wakes
// up it must not serve any of them again (its fence fails before its
// lease could have expired), and a write it was in the middle of must not
// land. The checks: no two activations of a grain served at once, no
// acknowledged write lost or applied twice, live and stored state agree.
func TestGrainFreeze(t *testing.T) {
	c := startMP(t, 3)
	gs, errs := mpGrains(300)
	c.create(gs)
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
	victim := 1
	for i := 2; i <= 3; i++ {
		if per[actor.MustAddr(1, 1, i).String()] > per[actor.MustAddr(1, 1, victim).String()] {
			victim = i
		}
	}
	victimAddr := actor.MustAddr(1, 1, victim).String()

	stop := make(chan struct{})
	wait := load(gs, c.sys, 100*time.Millisecond, time.Second, stop)
	stopped := false
	defer func() {
		if !stopped {
			close(stop)
			wait()
		}
	}()
	time.Sleep(time.Second)
	proc := c.child(victim).cmd.Process
	if err := proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()
	for _, g := range gs {
		g.mu.Lock()
		g.since = frozen.UnixNano()
		g.mu.Unlock()
	}
	t.Logf("grains per node: %v; froze %s", per, victimAddr)
	froze := 3 * mpTTL
	took := await.True(t, froze+30*time.Second, "every grain to answer a call made after the freeze", func() bool {
		return time.Since(frozen) >= froze && allAnswered(gs)
	})
	t.Logf("every grain answered within %v of the freeze", took.Round(time.Millisecond))
	if err := proc.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	t.Logf("thawed %s after %v", victimAddr, time.Since(frozen).Round(time.Millisecond))
	c.waitHosts(3)
	time.Sleep(2 * time.Second) // calls go on with the thawed node back in the cluster
	close(stop)
	wait()
	stopped = true
	calls, acked, failed := failSummary(gs)
	t.Logf("in all: %d calls, %d acknowledged, %d failed: %s", calls, acked, failed, errs.take())
	c.checkLive(gs)
	c.checkActivations(5 * time.Millisecond)
	for i := 1; i <= 3; i++ {
		c.stop(i)
	}
	c.checkStored(gs)
}

// allAnswered reports whether every grain has answered a call made after
// its since.
func allAnswered(gs []*mpGrain) bool {
	for _, g := range gs {
		g.mu.Lock()
		ok := g.firstOK != 0
		g.mu.Unlock()
		if !ok {
			return false
		}
	}
	return true
}
