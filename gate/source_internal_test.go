package gate

import (
	"fmt"
	"testing"
	"time"

	"github.com/guildkit/guild/gate/gatepb"
	"github.com/guildkit/guild/rpc"
)

func TestSourceKey(t *testing.T) {
	for in, want := range map[string]string{
		"10.1.2.3:4567":            "s:10.1.2.3",
		"[::ffff:10.1.2.3]:80":     "s:10.1.2.3",
		"[2001:db8:1:2:3:4:5:6]:1": "s:2001:db8:1:2::/64",
		"[2001:db8:1:2:ff::1]:9":   "s:2001:db8:1:2::/64",
		"[fe80::1%eth0]:9":         "s:fe80::/64",
		"2001:db8:1:3::1":          "s:2001:db8:1:3::/64",
		"not an address":           "s:not an address",
	} {
		if got := sourceKey(in); got != want {
			t.Errorf("sourceKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestLimitTableBounded: the table never holds more than its size plus
// the entries held, and an entry still held keeps its bucket.
func TestLimitTableBounded(t *testing.T) {
	lim := Limits{}.withDefaults()
	lim.MaxConns = 100
	tab := newLimitTable(lim)
	now := time.Now()
	held, _, ok := tab.open("192.0.2.1:1", now)
	if !ok {
		t.Fatal("the first connection was refused")
	}
	for range lim.SourceBurst {
		tab.take(held, now)
	}
	if tab.take(held, now) {
		t.Fatal("an empty source bucket gave a token")
	}
	for i := range 10 * tab.size {
		e, _, ok := tab.open(fmt.Sprintf("[2001:db8:%x::1]:1", i), now)
		if !ok {
			t.Fatalf("connection %d refused", i)
		}
		tab.close(e)
		if n := tab.len(); n > tab.size+1 {
			t.Fatalf("the table holds %d entries, size %d", n, tab.size)
		}
	}
	if tab.take(held, now) {
		t.Fatal("a held entry was dropped and refilled")
	}
	// Held entries beyond the size: the table grows by them plus at most
	// a quarter of its size.
	for i := range 2 * tab.size {
		if _, _, ok := tab.open(fmt.Sprintf("198.51.%d.%d:1", i>>8, i&255), now); !ok {
			t.Fatalf("connection %d refused", i)
		}
	}
	for i := range tab.size {
		e, _, _ := tab.open(fmt.Sprintf("[2001:db8:%x::1]:1", i), now)
		tab.close(e)
		if n := tab.len(); n > 2*tab.size+1+tab.size/4+1 {
			t.Fatalf("the table holds %d entries, %d held, size %d", n, 2*tab.size+1, tab.size)
		}
	}
}

func TestLimitTablePerSource(t *testing.T) {
	lim := Limits{PerSourceConns: 3, ConnRate: 1, ConnBurst: 4}.withDefaults()
	tab := newLimitTable(lim)
	now := time.Now()
	var held []*limitEntry
	for i := range 3 {
		e, _, ok := tab.open(fmt.Sprintf("192.0.2.1:%d", i), now)
		if !ok {
			t.Fatalf("connection %d refused", i)
		}
		held = append(held, e)
	}
	if _, e, ok := tab.open("192.0.2.1:9", now); ok || e.code != rpc.ResourceExhausted {
		t.Fatalf("a fourth connection: ok %v, ending %+v", ok, e)
	}
	if _, _, ok := tab.open("192.0.2.2:9", now); !ok {
		t.Fatal("another address was refused")
	}
	tab.close(held[0])
	tab.close(held[1])
	if _, _, ok := tab.open("192.0.2.1:9", now); !ok {
		t.Fatal("refused after a close")
	}
	// 4 taken of the burst: the rate now refuses.
	_, e, ok := tab.open("192.0.2.1:10", now)
	if ok || e.reason == "" || e.cause != CauseSourceRate {
		t.Fatalf("over the connection rate: ok %v, ending %+v", ok, e)
	}
	if _, _, ok := tab.open("192.0.2.1:10", now.Add(1100*time.Millisecond)); !ok {
		t.Fatal("refused a second later")
	}
}

// TestLoopbackExempt: loopback addresses escape the per-source limits
// unless LimitLoopback is set.
func TestLoopbackExempt(t *testing.T) {
	for _, limit := range []bool{false, true} {
		tab := newLimitTable(Limits{PerSourceConns: 1, LimitLoopback: limit}.withDefaults())
		now := time.Now()
		for _, addr := range []string{"127.0.0.1:1", "[::1]:1"} {
			tab.open(addr, now)
			if _, _, ok := tab.open(addr, now); ok == limit {
				t.Errorf("LimitLoopback %v: a second connection from %s: ok %v", limit, addr, ok)
			}
		}
	}
}

func TestRateLimitedFrame(t *testing.T) {
	lim := Limits{}.withDefaults()
	for tail, msg := range map[string]string{
		string(rateLimitedTail(lim)):   "rate limited: 50 requests per second, bursts of 100",
		string(sourceLimitedTail(lim)): "rate limited: your address's sessions not logged in: 200 requests per second, bursts of 400",
	} {
		for _, id := range []uint64{0, 1, 300, 1 << 40} {
			var f gatepb.Frame
			if err := gatepb.Decode(rateLimitedFrame(id, []byte(tail)), &f); err != nil {
				t.Fatal(err)
			}
			r := f.GetResponse()
			if r.GetId() != id || r.GetCode() != uint32(rpc.ResourceExhausted) || r.GetMessage() != msg {
				t.Fatalf("id %d: %v", id, r)
			}
		}
	}
}

func BenchmarkRateLimitedFrame(b *testing.B) {
	tail := rateLimitedTail(Limits{}.withDefaults())
	b.ReportAllocs()
	for i := range b.N {
		_ = rateLimitedFrame(uint64(i), tail)
	}
}
