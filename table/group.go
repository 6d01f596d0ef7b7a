package table

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults and bounds of GroupConfig.
const (
	// MinWatch is the shortest watch interval.
	MinWatch = 100 * time.Millisecond
	// DefaultReloadTimeout bounds a reload the watcher starts.
	DefaultReloadTimeout = 30 * time.Second
)

// GroupConfig configures a Group.
type GroupConfig struct {
	// Dir is the directory of the group's sets (Open): their files are
	// relative to it. Required.
	Dir string
	// Watch, when positive, makes the group poll its sets' files every
	// Watch (at least MinWatch) and reload a set once its files have
	// changed and then stayed the same for one interval. Zero: no
	// watching; reloads come from Reload.
	Watch time.Duration
	// ReloadTimeout bounds a reload the watcher starts. Default
	// DefaultReloadTimeout.
	ReloadTimeout time.Duration
	// MaxFileSize is the Config.MaxFileSize of the sets Open makes.
	MaxFileSize int64
	// Logger is the Config.Logger of the sets Open makes, and the
	// watcher's. Default slog.Default().
	Logger *slog.Logger
}

// Group holds the table sets of a node: it reloads them together on
// demand (Reload: the admin API, guild reload), watches their files when
// configured to, and reports their versions (Status). package app gives
// one to each module as app.Env.Tables when the node's cluster file has
// a tables section. Its methods are safe for concurrent use.
//
// Goroutines: with Watch set, one watcher, started by NewGroup and
// stopped by Close; it owns the watch state of every set.
type Group struct {
	cfg  GroupConfig
	quit chan struct{}
	done chan struct{} // closed when the watcher has returned; nil without one
	// stop cancels the watcher's reload in progress, on Close.
	ctx  context.Context
	stop context.CancelFunc

	mu     sync.Mutex // guards sets, closed; a leaf
	sets   []*member
	closed bool
}

// Result is the outcome of one set's reload in Group.Reload.
type Result struct {
	// Set is the set's name.
	Set string `json:"set"`
	// Version is the version served afterwards; Previous the one before.
	Version  Version `json:"version"`
	Previous Version `json:"previous"`
	// Changed reports whether a new snapshot was published.
	Changed bool `json:"changed"`
	// Error is the reload's error, "" when it succeeded (the old snapshot
	// stays when it did not).
	Error string `json:"error,omitempty"`
}

// NewGroup returns a Group over cfg.Dir, and starts its watcher when
// cfg.Watch is set. The directory need not hold anything yet.
func NewGroup(cfg GroupConfig) (*Group, error) {
	switch {
	case cfg.Dir == "":
		return nil, errors.New("table: GroupConfig.Dir is empty")
	case cfg.Watch < 0 || (cfg.Watch > 0 && cfg.Watch < MinWatch):
		return nil, fmt.Errorf("table: GroupConfig.Watch %v: 0 (off) or at least %v", cfg.Watch, MinWatch)
	case cfg.ReloadTimeout < 0 || cfg.MaxFileSize < 0:
		return nil, errors.New("table: GroupConfig.ReloadTimeout and MaxFileSize may not be negative")
	}
	if cfg.ReloadTimeout == 0 {
		cfg.ReloadTimeout = DefaultReloadTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	g := &Group{cfg: cfg, quit: make(chan struct{})}
	g.ctx, g.stop = context.WithCancel(context.Background())
	if cfg.Watch > 0 {
		g.done = make(chan struct{})
		go g.watch()
	}
	return g, nil
}

// Dir returns the group's directory.
func (g *Group) Dir() string { return g.cfg.Dir }

// Watch returns the watch interval, 0 when the group does not watch.
func (g *Group) Watch() time.Duration { return g.cfg.Watch }

// Open declares the set type T in g under name, loads it from g's
// directory and adds it to g, which from then on watches it (with
// GroupConfig.Watch), reloads it (Group.Reload) and reports it (Status).
// A module calls it in its Start, with app.Env.Tables: a set that does
// not load is an error, so the module does not start on bad data. The
// name must be unique in g.
func Open[T any](ctx context.Context, g *Group, name string) (*Set[T], error) {
	if g == nil {
		return nil, fmt.Errorf("table: set %s: no tables here (a node needs tables.dir in its cluster file, or a Group)", name)
	}
	s, err := NewSet[T](Config{Name: name, Dir: g.cfg.Dir, MaxFileSize: g.cfg.MaxFileSize, Logger: g.cfg.Logger})
	if err != nil {
		return nil, err
	}
	fp := fingerprint(s.m.files) // before the read: a change meanwhile is seen
	if _, err := s.reload(ctx, "open"); err != nil {
		return nil, err
	}
	s.m.seen.Store(&fp)
	if err := g.Add(s); err != nil {
		return nil, err
	}
	return s, nil
}

// Add adds a set made with NewSet to g. Its name must be unique in g.
// Without a snapshot yet, the watcher's first look loads it.
func (g *Group) Add(s Member) error {
	m := s.member()
	if m.seen.Load() == nil {
		fp := ""
		if m.reloadedOnce() {
			fp = fingerprint(m.files)
		}
		m.seen.Store(&fp)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return fmt.Errorf("table: set %s: the group is closed", m.cfg.Name)
	}
	for _, o := range g.sets {
		if o == m {
			return fmt.Errorf("table: set %s is in the group already", m.cfg.Name)
		}
		if o.cfg.Name == m.cfg.Name {
			return fmt.Errorf("table: a set named %s is in the group already", m.cfg.Name)
		}
	}
	g.sets = append(g.sets, m)
	return nil
}

func (m *member) reloadedOnce() bool { return m.loads.Load() > 0 }

// members returns a copy of the sets.
func (g *Group) members() []*member {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]*member(nil), g.sets...)
}

