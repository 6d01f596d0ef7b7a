package hotfix

import "time"

// SetReloadTimeout shortens the bound of l's watcher's reloads
// (ReloadTimeout) for a test. Call it before Watch.
func SetReloadTimeout(l *Loader, d time.Duration) { l.timeout = d }

// IdleCounts returns how many idle instances m keeps, of each
// compilation.
func IdleCounts(m *Module) (watched, plain int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.idle), len(m.idlePlain)
}
