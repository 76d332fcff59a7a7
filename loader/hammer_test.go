package loader_test

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/internal/testutil"
	"github.com/mcpreload/mcpreload/internal/wasmgen"
	"github.com/mcpreload/mcpreload/loader"
)

// TestCallsAcrossCommitsAndRollbacks: 1,000 concurrent calls while a
// stateless module is committed and rolled back 20 times each: no call
// fails, and every reply comes whole from the version that ran it.
func TestCallsAcrossCommitsAndRollbacks(t *testing.T) {
	l := newLoader(t, func(c *loader.Config) { c.PoolSize = 8 })
	ctx := context.Background()
	v1 := wasmgen.Tiny(wasmgen.Spec{Version: "1", Stateless: true, SpinIterations: 20000})
	v2 := wasmgen.Tiny(wasmgen.Spec{Version: "2", Stateless: true, SpinIterations: 20000})
	load(t, l, "tiny", v1)

	const calls = 1000
	start := make(chan struct{})
	errs := make(chan error, calls)
	served := make([]string, calls)
	var wg sync.WaitGroup
	for i := range calls {
		wg.Go(func() {
			<-start
			res, err := l.Call(ctx, "tiny", nil)
			if err != nil {
				errs <- err
				return
			}
			// Fixture replies carry their version: the reply must match
			// the version the loader says ran the call.
			if got := textOf(t, res.Output); got != res.Version {
				errs <- &mismatch{got, res.Version}
				return
			}
			served[i] = res.Version
		})
	}
	close(start)
	for range 20 {
		s, err := l.Prepare(ctx, "tiny", v2, "")
		require.NoError(t, err)
		_, err = l.Commit(ctx, s)
		require.NoError(t, err)
		_, err = l.Rollback(ctx, "tiny")
		require.NoError(t, err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for i, v := range served {
		require.Contains(t, []string{"1", "2"}, v, "call %d", i)
	}
}

type mismatch struct{ reply, version string }

func (m *mismatch) Error() string {
	return "reply " + m.reply + " came from a call the loader attributes to version " + m.version
}

// TestStatefulCallsAcrossCommitsAndRollbacks: counter increments race 20
// upgrades to v2 and rollbacks to v1, each migrating state. No call fails
// and no increment is lost: the final count equals the number of calls.
func TestStatefulCallsAcrossCommitsAndRollbacks(t *testing.T) {
	l := newLoader(t, nil)
	ctx := context.Background()
	v2 := testutil.Wasm(t, "counter-v2")
	load(t, l, "counter", testutil.Wasm(t, "counter-v1"))

	const calls = 1000
	start := make(chan struct{})
	errs := make(chan error, calls)
	var wg sync.WaitGroup
	for range calls {
		wg.Go(func() {
			<-start
			res, err := l.Call(ctx, "counter_increment", nil)
			if err == nil && res.IsError {
				err = &mismatch{string(res.Output), res.Version}
			}
			if err != nil {
				errs <- err
			}
		})
	}
	close(start)
	for range 20 {
		s, err := l.Prepare(ctx, "counter", v2, "")
		require.NoError(t, err)
		res, err := l.Commit(ctx, s)
		require.NoError(t, err)
		require.True(t, res.Migrated)
		rb, err := l.Rollback(ctx, "counter")
		require.NoError(t, err)
		require.True(t, rb.Migrated)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, strconv.Itoa(calls), callText(t, l, "counter_get", `{}`))
}
