package actor

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// mailboxPushes is the number of pushes in one op of BenchmarkMailbox and
// BenchmarkChan, spread over the producers (gonet's table has the same shape).
const mailboxPushes = 100_000

var producerCounts = []int{1, 2, 4, 8, 16}

// mailboxMsg is the message every push carries in BenchmarkMailbox and
// BenchmarkChan: one preallocated pointer, so that neither side pays for
// boxing and what is measured is the queue.
var mailboxMsg = &struct{ n int }{}

// BenchmarkMailbox: each op is mailboxPushes pushes spread over N producer
// goroutines, all popped by one consumer, which parks when the mailbox is
// empty and is woken by the producer that finds it idle, exactly as an actor
// turn is scheduled.
func BenchmarkMailbox(b *testing.B) {
	for _, producers := range producerCounts {
		b.Run("producers="+strconv.Itoa(producers), func(b *testing.B) {
			var m mailbox
			var sysFlag atomic.Bool
			chunks := sync.Pool{New: func() any { return new(laneChunk) }}
			wake := make(chan struct{}, 1)
			done := make(chan struct{})
			go func() {
				var sysSpare, userSpare []envelope
				seen := 0
				for {
					_, full, user, idle := m.take(sysSpare, userSpare, &sysFlag)
					if idle {
						<-wake
						continue
					}
					for _, c := range full {
						seen += len(c)
						recycleChunk(c, &chunks)
					}
					seen += len(user)
					clear(user)
					userSpare = user[:0]
					if seen == b.N*mailboxPushes {
						close(done)
						return
					}
				}
			}()
			b.ResetTimer()
			runProducers(b.N, producers, func(j int) {
				if schedule, _ := m.push(envelope{msg: mailboxMsg}, 0, false, &chunks); schedule {
					wake <- struct{}{}
				}
			})
			<-done
		})
	}
}

// BenchmarkChan is BenchmarkMailbox's baseline: the same pushes through a
// buffered channel of 1024 envelopes.
func BenchmarkChan(b *testing.B) {
	for _, producers := range producerCounts {
		b.Run("producers="+strconv.Itoa(producers), func(b *testing.B) {
			ch := make(chan envelope, 1024)
			done := make(chan struct{})
			go func() {
				for i := 0; i < b.N*mailboxPushes; i++ {
					<-ch
				}
				close(done)
			}()
			b.ResetTimer()
			runProducers(b.N, producers, func(int) { ch <- envelope{msg: mailboxMsg} })
			<-done
		})
	}
}

// runProducers runs ops rounds of mailboxPushes calls of push, spread over
// producers goroutines; each round waits for its producers.
func runProducers(ops, producers int, push func(j int)) {
	per := mailboxPushes / producers
	var wg sync.WaitGroup
	for range ops {
		for p := 0; p < producers; p++ {
			count := per
			if p < mailboxPushes%producers {
				count++
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; j < count; j++ {
					push(j)
				}
			}()
		}
		wg.Wait()
	}
}
