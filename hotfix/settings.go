package hotfix

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Settings are a node's hot-fix settings in its cluster file. guild's
// cluster file has no hotfix section of its own (package app does not
// link wazero): a module that hot-fixes takes them in its own section,
// which app.Env.Settings decodes:
//
//	modules:
//	  shop:
//	    hotfix: {dir: /srv/game/fixes, watch: 2s, memory_limit: 67108864}
//
// with a field Hotfix of type hotfix.Settings, tagged yaml:"hotfix", in
// its settings struct.
type Settings struct {
	// Dir is the directory of the modules, one name.wasm per handler.
	Dir string `yaml:"dir"`
	// Watch, when positive, polls Dir that often and reloads what changed
	// (Loader.Watch). Zero: reloads happen only on demand: Loader.Reload,
	// or guild reload and the admin API when the module added the Loader
	// to its node (app.Env.AddReloader).
	Watch time.Duration `yaml:"watch"`
	// MemoryLimit, CallTimeout, MaxIdle and CacheDir are the Engine's
	// (see Config).
	MemoryLimit int64         `yaml:"memory_limit"`
	CallTimeout time.Duration `yaml:"call_timeout"`
	MaxIdle     int           `yaml:"max_idle"`
	CacheDir    string        `yaml:"cache_dir"`
}

// Config returns the Engine's part of s.
func (s Settings) Config() Config {
	return Config{MemoryLimit: s.MemoryLimit, CallTimeout: s.CallTimeout, MaxIdle: s.MaxIdle, CacheDir: s.CacheDir}
}

// Validate reports settings that cannot be used.
func (s Settings) Validate() error {
	switch {
	case s.Dir == "":
		return errors.New("hotfix: settings: dir is required (the directory of the .wasm modules)")
	case s.Watch < 0:
		return fmt.Errorf("hotfix: settings: watch %v is negative", s.Watch)
	}
	return s.Config().Validate()
}

// Open starts what a node needs to serve the fixes of s.Dir: an Engine,
// a Loader with its first Reload done, and with s.Watch a watcher
// (report gets its reloads; see Loader.Watch). On an error (bad
// settings, a directory that cannot be read, a module that did not load)
// it leaves nothing open and returns no Loader: a node should not start
// with a handler it cannot serve. The first Reload ends at ctx's end, and
// within ReloadTimeout whatever ctx is (a module whose init never returns
// must not hold a node's start). Close the Loader with CloseAll.
func Open(ctx context.Context, s Settings, report func([]Status, error)) (*Loader, []Status, error) {
	if err := s.Validate(); err != nil {
		return nil, nil, err
	}
	e, err := NewEngine(ctx, s.Config())
	if err != nil {
		return nil, nil, err
	}
	l := NewLoader(e, s.Dir)
	rctx, cancel := context.WithTimeout(ctx, ReloadTimeout)
	sts, err := l.Reload(rctx)
	cancel()
	if err == nil && s.Watch > 0 {
		err = l.Watch(s.Watch, report)
	}
	if err != nil {
		_ = e.Close(ctx)
		return nil, sts, err
	}
	return l, sts, nil
}

// Engine returns the Engine the Loader compiles with.
func (l *Loader) Engine() *Engine { return l.e }

// CloseAll closes the Loader (its watcher) and then its Engine, with
// every module: for a Loader from Open, once the actors that call its
// modules have stopped.
func (l *Loader) CloseAll(ctx context.Context) error {
	l.Close()
	return l.e.Close(ctx)
}
