package loader_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/internal/wasmgen"
	"github.com/mcpreload/mcpreload/loader"
)

// stateful returns a stateful fixture that migrates (code_change "ok") and
// whose calls spin for the given number of iterations.
func stateful(version string, spin uint32) []byte {
	return wasmgen.Tiny(wasmgen.Spec{Version: version, CodeChange: "ok", StateSave: "s" + version, SpinIterations: spin})
}

// waitInFlight polls (bounded) until n calls are in flight on module.
func waitInFlight(tb testing.TB, l *loader.Loader, module string, n int) {
	tb.Helper()
	require.Eventually(tb, func() bool { return loader.InFlight(l, module) == n }, 5*time.Second, time.Millisecond)
}

// TestCommitDrainsInFlightCallsOnTheOldVersion: a call running when a
// stateful commit starts finishes on the old version; the commit waits for
// it before migrating, and calls after the commit run on the new version.
func TestCommitDrainsInFlightCallsOnTheOldVersion(t *testing.T) {
	l := newLoader(t, nil)
	ctx := context.Background()
	load(t, l, "slow", stateful("1", 20_000_000))

	type outcome struct {
		res *loader.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := l.Call(ctx, "tiny", nil)
		done <- outcome{res, err}
	}()
	waitInFlight(t, l, "slow", 1)

	s, err := l.Prepare(ctx, "slow", stateful("2", 0), "")
	require.NoError(t, err)
	res, err := l.Commit(ctx, s)
	require.NoError(t, err)
	require.True(t, res.Migrated)
	require.Equal(t, 1, res.Drained)

	out := <-done
	require.NoError(t, out.err)
	old := out.res
	require.Equal(t, "1", old.Version)
	require.Equal(t, "1", textOf(t, old.Output))
	require.Equal(t, "2", callText(t, l, "tiny", `{}`))
}

// TestDrainTimeoutKeepsTheOldVersion: if a call on the old version outlives
// the drain deadline, the commit is undone and the old version serves on.
func TestDrainTimeoutKeepsTheOldVersion(t *testing.T) {
	l := newLoader(t, func(c *loader.Config) { c.DrainTimeout, c.CallTimeout = 50*time.Millisecond, time.Second })
	ctx := context.Background()
	v1 := wasmgen.Tiny(wasmgen.Spec{Version: "1", CodeChange: "ok", StateSave: "s", Tools: []string{"tiny", "x_loop"},
		Misbehave: wasmgen.LoopInCall, MisbehavePrefix: 'x'})
	load(t, l, "slow", v1)

	done := make(chan error, 1)
	go func() {
		_, err := l.Call(ctx, "x_loop", nil)
		done <- err
	}()
	waitInFlight(t, l, "slow", 1)

	s, err := l.Prepare(ctx, "slow", stateful("2", 0), "")
	require.NoError(t, err)
	_, err = l.Commit(ctx, s)
	require.ErrorIs(t, err, loader.ErrDrainTimeout)
	require.Contains(t, err.Error(), "1 calls still running")
	d, err := l.Digest("slow")
	require.NoError(t, err)
	require.Equal(t, loader.DigestOf(v1), d)

	require.ErrorIs(t, <-done, loader.ErrTimeout, "the loop ends at the call deadline")
	require.Equal(t, "1", callText(t, l, "tiny", `{}`))
}
