package guest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
)

// maxToolNameLen is the longest tool name MCP clients are required to accept.
const maxToolNameLen = 128

// defaultInputSchema is the input schema of a tool that declares none.
var defaultInputSchema = json.RawMessage(`{"type":"object"}`)

// module holds everything a tool module registers and implements the ABI
// messages on top of it. The exports serve the package-level instance std;
// tests use their own instances.
type module struct {
	version    string
	stateless  bool
	tools      []Tool
	byName     map[string]int // index into tools
	stateSave  func() ([]byte, error)
	codeChange func(from, direction string, state []byte) error
	// logf reports diagnostics, such as the stack of a recovered panic,
	// that do not fit in an ABI message.
	logf func(format string, args ...any)
}

func newModule() *module {
	return &module{
		byName: make(map[string]int),
		logf: func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, format+"\n", args...)
		},
	}
}

func (m *module) setVersion(version string) {
	if version == "" {
		panic("guest: SetVersion: empty version")
	}
	m.version = version
}

func (m *module) register(t Tool) {
	if err := validateName(t.Name); err != nil {
		panic(fmt.Sprintf("guest: Register: %v", err))
	}
	if _, dup := m.byName[t.Name]; dup {
		panic(fmt.Sprintf("guest: Register: tool %q registered twice", t.Name))
	}
	if t.Handler == nil {
		panic(fmt.Sprintf("guest: Register: tool %q has no Handler", t.Name))
	}
	if len(t.InputSchema) == 0 {
		t.InputSchema = defaultInputSchema
	}
	if err := validateSchema(t.InputSchema); err != nil {
		panic(fmt.Sprintf("guest: Register: tool %q: InputSchema: %v", t.Name, err))
	}
	if len(t.OutputSchema) > 0 {
		if err := validateSchema(t.OutputSchema); err != nil {
			panic(fmt.Sprintf("guest: Register: tool %q: OutputSchema: %v", t.Name, err))
		}
	}
	if len(t.Annotations) > 0 && !isJSONObject(t.Annotations) {
		panic(fmt.Sprintf("guest: Register: tool %q: Annotations must be a JSON object", t.Name))
	}
	// Copy the caller's JSON so later changes to its backing arrays cannot
	// alter what was validated.
	t.InputSchema = bytes.Clone(t.InputSchema)
	t.OutputSchema = bytes.Clone(t.OutputSchema)
	t.Annotations = bytes.Clone(t.Annotations)
	m.byName[t.Name] = len(m.tools)
	m.tools = append(m.tools, t)
}

func validateName(name string) error {
	if name == "" {
		return errors.New("empty tool name")
	}
	if len(name) > maxToolNameLen {
		return fmt.Errorf("tool name %q is longer than %d bytes", name, maxToolNameLen)
	}
	for _, c := range []byte(name) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '_', c == '-', c == '.':
		default:
			return fmt.Errorf("tool name %q contains %q; use ASCII letters, digits, '_', '-' and '.'", name, c)
		}
	}
	return nil
}

// validateSchema checks that schema is a JSON object with "type": "object",
// as MCP requires of tool input and output schemas.
func validateSchema(schema json.RawMessage) error {
	var fields map[string]json.RawMessage
	if !isJSONObject(schema) || json.Unmarshal(schema, &fields) != nil {
		return errors.New("not a JSON object")
	}
	var typ string
	if err := json.Unmarshal(fields["type"], &typ); err != nil || typ != "object" {
		return errors.New(`"type" must be "object"`)
	}
	return nil
}

// isJSONObject reports whether data is a single valid JSON object.
func isJSONObject(data []byte) bool {
	data = bytes.TrimLeft(data, " \t\r\n")
	return len(data) > 0 && data[0] == '{' && json.Valid(data)
}

// describeMessage is the output of mcpr_describe.
type describeMessage struct {
	Version   string        `json:"version"`
	Stateless bool          `json:"stateless,omitempty"`
	Tools     []toolMessage `json:"tools"`
}

// toolMessage is an MCP Tool object.
type toolMessage struct {
	Name         string          `json:"name"`
	Title        string          `json:"title,omitempty"`
	Description  string          `json:"description"`
	InputSchema  json.RawMessage `json:"inputSchema"`
	OutputSchema json.RawMessage `json:"outputSchema,omitempty"`
	Annotations  json.RawMessage `json:"annotations,omitempty"`
}

// describe returns the mcpr_describe message. It panics if no version was
// set: the module is unusable and the host should see why.
func (m *module) describe() []byte {
	if m.version == "" {
		panic("guest: no version set; call guest.SetVersion in an init function")
	}
	msg := describeMessage{
		Version:   m.version,
		Stateless: m.stateless,
		Tools:     make([]toolMessage, 0, len(m.tools)),
	}
	for _, t := range m.tools {
		msg.Tools = append(msg.Tools, toolMessage{
			Name:         t.Name,
			Title:        t.Title,
			Description:  t.Description,
			InputSchema:  t.InputSchema,
			OutputSchema: t.OutputSchema,
			Annotations:  t.Annotations,
		})
	}
	out, err := json.Marshal(msg)
	if err != nil {
		// Unreachable: every field was validated by register.
		panic(fmt.Sprintf("guest: encoding describe message: %v", err))
	}
	return out
}

