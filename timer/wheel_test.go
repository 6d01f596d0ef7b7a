package timer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// wantTick is the tick on which After(d) scheduled at tick now runs.
func wantTick(now, d uint64) uint64 {
	return now + max(d, 1) - 1
}

func TestAfterFiresOnExactTick(t *testing.T) {
	// Delays cross every level boundary and go beyond the wheel's span;
	// starting ticks are on and around level boundaries.
	delays := []uint64{
		0, 1, 2, 255, 256, 257, 16383, 16384, 16385, 1 << 20, 1<<20 + 1,
		1<<26 - 1, 1 << 26, 1<<26 + 5, 1<<32 - 1, 1 << 32, 1<<32 + 7, 1<<40 + 3,
	}
	offsets := []uint64{
		0, 1, 255, 256, 1<<14 - 1, 1 << 14, 1<<20 + 77, 1<<26 - 1, 3<<30 + 12345, 1<<33 + 5,
	}
	for _, off := range offsets {
		for _, d := range delays {
			t.Run(fmt.Sprintf("offset=%d/delay=%d", off, d), func(t *testing.T) {
				w := New()
				w.AdvanceTo(off)
				if got := w.Now(); got != off {
					t.Fatalf("Now() = %d after AdvanceTo(%d)", got, off)
				}
				var ran []uint64
				tm := w.After(d, func() { ran = append(ran, w.Now()-1) })
				want := wantTick(off, d)
				checkInvariants(t, w)

				deadline := time.Now().Add(5 * time.Second)
				if n := w.AdvanceTo(want); n != 0 || len(ran) != 0 {
					t.Fatalf("fired early: AdvanceTo(%d) ran %d callbacks, fired on %v", want, n, ran)
				}
				if time.Now().After(deadline) {
					t.Fatalf("AdvanceTo(%d) with one pending timer took too long", want)
				}
				if !tm.Pending() || w.Len() != 1 {
					t.Fatalf("before expiry: Pending() = %v, Len() = %d", tm.Pending(), w.Len())
				}
				checkInvariants(t, w)
				if n := w.Advance(1); n != 1 {
					t.Fatalf("Advance(1) on tick %d ran %d callbacks, want 1", want, n)
				}
				if !slices.Equal(ran, []uint64{want}) {
					t.Fatalf("fired on ticks %v, want [%d]", ran, want)
				}
				if tm.Pending() || w.Len() != 0 || tm.Stop() {
					t.Fatalf("after firing: Pending() = %v, Len() = %d", tm.Pending(), w.Len())
				}
				w.Advance(1 << 33)
				if len(ran) != 1 {
					t.Fatalf("fired %d times", len(ran))
				}
				checkInvariants(t, w)
			})
		}
	}
}

// TestAfterTickByTick checks small and medium delays by stepping one tick
// per Advance call, with unrelated timers around.
func TestAfterTickByTick(t *testing.T) {
	for _, off := range []uint64{0, 100, 255, 1<<14 - 3} {
		for _, d := range []uint64{0, 1, 2, 255, 256, 257, 300, 16383, 16384, 16385} {
			w := New()
			w.AdvanceTo(off)
			noise := 0
			for _, nd := range []uint64{3, 250, 256, 4000, 16383, 16390, 1 << 15} {
				w.After(nd, func() { noise++ })
			}
			var ran []uint64
			w.After(d, func() { ran = append(ran, w.Now()-1) })
			want := wantTick(off, d)
			for w.Now() < want {
				w.Advance(1)
				if len(ran) != 0 {
					t.Fatalf("offset %d delay %d: fired on %v, want %d", off, d, ran, want)
				}
			}
			w.Advance(1)
			if !slices.Equal(ran, []uint64{want}) {
				t.Fatalf("offset %d delay %d: fired on %v, want [%d]", off, d, ran, want)
			}
			checkInvariants(t, w)
		}
	}
}

