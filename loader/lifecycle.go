package loader

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// errRouteAgain fails a gate whose swap was undone: the calls it held route
// again and find the version that kept serving.
var errRouteAgain = errors.New("swap undone, route again")

// CommitResult reports what a Commit did.
type CommitResult struct {
	Module string
	// From is the version that was current before (nil on first load); it
	// stays loaded as the old version.
	From *VersionInfo
	// To is the version now current.
	To *VersionInfo
	// Unchanged is set when the staged digest was already current: nothing
	// was swapped (Commit is idempotent per digest).
	Unchanged bool
	// Migrated is set when state moved from From to To through
	// mcpr_state_save and mcpr_code_change ("up").
	Migrated bool
	// Drained counts the calls in flight on From that the commit waited for
	// (stateful modules only; calls on a stateless From finish on their own).
	Drained int
	// Took is the time from the start of the swap to the new version serving.
	Took time.Duration
}

// RollbackResult reports what a Rollback did.
type RollbackResult struct {
	Module string
	From   *VersionInfo // the version rolled back from (now unloaded)
	To     *VersionInfo // the old version, current again
	// Migrated is set when To's mcpr_code_change("down") took From's state.
	Migrated bool
	// Restored is set when To serves the state it had when From was
	// committed (To has no mcpr_code_change, or the down-migration failed:
	// RestoreReason says why).
	Restored      bool
	RestoreReason string
	Took          time.Duration
}

// slot returns the module slot for name, creating an empty one.
func (l *Loader) slot(name string) (*module, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	m, ok := l.modules[name]
	if !ok {
		m = &module{name: name}
		l.modules[name] = m
	}
	return m, nil
}

// loaded returns the slot of a module that has a current version.
func (l *Loader) loaded(op, name string) (*module, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, &Error{Op: op, Module: name, Kind: ErrClosed}
	}
	m, ok := l.modules[name]
	if !ok || m.cur == nil {
		return nil, &Error{Op: op, Module: name, Kind: ErrUnknownModule, Detail: "no version of it is loaded"}
	}
	return m, nil
}

// setCurrent makes v current and old the old version of m and rebuilds m's
// tool routes. Callers hold l.mu.
func (l *Loader) setCurrent(m *module, cur, old *version) {
	if m.cur != nil {
		for _, t := range m.cur.desc.Tools {
			if l.tools[t.Name] == m {
				delete(l.tools, t.Name)
			}
		}
	}
	m.cur, m.old = cur, old
	if cur != nil {
		for _, t := range cur.desc.Tools {
			l.tools[t.Name] = m
		}
	}
}

// Commit makes a staged version current. New calls go to it; calls in
// flight finish on the version they started on, which stays loaded as the
// old version (the previous old version is unloaded once its calls finish).
//
// If both versions are stateful and the new one exports mcpr_code_change,
// Commit holds new calls, waits for calls in flight on the current version
// (up to Config.DrainTimeout), saves its state (mcpr_state_save) and hands it
// to the new version's mcpr_code_change("up"). Any failure undoes the swap:
// the current version keeps serving with its state and the error says why
// (ErrDrainTimeout, ErrStateSave, ErrCodeChange). The staged version is
// consumed either way.
func (l *Loader) Commit(ctx context.Context, s *Staged) (*CommitResult, error) {
	if !s.claim() {
		return nil, &Error{Op: "commit", Module: s.v.module, Kind: ErrStagedUsed}
	}
	v := s.v
	m, err := l.slot(v.module)
	if err != nil {
		v.close()
		return nil, wrap("commit", v.module, "", err)
	}
	m.op.Lock()
	defer m.op.Unlock()
	start := time.Now()

	l.mu.Lock()
	for _, t := range v.desc.Tools {
		if owner, ok := l.tools[t.Name]; ok && owner != m {
			l.mu.Unlock()
			v.close()
			return nil, &Error{Op: "commit", Module: v.module, Stage: StageCollision, Kind: ErrToolCollision,
				Detail: fmt.Sprintf("tool %q is already served by module %q", t.Name, owner.name)}
		}
	}
	prev, purged := m.cur, m.old
	res := &CommitResult{Module: v.module, To: v.info()}
	if prev != nil {
		res.From = prev.info()
	}
	if prev != nil && prev.digest == v.digest {
		l.mu.Unlock()
		v.close()
		res.Unchanged, res.To = true, prev.info()
		return res, nil
	}
	migrate := prev != nil && prev.stateful() && v.stateful() && v.abi.codeChange
	if !migrate {
		v.gate = openGate
		l.setCurrent(m, v, prev)
		l.mu.Unlock()
		l.retire(purged)
		res.Took = time.Since(start)
		return res, nil
	}
	g := newGate()
	v.gate = g
	l.setCurrent(m, v, prev)
	l.mu.Unlock()

	undo := func(stage string, err error) (*CommitResult, error) {
		l.mu.Lock()
		l.setCurrent(m, prev, purged)
		l.mu.Unlock()
		g.fail(errRouteAgain)
		v.close()
		return nil, wrap("commit", v.module, stage, err)
	}
	res.Drained = prev.inFlight()
	if err := l.drainWithin(ctx, prev); err != nil {
		return undo(StageDrain, fmt.Errorf("%w: %d calls still running on %s after %v; %s keeps serving",
			ErrDrainTimeout, prev.inFlight(), prev.digest, l.cfg.DrainTimeout, prev.desc.Version))
	}
	state, err := l.saveState(ctx, prev)
	if err != nil {
		return undo(StageMigrate, err)
	}
	if err := l.codeChange(ctx, v, prev.desc.Version, "up", state, nil); err != nil {
		return undo(StageMigrate, fmt.Errorf("%w: version %s could not migrate the state of %s: %v; %s keeps serving with its state",
			ErrCodeChange, v.desc.Version, prev.desc.Version, err, prev.desc.Version))
	}
	g.open()
	res.Migrated = true
	res.Took = time.Since(start)
	l.retire(purged)
	return res, nil
}

