package loader

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/internal/names"
)

func TestParseCallResult(t *testing.T) {
	for _, tc := range []struct {
		in      string
		isError bool
		err     string
	}{
		{`{"content":[{"type":"text","text":"1"}]}`, false, ""},
		{`{"content":[],"isError":true}`, true, ""},
		{`{"content":[{"type":"text"}],"structuredContent":{"a":1}}`, false, ""},
		{`{}`, false, `no "content" array`},
		{`{"content":[{"text":"x"}]}`, false, `content[0] has no "type"`},
		{`{"content":"x"}`, false, "invalid JSON"},
		{`not json`, false, "invalid JSON"},
		{``, false, "invalid JSON"},
	} {
		isErr, err := parseCallResult([]byte(tc.in))
		if tc.err != "" {
			require.ErrorContains(t, err, tc.err, "input %q", tc.in)
			continue
		}
		require.NoError(t, err, "input %q", tc.in)
		require.Equal(t, tc.isError, isErr)
	}
}

func TestParseCodeChange(t *testing.T) {
	require.NoError(t, parseCodeChange([]byte(`{"ok":true}`)))
	require.EqualError(t, parseCodeChange([]byte(`{"ok":false,"error":"bad shape"}`)), "bad shape")
	require.ErrorContains(t, parseCodeChange([]byte(`{"ok":false}`)), "without a reason")
	require.ErrorContains(t, parseCodeChange([]byte(`{}`)), `want {"ok": true}`)
	require.ErrorContains(t, parseCodeChange([]byte(`[`)), `want {"ok": true}`)
}

func TestParseDescribe(t *testing.T) {
	d, err := parseDescribe([]byte(`{"version":"1.2","stateless":true,"tools":[
		{"name":"a","description":"A","inputSchema":{"type":"object"},"annotations":{"readOnlyHint":true}},
		{"name":"b.c-d_e","inputSchema":{"type":"object","properties":{}}}]}`))
	require.NoError(t, err)
	require.Equal(t, "1.2", d.Version)
	require.True(t, d.Stateless)
	require.Len(t, d.Tools, 2)
	require.Equal(t, "A", d.Tools[0].Description)
	require.Contains(t, string(d.Tools[0].Definition), "readOnlyHint", "the definition is kept verbatim")

	for in, want := range map[string]string{
		`{"tools":[{"name":"a","inputSchema":{"type":"object"}}]}`:                                                            `"version" is missing`,
		`{"version":"1","tools":[{"name":"a","inputSchema":{"type":"object"}},{"name":"a","inputSchema":{"type":"object"}}]}`: "duplicate tool name",
		`{"version":"1","tools":[{"name":"a"}]}`:                                                                              "inputSchema must be",
		`{"version":"1","tools":[1]}`:                                                                                         "not a tool object",
		`{"version":"1","tools":[{"name":"a","inputSchema":{"type":"object"}}]} {}`:                                           "trailing data",
	} {
		_, err := parseDescribe([]byte(in))
		require.ErrorContains(t, err, want, "input %s", in)
	}
}

// FuzzParseDescribe: describe output is untrusted guest data; the parser
// never panics and whatever it accepts is a usable description.
func FuzzParseDescribe(f *testing.F) {
	f.Add([]byte(`{"version":"1","tools":[{"name":"a","inputSchema":{"type":"object"}}]}`))
	f.Add([]byte(`{"version":"1","stateless":true,"tools":[{"name":"a","description":"d","inputSchema":{"type":"object","properties":{"x":{"type":"number"}}}}]}`))
	f.Add([]byte(`{"version":"","tools":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := parseDescribe(b)
		if err != nil {
			return
		}
		require.NotEmpty(t, d.Version)
		require.NotEmpty(t, d.Tools)
		seen := map[string]bool{}
		for _, tool := range d.Tools {
			require.True(t, names.Tool(tool.Name), tool.Name)
			require.False(t, seen[tool.Name])
			seen[tool.Name] = true
			require.True(t, json.Valid(tool.InputSchema))
			require.True(t, json.Valid(tool.Definition))
		}
	})
}

// FuzzParseCallResult: call output is untrusted guest data.
func FuzzParseCallResult(f *testing.F) {
	f.Add([]byte(`{"content":[{"type":"text","text":"1"}]}`))
	f.Add([]byte(`{"content":[],"isError":true}`))
	f.Add([]byte(`{"content":[{"type":""}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := parseCallResult(b); err == nil {
			require.True(t, json.Valid(b))
		}
	})
}
