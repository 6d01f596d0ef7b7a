package report

import (
	"context"
	"errors"
	"log/slog"
	"runtime/debug"
	"sync"

	"github.com/guildkit/guild/actor"
)

// Closer is a reporter that delivers in the background and must be
// closed: Webhook and SMTP are.
type Closer interface {
	actor.Reporter
	// Close delivers what is queued within ctx's deadline, then stops.
	Close(ctx context.Context) error
}

// Fanout hands every failure to each of its reporters, in order. It is
// an actor.Reporter, as fast as its slowest member's Report: give it
// reporters that return at once, as the built-ins do. Each gets the same
// Failure, Stack included: a member must not modify it (the built-ins do
// not). A member that panics is recovered and logged with Logger, and the
// others still get the failure.
type Fanout struct {
	// Reporters get every failure.
	Reporters []actor.Reporter
	// Logger receives a member's panic. Default slog.Default().
	Logger *slog.Logger
}

// Report hands f to every reporter.
func (m *Fanout) Report(f actor.Failure) {
	for _, r := range m.Reporters {
		m.one(r, f)
	}
}

func (m *Fanout) one(r actor.Reporter, f actor.Failure) {
	defer func() {
		if p := recover(); p != nil {
			log := m.Logger
			if log == nil {
				log = slog.Default()
			}
			log.Error("report: a reporter panicked", "panic", p, "stack", string(debug.Stack()))
		}
	}()
	r.Report(f)
}

// Close closes, at the same time, every reporter that is a Closer, each
// within ctx's deadline, and returns their errors joined.
func (m *Fanout) Close(ctx context.Context) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, r := range m.Reporters {
		c, ok := r.(Closer)
		if !ok {
			continue
		}
		wg.Go(func() {
			if err := c.Close(ctx); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