// drainWithin waits, at most DrainTimeout, for the calls in flight on v.
func (l *Loader) drainWithin(ctx context.Context, v *version) error {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.DrainTimeout)
	defer cancel()
	return v.drain(ctx)
}

// saveState returns v's state, or nil when v exports no mcpr_state_save or
// has no live instance (its state is the initial one). No call may be running
// on v.
func (l *Loader) saveState(ctx context.Context, v *version) ([]byte, error) {
	if !v.abi.stateSave || !v.exec.hasInstance() {
		return nil, nil
	}
	var state []byte
	err := v.exec.with(ctx, func(in *instance) error {
		var err error
		state, err = l.invoke(ctx, in, in.stateSave, ExportStateSave, nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%w: version %s: %v", ErrStateSave, v.desc.Version, err)
	}
	return state, nil
}

// codeChange runs v's mcpr_code_change with the given state, on instance in
// if not nil, else on v's serving instance.
func (l *Loader) codeChange(ctx context.Context, v *version, from, direction string, state []byte, in *instance) error {
	input, err := json.Marshal(struct {
		From      string `json:"from"`
		Direction string `json:"direction"`
		State     string `json:"state"`
	}{from, direction, base64.StdEncoding.EncodeToString(state)})
	if err != nil {
		return err
	}
	run := func(in *instance) error {
		out, err := l.invoke(ctx, in, in.codeChange, ExportCodeChange, input)
		if err != nil {
			return err
		}
		return parseCodeChange(out)
	}
	if in != nil {
		return run(in)
	}
	return v.exec.with(ctx, run)
}

// Rollback makes module's old version current again, without recompiling,
// and unloads the current one once its calls finish. If both versions are
// stateful, calls are held while the current version's state is saved and
// handed to the old version's mcpr_code_change("down") on a fresh instance;
// if the old version has no mcpr_code_change or it fails, the old version
// serves the state it had when it was replaced (its instance was kept).
// Rollback fails with ErrNoOldVersion if there is nothing to roll back to, and
// with ErrDrainTimeout if calls on the current version do not finish in time
// (nothing changes then).
func (l *Loader) Rollback(ctx context.Context, module string) (*RollbackResult, error) {
	m, err := l.loaded("rollback", module)
	if err != nil {
		return nil, err
	}
	m.op.Lock()
	defer m.op.Unlock()
	start := time.Now()

	l.mu.Lock()
	cur, old := m.cur, m.old
	if cur == nil {
		l.mu.Unlock()
		return nil, &Error{Op: "rollback", Module: module, Kind: ErrUnknownModule}
	}
	if old == nil {
		l.mu.Unlock()
		return nil, &Error{Op: "rollback", Module: module, Kind: ErrNoOldVersion,
			Detail: fmt.Sprintf("only %s (%s) is loaded", cur.desc.Version, cur.digest)}
	}
	res := &RollbackResult{Module: module, From: cur.info(), To: old.info()}
	if !cur.stateful() || !old.stateful() {
		old.gate = openGate
		l.setCurrent(m, old, nil)
		l.mu.Unlock()
		l.retire(cur)
		res.Took = time.Since(start)
		return res, nil
	}
	g := newGate()
	old.gate = g
	l.setCurrent(m, old, nil)
	l.mu.Unlock()

	if err := l.drainWithin(ctx, cur); err != nil {
		l.mu.Lock()
		l.setCurrent(m, cur, old)
		l.mu.Unlock()
		g.fail(errRouteAgain)
		return nil, &Error{Op: "rollback", Module: module, Stage: StageDrain, Kind: ErrDrainTimeout,
			Detail: fmt.Sprintf("%d calls still running on %s after %v; nothing changed", cur.inFlight(), cur.desc.Version, l.cfg.DrainTimeout)}
	}
	res.Migrated, res.RestoreReason = l.migrateDown(ctx, cur, old)
	res.Restored = !res.Migrated
	g.open()
	l.retire(cur)
	res.Took = time.Since(start)
	return res, nil
}

// migrateDown hands from's state to a fresh instance of to through
// mcpr_code_change("down"). On success the fresh instance replaces to's kept
// instance; otherwise the kept instance (with its state from before the
// upgrade) stays, and the reason is returned.
func (l *Loader) migrateDown(ctx context.Context, from, to *version) (bool, string) {
	if !to.abi.codeChange {
		return false, fmt.Sprintf("version %s exports no %s; it keeps the state it had when %s was committed", to.desc.Version, ExportCodeChange, from.desc.Version)
	}
	state, err := l.saveState(ctx, from)
	if err != nil {
		return false, err.Error()
	}
	fresh, err := l.instantiate(ctx, to)
	if err != nil {
		return false, err.Error()
	}
	if err := l.codeChange(ctx, to, from.desc.Version, "down", state, fresh); err != nil {
		fresh.close()
		return false, fmt.Sprintf("%s: %v; version %s keeps the state it had when %s was committed", ErrCodeChange, err, to.desc.Version, from.desc.Version)
	}
	to.exec.replace(fresh)
	return true, ""
}

// Purge unloads module's old version ("old code") once the calls running
// on it finish or ctx ends. After Purge, Rollback has nothing to go back to.
func (l *Loader) Purge(ctx context.Context, module string) error {
	m, err := l.loaded("purge", module)
	if err != nil {
		return err
	}
	m.op.Lock()
	defer m.op.Unlock()
	l.mu.Lock()
	old := m.old
	m.old = nil
	l.mu.Unlock()
	if old == nil {
		return nil
	}
	err = old.drain(ctx)
	old.close()
	if err != nil {
		return wrap("purge", module, StageDrain, fmt.Errorf("%w: closed with calls still running: %v", ErrDrainTimeout, err))
	}
	return nil
}

// Unload removes every version of module; its tools stop being routed at
// once, and calls in flight finish before the versions are closed.
func (l *Loader) Unload(ctx context.Context, module string) error {
	m, err := l.loaded("unload", module)
	if err != nil {
		return err
	}
	m.op.Lock()
	defer m.op.Unlock()
	l.mu.Lock()
	cur, old := m.cur, m.old
	l.setCurrent(m, nil, nil)
	l.mu.Unlock()
	var errs []error
	for _, v := range []*version{cur, old} {
		if v == nil {
			continue
		}
		if err := v.drain(ctx); err != nil {
			errs = append(errs, err)
		}
		v.close()
	}
	if len(errs) > 0 {
		return wrap("unload", module, StageDrain, fmt.Errorf("%w: closed with calls still running: %v", ErrDrainTimeout, errors.Join(errs...)))
	}
	return nil
}

// retire closes v in the background once its in-flight calls finish (at
// most DrainTimeout) or the loader closes.
func (l *Loader) retire(v *version) {
	if v == nil {
		return
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		ctx, cancel := context.WithTimeout(l.done, l.cfg.DrainTimeout)
		defer cancel()
		_ = v.drain(ctx)
		v.close()
	}()
}
