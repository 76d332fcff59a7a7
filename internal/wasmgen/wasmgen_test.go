package wasmgen_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/mcpreload/mcpreload/internal/wasmgen"
)

const (
	pageSize  = 1 << 16
	pageLimit = 1024
)

// newRuntime returns a runtime configured like the loader's.
func newRuntime(t *testing.T) wazero.Runtime {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().
		WithCloseOnContextDone(true).
		WithMemoryLimitPages(pageLimit))
	t.Cleanup(func() { require.NoError(t, r.Close(ctx)) })
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	return r
}

// instantiate compiles bin and instantiates it, running _initialize if
// initialize is set.
func instantiate(ctx context.Context, t *testing.T, r wazero.Runtime, bin []byte, initialize bool) (api.Module, error) {
	t.Helper()
	compiled, err := r.CompileModule(ctx, bin)
	require.NoError(t, err)
	config := wazero.NewModuleConfig().WithStartFunctions()
	if initialize {
		config = config.WithStartFunctions(wasmgen.ExportInitialize)
	}
	return r.InstantiateModule(ctx, compiled, config)
}

func mustInstantiate(t *testing.T, r wazero.Runtime, bin []byte, initialize bool) api.Module {
	t.Helper()
	mod, err := instantiate(context.Background(), t, r, bin, initialize)
	require.NoError(t, err)
	return mod
}

// callPacked calls the export name and reads the (ptr, len) it returns.
func callPacked(ctx context.Context, t *testing.T, mod api.Module, name string, params ...uint64) (string, error) {
	t.Helper()
	fn := mod.ExportedFunction(name)
	require.NotNil(t, fn, name)
	results, err := fn.Call(ctx, params...)
	if err != nil {
		return "", err
	}
	require.Len(t, results, 1)
	b, ok := mod.Memory().Read(uint32(results[0]>>32), uint32(results[0]))
	require.True(t, ok, "result out of memory bounds")
	return string(b), nil
}

// withInput writes input where mcpr_alloc says and calls name with it.
func withInput(ctx context.Context, t *testing.T, mod api.Module, name string, input []byte) (string, error) {
	t.Helper()
	results, err := mod.ExportedFunction(wasmgen.ExportAlloc).Call(ctx, uint64(len(input)))
	require.NoError(t, err)
	ptr := uint32(results[0])
	require.True(t, mod.Memory().Write(ptr, input), "input out of memory bounds")
	return callPacked(ctx, t, mod, name, uint64(ptr), uint64(len(input)))
}

func callTool(t *testing.T, mod api.Module) string {
	t.Helper()
	out, err := withInput(context.Background(), t, mod, wasmgen.ExportCall, []byte(`{"name":"tiny","arguments":{}}`))
	require.NoError(t, err)
	return out
}

type description struct {
	Version   string `json:"version"`
	Stateless *bool  `json:"stateless"`
	Tools     []struct {
		Name        string         `json:"name"`
		Description string         `json:"description"`
		InputSchema map[string]any `json:"inputSchema"`
	} `json:"tools"`
}

func describe(t *testing.T, mod api.Module) description {
	t.Helper()
	out, err := callPacked(context.Background(), t, mod, wasmgen.ExportDescribe)
	require.NoError(t, err)
	var d description
	require.NoError(t, json.Unmarshal([]byte(out), &d), out)
	return d
}

