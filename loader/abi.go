package loader

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/mcpreload/mcpreload/internal/names"
)

// ABI v1 export names.
const (
	ExportMemory     = "memory"
	ExportAlloc      = "mcpr_alloc"
	ExportDescribe   = "mcpr_describe"
	ExportCall       = "mcpr_call"
	ExportStateSave  = "mcpr_state_save"
	ExportCodeChange = "mcpr_code_change"
	ExportInitialize = "_initialize"

	// WASIModule is the only import module a tool module may use.
	WASIModule = "wasi_snapshot_preview1"
)

var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

type signature struct {
	params, results []api.ValueType
}

func (s signature) String() string {
	return fmt.Sprintf("(%s) -> (%s)", typeList(s.params), typeList(s.results))
}

func typeList(ts []api.ValueType) string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = api.ValueTypeName(t)
	}
	return strings.Join(names, ", ")
}

var abiFuncs = []struct {
	name     string
	required bool
	sig      signature
}{
	{ExportAlloc, true, signature{[]api.ValueType{i32}, []api.ValueType{i32}}},
	{ExportDescribe, true, signature{nil, []api.ValueType{i64}}},
	{ExportCall, true, signature{[]api.ValueType{i32, i32}, []api.ValueType{i64}}},
	{ExportStateSave, false, signature{nil, []api.ValueType{i64}}},
	{ExportCodeChange, false, signature{[]api.ValueType{i32, i32}, []api.ValueType{i64}}},
	{ExportInitialize, false, signature{nil, nil}},
}

// abiExports records which optional exports a compiled module has.
type abiExports struct {
	stateSave, codeChange, initialize bool
}

// checkABI validates a compiled module's exports and imports against ABI v1.
// wasi lists the functions the WASI host module exports with their signatures.
func checkABI(cm wazero.CompiledModule, wasi map[string]signature) (abiExports, string, error) {
	var ex abiExports
	if _, ok := cm.ExportedMemories()[ExportMemory]; !ok {
		return ex, StageABI, fmt.Errorf("%w: the module does not export its linear memory as %q", ErrMissingExport, ExportMemory)
	}
	funcs := cm.ExportedFunctions()
	for _, f := range abiFuncs {
		fd, ok := funcs[f.name]
		if !ok {
			if f.required {
				return ex, StageABI, fmt.Errorf("%w: the module does not export function %s %s", ErrMissingExport, f.name, f.sig)
			}
			continue
		}
		got := signature{fd.ParamTypes(), fd.ResultTypes()}
		if !slices.Equal(got.params, f.sig.params) || !slices.Equal(got.results, f.sig.results) {
			return ex, StageABI, fmt.Errorf("%w: %s has signature %s, ABI v1 wants %s", ErrBadExport, f.name, got, f.sig)
		}
		switch f.name {
		case ExportStateSave:
			ex.stateSave = true
		case ExportCodeChange:
			ex.codeChange = true
		case ExportInitialize:
			ex.initialize = true
		}
	}
	if mems := cm.ImportedMemories(); len(mems) > 0 {
		mod, name, _ := mems[0].Import()
		return ex, StageABI, fmt.Errorf("%w: memory %s.%s (a tool module must define its own memory)", ErrForbiddenImport, mod, name)
	}
	for _, fd := range cm.ImportedFunctions() {
		mod, name, _ := fd.Import()
		if mod != WASIModule {
			return ex, StageABI, fmt.Errorf("%w: function %s.%s (only %s is allowed)", ErrForbiddenImport, mod, name, WASIModule)
		}
		want, ok := wasi[name]
		if !ok {
			return ex, StageABI, fmt.Errorf("%w: function %s.%s is not part of WASI preview 1", ErrForbiddenImport, mod, name)
		}
		got := signature{fd.ParamTypes(), fd.ResultTypes()}
		if !slices.Equal(got.params, want.params) || !slices.Equal(got.results, want.results) {
			return ex, StageABI, fmt.Errorf("%w: function %s.%s imported as %s, WASI defines %s", ErrForbiddenImport, mod, name, got, want)
		}
	}
	return ex, "", nil
}

