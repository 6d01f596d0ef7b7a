// Package timer implements a hierarchical timing wheel driven by explicit
// ticks.
//
// # Structure
//
// A Wheel has five levels, as in gonet and the classic Linux kernel timer
// wheel: level 0 has 256 slots of one tick each; levels 1 to 4 have 64 slots
// each, a slot of level L spanning 2^(8+6(L-1)) ticks. Together they cover
// 2^32 ticks ahead of the current tick. A timer is filed in the lowest level
// whose range contains its expiry; whenever the level-0 index wraps, the
// slot of level 1 that has become current is cascaded (its timers are
// re-filed into lower levels), and so on up the levels. Timers store their
// absolute expiry tick, so a timer further out than 2^32 ticks is simply
// parked in the last level at the edge of its range and re-filed, still with
// its true expiry, each time that slot is cascaded, until it comes into
// range. It therefore fires on exactly the right tick however far out it is.
//
// Each slot is an intrusive doubly-linked list (linked by index through the
// wheel's pool of timer records), so scheduling (After, At, Every) and
// cancelling (Timer.Stop) are O(1). Scheduling allocates nothing but the
// returned *Timer handle, and handles are allocated in blocks of 16, so even
// that is amortized; the wheel's own records are pooled, and Stop and Advance
// do not allocate in steady state. A bitmap of non-empty slots lets Advance
// skip stretches of ticks on which nothing happens, and a wheel with no
// pending timers jumps to the target tick in constant time, so a driver may
// sleep for hours while nothing is pending and then catch up with one call.
//
// # Ticks
//
// The wheel has no notion of wall-clock time: it is driven by calls to
// Advance and AdvanceTo, so tests can step it deterministically without
// sleeping. Now is the next tick Advance will process; a new wheel starts at
// tick 0. At(T, f) runs f while tick T is processed, that is during the
// Advance that moves Now from T to T+1. After(d, f) runs f while the d-th
// tick from now is processed (Advance(d) runs it, Advance(d-1) does not);
// After(0, f) runs f on the next processed tick, like After(1, f). Every
// schedules periodic timers that the wheel re-arms after each run.
//
// # Concurrency and callbacks
//
// A Wheel and its Timers are safe for concurrent use: any goroutine may
// schedule or stop timers at any time, including from inside callbacks.
// Callbacks run on the goroutine calling Advance or AdvanceTo, never
// concurrently with each other for a single caller, and always without the
// wheel's lock held: the due timers of a tick are collected under the lock,
// the lock is released, and then their callbacks run. A callback may
// therefore schedule new timers, stop timers (including its own), or query
// the wheel without deadlocking. Callbacks run in expiry order; callbacks
// due on the same tick run in the order their timers were scheduled. All
// callbacks of a tick run before the next tick is processed, so a timer
// scheduled by a callback for a later tick still runs during the same
// Advance call if that tick is reached.
//
// Advance is meant to be called by one driver goroutine at a time.
// Concurrent calls, or calls from inside a callback, are safe but make the
// relative order of the callbacks run by the different calls unspecified.
//
// The wheel does not recover panics raised by callbacks: a panic propagates
// to the caller of Advance or AdvanceTo, which decides what to do. Because
// callbacks run outside the lock, the wheel is left unlocked and consistent:
// the tick being processed counts as processed, and the callbacks of that
// tick that had not started yet run on the next processed tick.
package timer