func replyText(t *testing.T, out string) string {
	t.Helper()
	var res struct {
		Content []struct{ Type, Text string } `json:"content"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &res), out)
	require.Len(t, res.Content, 1)
	require.Equal(t, "text", res.Content[0].Type)
	return res.Content[0].Text
}

func TestTinyDefaults(t *testing.T) {
	r := newRuntime(t)
	bin := wasmgen.Tiny(wasmgen.Spec{})
	require.Less(t, len(bin), 1024, "fixtures must stay tiny")
	mod := mustInstantiate(t, r, bin, false)

	d := describe(t, mod)
	require.Equal(t, "1.0.0", d.Version)
	require.Nil(t, d.Stateless)
	require.Len(t, d.Tools, 1)
	require.Equal(t, "tiny", d.Tools[0].Name)
	require.Equal(t, "fixture tool", d.Tools[0].Description)
	require.Equal(t, map[string]any{"type": "object"}, d.Tools[0].InputSchema)

	require.Equal(t, "1.0.0", replyText(t, callTool(t, mod)))
	require.Equal(t, "1.0.0", replyText(t, callTool(t, mod)), "instances serve repeated calls")

	exports := mod.ExportedFunctionDefinitions()
	for _, name := range []string{wasmgen.ExportCodeChange, wasmgen.ExportStateSave, wasmgen.ExportInitialize} {
		require.NotContains(t, exports, name)
	}
	call := exports[wasmgen.ExportCall]
	require.Equal(t, []api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, call.ParamTypes())
	require.Equal(t, []api.ValueType{api.ValueTypeI64}, call.ResultTypes())
}

func TestTinySpec(t *testing.T) {
	r := newRuntime(t)
	mod := mustInstantiate(t, r, wasmgen.Tiny(wasmgen.Spec{
		Version:    "2.3.4",
		Stateless:  true,
		Tools:      []string{"alpha", "beta"},
		Reply:      `hello "world" <&>`,
		CodeChange: "ok",
		StateSave:  "\x00state\xff",
		Initialize: true,
	}), true)

	d := describe(t, mod)
	require.Equal(t, "2.3.4", d.Version)
	require.NotNil(t, d.Stateless)
	require.True(t, *d.Stateless)
	require.Len(t, d.Tools, 2)
	require.Equal(t, "alpha", d.Tools[0].Name)
	require.Equal(t, "beta", d.Tools[1].Name)

	require.Equal(t, `hello "world" <&>`, replyText(t, callTool(t, mod)))

	ctx := context.Background()
	out, err := withInput(ctx, t, mod, wasmgen.ExportCodeChange, []byte(`{"from":"1.0.0"}`))
	require.NoError(t, err)
	require.JSONEq(t, `{"ok":true}`, out)

	out, err = callPacked(ctx, t, mod, wasmgen.ExportStateSave)
	require.NoError(t, err)
	require.Equal(t, "\x00state\xff", out)

	_, err = mod.ExportedFunction(wasmgen.ExportInitialize).Call(ctx)
	require.NoError(t, err)
}

func TestTinyNoTools(t *testing.T) {
	mod := mustInstantiate(t, newRuntime(t), wasmgen.Tiny(wasmgen.Spec{Tools: []string{}}), false)
	d := describe(t, mod)
	require.NotNil(t, d.Tools)
	require.Empty(t, d.Tools)
}

func TestTinyCodeChangeFails(t *testing.T) {
	mod := mustInstantiate(t, newRuntime(t), wasmgen.Tiny(wasmgen.Spec{CodeChange: "fail"}), false)
	out, err := withInput(context.Background(), t, mod, wasmgen.ExportCodeChange, nil)
	require.NoError(t, err)
	require.JSONEq(t, `{"ok":false,"error":"fixture: cannot migrate state"}`, out)
}

func TestTinyLargeInput(t *testing.T) {
	mod := mustInstantiate(t, newRuntime(t), wasmgen.Tiny(wasmgen.Spec{}), false)
	alloc := mod.ExportedFunction(wasmgen.ExportAlloc)
	ctx := context.Background()

	small, err := alloc.Call(ctx, 100)
	require.NoError(t, err)
	require.Equal(t, uint32(pageSize), mod.Memory().Size(), "small inputs fit the initial page")

	input := []byte(`{"name":"tiny","arguments":{"blob":"` + strings.Repeat("x", 1<<20) + `"}}`)
	out, err := withInput(ctx, t, mod, wasmgen.ExportCall, input)
	require.NoError(t, err)
	require.Equal(t, "1.0.0", replyText(t, out))
	size := mod.Memory().Size()
	require.GreaterOrEqual(t, size, uint32(len(input)))

	again, err := alloc.Call(ctx, uint64(len(input)))
	require.NoError(t, err)
	require.Equal(t, small, again, "alloc reuses its scratch area")
	require.Equal(t, size, mod.Memory().Size(), "memory does not grow again")

	_, err = alloc.Call(ctx, uint64(pageLimit*pageSize))
	require.ErrorContains(t, err, "unreachable", "alloc traps when memory cannot grow")
}

func TestTinyDeterministicAndDistinct(t *testing.T) {
	specs := []wasmgen.Spec{
		{},
		{Version: "2.0.0"},
		{Stateless: true},
		{Tools: []string{"other"}},
		{Reply: "other"},
		{Misbehave: wasmgen.TrapInCall},
		{Misbehave: wasmgen.LoopInCall},
		{CodeChange: "ok"},
		{CodeChange: "fail"},
		{StateSave: "s"},
		{Initialize: true},
		{SpinIterations: 10},
	}
	seen := map[string]int{}
	for i, s := range specs {
		bin := wasmgen.Tiny(s)
		require.Equal(t, bin, wasmgen.Tiny(s), "spec %d is not deterministic", i)
		prev, dup := seen[string(bin)]
		require.False(t, dup, "specs %d and %d encode the same", prev, i)
		seen[string(bin)] = i
	}
}

func TestTinySpin(t *testing.T) {
	r := newRuntime(t)
	mod := mustInstantiate(t, r, wasmgen.Tiny(wasmgen.Spec{SpinIterations: 100_000}), false)
	require.Equal(t, "1.0.0", replyText(t, callTool(t, mod)))

	// 2^32-1 iterations take seconds: the deadline proves the loop spins.
	mod = mustInstantiate(t, r, wasmgen.Tiny(wasmgen.Spec{SpinIterations: ^uint32(0)}), false)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := withInput(ctx, t, mod, wasmgen.ExportCall, nil)
	requireDeadline(t, err)
}

func requireDeadline(t *testing.T, err error) {
	t.Helper()
	var exit *sys.ExitError
	require.ErrorAs(t, err, &exit)
	require.Equal(t, sys.ExitCodeDeadlineExceeded, exit.ExitCode())
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestMisbehaviours(t *testing.T) {
	tests := []struct {
		name      string
		misbehave wasmgen.Misbehaviour
		export    string // the misbehaving function
		check     func(t *testing.T, err error)
		timeout   time.Duration // loops need the deadline, bombs must not hit it
	}{
		{"TrapInInit", wasmgen.TrapInInit, wasmgen.ExportInitialize, requireTrap, 100 * time.Millisecond},
		{"TrapInDescribe", wasmgen.TrapInDescribe, wasmgen.ExportDescribe, requireTrap, 100 * time.Millisecond},
		{"TrapInCall", wasmgen.TrapInCall, wasmgen.ExportCall, requireTrap, 100 * time.Millisecond},
		{"LoopInInit", wasmgen.LoopInInit, wasmgen.ExportInitialize, requireDeadline, 100 * time.Millisecond},
		{"LoopInDescribe", wasmgen.LoopInDescribe, wasmgen.ExportDescribe, requireDeadline, 100 * time.Millisecond},
		{"LoopInCall", wasmgen.LoopInCall, wasmgen.ExportCall, requireDeadline, 100 * time.Millisecond},
		{"MemoryBombInInit", wasmgen.MemoryBombInInit, wasmgen.ExportInitialize, requireTrap, 30 * time.Second},
		{"MemoryBombInCall", wasmgen.MemoryBombInCall, wasmgen.ExportCall, requireTrap, 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRuntime(t)
			bin := wasmgen.Tiny(wasmgen.Spec{Misbehave: tt.misbehave})
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()

			if tt.export == wasmgen.ExportInitialize {
				_, err := instantiate(ctx, t, r, bin, true)
				tt.check(t, err)
				return
			}
			mod, err := instantiate(ctx, t, r, bin, false)
			require.NoError(t, err)
			if tt.export == wasmgen.ExportDescribe {
				_, err = callPacked(ctx, t, mod, wasmgen.ExportDescribe)
			} else {
				_, err = withInput(ctx, t, mod, wasmgen.ExportCall, []byte(`{}`))
			}
			tt.check(t, err)
			if tt.misbehave == wasmgen.MemoryBombInCall {
				require.Greater(t, mod.Memory().Size(), uint32((pageLimit-16)*pageSize), "memory grew to the cap")
			}
		})
	}
}

func requireTrap(t *testing.T, err error) {
	t.Helper()
	require.ErrorContains(t, err, "wasm error: unreachable")
}

func TestBrokenModules(t *testing.T) {
	ctx := context.Background()
	r := newRuntime(t)

	t.Run("InvalidBytes", func(t *testing.T) {
		_, err := r.CompileModule(ctx, wasmgen.InvalidBytes())
		require.ErrorContains(t, err, "invalid magic number")
	})

	t.Run("MissingExport", func(t *testing.T) {
		for _, name := range []string{wasmgen.ExportCall, wasmgen.ExportDescribe, wasmgen.ExportAlloc, wasmgen.ExportMemory} {
			compiled, err := r.CompileModule(ctx, wasmgen.MissingExport(name))
			require.NoError(t, err, name)
			exports := map[string]bool{}
			for export := range compiled.ExportedFunctions() {
				exports[export] = true
			}
			for export := range compiled.ExportedMemories() {
				exports[export] = true
			}
			require.Len(t, exports, 3, name)
			require.NotContains(t, exports, name)
		}
		require.Panics(t, func() { wasmgen.MissingExport(wasmgen.ExportStateSave) })
	})

	t.Run("WrongSignature", func(t *testing.T) {
		compiled, err := r.CompileModule(ctx, wasmgen.WrongSignature())
		require.NoError(t, err)
		call := compiled.ExportedFunctions()[wasmgen.ExportCall]
		require.NotNil(t, call)
		require.Equal(t, []api.ValueType{api.ValueTypeI32}, call.ParamTypes())
		require.Equal(t, []api.ValueType{api.ValueTypeI32}, call.ResultTypes())
	})

	t.Run("ForbiddenImport", func(t *testing.T) {
		compiled, err := r.CompileModule(ctx, wasmgen.ForbiddenImport())
		require.NoError(t, err)
		imports := compiled.ImportedFunctions()
		require.Len(t, imports, 1)
		module, name, ok := imports[0].Import()
		require.True(t, ok)
		require.Equal(t, "env", module)
		require.Equal(t, "host_exec", name)
		require.Equal(t, []api.ValueType{api.ValueTypeI32}, imports[0].ParamTypes())
		require.Equal(t, []api.ValueType{api.ValueTypeI32}, imports[0].ResultTypes())
		require.Len(t, compiled.ExportedFunctions(), 3, "exports still point at the defined functions")

		_, err = r.InstantiateModule(ctx, compiled, wazero.NewModuleConfig())
		require.ErrorContains(t, err, `module[env] not instantiated`)
	})

	t.Run("HugeMemory", func(t *testing.T) {
		_, err := r.CompileModule(ctx, wasmgen.HugeMemory(40000))
		require.ErrorContains(t, err, "section memory: min 40000 pages (2 Gi) over limit of 1024 pages (64 Mi)")
		mustInstantiate(t, r, wasmgen.HugeMemory(pageLimit), false)
		require.Panics(t, func() { wasmgen.HugeMemory(0) })
	})

	t.Run("DescribeJSON", func(t *testing.T) {
		for _, text := range []string{`{"version": "1", "tools": [`, ``, `{"version":"1","tools":[{"name":"x","inputSchema":{}}]}`} {
			mod := mustInstantiate(t, r, wasmgen.DescribeJSON(text), false)
			out, err := callPacked(ctx, t, mod, wasmgen.ExportDescribe)
			require.NoError(t, err)
			require.Equal(t, text, out)
			require.Equal(t, "1.0.0", replyText(t, callTool(t, mod)))
		}
	})
}

func TestPadded(t *testing.T) {
	spec := wasmgen.Spec{Version: "9.9.9"}
	tiny := len(wasmgen.Tiny(spec))
	for size := tiny + 10; size < tiny+300; size++ {
		got := len(wasmgen.Padded(spec, size))
		require.True(t, got == size || got == size+1, "size %d: got %d", size, got)
	}
	require.Equal(t, tiny+10, len(wasmgen.Padded(spec, 0)), "an empty padding section costs 10 bytes")

	const size = 17 << 20
	bin := wasmgen.Padded(spec, size)
	require.Len(t, bin, size)
	mod := mustInstantiate(t, newRuntime(t), bin, false)
	require.Equal(t, "9.9.9", replyText(t, callTool(t, mod)))
}

func TestTinyPanics(t *testing.T) {
	require.Panics(t, func() { wasmgen.Tiny(wasmgen.Spec{Tools: []string{"ok", ""}}) })
	require.Panics(t, func() { wasmgen.Tiny(wasmgen.Spec{CodeChange: "maybe"}) })
	require.Panics(t, func() { wasmgen.Tiny(wasmgen.Spec{Misbehave: wasmgen.MemoryBombInInit + 1}) })
}

func TestLEB128(t *testing.T) {
	require.Equal(t, []byte{0xe5, 0x8e, 0x26}, wasmgen.AppendULEB128(nil, 624485))
	require.Equal(t, []byte{0x00}, wasmgen.AppendULEB128(nil, 0))
	require.Equal(t, []byte{0xc0, 0xbb, 0x78}, wasmgen.AppendSLEB128(nil, -123456))
	require.Equal(t, []byte{0x3f}, wasmgen.AppendSLEB128(nil, 63))
	require.Equal(t, []byte{0xc0, 0x00}, wasmgen.AppendSLEB128(nil, 64))
	require.Equal(t, []byte{0x40}, wasmgen.AppendSLEB128(nil, -64))
	require.Equal(t, []byte{0xbf, 0x7f}, wasmgen.AppendSLEB128(nil, -65))
}

func TestModuleEncodeEmpty(t *testing.T) {
	bin := (&wasmgen.Module{}).Encode()
	require.Equal(t, []byte("\x00asm\x01\x00\x00\x00"), bin)
	_, err := newRuntime(t).CompileModule(context.Background(), bin)
	require.NoError(t, err)
}
