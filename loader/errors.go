package loader

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by the loader for a module-specific
// failure is an *Error whose Kind is one of these, so callers branch with
// errors.Is and report Stage, Code and the message.
var (
	// ErrInvalidModuleName: module names are 1 to 64 characters of
	// [A-Za-z0-9_-] (they become NATS subject tokens).
	ErrInvalidModuleName = errors.New("invalid module name")
	// ErrTooLarge: the module, or a call's input or output, exceeds its cap.
	ErrTooLarge = errors.New("too large")
	// ErrDigestMismatch: the bytes do not hash to the digest they were sent with.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrInvalidWasm: the bytes are not a valid WebAssembly module.
	ErrInvalidWasm = errors.New("invalid wasm")
	// ErrMissingExport: a required ABI export is absent.
	ErrMissingExport = errors.New("missing export")
	// ErrBadExport: an ABI function export has the wrong signature (an export
	// of the wrong kind is missing as far as the ABI goes: ErrMissingExport).
	ErrBadExport = errors.New("bad export signature")
	// ErrForbiddenImport: the module imports something other than WASI preview 1
	// functions (imported memories, tables and globals included).
	ErrForbiddenImport = errors.New("forbidden import")
	// ErrTrap: the guest trapped (unreachable, out-of-bounds access, exit, ...).
	ErrTrap = errors.New("trap")
	// ErrTimeout: the guest ran past its deadline and was stopped.
	ErrTimeout = errors.New("deadline exceeded")
	// ErrMemoryLimit: the guest needs more linear memory than the cap allows.
	ErrMemoryLimit = errors.New("memory limit")
	// ErrBadDescribe: mcpr_describe returned JSON that is not a valid description.
	ErrBadDescribe = errors.New("invalid describe output")
	// ErrBadOutput: a guest function returned an out-of-bounds buffer or malformed JSON.
	ErrBadOutput = errors.New("invalid guest output")
	// ErrToolCollision: a tool name is already owned by another module.
	ErrToolCollision = errors.New("tool name collision")
	// ErrCodeChange: the state migration (mcpr_code_change) failed.
	ErrCodeChange = errors.New("code_change failed")
	// ErrStateSave: mcpr_state_save failed on the version being replaced.
	ErrStateSave = errors.New("state_save failed")
	// ErrDrainTimeout: in-flight calls on the old version did not finish in time.
	ErrDrainTimeout = errors.New("drain timeout")
	// ErrUnknownModule: no version of the module is loaded.
	ErrUnknownModule = errors.New("unknown module")
	// ErrUnknownTool: no loaded module declares the tool.
	ErrUnknownTool = errors.New("unknown tool")
	// ErrNoOldVersion: Rollback needs an old version and there is none.
	ErrNoOldVersion = errors.New("no old version to roll back to")
	// ErrStagedUsed: the staged version was already committed or aborted.
	ErrStagedUsed = errors.New("staged version already committed or aborted")
	// ErrBadInput: the call's arguments are not a JSON object.
	ErrBadInput = errors.New("invalid call input")
	// ErrClosed: the loader is closed.
	ErrClosed = errors.New("loader closed")
)

// Stages name where in the life cycle an *Error happened.
const (
	StageValidate    = "validate"    // name, size and digest checks
	StageCompile     = "compile"     // wazero compilation
	StageABI         = "abi"         // exports and imports
	StageInstantiate = "instantiate" // probe instance and _initialize
	StageDescribe    = "describe"    // mcpr_describe and its JSON
	StageCollision   = "collision"   // tool names against other modules
	StageDrain       = "drain"       // waiting for in-flight calls
	StageMigrate     = "migrate"     // state_save and code_change
	StageCall        = "call"        // a tool call
)

// Error is the error type of the loader. Kind is one of the Err* sentinels
// and is what errors.Is matches; Err, when set, is the underlying cause.
type Error struct {
	Op     string // "prepare", "commit", "rollback", "call", ...
	Module string
	Stage  string // one of the Stage* constants
	Kind   error  // an Err* sentinel
	Detail string // human-readable reason, says what to do when it can
	Err    error  // underlying error, may be nil
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s %s: %v", e.Op, e.Module, e.Kind)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the sentinel and the cause, so errors.Is matches both.
func (e *Error) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Kind, e.Err}
	}
	return []error{e.Kind}
}

// Code returns a short stable identifier for the error's kind, suitable for
// NACK reasons, metrics labels and JSON output ("digest_mismatch",
// "missing_export", ...). It returns "internal" for errors not from this package.
func Code(err error) string {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return "internal"
}

var codes = []struct {
	err  error
	code string
}{
	{ErrInvalidModuleName, "invalid_module_name"},
	{ErrTooLarge, "too_large"},
	{ErrDigestMismatch, "digest_mismatch"},
	{ErrInvalidWasm, "invalid_wasm"},
	{ErrMissingExport, "missing_export"},
	{ErrBadExport, "bad_export"},
	{ErrForbiddenImport, "forbidden_import"},
	{ErrMemoryLimit, "memory_limit"},
	{ErrTimeout, "timeout"},
	{ErrTrap, "trap"},
	{ErrBadDescribe, "bad_describe"},
	{ErrBadOutput, "bad_output"},
	{ErrToolCollision, "tool_collision"},
	{ErrCodeChange, "code_change_failed"},
	{ErrStateSave, "state_save_failed"},
	{ErrDrainTimeout, "drain_timeout"},
	{ErrUnknownModule, "unknown_module"},
	{ErrUnknownTool, "unknown_tool"},
	{ErrNoOldVersion, "no_old_version"},
	{ErrStagedUsed, "staged_used"},
	{ErrBadInput, "bad_input"},
	{ErrClosed, "closed"},
}

// StageOf returns the stage of a loader *Error, or "" for other errors.
func StageOf(err error) string {
	var le *Error
	if errors.As(err, &le) {
		return le.Stage
	}
	return ""
}
