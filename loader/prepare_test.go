package loader_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/internal/testutil"
	"github.com/mcpreload/mcpreload/internal/wasmgen"
	"github.com/mcpreload/mcpreload/loader"
)

// TestPrepareRejectsHostileModules: every hostile or broken module is
// refused by Prepare with its own sentinel and a message naming the module
// and the reason, and the committed version keeps serving, unchanged.
func TestPrepareRejectsHostileModules(t *testing.T) {
	l := newLoader(t, func(c *loader.Config) { c.CallTimeout, c.MemoryLimitPages = 500*time.Millisecond, 256 })
	ctx := context.Background()
	counter := testutil.Wasm(t, "counter-v1")
	load(t, l, "counter", counter)
	load(t, l, "calc", testutil.Wasm(t, "calc"))
	require.Equal(t, "3", increment(t, l, 3))
	digest := loader.DigestOf(counter)

	tiny := wasmgen.Tiny(wasmgen.Spec{Version: "9.9.9"})
	cases := []struct {
		name   string
		wasm   []byte
		digest string
		kind   error
		stage  string
		reason string // a fragment the message must contain
	}{
		{"invalid bytes", wasmgen.InvalidBytes(), "", loader.ErrInvalidWasm, loader.StageCompile, "invalid wasm"},
		{"missing mcpr_call", wasmgen.MissingExport(wasmgen.ExportCall), "", loader.ErrMissingExport, loader.StageABI, "mcpr_call"},
		{"missing memory", wasmgen.MissingExport(wasmgen.ExportMemory), "", loader.ErrMissingExport, loader.StageABI, `"memory"`},
		{"wrong signature", wasmgen.WrongSignature(), "", loader.ErrBadExport, loader.StageABI, "mcpr_call has signature (i32) -> (i32)"},
		{"forbidden import", wasmgen.ForbiddenImport(), "", loader.ErrForbiddenImport, loader.StageABI, "env.host_exec"},
		{"trap in _initialize", wasmgen.Tiny(wasmgen.Spec{Misbehave: wasmgen.TrapInInit}), "", loader.ErrTrap, loader.StageInstantiate, "unreachable"},
		{"trap in describe", wasmgen.Tiny(wasmgen.Spec{Misbehave: wasmgen.TrapInDescribe}), "", loader.ErrTrap, loader.StageDescribe, "mcpr_describe"},
		{"infinite loop in _initialize", wasmgen.Tiny(wasmgen.Spec{Misbehave: wasmgen.LoopInInit}), "", loader.ErrTimeout, loader.StageInstantiate, "500ms"},
		{"infinite loop in describe", wasmgen.Tiny(wasmgen.Spec{Misbehave: wasmgen.LoopInDescribe}), "", loader.ErrTimeout, loader.StageDescribe, "mcpr_describe ran longer"},
		{"memory bomb in _initialize", wasmgen.Tiny(wasmgen.Spec{Misbehave: wasmgen.MemoryBombInInit}), "", loader.ErrMemoryLimit, loader.StageInstantiate, "cap"},
		{"declared memory over the cap", wasmgen.HugeMemory(40000), "", loader.ErrMemoryLimit, loader.StageCompile, "over limit"},
		{"describe is not JSON", wasmgen.DescribeJSON(`{"version": "1", "tools": [`), "", loader.ErrBadDescribe, loader.StageDescribe, "not a JSON object"},
		{"describe without tools", wasmgen.DescribeJSON(`{"version": "1", "tools": []}`), "", loader.ErrBadDescribe, loader.StageDescribe, "at least one tool"},
		{"schema not an object", wasmgen.DescribeJSON(`{"version":"1","tools":[{"name":"t","inputSchema":{"type":"string"}}]}`), "", loader.ErrBadDescribe, loader.StageDescribe, `"type": "object"`},
		{"bad tool name", wasmgen.DescribeJSON(`{"version":"1","tools":[{"name":"a b","inputSchema":{"type":"object"}}]}`), "", loader.ErrBadDescribe, loader.StageDescribe, `"a b"`},
		{"tool name owned by calc", wasmgen.Tiny(wasmgen.Spec{Tools: []string{"calc_add"}}), "", loader.ErrToolCollision, loader.StageCollision, `module "calc"`},
		{"digest mismatch", tiny, loader.DigestOf([]byte("other bytes")), loader.ErrDigestMismatch, loader.StageValidate, "hash to " + loader.DigestOf(tiny)},
		{"malformed digest", tiny, "md5:abc", loader.ErrDigestMismatch, loader.StageValidate, "64 lowercase hex"},
		{"oversize", wasmgen.Padded(wasmgen.Spec{}, loader.DefaultMaxModuleBytes+1), "", loader.ErrTooLarge, loader.StageValidate, "the cap is 16777216"},
	}
	seen := map[string]bool{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := l.Prepare(ctx, "counter", tc.wasm, tc.digest)
			require.Error(t, err)
			require.Nil(t, s)
			require.ErrorIs(t, err, tc.kind)
			require.Equal(t, tc.stage, loader.StageOf(err), "stage of %v", err)
			require.Contains(t, err.Error(), "prepare counter: ")
			require.Contains(t, err.Error(), tc.reason)
			seen[loader.Code(err)] = true

			// The committed version still serves, unchanged, with its state.
			got, err := l.Digest("counter")
			require.NoError(t, err)
			require.Equal(t, digest, got)
			require.Equal(t, "3", callText(t, l, "counter_get", `{}`))
		})
	}
	// Each kind of rejection has its own code.
	require.Len(t, seen, 11)
}

func TestPrepareRejectsBadModuleName(t *testing.T) {
	l := newLoader(t, nil)
	for _, name := range []string{"", "a.b", "x>", strings.Repeat("m", 65), "sp ace"} {
		_, err := l.Prepare(context.Background(), name, wasmgen.Tiny(wasmgen.Spec{}), "")
		require.ErrorIs(t, err, loader.ErrInvalidModuleName, "name %q", name)
	}
}

func TestPrepareChangesNothingUntilCommit(t *testing.T) {
	l := newLoader(t, nil)
	ctx := context.Background()
	v1 := wasmgen.Tiny(wasmgen.Spec{Version: "1", Stateless: true})
	load(t, l, "tiny", v1)

	v2 := wasmgen.Tiny(wasmgen.Spec{Version: "2", Stateless: true, Tools: []string{"tiny", "extra"}})
	s, err := l.Prepare(ctx, "tiny", v2, loader.DigestOf(v2))
	require.NoError(t, err)
	require.Equal(t, "2", s.Info().Version)
	require.Equal(t, loader.DigestOf(v2), s.Digest())
	require.Equal(t, "1", callText(t, l, "tiny", `{}`))
	_, err = l.Call(ctx, "extra", nil)
	require.ErrorIs(t, err, loader.ErrUnknownTool)

	l.Abort(s)
	l.Abort(s) // idempotent
	_, err = l.Commit(ctx, s)
	require.ErrorIs(t, err, loader.ErrStagedUsed)
	require.Equal(t, "1", callText(t, l, "tiny", `{}`))
	cur, old, err := l.Versions("tiny")
	require.NoError(t, err)
	require.Equal(t, "1", cur.Version)
	require.Nil(t, old)
}
