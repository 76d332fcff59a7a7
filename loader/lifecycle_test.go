package loader_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/internal/testutil"
	"github.com/mcpreload/mcpreload/internal/wasmgen"
	"github.com/mcpreload/mcpreload/loader"
)

// TestCounterUpgradeMigratesState: 41 calls on v1, commit v2, the next call
// returns 42 because v2's code_change took v1's state.
func TestCounterUpgradeMigratesState(t *testing.T) {
	l := newLoader(t, nil)
	v1, v2 := testutil.Wasm(t, "counter-v1"), testutil.Wasm(t, "counter-v2")
	load(t, l, "counter", v1)
	require.Equal(t, "41", increment(t, l, 41))

	res := load(t, l, "counter", v2)
	require.True(t, res.Migrated)
	require.Equal(t, "1.0.0", res.From.Version)
	require.Equal(t, "2.0.0", res.To.Version)
	require.Equal(t, "42", increment(t, l, 1))

	cur, old, err := l.Versions("counter")
	require.NoError(t, err)
	require.Equal(t, loader.DigestOf(v2), cur.Digest)
	require.Equal(t, loader.DigestOf(v1), old.Digest)
	require.Equal(t, loader.MD5Of(v2), cur.MD5)
	got, err := l.Object("counter", old.Digest)
	require.NoError(t, err)
	require.Equal(t, v1, got)
}

// TestCommitFailingCodeChangeKeepsOldVersion: a v2 whose code_change fails
// is not committed; v1 keeps serving with its count.
func TestCommitFailingCodeChangeKeepsOldVersion(t *testing.T) {
	l := newLoader(t, nil)
	ctx := context.Background()
	v1 := testutil.Wasm(t, "counter-v1")
	load(t, l, "counter", v1)
	require.Equal(t, "41", increment(t, l, 41))

	bad := wasmgen.Tiny(wasmgen.Spec{Version: "2.0.0-broken", Tools: []string{"counter_increment", "counter_get"}, CodeChange: "fail", StateSave: "x"})
	s, err := l.Prepare(ctx, "counter", bad, loader.DigestOf(bad))
	require.NoError(t, err)
	_, err = l.Commit(ctx, s)
	require.ErrorIs(t, err, loader.ErrCodeChange)
	require.Equal(t, loader.StageMigrate, loader.StageOf(err))
	require.Contains(t, err.Error(), "commit counter: code_change failed")
	require.Contains(t, err.Error(), wasmgen.CodeChangeFailure)
	require.Contains(t, err.Error(), "1.0.0 keeps serving with its state")

	d, err := l.Digest("counter")
	require.NoError(t, err)
	require.Equal(t, loader.DigestOf(v1), d)
	require.Equal(t, "41", callText(t, l, "counter_get", `{}`))
	require.Equal(t, "42", increment(t, l, 1))
}

// TestRollbackCarriesStateDown: rollback from v2 to v1 reuses the loaded v1
// (no recompile) and v1's code_change("down") takes v2's state.
func TestRollbackCarriesStateDown(t *testing.T) {
	l := newLoader(t, nil)
	ctx := context.Background()
	load(t, l, "counter", testutil.Wasm(t, "counter-v1"))
	increment(t, l, 41)
	v1, _, err := l.Versions("counter")
	require.NoError(t, err)
	load(t, l, "counter", testutil.Wasm(t, "counter-v2"))
	require.Equal(t, "45", increment(t, l, 4))
	compiles := l.Compiles()

	res, err := l.Rollback(ctx, "counter")
	require.NoError(t, err)
	require.True(t, res.Migrated)
	require.False(t, res.Restored)
	require.Equal(t, "2.0.0", res.From.Version)
	require.Equal(t, "1.0.0", res.To.Version)
	require.Equal(t, compiles, l.Compiles(), "rollback must not compile")

	cur, old, err := l.Versions("counter")
	require.NoError(t, err)
	require.Nil(t, old)
	require.Equal(t, v1.Digest, cur.Digest)
	require.Equal(t, v1.LoadedAt, cur.LoadedAt, "the same loaded v1, not a new one")
	require.Equal(t, "46", increment(t, l, 1))

	_, err = l.Rollback(ctx, "counter")
	require.ErrorIs(t, err, loader.ErrNoOldVersion)
}

// TestRollbackRestoresSnapshot: when the old version cannot take the new
// version's state, it serves the state it had at upgrade time.
func TestRollbackRestoresSnapshot(t *testing.T) {
	l := newLoader(t, nil)
	ctx := context.Background()
	load(t, l, "counter", testutil.Wasm(t, "counter-v1"))
	increment(t, l, 41)
	odd := wasmgen.Tiny(wasmgen.Spec{Version: "odd", Tools: []string{"counter_increment", "counter_get"}, CodeChange: "ok", StateSave: "not a count"})
	res := load(t, l, "counter", odd)
	require.True(t, res.Migrated)
	require.Equal(t, "odd", callText(t, l, "counter_get", `{}`))

	rb, err := l.Rollback(ctx, "counter")
	require.NoError(t, err)
	require.False(t, rb.Migrated)
	require.True(t, rb.Restored)
	require.Contains(t, rb.RestoreReason, "keeps the state it had when odd was committed")
	require.Equal(t, "41", callText(t, l, "counter_get", `{}`))
}

