package actor

import (
	"fmt"
	"log/slog"
	"time"
)

// Config configures a Node. The zero value is usable: NewNode fills every
// zero field with its default (see DefaultConfig).
type Config struct {
	// Addr is the node's logical address. Default 1.1.1.
	Addr Addr
	// Logger receives panics, restarts and shutdown reports. Default
	// slog.Default().
	Logger *slog.Logger
	// RequestTimeout bounds Call when its ctx has no deadline, and Request
	// when it is given no timeout. Default 5s.
	RequestTimeout time.Duration
	// Throughput is how many messages an actor handles in one turn before it
	// yields its goroutine, so that one busy actor cannot starve the others.
	// Default 256.
	Throughput int
	// TimerResolution is the tick of the node's timing wheel: actor timers
	// and timeouts fire within one tick after they are due. Default 1ms.
	TimerResolution time.Duration
	// StopTimeout bounds how long Close waits for actors to finish the
	// message they are handling. Default 5s.
	StopTimeout time.Duration
	// Supervisor is the strategy for top-level actors and for children of
	// actors spawned without WithSupervisor. The zero value restarts.
	Supervisor Supervisor
	// SendInterceptors wrap every Send, Request and Call made on this node.
	SendInterceptors []SendInterceptor
	// ReceiveInterceptors wrap every actor's Receive on this node.
	ReceiveInterceptors []ReceiveInterceptor
	// Names resolves global names (names without a leading "."). Nil means
	// this node has local names only; the cluster package provides one.
	Names NameRegistry
	// Remote carries messages to actors on other nodes. Nil means this node
	// stands alone: a PID of another node gets ErrRemote.
	Remote Remote
	// Reporter receives every panic the node recovers in user code and
	// every supervisor escalation (see Reporter and package report). Nil
	// means failures are only logged, at no cost.
	Reporter Reporter
}

// DefaultConfig returns the configuration that NewNode uses for zero fields.
func DefaultConfig() Config {
	return Config{
		Addr:            MustAddr(1, 1, 1),
		Logger:          slog.Default(),
		RequestTimeout:  5 * time.Second,
		Throughput:      256,
		TimerResolution: time.Millisecond,
		StopTimeout:     5 * time.Second,
	}
}

// Validate reports the first invalid field. Zero fields are valid: they take
// their defaults.
func (c Config) Validate() error {
	switch {
	case c.RequestTimeout < 0:
		return fmt.Errorf("actor: Config.RequestTimeout %v is negative", c.RequestTimeout)
	case c.Throughput < 0:
		return fmt.Errorf("actor: Config.Throughput %d is negative", c.Throughput)
	case c.TimerResolution < 0:
		return fmt.Errorf("actor: Config.TimerResolution %v is negative", c.TimerResolution)
	case c.TimerResolution > 0 && c.TimerResolution < 100*time.Microsecond:
		return fmt.Errorf("actor: Config.TimerResolution %v is below 100µs", c.TimerResolution)
	case c.StopTimeout < 0:
		return fmt.Errorf("actor: Config.StopTimeout %v is negative", c.StopTimeout)
	}
	for i, ic := range c.SendInterceptors {
		if ic == nil {
			return fmt.Errorf("actor: Config.SendInterceptors[%d] is nil", i)
		}
	}
	for i, ic := range c.ReceiveInterceptors {
		if ic == nil {
			return fmt.Errorf("actor: Config.ReceiveInterceptors[%d] is nil", i)
		}
	}
	return c.Supervisor.validate()
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Addr == 0 {
		c.Addr = d.Addr
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	if c.Throughput == 0 {
		c.Throughput = d.Throughput
	}
	if c.TimerResolution == 0 {
		c.TimerResolution = d.TimerResolution
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = d.StopTimeout
	}
	return c
}
