// Package names holds the one definition of every identifier mcpreload
// checks: module names, node ids, tool names and module digests. The
// loader, the events codec, the saga runner, the registry, the node and the
// publisher all use it, so the rules cannot drift apart. It has no
// dependencies, so any package may import it.
package names

import "strings"

// Limits.
const (
	MaxModule = 64  // module names: [A-Za-z0-9_-]{1,64} (a NATS subject token)
	MaxNode   = 128 // node ids: [A-Za-z0-9_-]{1,128} (a NATS subject token)
	MaxTool   = 128 // MCP tool names: [A-Za-z0-9_.-]{1,128}
	// DigestPrefix starts every module digest: "sha256:" + 64 lowercase hex.
	DigestPrefix = "sha256:"
)

// Module reports whether s is a valid module name.
func Module(s string) bool { return token(s, MaxModule, false) }

// Node reports whether s is a valid node id.
func Node(s string) bool { return token(s, MaxNode, false) }

// Tool reports whether s is a valid MCP tool name.
func Tool(s string) bool { return token(s, MaxTool, true) }

// Digest reports whether s is a module digest: "sha256:" followed by 64
// lowercase hex digits.
func Digest(s string) bool {
	h, ok := strings.CutPrefix(s, DigestPrefix)
	if !ok || len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func token(s string, maxLen int, dot bool) bool {
	if s == "" || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || c == '_' || c == '-' || (dot && c == '.') {
			continue
		}
		return false
	}
	return true
}