func TestAt(t *testing.T) {
	w := New()
	w.AdvanceTo(1000)
	var ran []string
	rec := func(name string) func() {
		return func() { ran = append(ran, fmt.Sprintf("%s@%d", name, w.Now()-1)) }
	}
	w.At(1005, rec("future"))
	w.At(1000, rec("now"))
	w.At(50, rec("past"))
	w.At(0, rec("zero"))
	w.At(1000+1<<32+9, rec("far"))
	if w.Len() != 5 {
		t.Fatalf("Len() = %d, want 5", w.Len())
	}
	if n := w.Advance(1); n != 3 {
		t.Fatalf("Advance(1) ran %d, want 3", n)
	}
	want := []string{"now@1000", "past@1000", "zero@1000"}
	if !slices.Equal(ran, want) {
		t.Fatalf("ran %v, want %v", ran, want)
	}
	w.AdvanceTo(1005)
	if len(ran) != 3 {
		t.Fatalf("At(1005) fired before tick 1005 was processed: %v", ran)
	}
	w.AdvanceTo(1006)
	if ran[3] != "future@1005" {
		t.Fatalf("ran %v", ran)
	}
	w.AdvanceTo(1000 + 1<<32 + 9)
	if len(ran) != 4 {
		t.Fatalf("far timer fired early: %v", ran)
	}
	w.Advance(1)
	if len(ran) != 5 || ran[4] != fmt.Sprintf("far@%d", 1000+1<<32+9) {
		t.Fatalf("ran %v", ran)
	}
	checkInvariants(t, w)
}

func TestAfterHugeDelay(t *testing.T) {
	w := New()
	w.AdvanceTo(10)
	fired := false
	tm := w.After(math.MaxUint64, func() { fired = true })
	w.Every(math.MaxUint64, math.MaxUint64, func() { fired = true })
	w.Advance(1 << 40)
	if fired || !tm.Pending() || w.Len() != 2 {
		t.Fatalf("fired = %v, Pending() = %v, Len() = %d", fired, tm.Pending(), w.Len())
	}
	checkInvariants(t, w)
}

// TestSameTickOrder schedules timers for one tick through different paths
// (directly into level 0, through one or more cascades, at a past tick,
// periodic) and checks they run in scheduling order.
func TestSameTickOrder(t *testing.T) {
	w := New()
	const target = 70000 // reached through levels 2, 1 and 0
	var got []int
	add := func(id int, schedule func(f func())) {
		schedule(func() {
			if now := w.Now() - 1; now != target {
				t.Errorf("timer %d ran on tick %d, want %d", id, now, target)
			}
			got = append(got, id)
		})
	}
	id := 0
	next := func() int { id++; return id }
	add(next(), func(f func()) { w.At(target, f) })             // level 2
	add(next(), func(f func()) { w.After(target+1, f) })        // level 2
	add(next(), func(f func()) { w.Every(target+1, 1<<20, f) }) // periodic
	w.AdvanceTo(target - 5000)                                  // now in level 1
	add(next(), func(f func()) { w.At(target, f) })             // level 1
	w.AdvanceTo(target - 100)                                   // the others are in level 0 now
	add(next(), func(f func()) { w.After(100+1, f) })           // level 0
	add(next(), func(f func()) { w.At(target, f) })             // level 0
	for range 50 {
		add(next(), func(f func()) { w.At(target, f) })
	}
	w.AdvanceTo(target)
	add(next(), func(f func()) { w.At(target-20, f) }) // past: runs on target
	add(next(), func(f func()) { w.After(0, f) })
	w.Advance(1)
	want := make([]int, id)
	for i := range want {
		want[i] = i + 1
	}
	if !slices.Equal(got, want) {
		t.Fatalf("run order %v, want %v", got, want)
	}
}

// TestCascadeOrder: a timer scheduled early sits in a higher level while a
// timer for the same tick scheduled later goes straight into level 0; the
// cascade appends the first behind the second, and the wheel must still
// run them in scheduling order.
func TestCascadeOrder(t *testing.T) {
	w := New()
	var got []string
	w.At(300, func() { got = append(got, "early") }) // level 1
	w.AdvanceTo(100)
	w.At(300, func() { got = append(got, "late") }) // level 0
	w.AdvanceTo(301)
	if !slices.Equal(got, []string{"early", "late"}) {
		t.Fatalf("order %v", got)
	}
}

func TestExpiryOrderWithinAdvance(t *testing.T) {
	w := New()
	var got []uint64
	rng := rand.New(rand.NewPCG(7, 7))
	for range 2000 {
		w.After(rng.Uint64N(1<<18), func() { got = append(got, w.Now()-1) })
	}
	if n := w.Advance(1 << 18); n != 2000 {
		t.Fatalf("ran %d, want 2000", n)
	}
	if !slices.IsSorted(got) {
		t.Fatal("callbacks did not run in expiry order")
	}
}

