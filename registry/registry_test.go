package registry_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/registry"
)

func TestRegister(t *testing.T) {
	tests := []struct {
		name    string
		entry   registry.Entry
		want    registry.Change // Seq 2 if anything changed
		wantErr error
		wantMsg []string
	}{
		{
			name:  "new module",
			entry: registry.Entry{Module: "text", Version: "1", Digest: digestOf("text"), Definition: tool("upper", "Upper-case")},
			want:  registry.Change{Module: "text", Seq: 2, Added: []string{"upper"}, DefinitionsChanged: true, VersionChanged: true},
		},
		{
			name:  "new tool of the same module and version",
			entry: registry.Entry{Tool: "sub", Module: "calc", Version: "1", Digest: digestOf("calc@1"), Definition: tool("sub", "Subtract")},
			want:  registry.Change{Module: "calc", Seq: 2, Added: []string{"sub"}, DefinitionsChanged: true},
		},
		{
			name:  "same module re-registers with a new description",
			entry: registry.Entry{Tool: "add", Module: "calc", Version: "1", Digest: digestOf("calc@1"), Definition: tool("add", "Sum")},
			want:  registry.Change{Module: "calc", Seq: 2, Updated: []string{"add"}, DefinitionsChanged: true},
		},
		{
			name:  "same module re-registers with a new version only",
			entry: registry.Entry{Module: "calc", Version: "2", Digest: digestOf("calc@2"), Definition: tool("add", "Add")},
			want:  registry.Change{Module: "calc", Seq: 2, VersionChanged: true},
		},
		{
			name:  "same module re-registers identically",
			entry: registry.Entry{Module: "calc", Version: "1", Digest: digestOf("calc@1"), Definition: tool("add", "Add")},
			want:  registry.Change{Module: "calc"},
		},
		{
			name:    "another module owns the tool",
			entry:   registry.Entry{Module: "calc2", Version: "1", Digest: digestOf("calc2"), Definition: tool("add", "Add")},
			wantErr: registry.ErrToolOwned,
			wantMsg: []string{`tool "add"`, `module "calc"`, `module "calc2"`},
		},
		{
			name:    "entry and definition names differ",
			entry:   registry.Entry{Tool: "plus", Module: "calc", Definition: tool("add", "Add")},
			wantErr: registry.ErrInvalidDefinition,
			wantMsg: []string{`"plus"`, `named "add"`},
		},
		{
			name:    "definition not an object",
			entry:   registry.Entry{Module: "calc", Definition: json.RawMessage(`["add"]`)},
			wantErr: registry.ErrInvalidDefinition,
		},
		{
			name:    "definition without a name",
			entry:   registry.Entry{Module: "calc", Definition: json.RawMessage(`{"description":"x"}`)},
			wantErr: registry.ErrInvalidDefinition,
		},
		{
			name:    "empty module",
			entry:   registry.Entry{Definition: tool("add", "Add")},
			wantErr: registry.ErrInvalidModule,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := registry.New()
			set(t, r, "calc", "1", tool("add", "Add"))
			before := r.List()
			sub := r.Subscribe()
			defer sub.Close()

			c, err := r.Register(tt.entry)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				for _, m := range tt.wantMsg {
					require.ErrorContains(t, err, m)
				}
				require.Equal(t, registry.Change{}, c)
				require.Equal(t, before, r.List(), "a failed Register changed the registry")
				require.Equal(t, uint64(1), r.Seq())
				requireNoUpdate(t, sub)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, c)
			require.Equal(t, max(tt.want.Seq, 1), r.Seq())
			got, ok := r.Get(toolName(t, tt.entry.Definition))
			require.True(t, ok)
			require.Equal(t, tt.entry.Module, got.Module)
			require.Equal(t, tt.entry.Version, got.Version)
			require.Equal(t, tt.entry.Digest, got.Digest)
			require.JSONEq(t, string(tt.entry.Definition), string(got.Definition))
			wantDigest, err := registry.DefinitionDigest(tt.entry.Definition)
			require.NoError(t, err)
			require.Equal(t, wantDigest, got.DefinitionDigest)
		})
	}
}

func TestRegisterSetsTheModuleVersionForAllItsTools(t *testing.T) {
	r := registry.New()
	set(t, r, "calc", "1", tool("add", "Add"), tool("sub", "Subtract"))
	c, err := r.Register(registry.Entry{Module: "calc", Version: "2", Digest: digestOf("calc@2"), Definition: tool("mul", "Multiply")})
	require.NoError(t, err)
	require.Equal(t, registry.Change{Module: "calc", Seq: 2, Added: []string{"mul"}, DefinitionsChanged: true, VersionChanged: true}, c)
	for _, e := range r.List() {
		require.Equal(t, "2", e.Version, e.Tool)
		require.Equal(t, digestOf("calc@2"), e.Digest, e.Tool)
	}
}

