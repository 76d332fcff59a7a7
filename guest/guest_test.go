package guest

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// testModule returns a module whose diagnostics go to the test log.
func testModule(t *testing.T) *module {
	t.Helper()
	m := newModule()
	m.logf = t.Logf
	return m
}

func echoTool(name string) Tool {
	return Tool{
		Name:        name,
		Description: "Echo the arguments.",
		Handler: func(args json.RawMessage) (Result, error) {
			return JSON(string(args), args), nil
		},
	}
}

// callJSON runs a tool call and decodes the CallToolResult.
func callJSON(t *testing.T, m *module, input string) map[string]any {
	t.Helper()
	var res map[string]any
	require.NoError(t, json.Unmarshal(m.call([]byte(input)), &res))
	return res
}

// requireError checks that res is an isError result whose text contains
// want.
func requireError(t *testing.T, res map[string]any, want string) {
	t.Helper()
	require.Equal(t, true, res["isError"], "result: %v", res)
	content := res["content"].([]any)
	require.Len(t, content, 1)
	block := content[0].(map[string]any)
	require.Equal(t, "text", block["type"])
	require.Contains(t, block["text"], want)
}

func TestDescribe(t *testing.T) {
	m := testModule(t)
	m.setVersion("1.2.3")
	m.register(echoTool("b_echo"))
	m.register(Tool{
		Name:         "a_full",
		Title:        "Full",
		Description:  "Every field set.",
		InputSchema:  json.RawMessage(`{"type": "object", "properties": {"x": {"type": "integer"}}}`),
		OutputSchema: json.RawMessage(`{"type":"object"}`),
		Annotations:  json.RawMessage(`{"readOnlyHint":true}`),
		Handler:      func(json.RawMessage) (Result, error) { return Text("ok"), nil },
	})

	require.JSONEq(t, `{
		"version": "1.2.3",
		"tools": [
			{"name": "b_echo", "description": "Echo the arguments.", "inputSchema": {"type": "object"}},
			{
				"name": "a_full",
				"title": "Full",
				"description": "Every field set.",
				"inputSchema": {"type": "object", "properties": {"x": {"type": "integer"}}},
				"outputSchema": {"type": "object"},
				"annotations": {"readOnlyHint": true}
			}
		]
	}`, string(m.describe()))

	m.stateless = true
	var msg map[string]any
	require.NoError(t, json.Unmarshal(m.describe(), &msg))
	require.Equal(t, true, msg["stateless"])
}

func TestDescribeNoTools(t *testing.T) {
	m := testModule(t)
	m.setVersion("1.0.0")
	require.JSONEq(t, `{"version":"1.0.0","tools":[]}`, string(m.describe()))
}

func TestDescribeWithoutVersionPanics(t *testing.T) {
	m := testModule(t)
	require.PanicsWithValue(t, "guest: no version set; call guest.SetVersion in an init function", func() { m.describe() })
	require.Panics(t, func() { m.setVersion("") })
}

func TestRegisterRejectsInvalidTools(t *testing.T) {
	handler := func(json.RawMessage) (Result, error) { return Text(""), nil }
	tests := []struct {
		name string
		tool Tool
		want string
	}{
		{"empty name", Tool{Handler: handler}, "empty tool name"},
		{"bad character", Tool{Name: "a b", Handler: handler}, "contains ' '"},
		{"too long", Tool{Name: strings.Repeat("x", 129), Handler: handler}, "longer than 128"},
		{"duplicate", Tool{Name: "dup", Handler: handler}, `"dup" registered twice`},
		{"no handler", Tool{Name: "nohandler"}, "has no Handler"},
		{"schema not JSON", Tool{Name: "s1", InputSchema: json.RawMessage(`{`), Handler: handler}, "InputSchema: not a JSON object"},
		{"schema not object", Tool{Name: "s2", InputSchema: json.RawMessage(`[]`), Handler: handler}, "InputSchema: not a JSON object"},
		{"schema wrong type", Tool{Name: "s3", InputSchema: json.RawMessage(`{"type":"string"}`), Handler: handler}, `InputSchema: "type" must be "object"`},
		{"schema without type", Tool{Name: "s4", InputSchema: json.RawMessage(`{"properties":{}}`), Handler: handler}, `InputSchema: "type" must be "object"`},
		{"bad output schema", Tool{Name: "s5", OutputSchema: json.RawMessage(`{"type":"array"}`), Handler: handler}, `OutputSchema: "type" must be "object"`},
		{"bad annotations", Tool{Name: "s6", Annotations: json.RawMessage(`true`), Handler: handler}, "Annotations must be a JSON object"},
	}
	m := testModule(t)
	m.register(Tool{Name: "dup", Handler: handler})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				v := recover()
				require.NotNil(t, v, "register did not panic")
				require.Contains(t, v, tt.want)
			}()
			m.register(tt.tool)
		})
	}
	require.Len(t, m.tools, 1, "rejected tools must not be registered")
}