func TestStop(t *testing.T) {
	w := New()
	fired := 0
	tm := w.After(10, func() { fired++ })
	other := w.After(10, func() { fired += 100 })
	if !tm.Pending() || w.Len() != 2 {
		t.Fatalf("Pending() = %v, Len() = %d", tm.Pending(), w.Len())
	}
	w.Advance(5)
	if !tm.Stop() {
		t.Fatal("Stop() of a pending timer = false")
	}
	if tm.Stop() {
		t.Fatal("second Stop() = true")
	}
	if tm.Pending() || w.Len() != 1 {
		t.Fatalf("after Stop: Pending() = %v, Len() = %d", tm.Pending(), w.Len())
	}
	checkInvariants(t, w)
	w.Advance(100)
	if fired != 100 {
		t.Fatalf("fired = %d, want 100 (stopped timer must not run)", fired)
	}
	if other.Stop() {
		t.Fatal("Stop() after firing = true")
	}
	if other.Stop() || other.Pending() {
		t.Fatal("second Stop() after firing = true, or still pending")
	}

	// Stale handles stay stale after their node is reused.
	reuse := 0
	fresh := w.After(5, func() { reuse++ })
	if tm.Stop() || other.Stop() || tm.Pending() || other.Pending() {
		t.Fatal("stale handle affected a reused node")
	}
	w.Advance(5)
	if reuse != 1 || fresh.Pending() {
		t.Fatalf("reuse = %d", reuse)
	}

	var zero Timer
	if zero.Stop() || zero.Pending() {
		t.Fatal("zero Timer: Stop or Pending returned true")
	}
	checkInvariants(t, w)
}

func TestStopFromCallback(t *testing.T) {
	w := New()
	var got []string
	var second, later *Timer
	var stopSecond, stopLater, stopSelf bool
	var self *Timer
	w.After(5, func() {
		got = append(got, "first")
		stopSecond = second.Stop() // due on this tick, not started yet
		stopLater = later.Stop()
	})
	second = w.After(5, func() { got = append(got, "second") })
	later = w.After(6, func() { got = append(got, "later") })
	self = w.After(5, func() {
		got = append(got, "self")
		stopSelf = self.Stop()
	})
	if n := w.Advance(10); n != 2 {
		t.Fatalf("Advance ran %d callbacks, want 2", n)
	}
	if !slices.Equal(got, []string{"first", "self"}) {
		t.Fatalf("ran %v", got)
	}
	if !stopSecond || !stopLater {
		t.Fatalf("Stop from callback: second %v, later %v; want true", stopSecond, stopLater)
	}
	if stopSelf {
		t.Fatal("one-shot timer stopping itself from its callback: Stop() = true")
	}
	if w.Len() != 0 {
		t.Fatalf("Len() = %d", w.Len())
	}
	checkInvariants(t, w)
}

func TestStopConcurrentWithAdvance(t *testing.T) {
	const n = 20000
	w := New()
	fired := make([]atomic.Int32, n)
	timers := make([]*Timer, n)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range timers {
		timers[i] = w.After(rng.Uint64N(3000), func() { fired[i].Add(1) })
	}
	stopped := make([]bool, n)
	var wg sync.WaitGroup
	order := rng.Perm(n)
	for g := range 4 {
		wg.Go(func() {
			for _, i := range order[g*n/4 : (g+1)*n/4] {
				stopped[i] = timers[i].Stop()
				if timers[i].Stop() {
					t.Errorf("timer %d: second Stop() = true", i)
				}
			}
		})
	}
	wg.Go(func() {
		for w.Now() < 3000 {
			w.Advance(1 + uint64(w.Now()%7))
		}
	})
	wg.Wait()
	w.Advance(3000)
	nStopped := 0
	for i := range n {
		f := fired[i].Load()
		if stopped[i] {
			nStopped++
		}
		if stopped[i] && f != 0 || !stopped[i] && f != 1 {
			t.Fatalf("timer %d: Stop() = %v, fired %d times", i, stopped[i], f)
		}
	}
	if w.Len() != 0 {
		t.Fatalf("Len() = %d", w.Len())
	}
	t.Logf("%d of %d stopped before firing", nStopped, n)
	checkInvariants(t, w)
}