func TestSetModuleConflicts(t *testing.T) {
	tests := []struct {
		name      string
		module    string
		defs      []json.RawMessage
		wantErr   error
		wantOwned []registry.ToolOwnedError // every contested tool, in name order
		wantMsg   string
	}{
		{
			name:      "one contested tool",
			module:    "text",
			defs:      []json.RawMessage{tool("upper", "Upper"), tool("add", "Add")},
			wantErr:   registry.ErrToolOwned,
			wantOwned: []registry.ToolOwnedError{{Tool: "add", Owner: "calc", Module: "text"}},
		},
		{
			name:   "every contested tool is reported",
			module: "text",
			defs:   []json.RawMessage{tool("sub", "Sub"), tool("upper", "Upper"), tool("add", "Add")},
			wantOwned: []registry.ToolOwnedError{
				{Tool: "add", Owner: "calc", Module: "text"},
				{Tool: "sub", Owner: "calc", Module: "text"},
			},
			wantErr: registry.ErrToolOwned,
		},
		{
			name:      "new module takes an owned name",
			module:    "math",
			defs:      []json.RawMessage{tool("upper", "Upper")},
			wantErr:   registry.ErrToolOwned,
			wantOwned: []registry.ToolOwnedError{{Tool: "upper", Owner: "text", Module: "math"}},
		},
		{
			name:    "duplicate names",
			module:  "calc",
			defs:    []json.RawMessage{tool("add", "Add"), tool("add", "Add again")},
			wantErr: registry.ErrInvalidDefinition,
			wantMsg: `tools[1]: invalid tool definition: duplicate tool name "add"`,
		},
		{
			name:    "invalid definition among valid ones",
			module:  "calc",
			defs:    []json.RawMessage{tool("add", "Add"), json.RawMessage(`{"name":"has space"}`)},
			wantErr: registry.ErrInvalidDefinition,
			wantMsg: `set module "calc": tools[1]`,
		},
		{
			name:    "empty module name",
			defs:    []json.RawMessage{tool("div", "Divide")},
			wantErr: registry.ErrInvalidModule,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := registry.New()
			set(t, r, "calc", "1", tool("add", "Add"), tool("sub", "Subtract"))
			set(t, r, "text", "1", tool("upper", "Upper"))
			before, seq := r.List(), r.Seq()
			sub := r.Subscribe()
			defer sub.Close()

			c, err := r.SetModule(tt.module, "2", digestOf("2"), tt.defs)
			require.ErrorIs(t, err, tt.wantErr)
			require.Equal(t, registry.Change{}, c)
			if tt.wantMsg != "" {
				require.ErrorContains(t, err, tt.wantMsg)
			}
			var owned []registry.ToolOwnedError
			for _, e := range flatten(err) {
				var oe *registry.ToolOwnedError
				if errors.As(e, &oe) {
					owned = append(owned, *oe)
					require.ErrorContains(t, err, oe.Error())
				}
			}
			require.Equal(t, tt.wantOwned, owned)

			require.Equal(t, before, r.List(), "a failed SetModule changed the registry")
			require.Equal(t, seq, r.Seq())
			requireNoUpdate(t, sub)
		})
	}
}

// flatten returns err and every error it joins.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func TestToolOwnedErrorMessage(t *testing.T) {
	err := &registry.ToolOwnedError{Tool: "add", Owner: "calc", Module: "calc2"}
	require.ErrorIs(t, err, registry.ErrToolOwned)
	require.Equal(t, `registry: tool owned by another module: tool "add" belongs to module "calc", `+
		`module "calc2" cannot register it (rename the tool in "calc2", or remove it from "calc" first)`, err.Error())
}

func TestToolMovesBetweenModules(t *testing.T) {
	r := registry.New()
	set(t, r, "calc", "1", tool("add", "Add"), tool("sub", "Subtract"))
	_, err := r.SetModule("calc2", "1", digestOf("calc2"), []json.RawMessage{tool("sub", "Subtract")})
	require.ErrorIs(t, err, registry.ErrToolOwned)

	c := set(t, r, "calc", "2", tool("add", "Add"))
	require.Equal(t, []string{"sub"}, c.Removed)
	c = set(t, r, "calc2", "1", tool("sub", "Subtract"))
	require.Equal(t, []string{"sub"}, c.Added)
	e, ok := r.Get("sub")
	require.True(t, ok)
	require.Equal(t, "calc2", e.Module)
}

