package guest

import (
	"encoding/json"
	"fmt"
)

// Directions of a code change, passed to the [OnCodeChange] hook.
const (
	// Up means the hook runs in an instance of the newer version that has served no call yet and
	// receives the state saved by the older version being replaced.
	Up = "up"
	// Down means the hook runs in a fresh instance of an older version
	// during a rollback and receives the state saved by the newer version.
	Down = "down"
)

// Tool describes one MCP tool and the function that executes it.
type Tool struct {
	// Name identifies the tool in tool calls. It is required, must be unique
	// within the module, and consists of 1 to 128 ASCII letters, digits,
	// '_', '-' or '.'.
	Name string
	// Title is an optional human-readable name.
	Title string
	// Description tells the model what the tool does.
	Description string
	// InputSchema is the JSON Schema of the call arguments. It must be a
	// JSON object with "type": "object"; if empty, {"type":"object"} is used.
	InputSchema json.RawMessage
	// OutputSchema is an optional JSON Schema of the result's
	// StructuredContent. If set, it must be a JSON object with
	// "type": "object".
	OutputSchema json.RawMessage
	// Annotations is an optional MCP ToolAnnotations JSON object, such as
	// {"readOnlyHint":true}.
	Annotations json.RawMessage
	// Handler executes a call. args is the call's "arguments" JSON object
	// ({} if the call has none). A non-nil error is reported to the model as
	// an isError result carrying the error text, and the returned Result is
	// ignored.
	Handler func(args json.RawMessage) (Result, error)
}

// Result is the outcome of a tool call. It is sent to the host as an MCP
// CallToolResult.
type Result struct {
	// Content holds the text blocks shown to the model.
	Content []Content
	// StructuredContent is optional machine-readable output. If non-nil it
	// must marshal (with encoding/json) to a JSON object; otherwise the call
	// is reported as an error.
	StructuredContent any
	// IsError marks the call as failed. The content then describes the
	// failure to the model.
	IsError bool
}

// Content is a text content block of a [Result].
type Content struct {
	// Text is the block's text.
	Text string
}

// Text returns a successful Result with a single text block.
func Text(s string) Result {
	return Result{Content: []Content{{Text: s}}}
}

// JSON returns a successful Result with a single text block and structured
// content. structured must marshal to a JSON object; text is what clients
// without structured content support see, typically a rendering of the same
// data.
func JSON(text string, structured any) Result {
	return Result{Content: []Content{{Text: text}}, StructuredContent: structured}
}

// Errorf returns a failed Result (IsError set) whose single text block is
// formatted according to format, as with fmt.Sprintf.
func Errorf(format string, args ...any) Result {
	return Result{Content: []Content{{Text: fmt.Sprintf(format, args...)}}, IsError: true}
}

// std is the module served by the ABI exports.
var std = newModule()

// SetVersion sets the module version reported to the host. It is required
// and must not be empty; operators see it beside the digest (the version's identity)
// and passes the old one to the new version's [OnCodeChange] hook.
func SetVersion(version string) {
	std.setVersion(version)
}

// SetStateless declares whether the module keeps no state between calls.
// The host may then create, discard and replace instances freely without
// saving or migrating state. Modules are stateful by default.
func SetStateless(stateless bool) {
	std.stateless = stateless
}

// Register adds a tool to the module. Call it from an init function.
// It panics if the tool is invalid (see [Tool]), has no Handler, or its
// name is already registered. Tools are described in registration order.
func Register(t Tool) {
	std.register(t)
}

// OnStateSave sets the hook that serializes the module's state. The host
// calls it before replacing the instance and passes the bytes to the
// replacement's [OnCodeChange] hook. The format is up to the module; it is
// opaque to the host.
//
// Without a hook the saved state is empty. If the hook returns an error or
// panics, mcpr_state_save traps (the error is written to stderr), so the
// host sees the save fail rather than carrying on with lost state. The Go
// runtime of a trapped instance is in an undefined state; the host must not
// call into that instance again.
func OnStateSave(hook func() ([]byte, error)) {
	std.stateSave = hook
}

// OnCodeChange sets the hook that adopts state saved by another version.
// from is that version, direction is [Up] or [Down], and state is what its
// state save hook returned (possibly empty). The hook runs on a fresh
// instance before it serves calls; returning an error (or panicking) fails
// the code change, and the error text is reported to the host, which then
// does not switch to the instance.
//
// Without a hook every code change succeeds and the state is ignored, so the
// new instance starts from its initial state.
func OnCodeChange(hook func(from, direction string, state []byte) error) {
	std.codeChange = hook
}
