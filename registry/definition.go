package registry

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/mcpreload/mcpreload/internal/names"
)

// DigestPrefix starts every digest string the registry computes.
const DigestPrefix = "sha256:"

// metaKey is the top-level member of an MCP Tool that is excluded from the
// definition digest: it carries data for machines, not the definition a
// client lists.
const metaKey = "_meta"

// DefinitionDigest returns the identity of what an MCP client sees of a tool:
// "sha256:" followed by the 64 lowercase hex digits of the SHA-256 of the
// definition's canonical JSON, with the top-level "_meta" member removed.
//
// Every other top-level member counts, known or not (name, title,
// description, inputSchema, outputSchema, annotations, icons, and any member
// a later MCP revision adds), so that a change a client could see is never
// missed; a member that should not trigger notifications/tools/list_changed
// belongs in "_meta".
//
// The canonical JSON is the definition parsed with numbers kept as written
// (json.Decoder.UseNumber) and re-encoded with object keys sorted bytewise,
// no insignificant whitespace, and no HTML escaping. So key order,
// whitespace and string escapes do not change the digest, while a number
// written differently (1 and 1.0) or a member set to null instead of absent
// does. As in encoding/json, of duplicate keys the last one wins and
// invalid UTF-8 in strings reads as U+FFFD.
//
// DefinitionDigest fails with ErrInvalidDefinition if def is not one JSON
// object, or if its "name" is missing, not a string, or not 1-128
// characters of A-Z a-z 0-9 _ - . (the MCP tool-name rule).
func DefinitionDigest(def json.RawMessage) (string, error) {
	_, digest, err := parseDefinition(def)
	if err != nil {
		return "", fmt.Errorf("registry: %w", err)
	}
	return digest, nil
}

// maxDepth bounds the nesting of arrays and objects, as encoding/json does.
const maxDepth = 10000

// parseDefinition validates def and returns its tool name and digest.
// Errors wrap ErrInvalidDefinition.
func parseDefinition(def []byte) (name, digest string, err error) {
	v, err := decodeJSON(def)
	if err != nil {
		return "", "", fmt.Errorf("%w: not valid JSON: %w", ErrInvalidDefinition, err)
	}
	obj, ok := v.(object)
	if !ok {
		return "", "", fmt.Errorf("%w: want a JSON object (an MCP Tool), got %s", ErrInvalidDefinition, kindOf(v))
	}
	raw, ok := obj.get("name")
	if !ok {
		return "", "", fmt.Errorf(`%w: "name" is missing`, ErrInvalidDefinition)
	}
	name, ok = raw.(string)
	if !ok {
		return "", "", fmt.Errorf(`%w: "name" must be a string, got %s`, ErrInvalidDefinition, kindOf(raw))
	}
	if !names.Tool(name) {
		return "", "", fmt.Errorf(`%w: name %q: use 1 to 128 characters of A-Z a-z 0-9 and "_", "-", "."`, ErrInvalidDefinition, name)
	}
	sum := sha256.Sum256(encodeCanonical(obj.without(metaKey)))
	return name, DigestPrefix + hex.EncodeToString(sum[:]), nil
}

// canonicalJSON returns the canonical form of one JSON value (see
// DefinitionDigest).
func canonicalJSON(b []byte) ([]byte, error) {
	v, err := decodeJSON(b)
	if err != nil {
		return nil, err
	}
	return encodeCanonical(v), nil
}

// A decoded JSON value is an object, a []any, a string, a json.Number, a
// bool or nil. Objects are decoded in order, not into maps, so that
// canonicalization is a pure function of the input bytes (no map
// iteration order), which also keeps fuzzing coverage deterministic.
type object []member

type member struct {
	key string
	val any
}

// get returns the value of key.
func (o object) get(key string) (any, bool) {
	for _, m := range o {
		if m.key == key {
			return m.val, true
		}
	}
	return nil, false
}

// without returns o without key.
func (o object) without(key string) object {
	return slices.DeleteFunc(slices.Clone(o), func(m member) bool { return m.key == key })
}

// decodeJSON parses exactly one JSON value, keeping numbers as json.Number
// and objects with their members sorted by key, duplicates resolved to the
// last one (as encoding/json does).
func decodeJSON(b []byte) (any, error) {
	if len(bytes.Trim(b, " \t\r\n")) == 0 {
		return nil, errors.New("empty input")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := decodeValue(dec, 0)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("unexpected end of input")
		}
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after the JSON value")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder, depth int) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return tok, nil // string, json.Number, bool or nil
	}
	if depth++; depth > maxDepth {
		return nil, fmt.Errorf("nested deeper than %d levels", maxDepth)
	}
	switch d {
	case '{':
		var obj object
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return nil, err
			}
			key, ok := tok.(string)
			if !ok { // unreachable: the decoder only returns strings for keys
				return nil, fmt.Errorf("object key %v is not a string", tok)
			}
			val, err := decodeValue(dec, depth)
			if err != nil {
				return nil, err
			}
			obj = append(obj, member{key, val})
		}
		if _, err := dec.Token(); err != nil { // '}'
			return nil, err
		}
		slices.SortStableFunc(obj, func(a, b member) int { return strings.Compare(a.key, b.key) })
		// Of equal keys keep the last: the stable sort kept input order.
		out := obj[:0]
		for i, m := range obj {
			if i+1 < len(obj) && obj[i+1].key == m.key {
				continue
			}
			out = append(out, m)
		}
		return out, nil
	case '[':
		arr := []any{}
		for dec.More() {
			val, err := decodeValue(dec, depth)
			if err != nil {
				return nil, err
			}
			arr = append(arr, val)
		}
		if _, err := dec.Token(); err != nil { // ']'
			return nil, err
		}
		return arr, nil
	default: // unreachable: Token returns a closing delimiter only after More is false
		return nil, fmt.Errorf("unexpected %v", d)
	}
}

// encodeCanonical writes a decoded value compactly: object members in key
// order, numbers as written, strings as encoding/json writes them without
// HTML escaping.
func encodeCanonical(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	str := func(s string) {
		_ = enc.Encode(s)           // cannot fail for a string
		buf.Truncate(buf.Len() - 1) // Encode's newline
	}
	var write func(v any)
	write = func(v any) {
		switch v := v.(type) {
		case object:
			buf.WriteByte('{')
			for i, m := range v {
				if i > 0 {
					buf.WriteByte(',')
				}
				str(m.key)
				buf.WriteByte(':')
				write(m.val)
			}
			buf.WriteByte('}')
		case []any:
			buf.WriteByte('[')
			for i, e := range v {
				if i > 0 {
					buf.WriteByte(',')
				}
				write(e)
			}
			buf.WriteByte(']')
		case string:
			str(v)
		case json.Number:
			buf.WriteString(v.String())
		case bool:
			buf.WriteString(strconv.FormatBool(v))
		case nil:
			buf.WriteString("null")
		}
	}
	write(v)
	return buf.Bytes()
}

func kindOf(v any) string {
	switch v.(type) {
	case object:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	default:
		return fmt.Sprintf("%T", v)
	}
}