// TestDefinitionsChanged is the matrix a node relies on to send
// notifications/tools/list_changed when, and only when, the tool list a
// client sees changes.
func TestDefinitionsChanged(t *testing.T) {
	const schema = `"inputSchema":{"type":"object","properties":{"a":{"type":"number"},"b":{"type":"number"}},"required":["a","b"]}`
	add, sub := tool("add", "Add a and b"), tool("sub", "Subtract b from a")
	tests := []struct {
		name      string
		version   string // "1" is the starting version
		defs      []json.RawMessage
		want      registry.Change // Module and Seq are filled in
		published bool            // the change gets a Seq even if the Change is otherwise empty
	}{
		{name: "identical reload", version: "1", defs: []json.RawMessage{add, sub}},
		{name: "same tools in another order", version: "1", defs: []json.RawMessage{sub, add}},
		{
			name: "body-only reload", version: "2", defs: []json.RawMessage{add, sub},
			want: registry.Change{VersionChanged: true},
		},
		{
			name: "description changed", version: "1", defs: []json.RawMessage{tool("add", "Sum of a and b"), sub},
			want: registry.Change{Updated: []string{"add"}, DefinitionsChanged: true},
		},
		{
			name: "description changed with a new version", version: "2", defs: []json.RawMessage{tool("add", "Sum of a and b"), sub},
			want: registry.Change{Updated: []string{"add"}, DefinitionsChanged: true, VersionChanged: true},
		},
		{
			name: "tool added", version: "2", defs: []json.RawMessage{add, sub, tool("mul", "Multiply")},
			want: registry.Change{Added: []string{"mul"}, DefinitionsChanged: true, VersionChanged: true},
		},
		{
			name: "tool removed", version: "2", defs: []json.RawMessage{add},
			want: registry.Change{Removed: []string{"sub"}, DefinitionsChanged: true, VersionChanged: true},
		},
		{
			name: "added, removed and updated at once", version: "2",
			defs: []json.RawMessage{tool("add", "Sum"), tool("mul", "Multiply"), tool("div", "Divide")},
			want: registry.Change{Added: []string{"div", "mul"}, Removed: []string{"sub"}, Updated: []string{"add"}, DefinitionsChanged: true, VersionChanged: true},
		},
		{
			name: "schema keys reordered and reformatted", version: "1", published: true,
			defs: []json.RawMessage{json.RawMessage(`{
				"inputSchema": {"required": ["a", "b"], "properties": {"b": {"type": "number"}, "a": {"type": "number"}}, "type": "object"},
				"description": "Add a and b", "name": "add"}`), sub},
		},
		{
			name: "_meta changed", version: "1", published: true,
			defs: []json.RawMessage{json.RawMessage(`{"name":"add","description":"Add a and b",` + schema + `,"_meta":{"build":"2"}}`), sub},
		},
		{
			name: "title added", version: "1",
			defs: []json.RawMessage{json.RawMessage(`{"name":"add","title":"Add","description":"Add a and b",` + schema + `}`), sub},
			want: registry.Change{Updated: []string{"add"}, DefinitionsChanged: true},
		},
		{
			name: "annotations added", version: "1",
			defs: []json.RawMessage{json.RawMessage(`{"name":"add","description":"Add a and b",` + schema + `,"annotations":{"readOnlyHint":true}}`), sub},
			want: registry.Change{Updated: []string{"add"}, DefinitionsChanged: true},
		},
		{
			name: "schema changed", version: "1",
			defs: []json.RawMessage{json.RawMessage(`{"name":"add","description":"Add a and b",` + strings.Replace(schema, `["a","b"]`, `["a"]`, 1) + `}`), sub},
			want: registry.Change{Updated: []string{"add"}, DefinitionsChanged: true},
		},
		{
			name: "unknown member added", version: "1",
			defs: []json.RawMessage{json.RawMessage(`{"name":"add","description":"Add a and b",` + schema + `,"icons":[{"src":"add.png"}]}`), sub},
			want: registry.Change{Updated: []string{"add"}, DefinitionsChanged: true},
		},
		{
			name: "every tool removed", version: "2", defs: nil,
			want: registry.Change{Removed: []string{"add", "sub"}, DefinitionsChanged: true, VersionChanged: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := registry.New()
			set(t, r, "calc", "1", add, sub)
			set(t, r, "text", "1", tool("upper", "Upper"))
			sub := r.Subscribe()
			defer sub.Close()

			c := set(t, r, "calc", tt.version, tt.defs...)
			want := tt.want
			want.Module = "calc"
			if tt.published || want.DefinitionsChanged || want.VersionChanged {
				want.Seq = 3
			}
			require.Equal(t, want, c)
			require.Equal(t, max(want.Seq, 2), r.Seq())

			if want.Seq == 0 {
				requireNoUpdate(t, sub)
			} else {
				u, ok := sub.Pending()
				require.True(t, ok)
				require.Equal(t, registry.Update{Seq: 3, Modules: []string{"calc"}, DefinitionsChanged: want.DefinitionsChanged}, u)
			}
			// The registry stores what the module declared, verbatim.
			for _, def := range tt.defs {
				e, ok := r.Get(toolName(t, def))
				require.True(t, ok)
				require.Equal(t, string(def), string(e.Definition))
			}
		})
	}
}

