package cluster_test

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
)

func member(c, t, i int, available, export bool) cluster.Member {
	return cluster.Member{Addr: actor.MustAddr(c, t, i), Available: available, Export: export}
}

// members returns n available members of cluster 1, type typ.
func members(typ, n int) []cluster.Member {
	var out []cluster.Member
	for i := 1; i <= n; i++ {
		out = append(out, member(1, typ, i, true, false))
	}
	return out
}

var self = actor.MustAddr(1, 9, 1)

func TestSelectorFilters(t *testing.T) {
	view := []cluster.Member{
		member(1, 2, 1, true, false),  // ok
		member(1, 3, 1, true, false),  // wrong type
		member(1, 2, 2, false, false), // not available
		member(2, 2, 1, true, false),  // other cluster, not exported
		member(2, 2, 2, true, true),   // other cluster, exported: ok
		member(3, 2, 1, false, true),  // exported but not available
	}
	want := map[actor.Addr]bool{actor.MustAddr(1, 2, 1): true, actor.MustAddr(2, 2, 2): true}
	for _, how := range []cluster.Pick{cluster.Random, cluster.RoundRobin, cluster.ConsistentHash} {
		var s cluster.Selector
		seen := map[actor.Addr]int{}
		for i := range 200 {
			m, err := s.Pick(view, self, 2, how, fmt.Sprint("key", i))
			if err != nil {
				t.Fatalf("%v: %v", how, err)
			}
			if !want[m.Addr] {
				t.Fatalf("%v picked %v, which does not qualify", how, m.Addr)
			}
			seen[m.Addr]++
		}
		if len(seen) != 2 {
			t.Errorf("%v picked only %v; want both qualifying members", how, seen)
		}
	}
}

func TestSelectorNoMember(t *testing.T) {
	var s cluster.Selector
	view := []cluster.Member{member(1, 2, 1, false, true), member(2, 2, 1, true, false)}
	for _, how := range []cluster.Pick{cluster.Random, cluster.RoundRobin, cluster.ConsistentHash} {
		if _, err := s.Pick(view, self, 2, how, "k"); !errors.Is(err, cluster.ErrNoMember) {
			t.Errorf("%v: err = %v; want ErrNoMember", how, err)
		}
		if _, err := s.Pick(nil, self, 2, how, "k"); !errors.Is(err, cluster.ErrNoMember) {
			t.Errorf("%v on empty view: err = %v; want ErrNoMember", how, err)
		}
		if _, err := s.Pick(members(2, 3), self, 256, how, "k"); !errors.Is(err, cluster.ErrNoMember) {
			t.Errorf("%v with type 256: err = %v; want ErrNoMember", how, err)
		}
	}
	if _, err := s.Pick(members(2, 3), self, 2, cluster.Pick(42), "k"); !errors.Is(err, cluster.ErrBadPick) {
		t.Errorf("unknown pick: err = %v; want ErrBadPick", err)
	}
}

func TestSelectorRoundRobinFair(t *testing.T) {
	var s cluster.Selector
	view := members(2, 5)
	// Shuffle the view order: round robin follows Addr order regardless.
	view[0], view[3] = view[3], view[0]
	count := map[actor.Addr]int{}
	var prev actor.Addr
	for i := range 5000 {
		m, err := s.Pick(view, self, 2, cluster.RoundRobin, "")
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && m.Addr != prev+1 && !(m.Addr.Index() == 1 && prev.Index() == 5) {
			t.Fatalf("pick %d: %v after %v; want Addr order", i, m.Addr, prev)
		}
		prev = m.Addr
		count[m.Addr]++
	}
	for a, n := range count {
		if n != 1000 {
			t.Errorf("%v picked %d times; want exactly 1000", a, n)
		}
	}
	// A member joining mid-cycle is taken in its turn; one leaving is
	// skipped without restarting the cycle.
	view = members(2, 3)
	s = cluster.Selector{}
	pick := func() int {
		m, err := s.Pick(view, self, 2, cluster.RoundRobin, "")
		if err != nil {
			t.Fatal(err)
		}
		return m.Addr.Index()
	}
	got := []int{pick(), pick()} // 1, 2
	view = append(view, member(1, 2, 4, true, false))
	view = append(view[:2], view[3:]...) // 3 leaves
	got = append(got, pick(), pick(), pick())
	if fmt.Sprint(got) != "[1 2 4 1 2]" {
		t.Errorf("picks = %v; want [1 2 4 1 2]", got)
	}
	// Types have separate positions.
	other := members(3, 2)
	m, _ := s.Pick(other, self, 3, cluster.RoundRobin, "")
	if m.Addr.Index() != 1 {
		t.Errorf("first pick of type 3 = %v; want index 1", m.Addr)
	}
}