// TestStopConcurrentWithSameTickBatch stops timers from another goroutine
// while the batch of their tick is running, so most Stops hit timers that
// have been collected but not started.
func TestStopConcurrentWithSameTickBatch(t *testing.T) {
	const n = 5000
	w := New()
	fired := make([]atomic.Int32, n)
	timers := make([]*Timer, n)
	started := make(chan struct{})
	for i := range timers {
		timers[i] = w.After(5, func() {
			if i == 0 {
				close(started)
			}
			fired[i].Add(1)
			if i%64 == 0 {
				time.Sleep(10 * time.Microsecond)
			}
		})
	}
	periodic := w.Every(5, 1, func() {})
	stopped := make([]bool, n)
	var stoppedPeriodic bool
	var wg sync.WaitGroup
	wg.Go(func() {
		<-started
		for i := n - 1; i >= 0; i-- {
			stopped[i] = timers[i].Stop()
		}
		stoppedPeriodic = periodic.Stop()
	})
	w.Advance(5)
	wg.Wait()
	w.Advance(10)
	nStopped := 0
	for i := range n {
		f := fired[i].Load()
		if stopped[i] {
			nStopped++
		}
		if stopped[i] && f != 0 || !stopped[i] && f != 1 {
			t.Fatalf("timer %d: Stop() = %v, fired %d times", i, stopped[i], f)
		}
	}
	if !stoppedPeriodic || periodic.Pending() {
		t.Fatal("periodic timer: Stop() = false or still pending")
	}
	if w.Len() != 0 {
		t.Fatalf("Len() = %d", w.Len())
	}
	t.Logf("%d of %d stopped while their tick was being run", nStopped, n)
	checkInvariants(t, w)
}

// TestConcurrentUse schedules and stops timers from several goroutines
// while another drives the wheel.
func TestConcurrentUse(t *testing.T) {
	w := New()
	var fired, stoppedOK, scheduled atomic.Int64
	var wg sync.WaitGroup
	done := make(chan struct{})
	for g := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			for range 3000 {
				tm := w.After(rng.Uint64N(600), func() { fired.Add(1) })
				scheduled.Add(1)
				if rng.IntN(2) == 0 && tm.Stop() {
					stoppedOK.Add(1)
				}
				if rng.IntN(8) == 0 {
					p := w.Every(1, 1+rng.Uint64N(5), func() {})
					if !p.Stop() {
						t.Error("Stop of a periodic timer returned false")
					}
				}
			}
		})
	}
	var driver sync.WaitGroup
	driver.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
				w.Advance(3)
			}
		}
	})
	wg.Wait()
	close(done)
	driver.Wait()
	w.Advance(1000)
	if got, want := fired.Load()+stoppedOK.Load(), scheduled.Load(); got != want {
		t.Fatalf("fired %d + stopped %d != scheduled %d", fired.Load(), stoppedOK.Load(), want)
	}
	if w.Len() != 0 {
		t.Fatalf("Len() = %d", w.Len())
	}
	checkInvariants(t, w)
}

func TestEvery(t *testing.T) {
	w := New()
	w.AdvanceTo(77)
	var ticks []uint64
	p := w.Every(5, 3, func() { ticks = append(ticks, w.Now()-1) })
	if n := w.Advance(4); n != 0 {
		t.Fatalf("periodic timer fired before its first delay: ticks %v", ticks)
	}
	w.Advance(1)
	if !slices.Equal(ticks, []uint64{81}) {
		t.Fatalf("first run on %v, want [81]", ticks)
	}
	if n := w.Advance(30); n != 10 {
		t.Fatalf("Advance(30) ran %d, want 10", n)
	}
	want := []uint64{81, 84, 87, 90, 93, 96, 99, 102, 105, 108, 111}
	if !slices.Equal(ticks, want) {
		t.Fatalf("ran on %v, want %v", ticks, want)
	}
	if !p.Pending() || w.Len() != 1 {
		t.Fatalf("periodic: Pending() = %v, Len() = %d", p.Pending(), w.Len())
	}
	checkInvariants(t, w)
	if !p.Stop() {
		t.Fatal("Stop() of periodic = false")
	}
	if p.Stop() || p.Pending() || w.Len() != 0 {
		t.Fatal("periodic timer still active after Stop")
	}
	w.Advance(100)
	if len(ticks) != len(want) {
		t.Fatalf("ran after Stop: %v", ticks)
	}
	checkInvariants(t, w)
}

