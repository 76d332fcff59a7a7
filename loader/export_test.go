package loader

// Compiles returns how many modules l has compiled (for tests proving that a
// rollback does not recompile).
func Compiles(l *Loader) int64 { return l.compiles.Load() }

// InFlight returns the number of calls in flight on module's current version.
func InFlight(l *Loader, module string) int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	m, ok := l.modules[module]
	if !ok || m.cur == nil {
		return 0
	}
	return m.cur.inFlight()
}