// Reload reloads every set of the group, one after the other, and
// returns each one's result in the order they were added. trigger says
// who asked, for the log ("admin", "cli").
func (g *Group) Reload(ctx context.Context, trigger string) []Result {
	var out []Result
	for _, m := range g.members() {
		prev := m.status().Version
		v, err := m.reload(ctx, trigger)
		r := Result{Set: m.cfg.Name, Version: v, Previous: prev, Changed: v.Hash != prev.Hash || !v.Loaded.Equal(prev.Loaded)}
		if err != nil {
			r.Error = err.Error()
		}
		out = append(out, r)
	}
	return out
}

// Status returns the status of every set, in the order they were added.
func (g *Group) Status() []Status {
	var out []Status
	for _, m := range g.members() {
		out = append(out, m.status())
	}
	return out
}

// Close stops the watcher, cancelling a reload it is running, and waits
// for it until ctx ends. The sets keep their snapshots. It is safe to
// call twice.
func (g *Group) Close(ctx context.Context) error {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.quit)
		g.stop()
	}
	g.mu.Unlock()
	if g.done == nil {
		return nil
	}
	select {
	case <-g.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("table: close: the watcher is still reloading (a Validate that does not return?): %w", ctx.Err())
	}
}

// watchState is the watcher's view of one set.
type watchState struct {
	prev  string // the fingerprint at the previous tick
	tried string // the fingerprint at the last load or reload attempt
}

// watch polls the sets' files every Watch: a set whose fingerprint
// (each file's size and modification time) changed, then held for one
// tick, is reloaded (and the content hash decides whether anything
// changed).
func (g *Group) watch() {
	defer close(g.done)
	t := time.NewTicker(g.cfg.Watch)
	defer t.Stop()
	states := make(map[*member]*watchState)
	for {
		select {
		case <-g.quit:
			return
		case <-t.C:
		}
		for _, m := range g.members() {
			fp := fingerprint(m.files)
			st, ok := states[m]
			if !ok {
				seen := *m.seen.Load()
				st = &watchState{prev: seen, tried: seen}
				states[m] = st
			}
			if fp != st.prev {
				st.prev = fp // changing: wait until it holds for a tick
				continue
			}
			if fp == st.tried {
				continue
			}
			st.tried = fp
			ctx, cancel := context.WithTimeout(g.ctx, g.cfg.ReloadTimeout)
			_, _ = m.reload(ctx, "watch") // logged and counted by the set
			cancel()
			select {
			case <-g.quit:
				return
			default:
			}
		}
	}
}

// fingerprint describes the files' sizes and modification times.
func fingerprint(files []string) string {
	var b strings.Builder
	for _, f := range files {
		b.WriteString(filepath.Base(f))
		fi, err := os.Stat(f)
		if err != nil {
			b.WriteString(":missing;")
			continue
		}
		b.WriteByte(':')
		b.WriteString(strconv.FormatInt(fi.Size(), 10))
		b.WriteByte(':')
		b.WriteString(strconv.FormatInt(fi.ModTime().UnixNano(), 10))
		b.WriteByte(';')
	}
	return b.String()
}
