package registry

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error the registry returns for a condition a caller
// may branch on wraps one of these; match them with errors.Is.
var (
	// ErrToolOwned: the tool name is registered by another module. The error
	// is a *ToolOwnedError naming the tool and both modules.
	ErrToolOwned = errors.New("tool owned by another module")
	// ErrUnknownTool: no module registers the tool.
	ErrUnknownTool = errors.New("unknown tool")
	// ErrUnknownModule: the module registers no tool.
	ErrUnknownModule = errors.New("unknown module")
	// ErrInvalidDefinition: a tool definition is not a JSON object, has no
	// "name" or an invalid one, or its name differs from the entry's.
	ErrInvalidDefinition = errors.New("invalid tool definition")
	// ErrInvalidModule: the module name is empty.
	ErrInvalidModule = errors.New("invalid module name")
	// ErrSubscriptionClosed: the subscription was closed.
	ErrSubscriptionClosed = errors.New("subscription closed")
)

// ToolOwnedError reports that Module tried to register Tool, which Owner
// already registers. It matches ErrToolOwned with errors.Is.
type ToolOwnedError struct {
	Tool   string // the contested tool name
	Owner  string // the module that registers the tool
	Module string // the module that tried to register it
}

// Error names the tool, both modules and what to do.
func (e *ToolOwnedError) Error() string {
	return fmt.Sprintf("registry: %v: tool %q belongs to module %q, module %q cannot register it "+
		"(rename the tool in %q, or remove it from %q first)",
		ErrToolOwned, e.Tool, e.Owner, e.Module, e.Module, e.Owner)
}

// Unwrap returns ErrToolOwned.
func (e *ToolOwnedError) Unwrap() error { return ErrToolOwned }
