package loader

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// executor hands instances of one version to callers, one caller per
// instance at a time, and replaces instances that faulted.
//
// A stateful version has exactly one instance (its state lives in it) and
// serializes calls; a stateless version keeps a bounded pool.
type executor struct {
	l    *Loader
	v    *version
	sem  chan struct{} // capacity = max concurrent instances (1 when stateful)
	mu   sync.Mutex
	idle []*instance // instances not in use; for a stateful version at most one
	// closed is set by close; instances returned afterwards are closed.
	closed bool
	// live counts instances created and not yet closed.
	live atomic.Int64
}

func newExecutor(l *Loader, v *version, size int, first *instance) *executor {
	e := &executor{l: l, v: v, sem: make(chan struct{}, size)}
	if first != nil {
		e.idle = append(e.idle, first)
		e.live.Add(1)
	}
	return e
}

// with runs f on an instance. If f returns an error that faults the instance
// (anything but ErrBadOutput, ErrTooLarge or ErrBadInput), the instance is
// discarded: for a stateful version its state is lost and the next call starts
// from a fresh instance.
func (e *executor) with(ctx context.Context, f func(*instance) error) error {
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-e.sem }()

	in, err := e.take(ctx)
	if err != nil {
		return err
	}
	err = f(in)
	if err != nil && faults(err) {
		e.discard(in)
		return err
	}
	e.put(in)
	return err
}

func (e *executor) take(ctx context.Context) (*instance, error) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, ErrClosed
	}
	if n := len(e.idle); n > 0 {
		in := e.idle[n-1]
		e.idle = e.idle[:n-1]
		e.mu.Unlock()
		return in, nil
	}
	e.mu.Unlock()
	in, err := e.l.instantiate(ctx, e.v)
	if err == nil {
		e.live.Add(1)
	}
	return in, err
}

func (e *executor) discard(in *instance) {
	in.close()
	e.live.Add(-1)
}

func (e *executor) put(in *instance) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		e.discard(in)
		return
	}
	e.idle = append(e.idle, in)
}

// hasInstance reports whether a live (idle) instance exists. It is only
// meaningful while no call can run (during a stateful swap).
func (e *executor) hasInstance() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.idle) > 0
}

// replace installs in as the only instance, closing the others. Used by a
// stateful rollback whose down-migration succeeded on a fresh instance.
func (e *executor) replace(in *instance) {
	e.mu.Lock()
	old := e.idle
	e.idle = []*instance{in}
	e.mu.Unlock()
	e.live.Add(1)
	for _, o := range old {
		e.discard(o)
	}
}

// close closes idle instances and makes busy ones close when returned.
func (e *executor) close() {
	e.mu.Lock()
	idle := e.idle
	e.idle, e.closed = nil, true
	e.mu.Unlock()
	for _, in := range idle {
		e.discard(in)
	}
}

// faults reports whether err leaves the instance unusable.
func faults(err error) bool {
	return !errors.Is(err, ErrBadOutput) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrBadInput)
}
