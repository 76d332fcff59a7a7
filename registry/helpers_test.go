package registry_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/registry"
)

// tool returns an MCP Tool definition with a fixed two-number schema.
func tool(name, description string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"name":%q,"description":%q,`+
		`"inputSchema":{"type":"object","properties":{"a":{"type":"number"},"b":{"type":"number"}},"required":["a","b"]}}`,
		name, description))
}

// digestOf stands in for the loader's digest of a module's bytes.
func digestOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// set calls SetModule and requires it to succeed.
func set(tb testing.TB, r *registry.Registry, module, version string, defs ...json.RawMessage) registry.Change {
	tb.Helper()
	c, err := r.SetModule(module, version, digestOf(module+"@"+version), defs)
	require.NoError(tb, err)
	return c
}

// names returns the tool names of entries, in order.
func names(entries []registry.Entry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.Tool
	}
	return out
}

// requireNoUpdate requires that s has nothing pending.
func requireNoUpdate(tb testing.TB, s *registry.Subscription) {
	tb.Helper()
	u, ok := s.Pending()
	require.False(tb, ok, "unexpected update %+v", u)
	require.Empty(tb, s.C(), "unexpected wake-up")
}

// toolName returns a definition's "name".
func toolName(tb testing.TB, def json.RawMessage) string {
	tb.Helper()
	var v struct {
		Name string `json:"name"`
	}
	require.NoError(tb, json.Unmarshal(def, &v))
	return v.Name
}