func TestEveryZero(t *testing.T) {
	w := New()
	count := 0
	each := w.Every(0, 0, func() { count++ })
	if n := w.Advance(10); n != 10 || count != 10 {
		t.Fatalf("Every(0, 0): %d runs in 10 ticks, want 10", count)
	}
	if !each.Stop() {
		t.Fatal("Stop() = false")
	}
	// Long periods through the upper levels.
	var ticks []uint64
	p := w.Every(1<<20, 1<<26+3, func() { ticks = append(ticks, w.Now()-1) })
	start := w.Now()
	w.Advance(1<<20 + 3*(1<<26+3))
	want := []uint64{start + 1<<20 - 1}
	for range 3 {
		want = append(want, want[len(want)-1]+1<<26+3)
	}
	if !slices.Equal(ticks, want) {
		t.Fatalf("ran on %v, want %v", ticks, want)
	}
	p.Stop()
}

func TestEveryStopsItself(t *testing.T) {
	w := New()
	var p *Timer
	runs := 0
	var stopResult bool
	p = w.Every(1, 2, func() {
		runs++
		if runs == 3 {
			stopResult = p.Stop()
			if p.Pending() {
				t.Error("Pending() = true right after stopping itself")
			}
		}
	})
	w.Advance(100)
	if runs != 3 {
		t.Fatalf("runs = %d, want 3", runs)
	}
	if !stopResult {
		t.Fatal("periodic Stop() from its own callback = false, want true")
	}
	if p.Stop() || p.Pending() || w.Len() != 0 {
		t.Fatal("periodic timer still active")
	}
	checkInvariants(t, w)
}

// TestEveryStoppedByOtherCallbackSameTick: a periodic timer due on the same
// tick as another timer that stops it first must not run.
func TestEveryStoppedByOtherCallbackSameTick(t *testing.T) {
	w := New()
	runs := 0
	var p *Timer
	w.After(3, func() {
		if !p.Stop() {
			t.Error("Stop() = false")
		}
	})
	p = w.Every(1, 1, func() { runs++ })
	w.Advance(10)
	if runs != 2 {
		t.Fatalf("runs = %d, want 2 (ticks 0 and 1)", runs)
	}
	checkInvariants(t, w)
}

func TestAdvanceToJumpsWhenEmpty(t *testing.T) {
	w := New()
	start := time.Now()
	if n := w.AdvanceTo(1 << 62); n != 0 {
		t.Fatalf("ran %d", n)
	}
	if w.Now() != 1<<62 {
		t.Fatalf("Now() = %d", w.Now())
	}
	w.Advance(1 << 61)
	if w.Now() != 1<<62+1<<61 {
		t.Fatalf("Now() = %d", w.Now())
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("empty jumps took %v", d)
	}
	// No-ops.
	if n := w.AdvanceTo(5); n != 0 || w.Now() != 1<<62+1<<61 {
		t.Fatal("AdvanceTo into the past moved the wheel")
	}
	if n := w.Advance(0); n != 0 || w.Now() != 1<<62+1<<61 {
		t.Fatal("Advance(0) moved the wheel")
	}
	// Timers still work after a jump.
	fired := 0
	w.After(300, func() { fired++ })
	w.Advance(299)
	if fired != 0 {
		t.Fatal("fired early after jump")
	}
	w.Advance(1)
	if fired != 1 {
		t.Fatal("did not fire after jump")
	}
	// Saturates instead of wrapping.
	w.Advance(math.MaxUint64)
	if w.Now() != math.MaxUint64 {
		t.Fatalf("Now() = %d, want MaxUint64", w.Now())
	}
}

// TestAdvanceSkipsWithPendingTimers: large advances with sparse timers
// pending must not step tick by tick.
func TestAdvanceSkipsWithPendingTimers(t *testing.T) {
	w := New()
	start := time.Now()
	fired := 0
	for i := range uint64(64) {
		w.After(i<<34+i, func() { fired++ })
	}
	w.Every(1<<30, 1<<30, func() {})
	w.AdvanceTo(1 << 40)
	if fired != 64 {
		t.Fatalf("fired %d of 64", fired)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("advancing 2^40 ticks with sparse timers took %v", d)
	}
}

