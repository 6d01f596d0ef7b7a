package actor

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/guildkit/guild/timer"
)

// clock drives the node's timing wheels from real time. It owns one
// goroutine, which ticks only while timers are pending: an idle node does
// not wake up. Timer callbacks run on that goroutine; the node's callbacks
// only queue messages or complete futures, so they never block it.
//
// Actors' own timers (after, every) share one wheel, so that two due on
// the same tick fire in the order they were set. Request timeouts, one
// per request in flight and never ordered against each other, are spread
// over timeoutShards wheels, each with its own lock: under load every
// request took the one wheel's lock twice (set and stop), and it was the
// node's most contended lock (docs/SECURITY.md).
type clock struct {
	wheel     *timer.Wheel
	timeouts  [timeoutShards]*timer.Wheel
	nextShard atomic.Uint32
	res       time.Duration
	start     time.Time
	sleeping  atomic.Bool
	lastTick  atomic.Uint64 // the tick the driver last advanced to; stale while sleeping
	wake      chan struct{} // one-slot signal: a timer was added while the driver slept
	quit      chan struct{}
	stopOnce  sync.Once
	done      chan struct{}
}

// timeoutShards is how many wheels hold request timeouts.
const timeoutShards = 8

func newClock(res time.Duration) *clock {
	k := &clock{
		wheel: timer.New(),
		res:   res,
		start: time.Now(),
		wake:  make(chan struct{}, 1),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	for i := range k.timeouts {
		k.timeouts[i] = timer.New()
	}
	return k
}

// timeoutWheel picks the wheel of the next request timeout, in turn.
func (k *clock) timeoutWheel() *timer.Wheel {
	return k.timeouts[k.nextShard.Add(1)%timeoutShards]
}

// pending returns how many timers wait, in every wheel.
func (k *clock) pending() int {
	n := k.wheel.Len()
	for _, w := range k.timeouts {
		n += w.Len()
	}
	return n
}

// advanceTo advances every wheel to tick, running what is due.
func (k *clock) advanceTo(tick uint64) {
	k.wheel.AdvanceTo(tick)
	for _, w := range k.timeouts {
		w.AdvanceTo(tick)
	}
}

// tickAt converts a delay from now into an absolute wheel tick, rounding up
// so that a timer never fires early.
func (k *clock) tickAt(d time.Duration) uint64 {
	if d < 0 {
		d = 0
	}
	return uint64((time.Since(k.start) + d + k.res - 1) / k.res)
}

// after runs f once, d from now, on the clock goroutine.
func (k *clock) after(d time.Duration, f func()) *timer.Timer {
	t := k.wheel.At(k.tickAt(d), f)
	k.poke()
	return t
}

// timeout is after for a request's timeout: on one of the timeout wheels.
func (k *clock) timeout(d time.Duration, f func()) *timer.Timer {
	t := k.timeoutWheel().At(k.tickAt(d), f)
	k.poke()
	return t
}

// afterCoarse is after for timeouts, where a tick or two of lateness does not
// matter: while the driver is awake it reads the driver's last tick instead
// of the system clock, which keeps a clock read off every Call.
func (k *clock) afterCoarse(d time.Duration, f func()) *timer.Timer {
	if k.sleeping.Load() {
		return k.timeout(d, f)
	}
	if d < 0 {
		d = 0
	}
	t := k.timeoutWheel().At(k.lastTick.Load()+uint64((d+k.res-1)/k.res)+1, f)
	k.poke() // the driver may have gone to sleep since the check above
	return t
}

// every runs f every d, the first time d from now.
func (k *clock) every(d time.Duration, f func()) *timer.Timer {
	period := uint64((d + k.res - 1) / k.res)
	if period == 0 {
		period = 1
	}
	// Every's first firing is timed like After: After(x) runs at tick
	// Now()+x-1, so x = at-Now()+1 runs at the absolute tick at.
	at, now := k.tickAt(d), k.wheel.Now()
	first := uint64(1)
	if at >= now {
		first = at - now + 1
	}
	t := k.wheel.Every(first, period, f)
	k.poke()
	return t
}

func (k *clock) poke() {
	if k.sleeping.Load() {
		select {
		case k.wake <- struct{}{}:
		default:
		}
	}
}

// run is the clock goroutine. It keeps ticking for idleGrace after the last
// timer went away, so that a steady stream of short-lived timeouts (one per
// Call) does not wake it up once per call.
func (k *clock) run() {
	defer close(k.done)
	ticker := time.NewTicker(k.res)
	defer ticker.Stop()
	idleTicks := int(idleGrace / k.res)
	idle := 0
	for {
		if k.pending() != 0 {
			idle = 0
		} else if idle++; idle > idleTicks {
			idle = 0
			ticker.Stop()
			k.sleeping.Store(true)
			if k.pending() == 0 { // re-check: a timer added before sleeping was set saw no sleeper
				select {
				case <-k.wake:
				case <-k.quit:
					return
				}
			}
			// Catch up before anyone reads lastTick as current again.
			now := uint64(time.Since(k.start) / k.res)
			k.lastTick.Store(now)
			k.advanceTo(now + 1)
			k.sleeping.Store(false)
			ticker.Reset(k.res)
		}
		select {
		case <-ticker.C:
			now := uint64(time.Since(k.start) / k.res)
			k.lastTick.Store(now)
			k.advanceTo(now + 1)
		case <-k.quit:
			return
		}
	}
}

// idleGrace is how long the clock keeps ticking with no timer pending before
// it sleeps.
const idleGrace = 100 * time.Millisecond

// stop ends the clock goroutine and waits for it. Safe to call twice.
func (k *clock) stop() {
	k.stopOnce.Do(func() { close(k.quit) })
	<-k.done
}
