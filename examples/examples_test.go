package examples_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/mcpreload/mcpreload/guest"
	"github.com/mcpreload/mcpreload/internal/testutil"
	"github.com/mcpreload/mcpreload/internal/wasmbuild"
	"github.com/mcpreload/mcpreload/loader"
)

// These tests drive the examples through the tool module ABI with a minimal
// host written against wazero directly, so they check the examples (and the
// guest SDK inside them) independently of the real loader.

// host compiles and instantiates example tool modules.
type host struct {
	t        *testing.T
	runtime  wazero.Runtime
	compiled map[string]wazero.CompiledModule
}

func newHost(t *testing.T) *host {
	t.Helper()
	ctx := context.Background()
	cache, err := wazero.NewCompilationCacheWithDir(testutil.CacheDir(t))
	require.NoError(t, err)
	// The loader's settings, so compiled code comes from the shared cache.
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(cache).
		WithCloseOnContextDone(true).WithMemoryLimitPages(loader.DefaultMemoryLimitPages))
	t.Cleanup(func() {
		require.NoError(t, rt.Close(ctx))
		require.NoError(t, cache.Close(ctx))
	})
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	return &host{t: t, runtime: rt, compiled: make(map[string]wazero.CompiledModule)}
}

// instantiate returns a fresh, initialized instance of the named example.
func (h *host) instantiate(name string) *instance {
	h.t.Helper()
	ctx := context.Background()
	compiled, ok := h.compiled[name]
	if !ok {
		var err error
		compiled, err = h.runtime.CompileModule(ctx, testutil.Wasm(h.t, name))
		require.NoError(h.t, err)
		h.compiled[name] = compiled
	}
	cfg := wazero.NewModuleConfig().
		WithName(""). // anonymous, so several instances can coexist
		WithStartFunctions("_initialize").
		WithStderr(logWriter{h.t})
	mod, err := h.runtime.InstantiateModule(ctx, compiled, cfg)
	require.NoError(h.t, err)
	h.t.Cleanup(func() { _ = mod.Close(ctx) })
	return &instance{t: h.t, name: name, mod: mod}
}

// logWriter sends a module's stderr to the test log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Logf("guest stderr: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// instance is one instance of a tool module.
type instance struct {
	t    *testing.T
	name string
	mod  api.Module
}

// invoke calls an export and returns its results.
func (i *instance) invoke(export string, params ...uint64) []uint64 {
	i.t.Helper()
	fn := i.mod.ExportedFunction(export)
	require.NotNil(i.t, fn, "%s: no export %s", i.name, export)
	results, err := fn.Call(context.Background(), params...)
	require.NoError(i.t, err, "%s: %s", i.name, export)
	return results
}

// read returns a copy of the bytes at the packed location loc.
func (i *instance) read(loc uint64) []byte {
	i.t.Helper()
	ptr, size := uint32(loc>>32), uint32(loc)
	if size == 0 {
		return nil
	}
	view, ok := i.mod.Memory().Read(ptr, size)
	require.True(i.t, ok, "%s: output [%#x, +%d) out of range", i.name, ptr, size)
	return append([]byte(nil), view...)
}

// write copies data into a buffer from mcpr_alloc and returns its address.
func (i *instance) write(data []byte) uint32 {
	i.t.Helper()
	ptr := uint32(i.invoke("mcpr_alloc", uint64(len(data)))[0])
	require.True(i.t, i.mod.Memory().Write(ptr, data), "%s: mcpr_alloc returned %#x", i.name, ptr)
	return ptr
}

// describe returns the raw mcpr_describe message.
func (i *instance) describe() []byte {
	i.t.Helper()
	return i.read(i.invoke("mcpr_describe")[0])
}