func TestScheduleFromCallback(t *testing.T) {
	w := New()
	var got []string
	rec := func(name string) func() {
		return func() { got = append(got, fmt.Sprintf("%s@%d", name, w.Now()-1)) }
	}
	w.After(10, func() {
		rec("parent")()
		w.After(0, rec("after0"))         // next tick
		w.After(5, rec("after5"))         // 5th tick from here
		w.At(3, rec("atPast"))            // already processed: next tick
		w.At(w.Now()-1, rec("atCurrent")) // the tick being processed is past too
		w.After(1000, rec("far"))
		// 5 new timers, plus the chain's timer due on this tick, which
		// runs after this callback.
		if w.Len() != 6 {
			t.Errorf("Len() in callback = %d, want 6", w.Len())
		}
	})
	chain := 0
	var step func()
	step = func() {
		chain++
		if chain < 20 {
			w.After(1, step)
		}
	}
	w.After(1, step)
	if n := w.Advance(20); n != 1+4+20 {
		t.Fatalf("Advance(20) ran %d callbacks, want 25; ran %v", n, got)
	}
	want := []string{"parent@9", "after0@10", "atPast@10", "atCurrent@10", "after5@14"}
	if !slices.Equal(got, want) {
		t.Fatalf("ran %v, want %v", got, want)
	}
	if chain != 20 {
		t.Fatalf("chain = %d, want 20", chain)
	}
	if w.Len() != 1 {
		t.Fatalf("Len() = %d", w.Len())
	}
	w.AdvanceTo(2000)
	if got[len(got)-1] != "far@1009" {
		t.Fatalf("ran %v", got)
	}
	checkInvariants(t, w)
}

func advanceRecover(w *Wheel, n uint64) (r any) {
	defer func() { r = recover() }()
	w.Advance(n)
	return nil
}

func TestPanicInCallback(t *testing.T) {
	w := New()
	var got []string
	rec := func(name string) func() {
		return func() { got = append(got, fmt.Sprintf("%s@%d", name, w.Now()-1)) }
	}
	w.At(6, rec("d")) // scheduled first, but runs after the left-over c
	w.At(5, rec("a"))
	bad := w.At(5, func() { rec("b")(); panic("boom") })
	c := w.At(5, rec("c"))
	e := w.At(5, rec("e"))
	prun := 0
	periodic := w.Every(7, 1, func() { // first run on tick 6
		prun++
		if prun == 1 {
			panic("periodic boom")
		}
	})

	if r := advanceRecover(w, 10); r != "boom" {
		t.Fatalf("recovered %v, want boom", r)
	}
	if !w.mu.TryLock() {
		t.Fatal("wheel left locked after a panicking callback")
	}
	w.mu.Unlock()
	if !slices.Equal(got, []string{"a@5", "b@5"}) {
		t.Fatalf("ran %v before the panic", got)
	}
	if w.Now() != 6 {
		t.Fatalf("Now() = %d, want 6 (tick 5 processed)", w.Now())
	}
	if bad.Pending() || bad.Stop() {
		t.Fatal("panicked one-shot timer still pending")
	}
	if !c.Pending() || !e.Pending() {
		t.Fatal("timers not run because of the panic are no longer pending")
	}
	if w.Len() != 4 { // c, e, d, periodic
		t.Fatalf("Len() = %d, want 4", w.Len())
	}
	checkInvariants(t, w)
	if !e.Stop() {
		t.Fatal("could not stop a timer left over by the panic")
	}

	// Tick 6: the left-over c runs first, then d, then the periodic timer,
	// which panics on its first run.
	if r := advanceRecover(w, 10); r != "periodic boom" {
		t.Fatalf("recovered %v, want periodic boom", r)
	}
	if !slices.Equal(got, []string{"a@5", "b@5", "c@6", "d@6"}) {
		t.Fatalf("ran %v", got)
	}
	if !periodic.Pending() {
		t.Fatal("periodic timer not re-armed after panicking")
	}
	checkInvariants(t, w)

	// The wheel keeps working.
	w.After(3, rec("new"))
	if n := w.Advance(3); n != 4 { // periodic on 7, 8, 9 and new on 9
		t.Fatalf("Advance(3) ran %d callbacks, want 4", n)
	}
	if got[len(got)-1] != "new@9" || prun != 4 {
		t.Fatalf("ran %v, periodic ran %d times", got, prun)
	}
	periodic.Stop()
	if w.Len() != 0 {
		t.Fatalf("Len() = %d", w.Len())
	}
	checkInvariants(t, w)
}

func TestNilCallbackPanics(t *testing.T) {
	w := New()
	for name, f := range map[string]func(){
		"After": func() { w.After(1, nil) },
		"At":    func() { w.At(1, nil) },
		"Every": func() { w.Every(1, 1, nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s with nil callback did not panic", name)
				}
			}()
			f()
		}()
	}
	if w.Len() != 0 {
		t.Fatalf("Len() = %d", w.Len())
	}
	checkInvariants(t, w)
}

