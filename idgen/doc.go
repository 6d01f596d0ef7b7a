// Package idgen generates unique 63-bit IDs in the style of Twitter's
// snowflake, with the machine ID either fixed (New) or leased from etcd
// (Lease) so that no two live nodes share one.
//
// # Layout
//
// An ID is an int64 whose bits, from the most significant, are:
//
//	 1 bit   0 (IDs are never negative)
//	41 bits  milliseconds since the epoch (default 2026-01-01T00:00:00Z;
//	         WithEpoch), which lasts about 69 years
//	10 bits  machine ID, 0..1023
//	12 bits  sequence within the millisecond, 0..4095
//
// IDs from one Generator increase strictly; IDs from different machines
// sort by time to the millisecond (give or take the clocks' skew). One
// Generator issues at most 4096 IDs per millisecond: the 4097th waits for
// the next millisecond, yielding the processor (runtime.Gosched) rather than
// sleeping, since a sub-millisecond sleep often lasts a millisecond or more.
//
// # Clock
//
// A Generator reads the wall clock (time.Now, or WithClock). If the clock
// goes back by at most the rollback wait (default 5 ms; WithMaxRollbackWait),
// Next sleeps until it has caught up; if it goes back further, Next fails with
// ErrClockRollback and issues nothing. It never issues a duplicate.
//
// # Leased machine IDs
//
// Lease claims the lowest free machine ID by creating the key
// "<prefix>/idgen/machines/<n>" under an etcd lease of its own, in a
// transaction that succeeds only if the key does not exist. The lease is
// kept by a cluster/etcd Keeper, the fence that grains and global names use
// too, and a goroutine watches the key. The Generator stops (Next fails with
// ErrLeaseLost) when the key is deleted or taken over, when etcd says the
// lease is gone, or when the lease may have expired: every renewal moves the
// fence to the time the renewal was sent plus the TTL (less a margin), and
// Next refuses to issue an ID past the fence even if no goroutine has noticed
// yet. Another node can claim the ID only after etcd has expired the lease,
// which is after the fence, so two nodes never issue IDs under one machine ID
// through an expiry. (An administrator's Revoke is seen through the watch,
// normally within milliseconds.)
//
// Release stops the Generator first and then, in one transaction, deletes
// the key and records in "<prefix>/idgen/last/<n>" the last millisecond it
// used; the next node to claim that ID starts after it, so a machine ID reused
// within the same millisecond cannot repeat an ID.
//
// # Concurrency
//
// Generator and Leased are safe for concurrent use. Next is lock-free: the
// last millisecond, the sequence and a stopped bit share one atomic word
// updated by compare-and-swap.
package idgen
