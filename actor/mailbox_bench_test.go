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
			per := mailboxPushes / producers
			b.ResetTimer()
			var wg sync.WaitGroup
			for i := 0; i < b.N; i++ {
				for p := 0; p < producers; p++ {
					wg.Add(1)
					go func(n int) {
						defer wg.Done()
						for j := 0; j < n; j++ {
							if schedule, _ := m.push(envelope{msg: j}, 0, false, &chunks); schedule {
								wake <- struct{}{}
							}
						}
					}(per + boolInt(p < mailboxPushes%producers))
				}
				wg.Wait()
			}
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
			per := mailboxPushes / producers
			b.ResetTimer()
			var wg sync.WaitGroup
			for i := 0; i < b.N; i++ {
				for p := 0; p < producers; p++ {
					wg.Add(1)
					go func(n int) {
						defer wg.Done()
						for j := 0; j < n; j++ {
							ch <- envelope{msg: j}
						}
					}(per + boolInt(p < mailboxPushes%producers))
				}
				wg.Wait()
			}
			<-done
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
