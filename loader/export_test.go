package loader

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
