package idgen

import (
	"fmt"
	"time"
)

// DefaultMaxRollbackWait is how far the clock may go back before Next
// fails with ErrClockRollback instead of waiting.
const DefaultMaxRollbackWait = 5 * time.Millisecond

// An Option changes an optional setting of New or Lease.
type Option interface{ apply(*config) }

type config struct {
	epoch           time.Time
	clock           func() time.Time
	maxRollbackWait time.Duration
	customClock     bool // set by WithClock
}

func defaultConfig() config {
	return config{epoch: DefaultEpoch, clock: time.Now, maxRollbackWait: DefaultMaxRollbackWait}
}

func (c *config) validate() error {
	switch {
	case c.clock == nil:
		return fmt.Errorf("%w: nil clock", ErrBadOption)
	case c.epoch.IsZero():
		return fmt.Errorf("%w: zero epoch", ErrBadOption)
	case c.maxRollbackWait < 0:
		return fmt.Errorf("%w: negative rollback wait %v", ErrBadOption, c.maxRollbackWait)
	}
	return nil
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithEpoch sets the time that IDs count milliseconds from (default
// DefaultEpoch). Every generator of one ID space must use the same epoch,
// and it must not be in the future.
func WithEpoch(epoch time.Time) Option {
	return optionFunc(func(c *config) { c.epoch = epoch })
}

// WithClock replaces time.Now as the generator's clock, for tests that
// simulate a stopped or backwards clock. The function is called on every
// Next, concurrently.
func WithClock(now func() time.Time) Option {
	return optionFunc(func(c *config) { c.clock, c.customClock = now, true })
}

// WithMaxRollbackWait sets how far the clock may go back (default
// DefaultMaxRollbackWait) before Next fails with ErrClockRollback instead of
// waiting for it to catch up. Zero means never wait.
func WithMaxRollbackWait(d time.Duration) Option {
	return optionFunc(func(c *config) { c.maxRollbackWait = d })
}