func TestCommitSameDigestIsANoop(t *testing.T) {
	l := newLoader(t, nil)
	w := wasmgen.Tiny(wasmgen.Spec{Stateless: true})
	load(t, l, "tiny", w)
	res := load(t, l, "tiny", w)
	require.True(t, res.Unchanged)
	_, old, err := l.Versions("tiny")
	require.NoError(t, err)
	require.Nil(t, old, "re-committing the current digest keeps no old version")
}

func TestStatelessUpgradeNeedsNoMigration(t *testing.T) {
	l := newLoader(t, nil)
	load(t, l, "tiny", wasmgen.Tiny(wasmgen.Spec{Version: "1", Stateless: true}))
	res := load(t, l, "tiny", wasmgen.Tiny(wasmgen.Spec{Version: "2", Stateless: true, CodeChange: "fail"}))
	require.False(t, res.Migrated, "stateless modules carry no state")
	require.Equal(t, "2", callText(t, l, "tiny", `{}`))
	rb, err := l.Rollback(context.Background(), "tiny")
	require.NoError(t, err)
	require.False(t, rb.Migrated)
	require.Equal(t, "1", callText(t, l, "tiny", `{}`))
}

func TestPurgeUnloadAndLookups(t *testing.T) {
	l := newLoader(t, nil)
	ctx := context.Background()
	load(t, l, "calc", testutil.Wasm(t, "calc"))
	load(t, l, "tiny", wasmgen.Tiny(wasmgen.Spec{Version: "1", Stateless: true}))
	load(t, l, "tiny", wasmgen.Tiny(wasmgen.Spec{Version: "2", Stateless: true}))
	require.Equal(t, []string{"calc", "tiny"}, l.Modules())

	var names []string
	for _, ti := range l.Tools() {
		names = append(names, ti.Name)
		if ti.Name == "tiny" {
			require.Equal(t, "2", ti.Version)
		}
	}
	require.Equal(t, []string{"calc_add", "calc_div", "calc_mul", "calc_sub", "tiny"}, names)

	require.NoError(t, l.Purge(ctx, "tiny"))
	_, err := l.Rollback(ctx, "tiny")
	require.ErrorIs(t, err, loader.ErrNoOldVersion)

	require.NoError(t, l.Unload(ctx, "tiny"))
	_, err = l.Call(ctx, "tiny", nil)
	require.ErrorIs(t, err, loader.ErrUnknownTool)
	_, _, err = l.Versions("tiny")
	require.ErrorIs(t, err, loader.ErrUnknownModule)
	_, err = l.Digest("nope")
	require.ErrorIs(t, err, loader.ErrUnknownModule)
	_, err = l.Object("calc", loader.DigestOf([]byte("x")))
	require.ErrorIs(t, err, loader.ErrUnknownModule)
	require.Equal(t, []string{"calc"}, l.Modules())

	// A module name freed by Unload can be loaded again, and its tools too.
	load(t, l, "tiny", wasmgen.Tiny(wasmgen.Spec{Version: "3", Stateless: true}))
	require.Equal(t, "3", callText(t, l, "tiny", `{}`))
}

func TestCalc(t *testing.T) {
	l := newLoader(t, nil)
	load(t, l, "calc", testutil.Wasm(t, "calc"))
	require.Equal(t, "5", callText(t, l, "calc_add", `{"a":2,"b":3}`))
	res, err := l.Call(context.Background(), "calc_div", json.RawMessage(`{"a":1,"b":0}`))
	require.NoError(t, err)
	require.True(t, res.IsError)
	require.Contains(t, textOf(t, res.Output), "division by zero")
}

func TestStatsCountInstances(t *testing.T) {
	l := newLoader(t, func(c *loader.Config) { c.PoolSize = 4 })
	load(t, l, "tiny", wasmgen.Tiny(wasmgen.Spec{Version: "1", Stateless: true}))
	load(t, l, "faulty", faulty(wasmgen.TrapInCall))
	_, err := l.Call(context.Background(), "x_bad", nil)
	require.ErrorIs(t, err, loader.ErrTrap)

	st := l.Stats()
	require.Len(t, st, 2)
	require.Equal(t, "faulty", st[0].Module)
	require.Equal(t, 0, st[0].Instances, "the trapped instance was discarded")
	require.Equal(t, "tiny", st[1].Module)
	require.Equal(t, 1, st[1].Instances, "the probe instance serves")
	require.True(t, st[1].Stateless)
	require.Equal(t, 1, st[1].ToolsCount)
	require.Equal(t, "f", callText(t, l, "ok", `{}`))
	require.Equal(t, 1, l.Stats()[0].Instances)
}