// Tool is one MCP tool a module declares, as it declared it.
type Tool struct {
	// Name is the MCP tool name, unique across all loaded modules.
	Name string
	// Description is the tool's description (may be empty).
	Description string
	// InputSchema is the tool's JSON schema; always an object schema.
	InputSchema json.RawMessage
	// Definition is the complete MCP Tool object the module returned
	// (name, description, inputSchema and any other fields), verbatim.
	Definition json.RawMessage
}

// description is the parsed output of mcpr_describe.
type description struct {
	Version   string
	Stateless bool
	Tools     []Tool
}

// parseDescribe validates and parses mcpr_describe's JSON.
func parseDescribe(b []byte) (description, error) {
	var raw struct {
		Version   *string           `json:"version"`
		Stateless bool              `json:"stateless"`
		Tools     []json.RawMessage `json:"tools"`
	}
	var d description
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&raw); err != nil {
		return d, fmt.Errorf("not a JSON object: %w", err)
	}
	if dec.More() {
		return d, fmt.Errorf("trailing data after the JSON object")
	}
	switch {
	case raw.Version == nil || *raw.Version == "":
		return d, fmt.Errorf(`"version" is missing or empty`)
	case len(*raw.Version) > 128:
		return d, fmt.Errorf(`"version" is longer than 128 bytes`)
	case len(raw.Tools) == 0:
		return d, fmt.Errorf(`"tools" is missing or empty: a module must declare at least one tool`)
	}
	d.Version, d.Stateless = *raw.Version, raw.Stateless
	seen := make(map[string]bool, len(raw.Tools))
	for i, rt := range raw.Tools {
		var t struct {
			Name        string          `json:"name"`
			Description string          `json:"description"`
			InputSchema json.RawMessage `json:"inputSchema"`
		}
		if err := json.Unmarshal(rt, &t); err != nil {
			return d, fmt.Errorf("tools[%d]: not a tool object: %w", i, err)
		}
		if !names.Tool(t.Name) {
			return d, fmt.Errorf("tools[%d]: name %q must be 1-128 characters, each a letter, digit, _, - or a dot", i, t.Name)
		}
		if seen[t.Name] {
			return d, fmt.Errorf("tools[%d]: duplicate tool name %q", i, t.Name)
		}
		seen[t.Name] = true
		var schema struct {
			Type any `json:"type"`
		}
		if len(t.InputSchema) == 0 || json.Unmarshal(t.InputSchema, &schema) != nil || schema.Type != "object" {
			return d, fmt.Errorf(`tool %q: inputSchema must be a JSON schema object with "type": "object"`, t.Name)
		}
		d.Tools = append(d.Tools, Tool{Name: t.Name, Description: t.Description, InputSchema: t.InputSchema, Definition: rt})
	}
	return d, nil
}

// parseCallResult validates a CallToolResult returned by mcpr_call and
// reports its isError flag.
func parseCallResult(b []byte) (isError bool, err error) {
	var r struct {
		Content *[]struct {
			Type string `json:"type"`
		} `json:"content"`
		IsError bool `json:"isError"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return false, fmt.Errorf("mcpr_call returned invalid JSON: %w", err)
	}
	if r.Content == nil {
		return false, fmt.Errorf(`mcpr_call result has no "content" array`)
	}
	for i, c := range *r.Content {
		if c.Type == "" {
			return false, fmt.Errorf(`mcpr_call result content[%d] has no "type"`, i)
		}
	}
	return r.IsError, nil
}

// parseCodeChange parses mcpr_code_change's reply.
func parseCodeChange(b []byte) error {
	var r struct {
		OK    *bool  `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(b, &r); err != nil || r.OK == nil {
		return fmt.Errorf(`mcpr_code_change returned %q, want {"ok": true} or {"ok": false, "error": "..."}`, truncate(b, 200))
	}
	if !*r.OK {
		if r.Error == "" {
			r.Error = "the module reported failure without a reason"
		}
		return fmt.Errorf("%s", r.Error)
	}
	return nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