func TestAllocations(t *testing.T) {
	w := New()
	f := func() {}
	for range 100 {
		w.After(50, f).Stop()
	}
	if a := testing.AllocsPerRun(1000, func() { w.After(1000, f).Stop() }); a > 1 {
		t.Errorf("After+Stop: %v allocations, want at most 1", a)
	}
	tm := w.After(1000, f)
	if a := testing.AllocsPerRun(100, func() { tm.Stop() }); a != 0 {
		t.Errorf("Stop: %v allocations, want 0", a)
	}
	for i := range uint64(200) {
		w.Every(i%7, 1+i%13, f)
		w.After(i, f)
	}
	w.Advance(1000)
	if a := testing.AllocsPerRun(1000, func() { w.Advance(1) }); a != 0 {
		t.Errorf("Advance: %v allocations, want 0", a)
	}
	sparse := New()
	for i := range uint64(20) {
		sparse.Every(i<<10, 1<<16+i, f)
	}
	sparse.Advance(1 << 20)
	if a := testing.AllocsPerRun(100, func() { sparse.Advance(1 << 20) }); a != 0 {
		t.Errorf("Advance(1<<20): %v allocations, want 0", a)
	}
}

// propTimer is the model of one timer in TestRandomized.
type propTimer struct {
	id       int    // scheduling order
	due      uint64 // first tick it runs on
	period   uint64 // 0 for one-shot
	tm       *Timer
	stopped  bool   // Stop was called
	stopOK   bool   // ... and returned true
	stopNow  uint64 // Now() when Stop was called
	ran      []uint64
	children bool // schedules a child timer when it runs
	maxRuns  int  // a periodic timer stops itself after this many runs
}

// expected returns the ticks the timer must have run on.
func (p *propTimer) expected(end uint64) []uint64 {
	limit := end // ticks < limit have been processed
	if p.stopped {
		limit = min(limit, p.stopNow)
	}
	var ticks []uint64
	for tk := p.due; tk < limit; tk += p.period {
		ticks = append(ticks, tk)
		if p.period == 0 || tk+p.period < tk {
			break
		}
	}
	return ticks
}

func randomDelay(rng *rand.Rand) uint64 {
	switch rng.IntN(10) {
	case 0:
		return rng.Uint64N(4)
	case 1, 2:
		return rng.Uint64N(512)
	case 3:
		// Around a level boundary.
		b := []uint64{1 << 8, 1 << 14, 1 << 20, 1 << 26}[rng.IntN(4)]
		return b - 3 + rng.Uint64N(7)
	case 4, 5:
		return rng.Uint64N(1 << 16)
	case 6, 7:
		return rng.Uint64N(1 << 22)
	case 8:
		return rng.Uint64N(1 << 28)
	default:
		if rng.IntN(4) == 0 {
			return 1<<32 - 5 + rng.Uint64N(1<<33) // beyond the span
		}
		return rng.Uint64N(1 << 24)
	}
}

func randomStep(rng *rand.Rand) uint64 {
	switch rng.IntN(10) {
	case 0, 1, 2:
		return 1 + rng.Uint64N(3)
	case 3, 4:
		return rng.Uint64N(300)
	case 5, 6:
		return rng.Uint64N(1 << 14)
	case 7, 8:
		return rng.Uint64N(1 << 20)
	default:
		if rng.IntN(5) == 0 {
			return rng.Uint64N(1 << 34)
		}
		return rng.Uint64N(1 << 26)
	}
}

// TestRandomized schedules thousands of timers with random delays across
// all levels (and beyond the span), stops random ones, advances in random
// steps, and checks that every timer ran exactly on its expiry tick(s),
// in expiry then scheduling order, and that Len tracks the model.
func TestRandomized(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4}
	rounds := 300
	if testing.Short() {
		seeds, rounds = seeds[:1], 100
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runRandomized(t, seed, rounds) })
	}
}

