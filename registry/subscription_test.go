package registry_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/registry"
)

// TestCoalescing: 100 changes to 10 modules with nobody reading leave one
// wake-up and one pending update naming all 10 modules, whose Seq is the
// last change's and whose DefinitionsChanged is the OR of all 100.
func TestCoalescing(t *testing.T) {
	tests := []struct {
		name     string
		describe int // the change (0-99) that also changes a description; -1 for none
	}{
		{"body-only reloads", -1},
		{"one definition change in the burst", 57},
		{"definition change first", 0},
		{"definition change last", 99},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := registry.New()
			var modules []string
			for m := range 10 {
				module := fmt.Sprintf("m%d", m)
				modules = append(modules, module)
				set(t, r, module, "0", tool(module+"_tool", "v0"))
			}
			s := r.Subscribe()
			defer s.Close()

			desc := make(map[string]string) // module -> its tool's description
			for _, m := range modules {
				desc[m] = "v0"
			}
			var last registry.Change
			for i := range 100 {
				module := modules[i%10]
				if i == tt.describe {
					desc[module] = "changed"
				}
				last = set(t, r, module, strconv.Itoa(i+1), tool(module+"_tool", desc[module]))
				require.Equal(t, i == tt.describe, last.DefinitionsChanged)
			}
			require.Equal(t, r.Seq(), last.Seq)
			require.Len(t, s.C(), 1, "one wake-up for the whole burst")

			u, ok := s.Pending()
			require.True(t, ok)
			require.Equal(t, registry.Update{Seq: r.Seq(), Modules: modules, DefinitionsChanged: tt.describe >= 0}, u)
			requireNoUpdate(t, s)

			// The next change starts a new update: DefinitionsChanged was reset.
			c := set(t, r, "m3", "101", tool("m3_tool", desc["m3"]))
			u, ok = s.Pending()
			require.True(t, ok)
			require.Equal(t, registry.Update{Seq: c.Seq, Modules: []string{"m3"}, DefinitionsChanged: c.DefinitionsChanged}, u)
		})
	}
}

func TestSubscriptionSeesOnlyLaterChanges(t *testing.T) {
	r := registry.New()
	set(t, r, "calc", "1", tool("add", "Add"))
	s := r.Subscribe()
	defer s.Close()
	requireNoUpdate(t, s)

	set(t, r, "calc", "2", tool("add", "Add"))
	u, ok := s.Pending()
	require.True(t, ok)
	require.Equal(t, registry.Update{Seq: 2, Modules: []string{"calc"}}, u)
}

func TestSubscriptionsAreIndependent(t *testing.T) {
	r := registry.New()
	a, b := r.Subscribe(), r.Subscribe()
	defer a.Close()
	defer b.Close()

	set(t, r, "calc", "1", tool("add", "Add"))
	ua, ok := a.Pending()
	require.True(t, ok)
	set(t, r, "text", "1", tool("upper", "Upper"))

	ub, ok := b.Pending()
	require.True(t, ok)
	require.Equal(t, registry.Update{Seq: 1, Modules: []string{"calc"}, DefinitionsChanged: true}, ua)
	require.Equal(t, registry.Update{Seq: 2, Modules: []string{"calc", "text"}, DefinitionsChanged: true}, ub)
	ua, ok = a.Pending()
	require.True(t, ok)
	require.Equal(t, registry.Update{Seq: 2, Modules: []string{"text"}, DefinitionsChanged: true}, ua)
}

func TestNext(t *testing.T) {
	t.Run("waits for a change", func(t *testing.T) {
		r := registry.New()
		s := r.Subscribe()
		defer s.Close()
		got := make(chan registry.Update)
		errc := make(chan error, 1)
		go func() {
			u, err := s.Next(t.Context())
			errc <- err
			got <- u
		}()
		set(t, r, "calc", "1", tool("add", "Add"))
		require.NoError(t, <-errc)
		require.Equal(t, registry.Update{Seq: 1, Modules: []string{"calc"}, DefinitionsChanged: true}, <-got)
	})
	t.Run("returns a pending update even if ctx is done", func(t *testing.T) {
		r := registry.New()
		s := r.Subscribe()
		defer s.Close()
		set(t, r, "calc", "1", tool("add", "Add"))
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		u, err := s.Next(ctx)
		require.NoError(t, err)
		require.Equal(t, uint64(1), u.Seq)
		_, err = s.Next(ctx)
		require.ErrorIs(t, err, context.Canceled)
	})
	t.Run("stale wake-up", func(t *testing.T) {
		r := registry.New()
		s := r.Subscribe()
		defer s.Close()
		set(t, r, "calc", "1", tool("add", "Add"))
		<-s.C() // the wake-up, consumed without Pending
		_, ok := s.Pending()
		require.True(t, ok, "consuming the wake-up does not consume the update")
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := s.Next(ctx)
		require.ErrorIs(t, err, context.Canceled)
	})
}

func TestClose(t *testing.T) {
	r := registry.New()
	s := r.Subscribe()
	errc := make(chan error, 1)
	go func() {
		_, err := s.Next(t.Context())
		errc <- err
	}()
	set(t, r, "calc", "1", tool("add", "Add"))
	s.Close()
	s.Close() // idempotent
	// Next either took the update before Close, or was ended by it.
	if err := <-errc; err != nil {
		require.ErrorIs(t, err, registry.ErrSubscriptionClosed)
	}

	_, ok := <-s.C()
	require.False(t, ok, "C is closed")
	_, ok = s.Pending()
	require.False(t, ok)
	_, err := s.Next(t.Context())
	require.ErrorIs(t, err, registry.ErrSubscriptionClosed)
	require.NoError(t, s.Run(t.Context(), func(context.Context, registry.Update) error {
		return errors.New("not called")
	}))

	// The registry no longer publishes to it.
	set(t, r, "calc", "2", tool("add", "Add"))
	_, ok = s.Pending()
	require.False(t, ok)
}

func TestRun(t *testing.T) {
	t.Run("calls fn for each update", func(t *testing.T) {
		r := registry.New()
		s := r.Subscribe()
		defer s.Close()
		got := make(chan registry.Update)
		done := make(chan error, 1)
		go func() {
			done <- s.Run(t.Context(), func(ctx context.Context, u registry.Update) error {
				got <- u
				return nil
			})
		}()
		set(t, r, "calc", "1", tool("add", "Add"))
		require.Equal(t, registry.Update{Seq: 1, Modules: []string{"calc"}, DefinitionsChanged: true}, <-got)
		set(t, r, "calc", "2", tool("add", "Add"))
		require.Equal(t, registry.Update{Seq: 2, Modules: []string{"calc"}}, <-got)
		s.Close()
		require.NoError(t, <-done, "Run returns nil when the subscription is closed")
	})
	t.Run("stops on fn's error", func(t *testing.T) {
		r := registry.New()
		s := r.Subscribe()
		defer s.Close()
		set(t, r, "calc", "1", tool("add", "Add"))
		stop := errors.New("stop")
		err := s.Run(t.Context(), func(context.Context, registry.Update) error { return stop })
		require.ErrorIs(t, err, stop)
	})
	t.Run("stops when ctx is done", func(t *testing.T) {
		r := registry.New()
		s := r.Subscribe()
		defer s.Close()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			done <- s.Run(ctx, func(context.Context, registry.Update) error { return nil })
		}()
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
	})
}