func TestRegisterAcceptsAllowedNameCharacters(t *testing.T) {
	m := testModule(t)
	m.register(echoTool("Az09_-."))
	m.register(echoTool(strings.Repeat("x", 128)))
	require.Len(t, m.tools, 2)
}

func TestRegisterCopiesJSON(t *testing.T) {
	m := testModule(t)
	m.setVersion("1.0.0")
	schema := []byte(`{"type":"object"}`)
	m.register(Tool{Name: "t", InputSchema: schema, Handler: echoTool("").Handler})
	copy(schema, `{"type":"string"}`)
	require.Contains(t, string(m.describe()), `"inputSchema":{"type":"object"}`)
}

func TestCall(t *testing.T) {
	m := testModule(t)
	m.register(echoTool("echo"))

	res := callJSON(t, m, `{"name":"echo","arguments":{"x":1}}`)
	require.Equal(t, map[string]any{
		"content":           []any{map[string]any{"type": "text", "text": `{"x":1}`}},
		"structuredContent": map[string]any{"x": 1.0},
	}, res)

	// Missing or null arguments reach the handler as an empty object.
	for _, input := range []string{`{"name":"echo"}`, `{"name":"echo","arguments":null}`} {
		res := callJSON(t, m, input)
		require.Equal(t, map[string]any{}, res["structuredContent"], "input %s", input)
	}
}

