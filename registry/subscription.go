package registry

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
)

// Update is what a subscription has pending: every change published since
// the subscriber last took an update, merged into one.
type Update struct {
	// Seq is the Seq of the newest merged change. It grows strictly from
	// one update to the next.
	Seq uint64
	// Modules lists, sorted and without repeats, every module a merged
	// change applied to.
	Modules []string
	// DefinitionsChanged is true if any merged change had
	// DefinitionsChanged: the node must send one
	// notifications/tools/list_changed.
	DefinitionsChanged bool
}

// Subscription receives the registry's changes, coalesced. The registry
// never waits for a subscriber: each change is merged into the one pending
// Update (nothing is dropped, and the pending update always includes the
// latest change), and a wake-up is sent on a channel with a buffer of one.
// A subscription sees exactly the changes made after Subscribe returned and
// before Close.
//
// The methods are safe for concurrent use, but an Update is delivered to
// only one caller of Pending, Next or Run.
type Subscription struct {
	r    *Registry
	wake chan struct{} // buffer 1; closed by Close

	// mu guards the fields below. Lock order: Registry.mu, then mu.
	mu      sync.Mutex
	closed  bool
	pending bool
	seq     uint64
	modules map[string]struct{}
	defs    bool
}

// Subscribe returns a new subscription to every change made after it
// returns. To mirror the registry without a gap, subscribe first, then read
// List: a change in between is both in the list and reported (harmlessly,
// once more). Close the subscription when done.
func (r *Registry) Subscribe() *Subscription {
	s := &Subscription{r: r, wake: make(chan struct{}, 1)}
	r.mu.Lock()
	r.subs[s] = struct{}{}
	r.mu.Unlock()
	return s
}

// merge adds c to the pending update and wakes the subscriber. It never
// blocks. The registry calls it with Registry.mu held.
func (s *Subscription) merge(c Change) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if s.modules == nil {
		s.modules = make(map[string]struct{})
	}
	s.pending = true
	s.seq = c.Seq
	s.modules[c.Module] = struct{}{}
	s.defs = s.defs || c.DefinitionsChanged
	select {
	case s.wake <- struct{}{}:
	default: // a wake-up is already buffered
	}
}

// C returns the wake-up channel: it receives a value after an update becomes
// pending, and is closed by Close. A receive is a hint, not the update: call
// Pending, which may find nothing if another caller took it first.
func (s *Subscription) C() <-chan struct{} { return s.wake }

// Pending takes the pending update, or returns false if there is none or
// the subscription is closed. It never blocks.
func (s *Subscription) Pending() (Update, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.pending {
		return Update{}, false
	}
	u := Update{Seq: s.seq, Modules: slices.Sorted(maps.Keys(s.modules)), DefinitionsChanged: s.defs}
	s.pending, s.defs = false, false
	clear(s.modules)
	select { // the wake-up for this update, if still buffered
	case <-s.wake:
	default:
	}
	return u, true
}

// Next waits for an update and takes it. It fails with ctx.Err() when ctx
// is done, and with ErrSubscriptionClosed once the subscription is closed.
// An update already pending is returned even if ctx is done.
func (s *Subscription) Next(ctx context.Context) (Update, error) {
	for {
		if u, ok := s.Pending(); ok {
			return u, nil
		}
		select {
		case _, ok := <-s.wake:
			if !ok {
				return Update{}, ErrSubscriptionClosed
			}
		case <-ctx.Done():
			return Update{}, ctx.Err()
		}
	}
}

// Run calls fn with each update, one at a time in the caller's goroutine,
// until ctx is done (it returns ctx.Err()), fn returns an error (it returns
// that error) or the subscription is closed (it returns nil). Changes made
// while fn runs are coalesced into the next call. Run does not close the
// subscription.
//
// A node's MCP server runs it with a fn that sends
// notifications/tools/list_changed when u.DefinitionsChanged.
func (s *Subscription) Run(ctx context.Context, fn func(ctx context.Context, u Update) error) error {
	for {
		u, err := s.Next(ctx)
		if errors.Is(err, ErrSubscriptionClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(ctx, u); err != nil {
			return err
		}
	}
}

// Close stops the subscription: it leaves the registry, drops any pending
// update and closes C, which ends Next and Run. Close is idempotent.
func (s *Subscription) Close() {
	s.r.mu.Lock()
	delete(s.r.subs, s)
	s.r.mu.Unlock()

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	s.pending = false
	s.modules = nil
	close(s.wake)
}