// callResult is a decoded CallToolResult.
type callResult struct {
	Content []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"content"`
	StructuredContent json.RawMessage `json:"structuredContent"`
	IsError           bool            `json:"isError"`
}

// text returns the text of the result's only content block.
func (r callResult) text(t *testing.T) string {
	t.Helper()
	require.Len(t, r.Content, 1)
	require.Equal(t, "text", r.Content[0].Type)
	return r.Content[0].Text
}

// call calls a tool through mcpr_call.
func (i *instance) call(tool string, args any) callResult {
	i.t.Helper()
	input, err := json.Marshal(map[string]any{"name": tool, "arguments": args})
	require.NoError(i.t, err)
	var res callResult
	i.callRaw(input, &res)
	return res
}

// callRaw passes input to mcpr_call and decodes the output into res.
func (i *instance) callRaw(input []byte, res *callResult) {
	i.t.Helper()
	ptr := i.write(input)
	out := i.read(i.invoke("mcpr_call", uint64(ptr), uint64(len(input)))[0])
	require.NoError(i.t, json.Unmarshal(out, res), "%s: mcpr_call output %q", i.name, out)
}

// saveState returns the output of mcpr_state_save.
func (i *instance) saveState() []byte {
	i.t.Helper()
	return i.read(i.invoke("mcpr_state_save")[0])
}

// codeChangeReply is a decoded mcpr_code_change reply.
type codeChangeReply struct {
	OK    bool   `json:"ok"`
	Error string `json:"error"`
}

// codeChange passes the state of version from to mcpr_code_change.
func (i *instance) codeChange(from, direction string, state []byte) codeChangeReply {
	i.t.Helper()
	input, err := json.Marshal(map[string]string{
		"from":      from,
		"direction": direction,
		"state":     base64.StdEncoding.EncodeToString(state),
	})
	require.NoError(i.t, err)
	ptr := i.write(input)
	out := i.read(i.invoke("mcpr_code_change", uint64(ptr), uint64(len(input)))[0])
	var reply codeChangeReply
	require.NoError(i.t, json.Unmarshal(out, &reply), "%s: mcpr_code_change output %q", i.name, out)
	return reply
}

// description is a decoded mcpr_describe message, with raw tool definitions.
type description struct {
	Version   string            `json:"version"`
	Stateless bool              `json:"stateless"`
	Tools     []json.RawMessage `json:"tools"`
}

func decodeDescription(t *testing.T, data []byte) description {
	t.Helper()
	var d description
	require.NoError(t, json.Unmarshal(data, &d), "describe output %q", data)
	return d
}

// toolsByName returns the tool definitions of d keyed by name.
func (d description) toolsByName(t *testing.T) map[string]json.RawMessage {
	t.Helper()
	tools := make(map[string]json.RawMessage)
	for _, raw := range d.Tools {
		var tool struct {
			Name        string          `json:"name"`
			Description string          `json:"description"`
			InputSchema json.RawMessage `json:"inputSchema"`
		}
		require.NoError(t, json.Unmarshal(raw, &tool))
		require.NotEmpty(t, tool.Description, "tool %s", tool.Name)
		require.JSONEq(t, `"object"`, string(jsonField(t, tool.InputSchema, "type")), "tool %s", tool.Name)
		tools[tool.Name] = raw
	}
	return tools
}

// jsonField returns the raw value of a top-level field of a JSON object.
func jsonField(t *testing.T, object json.RawMessage, field string) json.RawMessage {
	t.Helper()
	var fields map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(object, &fields))
	return fields[field]
}

func TestDescribe(t *testing.T) {
	h := newHost(t)
	tests := []struct {
		target    string
		version   string
		stateless bool
		tools     []string
	}{
		{"calc", "1.0.0", true, []string{"calc_add", "calc_sub", "calc_mul", "calc_div"}},
		{"counter-v1", "1.0.0", false, []string{"counter_increment", "counter_get"}},
		{"counter-v2", "2.0.0", false, []string{"counter_increment", "counter_get"}},
		{"counter-v3", "3.0.0", false, []string{"counter_increment", "counter_get", "counter_reset"}},
	}
	var targets []string
	for _, tt := range tests {
		targets = append(targets, tt.target)
		t.Run(tt.target, func(t *testing.T) {
			d := decodeDescription(t, h.instantiate(tt.target).describe())
			require.Equal(t, tt.version, d.Version)
			require.Equal(t, tt.stateless, d.Stateless)
			var names []string
			for name := range d.toolsByName(t) {
				names = append(names, name)
			}
			require.ElementsMatch(t, tt.tools, names)
		})
	}
	var all []string
	for name := range wasmbuild.Targets {
		all = append(all, name)
	}
	require.ElementsMatch(t, all, targets, "every target must be covered")
}

// TestCounterToolsUnchanged checks that the counter versions describe their
// common tools identically, so upgrading does not change a client's view of
// them.
func TestCounterToolsUnchanged(t *testing.T) {
	h := newHost(t)
	v1 := decodeDescription(t, h.instantiate("counter-v1").describe()).toolsByName(t)
	require.JSONEq(t, `{
		"name": "counter_increment",
		"description": "Add to the counter and return the new count.",
		"inputSchema": {"type":"object","properties":{"by":{"type":"integer","description":"amount to add (default 1)"}}}
	}`, string(v1["counter_increment"]))
	require.JSONEq(t, `{"name":"counter_get","description":"Return the current count.","inputSchema":{"type":"object"}}`, string(v1["counter_get"]))

	for _, target := range []string{"counter-v2", "counter-v3"} {
		tools := decodeDescription(t, h.instantiate(target).describe()).toolsByName(t)
		for name, def := range v1 {
			require.Equal(t, string(def), string(tools[name]), "%s: tool %s differs from counter-v1", target, name)
		}
	}
	v3 := decodeDescription(t, h.instantiate("counter-v3").describe()).toolsByName(t)
	require.JSONEq(t, `{"name":"counter_reset","description":"Reset the counter to zero.","inputSchema":{"type":"object"}}`, string(v3["counter_reset"]))
}

func TestCounterUpgrade(t *testing.T) {
	h := newHost(t)
	v1 := h.instantiate("counter-v1")
	require.Equal(t, "0", string(v1.saveState()), "fresh counter")
	var res callResult
	for range 41 {
		res = v1.call("counter_increment", map[string]any{})
	}
	require.False(t, res.IsError)
	require.Equal(t, "41", res.text(t))
	require.JSONEq(t, `{"count":41}`, string(res.StructuredContent))
	state := v1.saveState()
	require.Equal(t, "41", string(state))

	v2 := h.instantiate("counter-v2")
	require.Equal(t, codeChangeReply{OK: true}, v2.codeChange("1.0.0", guest.Up, state))
	res = v2.call("counter_increment", map[string]any{})
	require.False(t, res.IsError)
	require.Equal(t, "42", res.text(t))
	require.JSONEq(t, `{"count":42,"history":[1]}`, string(res.StructuredContent))
	res = v2.call("counter_increment", map[string]any{"by": 8})
	require.Equal(t, "50", res.text(t))
	require.JSONEq(t, `{"count":50,"history":[1,8]}`, string(v2.saveState()))

	v3 := h.instantiate("counter-v3")
	require.Equal(t, codeChangeReply{OK: true}, v3.codeChange("2.0.0", guest.Up, v2.saveState()))
	res = v3.call("counter_get", nil)
	require.Equal(t, "50", res.text(t))
	require.JSONEq(t, `{"count":50,"history":[1,8]}`, string(res.StructuredContent))

	// Skipping a version works too.
	v3 = h.instantiate("counter-v3")
	require.Equal(t, codeChangeReply{OK: true}, v3.codeChange("1.0.0", guest.Up, state))
	require.JSONEq(t, `{"count":41,"history":[]}`, string(v3.call("counter_get", nil).StructuredContent))
}

func TestCounterRollback(t *testing.T) {
	h := newHost(t)
	v3 := h.instantiate("counter-v3")
	for by := range 12 {
		v3.call("counter_increment", map[string]any{"by": by})
	}
	state := v3.saveState()
	require.JSONEq(t, `{"count":66,"history":[2,3,4,5,6,7,8,9,10,11]}`, string(state))

	v2 := h.instantiate("counter-v2")
	require.Equal(t, codeChangeReply{OK: true}, v2.codeChange("3.0.0", guest.Down, state))
	res := v2.call("counter_get", map[string]any{})
	require.Equal(t, "66", res.text(t))
	require.JSONEq(t, string(state), string(res.StructuredContent))

	v1 := h.instantiate("counter-v1")
	require.Equal(t, codeChangeReply{OK: true}, v1.codeChange("2.0.0", guest.Down, v2.saveState()))
	res = v1.call("counter_increment", map[string]any{"by": -6})
	require.Equal(t, "60", res.text(t))
	require.JSONEq(t, `{"count":60}`, string(res.StructuredContent))
	require.Equal(t, "60", string(v1.saveState()))
}

func TestCounterReset(t *testing.T) {
	v3 := newHost(t).instantiate("counter-v3")
	v3.call("counter_increment", map[string]any{"by": 5})
	res := v3.call("counter_reset", map[string]any{})
	require.False(t, res.IsError)
	require.Equal(t, "0", res.text(t))
	require.JSONEq(t, `{"count":0,"history":[]}`, string(res.StructuredContent))
}

func TestCounterCodeChangeStates(t *testing.T) {
	h := newHost(t)
	for _, target := range []string{"counter-v1", "counter-v2", "counter-v3"} {
		t.Run(target, func(t *testing.T) {
			tests := []struct {
				state string
				count string // empty: the code change must fail
			}{
				{"", "0"},
				{"  ", "0"},
				{"7", "7"},
				{`{"count":9,"history":[9]}`, "9"},
				{`{"count":3,"extra":true}`, "3"},
				{"1.5", ""},
				{`"12"`, ""},
				{`{"history":[]}`, ""},
				{`{"count":"x"}`, ""},
				{"garbage", ""},
			}
			for _, tt := range tests {
				inst := h.instantiate(target)
				reply := inst.codeChange("1.0.0", guest.Up, []byte(tt.state))
				if tt.count == "" {
					require.False(t, reply.OK, "state %q", tt.state)
					require.Contains(t, reply.Error, "cannot adopt state of version 1.0.0 (up)", "state %q", tt.state)
					continue
				}
				require.Equal(t, codeChangeReply{OK: true}, reply, "state %q", tt.state)
				require.Equal(t, tt.count, inst.call("counter_get", nil).text(t), "state %q", tt.state)
			}
		})
	}
}

func TestCounterInvalidArguments(t *testing.T) {
	v2 := newHost(t).instantiate("counter-v2")
	res := v2.call("counter_increment", map[string]any{"by": 1.5})
	require.True(t, res.IsError)
	require.Contains(t, res.text(t), "invalid arguments")
	res = v2.call("counter_increment", map[string]any{"by": int64(1) << 62})
	require.False(t, res.IsError)
	res = v2.call("counter_increment", map[string]any{"by": int64(1) << 62})
	require.True(t, res.IsError)
	require.Contains(t, res.text(t), "overflows")
	require.Equal(t, "4611686018427387904", v2.call("counter_get", nil).text(t), "failed call must not change the count")
}

func TestCalc(t *testing.T) {
	calc := newHost(t).instantiate("calc")
	tests := []struct {
		tool string
		a, b float64
		want string
	}{
		{"calc_add", 0.1, 0.2, "0.30000000000000004"},
		{"calc_sub", 1, 3, "-2"},
		{"calc_mul", 1.5, 4, "6"},
		{"calc_div", 1, 4, "0.25"},
		{"calc_div", 1e300, 1e-300, ""},
	}
	for _, tt := range tests {
		res := calc.call(tt.tool, map[string]any{"a": tt.a, "b": tt.b})
		if tt.want == "" {
			require.True(t, res.IsError, "%s(%v, %v)", tt.tool, tt.a, tt.b)
			require.Contains(t, res.text(t), "not a finite number")
			continue
		}
		require.False(t, res.IsError, "%s(%v, %v): %s", tt.tool, tt.a, tt.b, res.text(t))
		require.Equal(t, tt.want, res.text(t), "%s(%v, %v)", tt.tool, tt.a, tt.b)
		require.JSONEq(t, `{"result":`+tt.want+`}`, string(res.StructuredContent))
	}

	res := calc.call("calc_div", map[string]any{"a": 1, "b": 0})
	require.True(t, res.IsError)
	require.Equal(t, "division by zero", res.text(t))
	require.Empty(t, res.StructuredContent)

	res = calc.call("calc_add", map[string]any{"a": 1})
	require.True(t, res.IsError)
	require.Equal(t, `missing required argument "b"`, res.text(t))

	res = calc.call("calc_add", map[string]any{"a": "1", "b": 2})
	require.True(t, res.IsError)
	require.Contains(t, res.text(t), "invalid arguments")

	require.Empty(t, calc.saveState(), "stateless module")
}

// TestABIErrors checks the guest SDK's handling of bad input through the
// real exports.
func TestABIErrors(t *testing.T) {
	calc := newHost(t).instantiate("calc")

	res := calc.call("calc_pow", map[string]any{"a": 1, "b": 2})
	require.True(t, res.IsError)
	require.Equal(t, `unknown tool "calc_pow"`, res.text(t))

	calc.callRaw([]byte(`{"name":`), &res)
	require.True(t, res.IsError)
	require.Contains(t, res.text(t), "invalid tool call")

	// An input outside the buffer returned by mcpr_alloc is rejected.
	ptr := calc.write([]byte(`{"name":"calc_add","arguments":{"a":1,"b":2}}`))
	out := calc.read(calc.invoke("mcpr_call", uint64(ptr+1<<20), 8)[0])
	require.NoError(t, json.Unmarshal(out, &res))
	require.True(t, res.IsError)
	require.Contains(t, res.text(t), "outside the buffer returned by mcpr_alloc")

	// The instance still works, and a buffer is reused across calls.
	res = calc.call("calc_add", map[string]any{"a": 1, "b": 2})
	require.Equal(t, "3", res.text(t))
	require.Equal(t, ptr, calc.write([]byte("{}")))

	require.Equal(t, codeChangeReply{OK: true}, calc.codeChange("0.1.0", guest.Up, []byte("ignored")))
	reply := calc.codeChange("0.1.0", "sideways", nil)
	require.False(t, reply.OK)
	require.Contains(t, reply.Error, `direction "sideways"`)
}