func TestCallResultEncoding(t *testing.T) {
	tests := []struct {
		name   string
		result Result
		want   string
	}{
		{"text", Text("hi"), `{"content":[{"type":"text","text":"hi"}]}`},
		{"json", JSON("3", map[string]int{"n": 3}), `{"content":[{"type":"text","text":"3"}],"structuredContent":{"n":3}}`},
		{"errorf", Errorf("bad %d", 7), `{"content":[{"type":"text","text":"bad 7"}],"isError":true}`},
		{"zero", Result{}, `{"content":[]}`},
		{"several blocks", Result{Content: []Content{{Text: "a"}, {Text: "b"}}}, `{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}`},
		{"struct", JSON("s", struct {
			A int `json:"a"`
		}{1}), `{"content":[{"type":"text","text":"s"}],"structuredContent":{"a":1}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := testModule(t)
			m.register(Tool{Name: "t", Handler: func(json.RawMessage) (Result, error) { return tt.result, nil }})
			require.JSONEq(t, tt.want, string(m.call([]byte(`{"name":"t","arguments":{}}`))))
		})
	}
}

func TestCallErrors(t *testing.T) {
	m := testModule(t)
	m.register(echoTool("echo"))
	m.register(Tool{Name: "fails", Handler: func(json.RawMessage) (Result, error) {
		return Text("ignored"), errors.New("it broke")
	}})
	m.register(Tool{Name: "panics", Handler: func(json.RawMessage) (Result, error) {
		panic("boom")
	}})
	m.register(Tool{Name: "nil_deref", Handler: func(json.RawMessage) (Result, error) {
		var p *Tool
		return Text(p.Name), nil
	}})
	m.register(Tool{Name: "array_structured", Handler: func(json.RawMessage) (Result, error) {
		return JSON("x", []int{1}), nil
	}})
	m.register(Tool{Name: "unencodable", Handler: func(json.RawMessage) (Result, error) {
		return JSON("x", map[string]any{"c": make(chan int)}), nil
	}})

	tests := []struct {
		input string
		want  string
	}{
		{`not json`, "invalid tool call: invalid character"},
		{``, "invalid tool call: unexpected end of JSON input"},
		{`{"arguments":{}}`, "invalid tool call: missing tool name"},
		{`{"name":"nope","arguments":{}}`, `unknown tool "nope"`},
		{`{"name":"echo","arguments":[1]}`, `invalid arguments for tool "echo": not a JSON object`},
		{`{"name":"echo","arguments":"x"}`, `invalid arguments for tool "echo": not a JSON object`},
		{`{"name":"fails","arguments":{}}`, "it broke"},
		{`{"name":"panics","arguments":{}}`, `tool "panics" panicked: boom`},
		{`{"name":"nil_deref","arguments":{}}`, `tool "nil_deref" panicked: runtime error: invalid memory address`},
		{`{"name":"array_structured","arguments":{}}`, `tool "array_structured" returned an invalid result: structured content is not a JSON object`},
		{`{"name":"unencodable","arguments":{}}`, `tool "unencodable" returned an invalid result: encoding structured content`},
	}
	for _, tt := range tests {
		t.Run(tt.input, func(t *testing.T) {
			requireError(t, callJSON(t, m, tt.input), tt.want)
		})
	}

	// The module keeps working after a panic.
	res := callJSON(t, m, `{"name":"echo","arguments":{}}`)
	require.Nil(t, res["isError"])
}

func TestSaveState(t *testing.T) {
	m := testModule(t)
	state, err := m.saveState()
	require.NoError(t, err)
	require.Empty(t, state, "no hook means empty state")

	m.stateSave = func() ([]byte, error) { return []byte("41"), nil }
	state, err = m.saveState()
	require.NoError(t, err)
	require.Equal(t, "41", string(state))

	m.stateSave = func() ([]byte, error) { return nil, errors.New("disk on fire") }
	_, err = m.saveState()
	require.EqualError(t, err, "disk on fire")

	m.stateSave = func() ([]byte, error) { panic("boom") }
	_, err = m.saveState()
	require.EqualError(t, err, "state save hook panicked: boom")
}

func codeChangeInput(from, direction string, state []byte) []byte {
	in, err := json.Marshal(map[string]string{
		"from":      from,
		"direction": direction,
		"state":     base64.StdEncoding.EncodeToString(state),
	})
	if err != nil {
		panic(err)
	}
	return in
}

func TestCodeChange(t *testing.T) {
	m := testModule(t)

	// Without a hook every valid code change succeeds.
	require.JSONEq(t, `{"ok":true}`, string(m.handleCodeChange(codeChangeInput("0.9.0", Up, []byte("x")))))

	type call struct {
		from, direction string
		state           []byte
	}
	var got []call
	m.codeChange = func(from, direction string, state []byte) error {
		got = append(got, call{from, direction, state})
		if string(state) == "bad" {
			return errors.New("cannot read state")
		}
		if string(state) == "panic" {
			panic("boom")
		}
		return nil
	}

	require.JSONEq(t, `{"ok":true}`, string(m.handleCodeChange(codeChangeInput("1.0.0", Up, []byte{0, 1, 0xff}))))
	require.JSONEq(t, `{"ok":true}`, string(m.handleCodeChange(codeChangeInput("3.0.0", Down, nil))))
	require.JSONEq(t, `{"ok":false,"error":"cannot read state"}`, string(m.handleCodeChange(codeChangeInput("1.0.0", Up, []byte("bad")))))
	require.JSONEq(t, `{"ok":false,"error":"code change hook panicked: boom"}`, string(m.handleCodeChange(codeChangeInput("1.0.0", Up, []byte("panic")))))
	require.Equal(t, []call{
		{"1.0.0", Up, []byte{0, 1, 0xff}},
		{"3.0.0", Down, []byte{}},
		{"1.0.0", Up, []byte("bad")},
		{"1.0.0", Up, []byte("panic")},
	}, got)

	// A missing state field is empty state.
	got = nil
	require.JSONEq(t, `{"ok":true}`, string(m.handleCodeChange([]byte(`{"from":"1.0.0","direction":"up"}`))))
	require.Equal(t, []call{{"1.0.0", Up, nil}}, got)
}

func TestCodeChangeInvalidInput(t *testing.T) {
	m := testModule(t)
	m.codeChange = func(string, string, []byte) error {
		t.Fatal("hook called on invalid input")
		return nil
	}
	tests := []struct {
		input string
		want  string
	}{
		{`nope`, "invalid code_change input: invalid character"},
		{`{"from":"1.0.0","direction":"sideways","state":""}`, `invalid code_change input: direction "sideways" is neither "up" nor "down"`},
		{`{"from":"1.0.0","state":""}`, `invalid code_change input: direction "" is neither "up" nor "down"`},
		{`{"from":"1.0.0","direction":"up","state":"!!!"}`, "invalid code_change input: illegal base64 data"},
	}
	for _, tt := range tests {
		t.Run(tt.input, func(t *testing.T) {
			var reply struct {
				OK    bool   `json:"ok"`
				Error string `json:"error"`
			}
			require.NoError(t, json.Unmarshal(m.handleCodeChange([]byte(tt.input)), &reply))
			require.False(t, reply.OK)
			require.Contains(t, reply.Error, tt.want)
		})
	}
}

func TestPack(t *testing.T) {
	require.Equal(t, uint64(0), pack(0, 0))
	require.Equal(t, uint64(0x0001_0000_0000_0020), pack(0x10000, 0x20))
	require.Equal(t, uint64(0xffff_ffff_ffff_ffff), pack(0xffff_ffff, 0xffff_ffff))
}

func TestInputAt(t *testing.T) {
	buf := []byte("0123456789")
	const base = 0x1000

	in, err := inputAt(buf, base, base, 10)
	require.NoError(t, err)
	require.Equal(t, "0123456789", string(in))

	in, err = inputAt(buf, base, base+2, 3)
	require.NoError(t, err)
	require.Equal(t, "234", string(in))

	in, err = inputAt(nil, 0, 0, 0)
	require.NoError(t, err)
	require.Empty(t, in)

	for _, r := range []struct{ ptr, size uint32 }{
		{base - 1, 1},
		{base, 11},
		{base + 9, 2},
		{base + 10, 1},
		{0xffff_ffff, 2},
	} {
		_, err := inputAt(buf, base, r.ptr, r.size)
		require.ErrorContains(t, err, "outside the buffer returned by mcpr_alloc", "ptr %#x size %d", r.ptr, r.size)
	}
	_, err = inputAt(nil, 0, 0, 1)
	require.Error(t, err)
}

func TestPackageLevelAPI(t *testing.T) {
	saved := std
	t.Cleanup(func() { std = saved })
	std = testModule(t)

	SetVersion("2.0.0")
	SetStateless(true)
	Register(echoTool("echo"))
	OnStateSave(func() ([]byte, error) { return []byte("s"), nil })
	OnCodeChange(func(string, string, []byte) error { return errors.New("no") })

	require.JSONEq(t, `{"version":"2.0.0","stateless":true,"tools":[{"name":"echo","description":"Echo the arguments.","inputSchema":{"type":"object"}}]}`, string(std.describe()))
	state, err := std.saveState()
	require.NoError(t, err)
	require.Equal(t, "s", string(state))
	require.JSONEq(t, `{"ok":false,"error":"no"}`, string(std.handleCodeChange(codeChangeInput("1.0.0", Up, nil))))
	require.Panics(t, func() { Register(echoTool("echo")) })
}
