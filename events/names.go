package events

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mcpreload/mcpreload/internal/names"
)

// Limits on the names that travel in payloads and subjects.
const (
	// MaxModuleNameLen is the longest module name: [A-Za-z0-9_-]{1,64}.
	MaxModuleNameLen = names.MaxModule
	// MaxNodeIDLen is the longest node id: [A-Za-z0-9_-]{1,128}.
	MaxNodeIDLen = names.MaxNode
	// MaxIDLen is the longest event (and saga) id ValidateID accepts.
	MaxIDLen = 128
)

// digestPrefix starts every module digest.
const digestPrefix = names.DigestPrefix

// ValidateID reports whether id can be an event id that doubles as a saga id
// and hence as one NATS subject token: 1..MaxIDLen bytes of UTF-8 without
// '.', '*', '>', whitespace or control characters. uuid.NewString() ids
// always pass. The error matches ErrMalformed.
func ValidateID(id string) error {
	if err := checkID(id); err != nil {
		return errorf(ErrMalformed, "id %q: %w", id, err)
	}
	return nil
}

// checkID is ValidateID without the package prefix and error kind.
func checkID(id string) error {
	if id == "" {
		return errors.New("must not be empty")
	}
	if len(id) > MaxIDLen {
		return fmt.Errorf("longer than %d bytes", MaxIDLen)
	}
	if !utf8.ValidString(id) {
		return errors.New("not valid UTF-8")
	}
	if i := strings.IndexAny(id, ".*>"); i >= 0 {
		return fmt.Errorf("must not contain %q (it would break the NATS subject)", id[i])
	}
	for _, r := range id {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("must not contain whitespace or control character %U", r)
		}
	}
	return nil
}

// checkToken validates a module name or node id: 1..max bytes of
// [A-Za-z0-9_-].
func checkToken(s string, maxLen int) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	if len(s) > maxLen {
		return fmt.Errorf("longer than %d bytes", maxLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			return fmt.Errorf("byte %q not allowed, want [A-Za-z0-9_-]", c)
		}
	}
	return nil
}

// checkModule validates a module name.
func checkModule(name string) error {
	if err := checkToken(name, MaxModuleNameLen); err != nil {
		return fmt.Errorf("module %q: %w", name, err)
	}
	return nil
}

// checkNode validates a node id.
func checkNode(id string) error {
	if err := checkToken(id, MaxNodeIDLen); err != nil {
		return fmt.Errorf("node %q: %w", id, err)
	}
	return nil
}

// checkNodes validates a list of node ids and rejects duplicates. field names
// the list in messages.
func checkNodes(field string, nodes []string) error {
	seen := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		if err := checkNode(n); err != nil {
			return fmt.Errorf("%s: %w", field, err)
		}
		if seen[n] {
			return fmt.Errorf("%s: node %q listed twice", field, n)
		}
		seen[n] = true
	}
	return nil
}

// validDigest reports whether s is a module digest (internal/names, shared
// with the loader).
func validDigest(s string) bool { return names.Digest(s) }

// checkDigest validates a required digest; field names it in messages.
func checkDigest(field, s string) error {
	if s == "" {
		return fmt.Errorf("%s: missing", field)
	}
	if !validDigest(s) {
		return fmt.Errorf("%s %q: want %s<64 lowercase hex digits>", field, s, digestPrefix)
	}
	return nil
}

// checkOptionalDigest validates a digest that may be empty.
func checkOptionalDigest(field, s string) error {
	if s == "" {
		return nil
	}
	return checkDigest(field, s)
}