func TestSelectorRandomDistribution(t *testing.T) {
	var s cluster.Selector
	view := members(2, 4)
	const n = 40000
	count := map[actor.Addr]int{}
	for range n {
		m, err := s.Pick(view, self, 2, cluster.Random, "")
		if err != nil {
			t.Fatal(err)
		}
		count[m.Addr]++
	}
	// Each bucket is Binomial(40000, 1/4): sd ≈ 87, so ±600 is ~7 sd.
	for _, m := range view {
		if c := count[m.Addr]; math.Abs(float64(c)-n/4) > 600 {
			t.Errorf("%v picked %d times; want about %d", m.Addr, c, n/4)
		}
	}
}

func TestSelectorConsistentHash(t *testing.T) {
	var s cluster.Selector
	const keys = 20000
	const n = 10
	view := members(2, n)
	before := make([]actor.Addr, keys)
	load := map[actor.Addr]int{}
	for k := range keys {
		m, err := s.Pick(view, self, 2, cluster.ConsistentHash, fmt.Sprint("player-", k))
		if err != nil {
			t.Fatal(err)
		}
		before[k] = m.Addr
		load[m.Addr]++
	}
	// Balanced: each member's share is Binomial(20000, 1/10), sd ≈ 42.
	for _, m := range view {
		if c := load[m.Addr]; math.Abs(float64(c)-keys/n) > 300 {
			t.Errorf("%v owns %d keys; want about %d", m.Addr, c, keys/n)
		}
	}
	// Stable: the same key maps to the same member, whatever the order of
	// the view and whichever Selector asks.
	var s2 cluster.Selector
	rev := append([]cluster.Member(nil), view...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	for k := range 1000 {
		m, _ := s2.Pick(rev, self, 2, cluster.ConsistentHash, fmt.Sprint("player-", k))
		if m.Addr != before[k] {
			t.Fatalf("key %d maps to %v, then %v", k, before[k], m.Addr)
		}
	}

	// Join: only keys that now go to the new member move, about 1/(n+1).
	joined := member(1, 2, n+1, true, false)
	grown := append(append([]cluster.Member(nil), view...), joined)
	moved := 0
	for k := range keys {
		m, _ := s.Pick(grown, self, 2, cluster.ConsistentHash, fmt.Sprint("player-", k))
		if m.Addr != before[k] {
			moved++
			if m.Addr != joined.Addr {
				t.Fatalf("key %d moved from %v to %v, not to the new member", k, before[k], m.Addr)
			}
		}
	}
	want := float64(keys) / (n + 1) // ≈ 1818, sd ≈ 41
	if math.Abs(float64(moved)-want) > 300 {
		t.Errorf("%d of %d keys moved on join; want about %.0f (1/%d)", moved, keys, want, n+1)
	}

	// Leave (or unavailable): only the keys of that member move.
	gone := view[3].Addr
	shrunk := append([]cluster.Member(nil), view...)
	shrunk[3].Available = false
	moved = 0
	for k := range keys {
		m, _ := s.Pick(shrunk, self, 2, cluster.ConsistentHash, fmt.Sprint("player-", k))
		if m.Addr != before[k] {
			moved++
			if before[k] != gone {
				t.Fatalf("key %d moved from %v, which did not leave", k, before[k])
			}
		}
	}
	if moved != load[gone] {
		t.Errorf("%d keys moved when %v left; want its %d", moved, gone, load[gone])
	}
}

func TestSelectorConcurrent(t *testing.T) {
	var s cluster.Selector
	view := members(2, 8)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				how := cluster.Pick(i % 3)
				if _, err := s.Pick(view, self, 2, how, fmt.Sprint(g, i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func BenchmarkSelectorPick(b *testing.B) {
	view := members(2, 100)
	for _, how := range []cluster.Pick{cluster.Random, cluster.RoundRobin, cluster.ConsistentHash} {
		b.Run(how.String(), func(b *testing.B) {
			var s cluster.Selector
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := s.Pick(view, self, 2, how, "player-12345"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
