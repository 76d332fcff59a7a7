package registry

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCanonicalJSON(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"sorted keys", `{"b":1,"a":2}`, `{"a":2,"b":1}`},
		{"whitespace", " {\n\t\"a\" : [ 1 , 2 ] }\n", `{"a":[1,2]}`},
		{"nested objects sorted", `{"z":{"y":1,"x":{"b":true,"a":null}}}`, `{"z":{"x":{"a":null,"b":true},"y":1}}`},
		{"numbers as written", `{"a":1.0,"b":1e2,"c":-0,"d":12345678901234567890123}`, `{"a":1.0,"b":1e2,"c":-0,"d":12345678901234567890123}`},
		{"escapes normalized", `{"s":"\u0041\u003c\/"}`, `{"s":"A</"}`},
		{"duplicate key last wins", `{"a":1,"a":2}`, `{"a":2}`},
		{"duplicate keys apart", `{"a":1,"b":2,"a":3,"c":{"x":1,"x":[]},"a":4}`, `{"a":4,"b":2,"c":{"x":[]}}`},
		{"empty containers", `{"o":{},"a":[],"n":[{}]}`, `{"a":[],"n":[{}],"o":{}}`},
		{"literals", `[true,false,null,"",0]`, `[true,false,null,"",0]`},
		{"keys sorted bytewise", `{"b":1,"B":2,"é":3,"_":4,"a":5}`, `{"B":2,"_":4,"a":5,"b":1,"é":3}`},
		{"invalid UTF-8 replaced", "\"\xff\"", "\"\ufffd\""},
		{"scalar", `"x"`, `"x"`},
		{"array order kept", `[3,1,2]`, `[3,1,2]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := canonicalJSON([]byte(tt.in))
			require.NoError(t, err)
			require.Equal(t, tt.want, string(got))
		})
	}
}

func TestDefinitionDigestIsSHA256OfCanonicalJSON(t *testing.T) {
	d, err := DefinitionDigest(json.RawMessage(`{ "name": "add", "_meta": {"x": 1}, "description": "Add" }`))
	require.NoError(t, err)
	sum := sha256.Sum256([]byte(`{"description":"Add","name":"add"}`))
	require.Equal(t, "sha256:"+hex.EncodeToString(sum[:]), d)
}

func TestDefinitionDigestEquality(t *testing.T) {
	const base = `{"name":"add","title":"Add","description":"Adds a and b","inputSchema":{"type":"object","properties":{"a":{"type":"number"},"b":{"type":"number"}},"required":["a","b"]},"annotations":{"readOnlyHint":true}}`
	tests := []struct {
		name  string
		other string
		equal bool
	}{
		{"identical", base, true},
		{"keys reordered at every level", `{"annotations":{"readOnlyHint":true},"inputSchema":{"required":["a","b"],"properties":{"b":{"type":"number"},"a":{"type":"number"}},"type":"object"},"description":"Adds a and b","title":"Add","name":"add"}`, true},
		{"indented", indent(base), true},
		{"_meta added", strings.Replace(base, `{"name"`, `{"_meta":{"build":"42"},"name"`, 1), true},
		{"string escaped differently", strings.Replace(base, `"Add"`, `"\u0041dd"`, 1), true},
		{"description changed", strings.Replace(base, "Adds a and b", "Adds two numbers", 1), false},
		{"title changed", strings.Replace(base, `"Add"`, `"Plus"`, 1), false},
		{"schema changed", strings.Replace(base, `"required":["a","b"]`, `"required":["a"]`, 1), false},
		{"array order matters", strings.Replace(base, `["a","b"]`, `["b","a"]`, 1), false},
		{"annotation changed", strings.Replace(base, `true}}`, `false}}`, 1), false},
		{"outputSchema added", strings.Replace(base, `{"name"`, `{"outputSchema":{"type":"object"},"name"`, 1), false},
		{"unknown member counts", strings.Replace(base, `{"name"`, `{"icons":[{"src":"a.png"}],"name"`, 1), false},
		{"null is not absent", strings.Replace(base, `{"name"`, `{"outputSchema":null,"name"`, 1), false},
		{"number spelling counts", strings.Replace(base, `"type":"object",`, `"type":"object","maxProperties":2.0,`, 1), false},
		{"nested _meta counts", strings.Replace(base, `"readOnlyHint"`, `"_meta":1,"readOnlyHint"`, 1), false},
	}
	want, err := DefinitionDigest(json.RawMessage(base))
	require.NoError(t, err)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DefinitionDigest(json.RawMessage(tt.other))
			require.NoError(t, err)
			if tt.equal {
				require.Equal(t, want, got)
			} else {
				require.NotEqual(t, want, got)
			}
		})
	}
}

func TestDefinitionDigestInvalid(t *testing.T) {
	tests := []struct {
		name, def, msg string
	}{
		{"empty", ``, "empty input"},
		{"whitespace", " \n\t", "empty input"},
		{"truncated", `{"name":"a",`, "not valid JSON"},
		{"too deep", `{"name":"a","x":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`, "nested deeper than 10000 levels"},
		{"not JSON", `{"name":`, "not valid JSON"},
		{"trailing data", `{"name":"a"} {}`, "trailing data"},
		{"array", `[{"name":"a"}]`, "got an array"},
		{"string", `"a"`, "got a string"},
		{"null", `null`, "got null"},
		{"no name", `{"description":"x"}`, `"name" is missing`},
		{"name not a string", `{"name":42}`, `"name" must be a string, got a number`},
		{"name empty", `{"name":""}`, "use 1 to 128 characters"},
		{"name with space", `{"name":"a b"}`, "use 1 to 128 characters"},
		{"name too long", `{"name":"` + strings.Repeat("a", 129) + `"}`, "use 1 to 128 characters"},
		{"name only in _meta", `{"_meta":{"name":"a"}}`, `"name" is missing`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := DefinitionDigest(json.RawMessage(tt.def))
			require.ErrorIs(t, err, ErrInvalidDefinition)
			require.ErrorContains(t, err, tt.msg)
			require.Empty(t, d)
		})
	}
}

// FuzzDefinitionDigest: DefinitionDigest and the canonicalizer never panic;
// the canonical form is valid JSON, a fixed point, and the same for any
// re-formatting or re-ordering of the input; so is the digest.
func FuzzDefinitionDigest(f *testing.F) {
	for _, s := range []string{
		`{"name":"add","description":"Add","inputSchema":{"type":"object","properties":{"a":{"type":"number"}}}}`,
		`{"b":1,"a":2}`,
		`{ "a":2, "b":1 }`,
		`{"name":"x","_meta":{"k":[1,2,{"z":null}]},"annotations":{"title":"<&>"}}`,
		`{"name":"n","n":1e400,"m":-0.0,"s":"\ud83d\ude00\u2028"}`,
		`{"name":"a","name":"b"}`,
		`[1,"two",{"three":3}]`,
		"{\"name\":\"a\",\"d\":\"\xff\xfe\"}",
		`{"name":"x"} trailing`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		digest, derr := DefinitionDigest(data)
		canon, cerr := canonicalJSON(data)
		if cerr != nil {
			require.Error(t, derr, "DefinitionDigest accepted input the canonicalizer rejects")
			require.False(t, json.Valid(data), "canonicalizer rejected valid JSON %q: %v", data, cerr)
			return
		}
		require.True(t, json.Valid(data), "canonicalizer accepted invalid JSON %q", data)
		require.True(t, json.Valid(canon), "canonical form %q is not valid JSON", canon)
		again, err := canonicalJSON(canon)
		require.NoError(t, err)
		require.Equal(t, string(canon), string(again), "canonical form is not a fixed point")

		v, err := decodeJSON(data)
		require.NoError(t, err)
		variants := [][]byte{scrambled(v), []byte(indent(string(data)))}
		for _, variant := range variants {
			got, err := canonicalJSON(variant)
			require.NoError(t, err, "variant %q", variant)
			require.Equal(t, string(canon), string(got), "variant %q of %q", variant, data)
			if derr == nil {
				vd, err := DefinitionDigest(variant)
				require.NoError(t, err)
				require.Equal(t, digest, vd, "digest of variant %q of %q", variant, data)
			}
		}
		if derr != nil {
			require.ErrorIs(t, derr, ErrInvalidDefinition)
			return
		}
		require.True(t, strings.HasPrefix(digest, DigestPrefix) && len(digest) == len(DigestPrefix)+64, digest)
	})
}

// indent re-formats JSON with whitespace everywhere it is allowed.
func indent(s string) string {
	var buf bytes.Buffer
	if err := json.Indent(&buf, []byte(s), " ", "\t "); err != nil {
		return s
	}
	return "\n " + buf.String() + " \r\n"
}

// scrambled encodes a decoded value with object members in reverse order,
// spaces around every token and HTML characters escaped: another spelling
// of the same JSON value.
func scrambled(v any) []byte {
	var buf bytes.Buffer
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case object:
			buf.WriteString("{ ")
			for i, m := range slices.Backward(v) {
				if i < len(v)-1 {
					buf.WriteString(" , ")
				}
				kb, _ := json.Marshal(m.key)
				buf.Write(kb)
				buf.WriteString(" : ")
				walk(m.val)
			}
			buf.WriteString(" }")
		case []any:
			buf.WriteString("[ ")
			for i, e := range v {
				if i > 0 {
					buf.WriteString(" ,\n")
				}
				walk(e)
			}
			buf.WriteString(" ]")
		case json.Number:
			buf.WriteString(v.String())
		default:
			b, err := json.Marshal(v)
			if err != nil {
				panic(fmt.Sprintf("scrambled: %v", err))
			}
			buf.Write(b)
		}
	}
	walk(v)
	return buf.Bytes()
}
