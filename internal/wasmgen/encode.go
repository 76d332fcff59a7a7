// Package wasmgen builds tiny WebAssembly binaries without external tools.
//
// It has two layers: a minimal, generic module encoder (Module and its
// parts, LEB128 helpers, opcode constants and Code) and, on top of it,
// fixtures implementing the tool module ABI v1 (Tiny and the deliberately
// broken modules) for tests and benchmarks of the wasm tool module loader.
// Fixtures are a few hundred bytes so they compile quickly even under the
// race detector.
package wasmgen

import "slices"

// ValType is a WebAssembly value type.
type ValType byte

// Value types used by the fixtures.
const (
	I32 ValType = 0x7f
	I64 ValType = 0x7e
)

// ExternKind is the kind of an exported definition.
type ExternKind byte

// Export kinds supported by the encoder.
const (
	ExternFunc   ExternKind = 0x00
	ExternMemory ExternKind = 0x02
)

// Opcodes used to write function bodies with Code. An opcode listed with an
// immediate must be followed by it: OpMemorySize and OpMemoryGrow by the
// memory index 0; OpBlock, OpLoop and OpIf by a block type such as
// BlockVoid; branches by a label depth; local and call instructions by an
// index (all LEB128; values below 128 are a single identical byte).
const (
	OpUnreachable   byte = 0x00
	OpNop           byte = 0x01
	OpBlock         byte = 0x02
	OpLoop          byte = 0x03
	OpIf            byte = 0x04
	OpElse          byte = 0x05
	OpEnd           byte = 0x0b
	OpBr            byte = 0x0c
	OpBrIf          byte = 0x0d
	OpReturn        byte = 0x0f
	OpCall          byte = 0x10
	OpDrop          byte = 0x1a
	OpLocalGet      byte = 0x20
	OpLocalSet      byte = 0x21
	OpLocalTee      byte = 0x22
	OpI32Load8U     byte = 0x2d // followed by a memarg: alignment, offset
	OpMemorySize    byte = 0x3f
	OpMemoryGrow    byte = 0x40
	OpI32Const      byte = 0x41
	OpI64Const      byte = 0x42
	OpI32Eqz        byte = 0x45
	OpI32Eq         byte = 0x46
	OpI32Ne         byte = 0x47
	OpI32LtU        byte = 0x49
	OpI32GtS        byte = 0x4a
	OpI32Add        byte = 0x6a
	OpI32Sub        byte = 0x6b
	OpI64Add        byte = 0x7c
	OpI64Or         byte = 0x84
	OpI64Shl        byte = 0x86
	OpI64ShrU       byte = 0x88
	OpI32WrapI64    byte = 0xa7
	OpI64ExtendI32U byte = 0xad
)

// BlockVoid is the block type of a block, loop or if without results.
const BlockVoid byte = 0x40

// Code is a function body's instruction sequence under construction. Its
// methods append and return the extended sequence, so they chain:
//
//	Code{}.I32Const(16).Op(OpMemoryGrow, 0).Op(OpDrop)
type Code []byte

// Op appends opcodes and single-byte immediates verbatim.
func (c Code) Op(b ...byte) Code { return append(c, b...) }

// I32Const appends i32.const v.
func (c Code) I32Const(v int32) Code { return AppendSLEB128(append(c, OpI32Const), int64(v)) }

// I64Const appends i64.const v.
func (c Code) I64Const(v int64) Code { return AppendSLEB128(append(c, OpI64Const), v) }

