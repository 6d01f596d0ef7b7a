package idgen

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock that moves only when told. Readings queued with
// script are returned first, one per call.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	script []time.Time
	reads  int
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{now: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads++
	if len(c.script) > 0 {
		t := c.script[0]
		c.script = c.script[1:]
		return t
	}
	return c.now
}

func (c *fakeClock) Set(t time.Time, script ...time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now, c.script = t, script
}

func (c *fakeClock) Reads() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads
}

func mustNew(t *testing.T, machine uint16, opts ...Option) *Generator {
	t.Helper()
	g, err := New(machine, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func mustNext(t *testing.T, g *Generator) ID {
	t.Helper()
	id, err := g.Next()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestUniqueConcurrent(t *testing.T) {
	const workers, per = 8, 125_000 // 1e6 IDs
	g := mustNew(t, 7)
	out := make([][]ID, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			ids := make([]ID, per)
			for i := range ids {
				id, err := g.Next()
				if err != nil {
					t.Error(err)
					return
				}
				ids[i] = id
			}
			out[w] = ids
		})
	}
	wg.Wait()
	var all []ID
	for w, ids := range out {
		// Each goroutine sees increasing IDs.
		for i := 1; i < len(ids); i++ {
			if ids[i] <= ids[i-1] {
				t.Fatalf("worker %d: id %d after %d", w, ids[i], ids[i-1])
			}
		}
		all = append(all, ids...)
	}
	if len(all) != workers*per {
		t.Fatalf("got %d IDs, want %d", len(all), workers*per)
	}
	slices.Sort(all)
	for i := 1; i < len(all); i++ {
		if all[i] == all[i-1] {
			t.Fatalf("duplicate ID %d", all[i])
		}
	}
	for _, id := range all[:10] {
		if id.Machine() != 7 || id <= 0 {
			t.Fatalf("bad ID %d: machine %d", id, id.Machine())
		}
	}
}

func TestMonotonic(t *testing.T) {
	g := mustNew(t, 1)
	prev := mustNext(t, g)
	for range 100_000 {
		id := mustNext(t, g)
		if id <= prev {
			t.Fatalf("id %d after %d", id, prev)
		}
		prev = id
	}
	if d := time.Since(prev.Time()); d < 0 || d > time.Minute {
		t.Fatalf("ID time %v is %v from now", prev.Time(), d)
	}
}

func TestSequenceOverflowWaits(t *testing.T) {
	t0 := DefaultEpoch.Add(1000 * time.Millisecond)
	clk := newFakeClock(t0)
	g := mustNew(t, 3, WithClock(clk.Now))
	for i := range MaxSeq + 1 {
		id := mustNext(t, g)
		if id.Millis() != 1000 || id.Sequence() != i {
			t.Fatalf("ID %d: ms %d seq %d, want 1000 and %d", i, id.Millis(), id.Sequence(), i)
		}
	}
	got := make(chan ID, 1)
	go func() {
		id, err := g.Next()
		if err != nil {
			t.Error(err)
		}
		got <- id
	}()
	select {
	case id := <-got:
		t.Fatalf("4097th ID %d issued in the same millisecond", id)
	case <-time.After(30 * time.Millisecond):
	}
	clk.Set(t0.Add(time.Millisecond))
	select {
	case id := <-got:
		if id.Millis() != 1001 || id.Sequence() != 0 {
			t.Fatalf("after overflow: ms %d seq %d, want 1001 and 0", id.Millis(), id.Sequence())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next still waiting after the clock moved on")
	}
}

func TestRollbackWithinMaxWaitWaits(t *testing.T) {
	t0 := DefaultEpoch.Add(time.Hour)
	clk := newFakeClock(t0)
	g := mustNew(t, 3, WithClock(clk.Now), WithMaxRollbackWait(5*time.Millisecond))
	prev := mustNext(t, g)
	// The clock goes back 3 ms, then (after Next's sleep) is ahead again.
	clk.Set(t0.Add(time.Millisecond), t0.Add(-3*time.Millisecond))
	start := time.Now()
	id := mustNext(t, g)
	if el := time.Since(start); el < 3*time.Millisecond {
		t.Fatalf("Next returned after %v; want a wait of 3ms", el)
	}
	if id <= prev || id.Millis() != prev.Millis()+1 || id.Sequence() != 0 {
		t.Fatalf("id %d (ms %d seq %d) after %d", id, id.Millis(), id.Sequence(), prev)
	}
	if n := clk.Reads(); n != 3 {
		t.Fatalf("clock read %d times, want 3", n)
	}
}

func TestRollbackBeyondMaxWaitFails(t *testing.T) {
	t0 := DefaultEpoch.Add(time.Hour)
	clk := newFakeClock(t0)
	g := mustNew(t, 3, WithClock(clk.Now), WithMaxRollbackWait(5*time.Millisecond))
	prev := mustNext(t, g)
	clk.Set(t0.Add(-10 * time.Millisecond))
	start := time.Now()
	id, err := g.Next()
	if !errors.Is(err, ErrClockRollback) || id != 0 {
		t.Fatalf("Next = %d, %v; want 0, ErrClockRollback", id, err)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("failing took %v; want no wait", el)
	}
	// Nothing was issued: the next ID follows prev directly.
	clk.Set(t0)
	if id := mustNext(t, g); id != prev+1 {
		t.Fatalf("after the failure: id %d, want %d", id, prev+1)
	}
}

func TestRollbackClockStuckFails(t *testing.T) {
	t0 := DefaultEpoch.Add(time.Hour)
	clk := newFakeClock(t0)
	g := mustNew(t, 3, WithClock(clk.Now), WithMaxRollbackWait(5*time.Millisecond))
	mustNext(t, g)
	clk.Set(t0.Add(-3 * time.Millisecond)) // and it never moves again
	if _, err := g.Next(); !errors.Is(err, ErrClockRollback) {
		t.Fatalf("Next with a stuck clock: %v, want ErrClockRollback", err)
	}
}

func TestZeroRollbackWaitFailsAtOnce(t *testing.T) {
	t0 := DefaultEpoch.Add(time.Hour)
	clk := newFakeClock(t0)
	g := mustNew(t, 3, WithClock(clk.Now), WithMaxRollbackWait(0))
	mustNext(t, g)
	clk.Set(t0.Add(-time.Millisecond))
	if _, err := g.Next(); !errors.Is(err, ErrClockRollback) {
		t.Fatalf("Next: %v, want ErrClockRollback", err)
	}
}

func TestTimeRange(t *testing.T) {
	clk := newFakeClock(DefaultEpoch.Add(-time.Second))
	g := mustNew(t, 0, WithClock(clk.Now))
	if _, err := g.Next(); !errors.Is(err, ErrTimeRange) {
		t.Fatalf("before epoch: %v, want ErrTimeRange", err)
	}
	clk.Set(DefaultEpoch.Add((maxMillis + 1) * time.Millisecond))
	if _, err := g.Next(); !errors.Is(err, ErrTimeRange) {
		t.Fatalf("after 2^41 ms: %v, want ErrTimeRange", err)
	}
	clk.Set(DefaultEpoch.Add(maxMillis * time.Millisecond))
	if id := mustNext(t, g); id.Millis() != maxMillis || id < 0 {
		t.Fatalf("last millisecond: id %d ms %d", id, id.Millis())
	}
}

func TestFirstIDIsNotZero(t *testing.T) {
	clk := newFakeClock(DefaultEpoch)
	g := mustNew(t, 0, WithClock(clk.Now))
	if id := mustNext(t, g); id == 0 {
		t.Fatal("issued ID 0")
	}
}

func TestLayoutRoundTrip(t *testing.T) {
	cases := []struct {
		ms      int64
		machine uint16
		seq     int64
	}{
		{0, 0, 1}, {1, 1, 1}, {12345, 517, 4000}, {maxMillis, MaxMachine, MaxSeq}, {maxMillis, 0, 0}, {0, MaxMachine, 0},
	}
	for _, c := range cases {
		id := makeID(c.ms, c.machine, c.seq)
		if id < 0 || id.Millis() != c.ms || id.Machine() != c.machine || int64(id.Sequence()) != c.seq {
			t.Errorf("makeID(%d, %d, %d) = %d -> (%d, %d, %d)", c.ms, c.machine, c.seq, id, id.Millis(), id.Machine(), id.Sequence())
		}
		back, err := ParseID(id.String())
		if err != nil || back != id {
			t.Errorf("ParseID(%q) = %d, %v", id.String(), back, err)
		}
	}
	if got := makeID(maxMillis, MaxMachine, MaxSeq); int64(got) != 1<<63-1 {
		t.Errorf("all ones = %x, want 7fff...", int64(got))
	}
	if got := makeID(1, 1, 1); int64(got) != 1<<22|1<<12|1 {
		t.Errorf("makeID(1,1,1) = %b", int64(got))
	}
	for _, s := range []string{"", "x", "-1", "9223372036854775808"} {
		if _, err := ParseID(s); err == nil {
			t.Errorf("ParseID(%q) succeeded", s)
		}
	}

	// Time and TimeFrom.
	at := DefaultEpoch.Add(12345 * time.Millisecond)
	id := mustNext(t, mustNew(t, 9, WithClock(newFakeClock(at.Add(700*time.Microsecond)).Now)))
	if !id.Time().Equal(at) || id.Machine() != 9 {
		t.Fatalf("Time() = %v machine %d, want %v and 9", id.Time(), id.Machine(), at)
	}
	epoch := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	g := mustNew(t, 9, WithEpoch(epoch), WithClock(newFakeClock(at).Now))
	if id := mustNext(t, g); !id.TimeFrom(g.Epoch()).Equal(at) {
		t.Fatalf("TimeFrom = %v, want %v", id.TimeFrom(epoch), at)
	}
}

func TestMachineRange(t *testing.T) {
	for _, m := range []uint16{0, 1, 512, MaxMachine} {
		g, err := New(m)
		if err != nil {
			t.Fatalf("New(%d): %v", m, err)
		}
		if id := mustNext(t, g); id.Machine() != m || g.Machine() != m {
			t.Fatalf("New(%d): ID machine %d", m, id.Machine())
		}
	}
	for _, m := range []uint16{MaxMachine + 1, 4096, 65535} {
		if _, err := New(m); !errors.Is(err, ErrBadMachine) {
			t.Fatalf("New(%d): %v, want ErrBadMachine", m, err)
		}
	}
}

func TestBadOptions(t *testing.T) {
	for name, o := range map[string]Option{
		"nil clock":     WithClock(nil),
		"zero epoch":    WithEpoch(time.Time{}),
		"negative wait": WithMaxRollbackWait(-time.Millisecond),
	} {
		if _, err := New(1, o); !errors.Is(err, ErrBadOption) {
			t.Errorf("%s: %v, want ErrBadOption", name, err)
		}
	}
}

func TestStopIsFinal(t *testing.T) {
	g := mustNew(t, 1)
	mustNext(t, g)
	g.stop(ErrReleased)
	g.stop(ErrLeaseLost) // the first reason stays
	if _, err := g.Next(); !errors.Is(err, ErrReleased) {
		t.Fatalf("Next after stop: %v, want ErrReleased", err)
	}
}
