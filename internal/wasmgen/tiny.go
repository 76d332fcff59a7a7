package wasmgen

import (
	"encoding/json"
	"fmt"
)

// Export names of the tool module ABI v1. Functions returning (ptr, len)
// pack them into one i64 as uint64(ptr)<<32 | uint64(len).
const (
	ExportMemory     = "memory"           // the linear memory
	ExportAlloc      = "mcpr_alloc"       // (len i32) -> (ptr i32): where the host writes input
	ExportDescribe   = "mcpr_describe"    // () -> i64: describe JSON
	ExportCall       = "mcpr_call"        // (ptr, len i32) -> i64: CallToolResult JSON
	ExportStateSave  = "mcpr_state_save"  // () -> i64: optional, opaque state bytes
	ExportCodeChange = "mcpr_code_change" // (ptr, len i32) -> i64: optional, {"ok":...} JSON
	ExportInitialize = "_initialize"      // () -> (): optional, called once per instance
)

// CodeChangeFailure is the error a Spec with CodeChange "fail" reports.
const CodeChangeFailure = "fixture: cannot migrate state"

// Spec describes a well-formed tiny tool module; the zero value of every
// field selects a sensible default.
type Spec struct {
	// Version is the describe version; "" means "1.0.0".
	Version string
	// Stateless is reported in describe; false omits the field.
	Stateless bool
	// Tools are the tool names, each described as "fixture tool" with
	// input schema {"type":"object"}; nil means []string{"tiny"}.
	Tools []string
	// Reply is the text content every call returns; "" means the version,
	// so a test can tell which version served a call.
	Reply string
	// Misbehave makes one export trap, loop or exhaust memory.
	Misbehave Misbehaviour
	// CodeChange selects the mcpr_code_change export: "" omits it, "ok"
	// returns {"ok":true} and "fail" returns {"ok":false,"error":...} with
	// CodeChangeFailure.
	CodeChange string
	// StateSave, if not empty, adds an mcpr_state_save export returning
	// these bytes.
	StateSave string
	// Initialize adds an _initialize export that does nothing. Misbehaviours
	// in _initialize add it regardless.
	Initialize bool
	// SpinIterations, if positive, makes mcpr_call busy-loop this many
	// iterations before replying: a slow tool for drain tests.
	SpinIterations uint32
	// MisbehavePrefix, if not zero, limits a call-time Misbehave to calls of
	// tools whose name starts with this byte; other tools reply normally. It
	// relies on the host writing the call input as {"name":"<tool>",... so
	// the name starts at byte 9 (as the mcpreload loader does).
	MisbehavePrefix byte
}

// Misbehaviour selects how a Tiny module breaks at run time.
type Misbehaviour int

// Misbehaviours. Traps execute unreachable; loops never end, so only a host
// deadline stops them; memory bombs call memory.grow(16) until it fails and
// then execute unreachable, so the host memory cap is what stops them.
const (
	None             Misbehaviour = iota // every export behaves
	TrapInInit                           // _initialize traps
	TrapInDescribe                       // mcpr_describe traps
	TrapInCall                           // mcpr_call traps
	LoopInInit                           // _initialize loops forever
	LoopInDescribe                       // mcpr_describe loops forever
	LoopInCall                           // mcpr_call loops forever
	MemoryBombInCall                     // mcpr_call grows memory until it cannot
	MemoryBombInInit                     // _initialize grows memory until it cannot
)

// Tiny returns a tool module implementing s. It panics on an invalid Spec
// (an empty tool name, an unknown CodeChange or Misbehaviour).
func Tiny(s Spec) []byte { return build(fixture{Spec: s}).Encode() }

// InvalidBytes returns bytes that are not a WebAssembly module at all.
func InvalidBytes() []byte { return []byte("this is not a wasm module") }

// MissingExport returns a Tiny module without the required export name:
// ExportCall, ExportDescribe, ExportAlloc or ExportMemory. The function or
// memory is still defined, just not exported. It panics on other names.
func MissingExport(name string) []byte {
	switch name {
	case ExportCall, ExportDescribe, ExportAlloc, ExportMemory:
	default:
		panic(fmt.Sprintf("wasmgen: %q is not a required export", name))
	}
	m := build(fixture{})
	for i, e := range m.Exports {
		if e.Name == name {
			m.Exports = append(m.Exports[:i], m.Exports[i+1:]...)
			break
		}
	}
	return m.Encode()
}

// WrongSignature returns a Tiny module whose mcpr_call has the signature
// (i32) -> i32 instead of (i32, i32) -> i64.
func WrongSignature() []byte { return build(fixture{wrongCallSignature: true}).Encode() }

// ForbiddenImport returns a Tiny module that also imports the function
// "env"."host_exec" with signature (i32) -> i32.
func ForbiddenImport() []byte { return build(fixture{forbiddenImport: true}).Encode() }

