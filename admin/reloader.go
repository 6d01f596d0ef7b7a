package admin

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// Reloader is something of a node, other than its data tables, that
// the admin API's reload action (and so guild reload) reloads and whose
// versions the node reports: a set of named items, each serving one
// version. The hot-fix modules of a *hotfix.Loader are one (package
// hotfix gives Loader these two methods).
//
// The interface lives here, in package admin, because the agent is what
// calls it, and admin cannot import app (app imports admin). Its methods
// use standard types only, so that an implementation matches it
// structurally without importing admin: package hotfix stays a leaf that
// imports nothing of guild's admin, and admin (with app and cmd/guild)
// does not link hotfix's WebAssembly runtime.
//
// The agent calls Versions on its actor (for a snapshot and the tables
// action), and ReloadItems on its reload goroutine, with Versions just
// before and after it there (a reload's reply lists each item's version
// before and after). So each may run at the same time as the other, and
// as the implementation's own reloads (a watcher): both must be safe for
// concurrent use. A panic in either is recovered and reported as the
// reloader's error.
type Reloader interface {
	// Versions returns the version each item serves, by item name; ""
	// for an item with nothing loaded. It must return at once (no I/O):
	// the agent's snapshots wait for it.
	Versions() map[string]string
	// ReloadItems reloads the items whose source changed. It returns the
	// error of each item that failed to reload (such an item keeps its
	// version in service), by item name, and an error for a failure that
	// is no one item's (say, its directory could not be read). It must
	// return soon after ctx ends.
	ReloadItems(ctx context.Context) (map[string]error, error)
}

// ReloaderStatus is one reloader of a node (Agent.AddReloader) in a
// snapshot, a tables action's reply or a reload's.
type ReloaderStatus struct {
	// Name is the name it was added under.
	Name string `json:"name"`
	// Items are its items by name: the version each serves, and after a
	// reload each one's result.
	Items []ReloadItem `json:"items"`
	// Error is a failure of the reloader as a whole (ReloadItems' error,
	// or a panic), "" when none.
	Error string `json:"error,omitempty"`
}

// ReloadItem is one item of a reloader: its version, and for a reload
// the version before it, whether it changed, and why it was kept.
type ReloadItem struct {
	// Name is the item's name (a hot-fix handler's).
	Name string `json:"name"`
	// Version is the version it serves (after the reload, for a reload);
	// "" when it has nothing loaded.
	Version string `json:"version"`
	// Previous is the version it served before the reload; reloads only.
	Previous string `json:"previous,omitempty"`
	// Changed reports that the reload changed its version.
	Changed bool `json:"changed,omitempty"`
	// Error is why its new source was rejected: it kept Version.
	Error string `json:"error,omitempty"`
}

// reloader is a Reloader with its name.
type reloader struct {
	name string
	r    Reloader
}

// AddReloader adds r under name: the snapshot and the tables action list
// its items' versions, and the reload action reloads it, after the
// node's tables, within ReloadTimeout. Names must differ among a node's
// reloaders (a module's name is a good one). The agent keeps r until it
// stops. Safe for concurrent use.
func (a *Agent) AddReloader(name string, r Reloader) error {
	switch {
	case name == "":
		return errors.New("admin: AddReloader: the name is empty")
	case r == nil:
		return fmt.Errorf("admin: AddReloader(%q) of a nil Reloader", name)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, x := range a.reloaders {
		if x.name == name {
			return fmt.Errorf("admin: AddReloader: a reloader named %q is added already", name)
		}
	}
	a.reloaders = append(a.reloaders, reloader{name, r})
	return nil
}

// reloaderList returns a copy of the reloaders added, in order.
func (a *Agent) reloaderList() []reloader {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.reloaders)
}

// versions returns each reloader's items with their versions, calling
// Versions with no lock held.
func versions(rs []reloader) []ReloaderStatus {
	out := make([]ReloaderStatus, 0, len(rs))
	for _, x := range rs {
		st := ReloaderStatus{Name: x.name, Items: []ReloadItem{}}
		vs, err := safeVersions(x.r)
		if err != nil {
			st.Error = err.Error()
		}
		for _, name := range slices.Sorted(maps.Keys(vs)) {
			st.Items = append(st.Items, ReloadItem{Name: name, Version: vs[name]})
		}
		out = append(out, st)
	}
	return out
}

// reloadOne reloads r and returns its result: each item's version before
// and after, whether it changed, and its error. An item is listed when
// it has a version before or after, or an error.
func reloadOne(ctx context.Context, x reloader) ReloaderStatus {
	st := ReloaderStatus{Name: x.name, Items: []ReloadItem{}}
	before, err := safeVersions(x.r)
	if err != nil {
		st.Error = err.Error()
		return st
	}
	itemErrs, err := safeReload(ctx, x.r)
	if err != nil {
		st.Error = err.Error()
	}
	after, verr := safeVersions(x.r)
	if verr != nil {
		st.Error = errors.Join(err, verr).Error()
	}
	names := make(map[string]bool)
	for _, m := range []map[string]string{before, after} {
		for name := range m {
			names[name] = true
		}
	}
	for name := range itemErrs {
		names[name] = true
	}
	for _, name := range slices.Sorted(maps.Keys(names)) {
		it := ReloadItem{Name: name, Version: after[name]}
		if prev := before[name]; prev != it.Version {
			it.Previous, it.Changed = prev, true
		}
		if e := itemErrs[name]; e != nil {
			it.Error = e.Error()
		}
		st.Items = append(st.Items, it)
	}
	return st
}

// failed reports whether a reload result has an error, its own or an
// item's.
func (st ReloaderStatus) failed() bool {
	if st.Error != "" {
		return true
	}
	for _, it := range st.Items {
		if it.Error != "" {
			return true
		}
	}
	return false
}

// safeVersions calls r.Versions, turning a panic into an error.
func safeVersions(r Reloader) (vs map[string]string, err error) {
	defer func() {
		if p := recover(); p != nil {
			vs, err = nil, fmt.Errorf("admin: the reloader's Versions panicked: %v", p)
		}
	}()
	return r.Versions(), nil
}

// safeReload calls r.ReloadItems, turning a panic into an error.
func safeReload(ctx context.Context, r Reloader) (errs map[string]error, err error) {
	defer func() {
		if p := recover(); p != nil {
			errs, err = nil, fmt.Errorf("admin: the reloader's ReloadItems panicked: %v", p)
		}
	}()
	return r.ReloadItems(ctx)
}