func runRandomized(t *testing.T, seed uint64, rounds int) {
	rng := rand.New(rand.NewPCG(seed, 42))
	w := New()
	w.AdvanceTo(rng.Uint64N(1 << 30))
	var all []*propTimer
	type event struct {
		tick uint64
		id   int
	}
	var log []event

	var schedule func(kind int, d uint64, period uint64) *propTimer
	schedule = func(kind int, d uint64, period uint64) *propTimer {
		p := &propTimer{id: len(all)}
		all = append(all, p)
		p.children = rng.IntN(10) == 0
		p.maxRuns = 1 + rng.IntN(30)
		f := func() {
			tick := w.Now() - 1
			p.ran = append(p.ran, tick)
			log = append(log, event{tick, p.id})
			if p.children && len(p.ran) == 1 {
				schedule(rng.IntN(2), randomDelay(rng), 0)
			}
			if p.period != 0 && len(p.ran) == p.maxRuns {
				p.stopped, p.stopNow = true, w.Now()
				if p.stopOK = p.tm.Stop(); !p.stopOK {
					t.Errorf("timer %d: periodic Stop() from its callback = false", p.id)
				}
			}
		}
		now := w.Now()
		switch kind {
		case 0:
			p.due = wantTick(now, d)
			p.tm = w.After(d, f)
		case 1:
			tick := now + d
			if rng.IntN(4) == 0 {
				tick = now - min(now, d) // in the past
			}
			p.due = max(tick, now)
			p.tm = w.At(tick, f)
		case 2:
			p.due = wantTick(now, d)
			p.period = max(period, 1)
			p.tm = w.Every(d, period, f)
		}
		return p
	}

	checkLen := func() {
		t.Helper()
		now := w.Now()
		want := 0
		for _, p := range all {
			if !p.stopped && (p.period != 0 || p.due >= now) {
				want++
			}
		}
		if got := w.Len(); got != want {
			t.Fatalf("Len() = %d, model says %d", got, want)
		}
	}

	for round := range rounds {
		for range rng.IntN(40) {
			kind := rng.IntN(2)
			var period uint64
			if rng.IntN(20) == 0 {
				kind = 2
				period = []uint64{0, 1, 7, 255, 256, 1000, 1 << 14, 1 << 20, 1<<26 + 1}[rng.IntN(9)]
			}
			schedule(kind, randomDelay(rng), period)
		}
		for range rng.IntN(15) {
			p := all[rng.IntN(len(all))]
			if p.stopped {
				if p.tm.Stop() {
					t.Fatalf("timer %d: second Stop() = true", p.id)
				}
				continue
			}
			p.stopped, p.stopNow = true, w.Now()
			p.stopOK = p.tm.Stop()
		}
		w.Advance(randomStep(rng))
		if round%10 == 0 {
			checkInvariants(t, w)
		}
		checkLen()
	}
	// Stop some periodic timers from outside, let the others stop
	// themselves, and run everything out (callbacks may add timers).
	for _, p := range all {
		if p.period != 0 && !p.stopped && rng.IntN(2) == 0 {
			p.stopped, p.stopNow = true, w.Now()
			p.stopOK = p.tm.Stop()
		}
	}
	for w.Len() > 0 {
		last := w.Now()
		for _, p := range all {
			if !p.stopped {
				last = max(last, p.due+p.period*uint64(p.maxRuns))
			}
		}
		w.AdvanceTo(last + 1)
	}
	end := w.Now()
	checkInvariants(t, w)

	ran := 0
	for _, p := range all {
		want := p.expected(end)
		if !slices.Equal(p.ran, want) {
			t.Fatalf("timer %d (due %d, period %d, stopped %v at %d): ran on %v, want %v",
				p.id, p.due, p.period, p.stopped, p.stopNow, p.ran, want)
		}
		ran += len(p.ran)
		if p.stopped {
			// Stop returns true iff it prevented a (further) run.
			prevented := p.period != 0 || p.due >= p.stopNow
			if p.stopOK != prevented {
				t.Fatalf("timer %d (due %d, period %d): Stop() at %d = %v, want %v",
					p.id, p.due, p.period, p.stopNow, p.stopOK, prevented)
			}
		}
		if p.tm.Pending() {
			t.Fatalf("timer %d still pending at the end", p.id)
		}
	}
	for i := 1; i < len(log); i++ {
		a, b := log[i-1], log[i]
		if b.tick < a.tick || b.tick == a.tick && b.id < a.id {
			t.Fatalf("run order: timer %d on tick %d ran before timer %d on tick %d", a.id, a.tick, b.id, b.tick)
		}
	}
	t.Logf("%d timers, %d runs, final tick %d", len(all), ran, end)
}