// HugeMemory returns a Tiny module whose memory declares minPages pages as
// its minimum, e.g. 40000 pages (2.4 GiB) for a memory bomb at instantiation.
// It panics if minPages cannot hold the module's data (1 page does).
func HugeMemory(minPages uint32) []byte {
	m := build(fixture{})
	if minPages < m.Memory.Min {
		panic(fmt.Sprintf("wasmgen: %d pages cannot hold the module's data", minPages))
	}
	m.Memory.Min = minPages
	return m.Encode()
}

// DescribeJSON returns a Tiny module whose mcpr_describe returns exactly
// text, which need not be valid JSON.
func DescribeJSON(text string) []byte {
	return build(fixture{describe: &text}).Encode()
}

// Padded returns Tiny(s) grown with a custom section to size bytes, for
// size-cap tests. The result is longer only if Tiny(s) with an empty
// padding section already is, or, by one byte, for the rare sizes that a
// minimal LEB128 section length cannot hit exactly.
func Padded(s Spec, size int) []byte {
	m := build(fixture{Spec: s})
	const name = "padding"
	sectionLen := func(payload int) int {
		n := 1 + len(name) + payload // name length, name and payload
		return 1 + len(AppendULEB128(nil, uint64(n))) + n
	}
	want := size - len(m.Encode())
	payload := max(0, want-sectionLen(0)-4) // a LEB128 length adds at most 4 bytes
	for sectionLen(payload) < want {
		payload++
	}
	m.Customs = append(m.Customs, Custom{Name: name, Payload: make([]byte, payload)})
	return m.Encode()
}

// fixture is a Spec plus the deviations the broken modules need.
type fixture struct {
	Spec
	describe           *string // replaces the generated describe JSON
	wrongCallSignature bool
	forbiddenImport    bool
}

const (
	pageSize = 1 << 16
	dataBase = 1024 // first data segment; offsets below stay unused
)

// build lays out the fixture's replies as data segments from dataBase on,
// followed by the scratch area mcpr_alloc hands out, and defines one
// function per export.
func build(f fixture) *Module {
	s := f.Spec
	if s.Version == "" {
		s.Version = "1.0.0"
	}
	if s.Tools == nil {
		s.Tools = []string{"tiny"}
	}
	if s.Reply == "" {
		s.Reply = s.Version
	}
	if s.Misbehave != None {
		s.Misbehave.code() // panics if s.Misbehave is unknown
	}

	m := &Module{}
	if f.forbiddenImport {
		m.Imports = append(m.Imports, Import{
			Module: "env", Name: "host_exec",
			Type: m.TypeIndex(FuncType{Params: []ValType{I32}, Results: []ValType{I32}}),
		})
	}

	// Data segments, each returned by a function as a constant packed i64.
	offset := uint32(dataBase)
	place := func(b []byte) Code {
		m.Data = append(m.Data, Data{Offset: offset, Bytes: b})
		packed := uint64(offset)<<32 | uint64(len(b))
		offset += uint32(len(b))
		return Code{}.I64Const(int64(packed))
	}
	var describe Code
	if f.describe != nil {
		describe = place([]byte(*f.describe))
	} else {
		describe = place(describeJSON(s))
	}
	reply := place(mustJSON(callResult{Content: []textContent{{Type: "text", Text: s.Reply}}}))
	var codeChange, stateSave Code
	switch s.CodeChange {
	case "":
	case "ok":
		codeChange = place(mustJSON(codeChangeResult{OK: true}))
	case "fail":
		codeChange = place(mustJSON(codeChangeResult{Error: CodeChangeFailure}))
	default:
		panic(fmt.Sprintf("wasmgen: CodeChange must be \"\", \"ok\" or \"fail\", not %q", s.CodeChange))
	}
	if s.StateSave != "" {
		stateSave = place([]byte(s.StateSave))
	}

	scratch := (offset + 15) &^ 15
	m.Memory = &Memory{Min: max(1, (scratch+pageSize-1)/pageSize)}
	m.Exports = append(m.Exports, Export{Name: ExportMemory, Kind: ExternMemory})

	var (
		none     = FuncType{}
		ptrLen   = FuncType{Params: []ValType{I32, I32}, Results: []ValType{I64}}
		packed   = FuncType{Results: []ValType{I64}}
		i32ToI32 = FuncType{Params: []ValType{I32}, Results: []ValType{I32}}
	)
	define := func(name string, t FuncType, locals []ValType, body Code) {
		switch {
		case s.Misbehave.site() != name:
		case name == ExportCall && s.MisbehavePrefix != 0:
			// if load8_u(ptr+9) == prefix { misbehave }; body
			guard := Code{}.Op(OpLocalGet, 0, OpI32Load8U, 0, 9).
				I32Const(int32(s.MisbehavePrefix)).Op(OpI32Eq, OpIf, BlockVoid)
			body = append(append(guard, s.Misbehave.code()...), append(Code{OpEnd}, body...)...)
		default:
			body = s.Misbehave.code()
		}
		m.Exports = append(m.Exports, Export{
			Name: name, Kind: ExternFunc, Index: uint32(len(m.Imports) + len(m.Funcs)),
		})
		m.Funcs = append(m.Funcs, Func{Type: m.TypeIndex(t), Locals: locals, Body: body})
	}

	define(ExportAlloc, i32ToI32, []ValType{I32}, allocBody(scratch))
	define(ExportDescribe, packed, nil, describe)
	switch {
	case f.wrongCallSignature:
		define(ExportCall, i32ToI32, nil, Code{}.I32Const(0))
	case s.SpinIterations > 0:
		define(ExportCall, ptrLen, []ValType{I32}, append(spin(2, s.SpinIterations), reply...))
	default:
		define(ExportCall, ptrLen, nil, reply)
	}
	if codeChange != nil {
		define(ExportCodeChange, ptrLen, nil, codeChange)
	}
	if stateSave != nil {
		define(ExportStateSave, packed, nil, stateSave)
	}
	if s.Initialize || s.Misbehave.site() == ExportInitialize {
		define(ExportInitialize, none, nil, nil)
	}
	return m
}

