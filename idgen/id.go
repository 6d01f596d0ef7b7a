package idgen

import (
	"fmt"
	"strconv"
	"time"
)

// Layout of an ID; see the package doc.
const (
	TimeBits    = 41
	MachineBits = 10
	SeqBits     = 12

	// MaxMachine is the largest machine ID, 1023.
	MaxMachine = 1<<MachineBits - 1
	// MaxSeq is the largest sequence number within a millisecond, 4095.
	MaxSeq = 1<<SeqBits - 1

	machineShift = SeqBits
	timeShift    = SeqBits + MachineBits
	maxMillis    = 1<<TimeBits - 1
)

// DefaultEpoch is the epoch of IDs unless WithEpoch says otherwise.
var DefaultEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// ID is a snowflake ID. Its zero value is never issued.
type ID int64

// makeID assembles an ID from its parts; they must be in range.
func makeID(ms int64, machine uint16, seq int64) ID {
	return ID(ms<<timeShift | int64(machine)<<machineShift | seq)
}

// String returns the ID in decimal.
func (id ID) String() string { return strconv.FormatInt(int64(id), 10) }

// ParseID parses a decimal ID as written by String.
func ParseID(s string) (ID, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("idgen: parse ID %q: %w", s, err)
	}
	if n < 0 {
		return 0, fmt.Errorf("idgen: parse ID %q: negative", s)
	}
	return ID(n), nil
}

// Millis returns the milliseconds since the epoch.
func (id ID) Millis() int64 { return int64(id) >> timeShift }

// Machine returns the machine ID, 0..1023.
func (id ID) Machine() uint16 { return uint16(int64(id)>>machineShift) & MaxMachine }

// Sequence returns the sequence number within the millisecond, 0..4095.
func (id ID) Sequence() int { return int(int64(id) & MaxSeq) }

// Time returns when the ID was issued, to the millisecond, assuming
// DefaultEpoch. Use TimeFrom for IDs of a Generator with another epoch.
func (id ID) Time() time.Time { return id.TimeFrom(DefaultEpoch) }

// TimeFrom returns when the ID was issued, to the millisecond, by a
// Generator with the given epoch.
func (id ID) TimeFrom(epoch time.Time) time.Time {
	return epoch.Add(time.Duration(id.Millis()) * time.Millisecond)
}
