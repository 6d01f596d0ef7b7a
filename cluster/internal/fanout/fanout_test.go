package fanout

import (
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A subscriber that joins after an event was published, but before it was
// delivered, gets the event only through its initial list: never twice.
func TestOrderAndNoDuplicates(t *testing.T) {
	q := New[int](slog.New(slog.DiscardHandler))
	defer q.Close()
	var mu sync.Mutex
	var a, b []int
	block := make(chan struct{})
	q.Subscribe(func(v int) {
		if v == 0 {
			<-block // hold delivery so later publishes queue up
		}
		mu.Lock()
		a = append(a, v)
		mu.Unlock()
	}, nil)
	for i := range 100 {
		q.Publish(i)
	}
	q.Subscribe(func(v int) { mu.Lock(); b = append(b, v); mu.Unlock() }, []int{-1})
	q.Publish(100)
	close(block)
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		na, nb := len(a), len(b)
		mu.Unlock()
		if na == 101 && nb == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a has %d, b has %d", na, nb)
		}
		time.Sleep(time.Millisecond)
	}
	for i, v := range a {
		if v != i {
			t.Fatalf("a[%d] = %d: out of order", i, v)
		}
	}
	if b[0] != -1 || b[1] != 100 {
		t.Fatalf("b = %v; want [-1 100]", b)
	}
	q.Close()
	q.Close()
	q.Publish(1) // after Close: dropped, no panic
}