// site returns the export b acts in, "" for None.
func (b Misbehaviour) site() string {
	switch b {
	case TrapInInit, LoopInInit, MemoryBombInInit:
		return ExportInitialize
	case TrapInDescribe, LoopInDescribe:
		return ExportDescribe
	case TrapInCall, LoopInCall, MemoryBombInCall:
		return ExportCall
	}
	return ""
}

// code returns the body of a function misbehaving as b. It ends in
// unreachable, which type-checks whatever the function's results.
func (b Misbehaviour) code() Code {
	switch b {
	case TrapInInit, TrapInDescribe, TrapInCall:
		return Code{}.Op(OpUnreachable)
	case LoopInInit, LoopInDescribe, LoopInCall:
		return Code{}.Op(OpLoop, BlockVoid, OpBr, 0, OpEnd, OpUnreachable)
	case MemoryBombInInit, MemoryBombInCall:
		return Code{}.
			Op(OpLoop, BlockVoid).
			I32Const(16).Op(OpMemoryGrow, 0).
			I32Const(-1).Op(OpI32Ne, OpBrIf, 0). // again while grow succeeds
			Op(OpEnd, OpUnreachable)
	}
	panic(fmt.Sprintf("wasmgen: unknown misbehaviour %d", b))
}

// spin counts local from n down to zero.
func spin(local byte, n uint32) Code {
	return Code{}.
		I32Const(int32(n)).Op(OpLocalSet, local).
		Op(OpLoop, BlockVoid).
		Op(OpLocalGet, local).I32Const(1).Op(OpI32Sub, OpLocalTee, local).
		Op(OpBrIf, 0). // again while not zero
		Op(OpEnd)
}

// allocBody implements mcpr_alloc(len) -> ptr with local 1 as scratch: it
// always returns the scratch offset, first growing memory to hold len
// bytes there, so repeated calls reuse the same area. It traps if memory
// cannot grow.
func allocBody(scratch uint32) Code {
	return Code{}.
		// extra pages = (scratch + uint64(len) + pageSize-1) / pageSize - memory.size
		Op(OpLocalGet, 0, OpI64ExtendI32U).
		I64Const(int64(scratch)+pageSize-1).Op(OpI64Add).
		I64Const(16).Op(OpI64ShrU, OpI32WrapI64).
		Op(OpMemorySize, 0, OpI32Sub, OpLocalTee, 1).
		I32Const(0).Op(OpI32GtS).
		Op(OpIf, BlockVoid).
		Op(OpLocalGet, 1, OpMemoryGrow, 0).
		I32Const(-1).Op(OpI32Eq).
		Op(OpIf, BlockVoid, OpUnreachable, OpEnd).
		Op(OpEnd).
		I32Const(int32(scratch))
}

type tool struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	InputSchema json.RawMessage `json:"inputSchema"`
}

type description struct {
	Version   string `json:"version"`
	Stateless bool   `json:"stateless,omitempty"`
	Tools     []tool `json:"tools"`
}

type textContent struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type callResult struct {
	Content []textContent `json:"content"`
}

type codeChangeResult struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

func describeJSON(s Spec) []byte {
	d := description{Version: s.Version, Stateless: s.Stateless, Tools: []tool{}}
	for _, name := range s.Tools {
		if name == "" {
			panic("wasmgen: empty tool name")
		}
		d.Tools = append(d.Tools, tool{
			Name: name, Description: "fixture tool", InputSchema: json.RawMessage(`{"type":"object"}`),
		})
	}
	return mustJSON(d)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain structs of strings and bools are marshalled
	}
	return b
}