// callMessage is the input of mcpr_call.
type callMessage struct {
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
}

// call executes the mcpr_call message input and returns the encoded
// CallToolResult. Every failure, including a panicking handler, is reported
// as an isError result.
func (m *module) call(input []byte) []byte {
	var msg callMessage
	if err := json.Unmarshal(input, &msg); err != nil {
		return encodeResult(Errorf("invalid tool call: %v", err))
	}
	if msg.Name == "" {
		return encodeResult(Errorf("invalid tool call: missing tool name"))
	}
	i, ok := m.byName[msg.Name]
	if !ok {
		return encodeResult(Errorf("unknown tool %q", msg.Name))
	}
	args := msg.Arguments
	if len(args) == 0 || string(args) == "null" {
		args = json.RawMessage(`{}`)
	} else if !isJSONObject(args) {
		return encodeResult(Errorf("invalid arguments for tool %q: not a JSON object", msg.Name))
	}
	res := m.runHandler(m.tools[i], args)
	out, err := marshalResult(res)
	if err != nil {
		return encodeResult(Errorf("tool %q returned an invalid result: %v", msg.Name, err))
	}
	return out
}

// runHandler runs t's handler, turning an error or a panic into an isError
// result.
func (m *module) runHandler(t Tool, args json.RawMessage) (res Result) {
	defer func() {
		if v := recover(); v != nil {
			m.logf("guest: tool %q panicked: %v\n%s", t.Name, v, debug.Stack())
			res = Errorf("tool %q panicked: %v", t.Name, v)
		}
	}()
	res, err := t.Handler(args)
	if err != nil {
		return Errorf("%s", err.Error())
	}
	return res
}

// resultMessage is an MCP CallToolResult.
type resultMessage struct {
	Content           []contentMessage `json:"content"`
	StructuredContent json.RawMessage  `json:"structuredContent,omitempty"`
	IsError           bool             `json:"isError,omitempty"`
}

// contentMessage is an MCP text content block.
type contentMessage struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// marshalResult encodes r as a CallToolResult. It fails if the structured
// content does not encode to a JSON object.
func marshalResult(r Result) ([]byte, error) {
	msg := resultMessage{
		Content: make([]contentMessage, 0, len(r.Content)),
		IsError: r.IsError,
	}
	for _, c := range r.Content {
		msg.Content = append(msg.Content, contentMessage{Type: "text", Text: c.Text})
	}
	if r.StructuredContent != nil {
		structured, err := json.Marshal(r.StructuredContent)
		if err != nil {
			return nil, fmt.Errorf("encoding structured content: %w", err)
		}
		if !isJSONObject(structured) {
			return nil, errors.New("structured content is not a JSON object")
		}
		msg.StructuredContent = structured
	}
	return json.Marshal(msg)
}

// encodeResult encodes a Result built by this package, which always
// encodes.
func encodeResult(r Result) []byte {
	out, err := marshalResult(r)
	if err != nil {
		panic(fmt.Sprintf("guest: encoding result: %v", err))
	}
	return out
}

// saveState runs the state save hook; without one the state is empty. A
// panicking hook is reported as an error.
func (m *module) saveState() (state []byte, err error) {
	if m.stateSave == nil {
		return nil, nil
	}
	defer func() {
		if v := recover(); v != nil {
			m.logf("guest: state save hook panicked: %v\n%s", v, debug.Stack())
			err = fmt.Errorf("state save hook panicked: %v", v)
		}
	}()
	return m.stateSave()
}

// codeChangeMessage is the input of mcpr_code_change. encoding/json decodes
// the base64 state into State.
type codeChangeMessage struct {
	From      string `json:"from"`
	Direction string `json:"direction"`
	State     []byte `json:"state"`
}

// codeChangeReply is the output of mcpr_code_change.
type codeChangeReply struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// handleCodeChange executes the mcpr_code_change message input and returns
// the encoded reply.
func (m *module) handleCodeChange(input []byte) []byte {
	return encodeCodeChangeReply(m.runCodeChange(input))
}

// encodeCodeChangeReply encodes the reply to a code change that failed with
// err, or succeeded if err is nil.
func encodeCodeChangeReply(err error) []byte {
	reply := codeChangeReply{OK: true}
	if err != nil {
		reply = codeChangeReply{Error: err.Error()}
	}
	out, merr := json.Marshal(reply)
	if merr != nil {
		// Unreachable: the reply holds a bool and a string.
		panic(fmt.Sprintf("guest: encoding code_change reply: %v", merr))
	}
	return out
}

func (m *module) runCodeChange(input []byte) (err error) {
	var msg codeChangeMessage
	if err := json.Unmarshal(input, &msg); err != nil {
		return fmt.Errorf("invalid code_change input: %w", err)
	}
	if msg.Direction != Up && msg.Direction != Down {
		return fmt.Errorf("invalid code_change input: direction %q is neither %q nor %q", msg.Direction, Up, Down)
	}
	if m.codeChange == nil {
		return nil
	}
	defer func() {
		if v := recover(); v != nil {
			m.logf("guest: code change hook panicked: %v\n%s", v, debug.Stack())
			err = fmt.Errorf("code change hook panicked: %v", v)
		}
	}()
	return m.codeChange(msg.From, msg.Direction, msg.State)
}