func TestGetListVersion(t *testing.T) {
	r := registry.New()
	_, ok := r.Get("add")
	require.False(t, ok)
	require.Empty(t, r.List())
	_, _, ok = r.Version("calc")
	require.False(t, ok)
	require.Zero(t, r.Seq())

	add := tool("add", "Add")
	set(t, r, "calc", "1.0.0", tool("sub", "Sub"), add)
	set(t, r, "text", "0.1.0", tool("upper", "Upper"), tool("lower", "Lower"))
	require.Equal(t, []string{"add", "lower", "sub", "upper"}, names(r.List()))

	v, d, ok := r.Version("calc")
	require.True(t, ok)
	require.Equal(t, "1.0.0", v)
	require.Equal(t, digestOf("calc@1.0.0"), d)

	e, ok := r.Get("add")
	require.True(t, ok)
	dd, err := registry.DefinitionDigest(add)
	require.NoError(t, err)
	require.Equal(t, registry.Entry{
		Tool: "add", Module: "calc", Version: "1.0.0", Digest: digestOf("calc@1.0.0"),
		DefinitionDigest: dd, Definition: add,
	}, e)

	// Definitions are copied in and out.
	e.Definition[2] = 'X'
	add[2] = 'Y'
	again, _ := r.Get("add")
	require.Equal(t, string(tool("add", "Add")), string(again.Definition))
}

func TestUnregister(t *testing.T) {
	r := registry.New()
	set(t, r, "calc", "1", tool("add", "Add"), tool("sub", "Sub"))

	_, err := r.Unregister("mul")
	require.ErrorIs(t, err, registry.ErrUnknownTool)
	require.ErrorContains(t, err, `"mul"`)

	c, err := r.Unregister("sub")
	require.NoError(t, err)
	require.Equal(t, registry.Change{Module: "calc", Seq: 2, Removed: []string{"sub"}, DefinitionsChanged: true}, c)
	_, _, ok := r.Version("calc")
	require.True(t, ok)

	c, err = r.Unregister("add")
	require.NoError(t, err)
	require.Equal(t, registry.Change{Module: "calc", Seq: 3, Removed: []string{"add"}, DefinitionsChanged: true, VersionChanged: true}, c)
	_, _, ok = r.Version("calc")
	require.False(t, ok, "a module without tools is forgotten")
	require.Empty(t, r.List())
}

func TestUpdateVersion(t *testing.T) {
	r := registry.New()
	_, err := r.UpdateVersion("calc", "2", digestOf("calc@2"))
	require.ErrorIs(t, err, registry.ErrUnknownModule)

	set(t, r, "calc", "1", tool("add", "Add"), tool("sub", "Sub"))
	c, err := r.UpdateVersion("calc", "2", digestOf("calc@2"))
	require.NoError(t, err)
	require.Equal(t, registry.Change{Module: "calc", Seq: 2, VersionChanged: true}, c)
	for _, e := range r.List() {
		require.Equal(t, "2", e.Version)
		require.Equal(t, digestOf("calc@2"), e.Digest)
	}

	c, err = r.UpdateVersion("calc", "2", digestOf("calc@2"))
	require.NoError(t, err)
	require.Equal(t, registry.Change{Module: "calc"}, c, "nothing changed")
	require.Equal(t, uint64(2), r.Seq())
}

func TestRemoveModule(t *testing.T) {
	r := registry.New()
	require.Equal(t, registry.Change{Module: "calc"}, r.RemoveModule("calc"))
	require.Zero(t, r.Seq())

	set(t, r, "calc", "1", tool("add", "Add"), tool("sub", "Sub"))
	set(t, r, "text", "1", tool("upper", "Upper"))
	c := r.RemoveModule("calc")
	require.Equal(t, registry.Change{Module: "calc", Seq: 3, Removed: []string{"add", "sub"}, DefinitionsChanged: true, VersionChanged: true}, c)
	require.Equal(t, []string{"upper"}, names(r.List()))
	_, _, ok := r.Version("calc")
	require.False(t, ok)

	// The names are free again.
	set(t, r, "text", "2", tool("upper", "Upper"), tool("add", "Add"))
}