// AppendULEB128 appends v in unsigned LEB128 encoding.
func AppendULEB128(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// AppendSLEB128 appends v in signed LEB128 encoding.
func AppendSLEB128(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7 // arithmetic shift keeps the sign
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// FuncType is a function signature.
type FuncType struct {
	Params, Results []ValType
}

// Import is a function import; Type indexes Module.Types.
type Import struct {
	Module, Name string
	Type         uint32
}

// Func is a defined function. Type indexes Module.Types, Locals lists the
// locals declared after the parameters, and Body is the instruction
// sequence without the final end, which the encoder appends.
type Func struct {
	Type   uint32
	Locals []ValType
	Body   Code
}

// Memory declares the module's single linear memory, in 64 KiB pages.
type Memory struct {
	Min    uint32
	Max    uint32 // only encoded when HasMax is set
	HasMax bool
}

// Export exports the function or memory at Index (function indexes count
// imported functions first).
type Export struct {
	Name  string
	Kind  ExternKind
	Index uint32
}

// Data is an active data segment copied to memory 0 at Offset.
type Data struct {
	Offset uint32
	Bytes  []byte
}

// Custom is a custom section; runtimes ignore its payload.
type Custom struct {
	Name    string
	Payload []byte
}

// Module is a WebAssembly module to encode. Empty sections are omitted.
type Module struct {
	Types   []FuncType
	Imports []Import
	Funcs   []Func
	Memory  *Memory
	Exports []Export
	Data    []Data
	Customs []Custom // encoded after all other sections
}

// TypeIndex returns the index of t in m.Types, appending it if missing.
func (m *Module) TypeIndex(t FuncType) uint32 {
	for i, u := range m.Types {
		if slices.Equal(u.Params, t.Params) && slices.Equal(u.Results, t.Results) {
			return uint32(i)
		}
	}
	m.Types = append(m.Types, t)
	return uint32(len(m.Types) - 1)
}

// Section ids, in the order the binary format requires.
const (
	secCustom   = 0
	secType     = 1
	secImport   = 2
	secFunction = 3
	secMemory   = 5
	secExport   = 7
	secCode     = 10
	secData     = 11
)

// Encode returns the module in the WebAssembly binary format. It does not
// validate the module: indexes and code are written as given.
func (m *Module) Encode() []byte {
	out := []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

	if len(m.Types) > 0 {
		s := appendCount(nil, len(m.Types))
		for _, t := range m.Types {
			s = append(s, 0x60)
			s = appendValTypes(s, t.Params)
			s = appendValTypes(s, t.Results)
		}
		out = appendSection(out, secType, s)
	}
	if len(m.Imports) > 0 {
		s := appendCount(nil, len(m.Imports))
		for _, im := range m.Imports {
			s = appendName(s, im.Module)
			s = appendName(s, im.Name)
			s = append(s, byte(ExternFunc))
			s = AppendULEB128(s, uint64(im.Type))
		}
		out = appendSection(out, secImport, s)
	}
	if len(m.Funcs) > 0 {
		s := appendCount(nil, len(m.Funcs))
		for _, f := range m.Funcs {
			s = AppendULEB128(s, uint64(f.Type))
		}
		out = appendSection(out, secFunction, s)
	}
	if m.Memory != nil {
		s := appendCount(nil, 1)
		if m.Memory.HasMax {
			s = append(s, 0x01)
			s = AppendULEB128(s, uint64(m.Memory.Min))
			s = AppendULEB128(s, uint64(m.Memory.Max))
		} else {
			s = append(s, 0x00)
			s = AppendULEB128(s, uint64(m.Memory.Min))
		}
		out = appendSection(out, secMemory, s)
	}
	if len(m.Exports) > 0 {
		s := appendCount(nil, len(m.Exports))
		for _, e := range m.Exports {
			s = appendName(s, e.Name)
			s = append(s, byte(e.Kind))
			s = AppendULEB128(s, uint64(e.Index))
		}
		out = appendSection(out, secExport, s)
	}
	if len(m.Funcs) > 0 {
		s := appendCount(nil, len(m.Funcs))
		for _, f := range m.Funcs {
			s = appendBytes(s, appendFuncBody(nil, f))
		}
		out = appendSection(out, secCode, s)
	}
	if len(m.Data) > 0 {
		s := appendCount(nil, len(m.Data))
		for _, d := range m.Data {
			s = append(s, 0x00) // active segment for memory 0
			s = append(s, Code{}.I32Const(int32(d.Offset)).Op(OpEnd)...)
			s = appendBytes(s, d.Bytes)
		}
		out = appendSection(out, secData, s)
	}
	for _, c := range m.Customs {
		out = appendSection(out, secCustom, append(appendName(nil, c.Name), c.Payload...))
	}
	return out
}

// appendFuncBody encodes f's locals, as runs of equal types, and its code.
func appendFuncBody(b []byte, f Func) []byte {
	var runs []byte
	n := 0
	for i := 0; i < len(f.Locals); {
		j := i
		for j < len(f.Locals) && f.Locals[j] == f.Locals[i] {
			j++
		}
		runs = AppendULEB128(runs, uint64(j-i))
		runs = append(runs, byte(f.Locals[i]))
		n++
		i = j
	}
	b = appendCount(b, n)
	b = append(b, runs...)
	b = append(b, f.Body...)
	return append(b, OpEnd)
}

func appendSection(b []byte, id byte, contents []byte) []byte {
	return appendBytes(append(b, id), contents)
}

func appendCount(b []byte, n int) []byte { return AppendULEB128(b, uint64(n)) }

func appendBytes(b, v []byte) []byte { return append(appendCount(b, len(v)), v...) }

func appendName(b []byte, s string) []byte { return appendBytes(b, []byte(s)) }

func appendValTypes(b []byte, ts []ValType) []byte {
	b = appendCount(b, len(ts))
	for _, t := range ts {
		b = append(b, byte(t))
	}
	return b
}
