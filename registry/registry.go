package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
)

// Entry is one registered tool and the module version serving it.
type Entry struct {
	// Tool is the MCP tool name, the definition's "name".
	Tool string
	// Module is the module that registers the tool.
	Module string
	// Version is the module's own version string.
	Version string
	// Digest is the module version's identity, "sha256:<hex>" of the
	// module bytes (the loader's digest). The registry compares it, it
	// does not parse it.
	Digest string
	// DefinitionDigest is DefinitionDigest(Definition).
	DefinitionDigest string
	// Definition is the complete MCP Tool object as the module declared
	// it, verbatim ("_meta" included).
	Definition json.RawMessage
}

// tool is a stored tool definition.
type tool struct {
	defDigest string
	def       json.RawMessage
}

// moduleState is everything the registry knows about one module. A stored
// moduleState is never modified: operations build a new one and apply it.
type moduleState struct {
	version, digest string
	tools           map[string]tool
}

func (m *moduleState) clone() *moduleState {
	return &moduleState{version: m.version, digest: m.digest, tools: maps.Clone(m.tools)}
}

// Registry is the tool directory of a node: tool name -> module, version,
// digests and definition. The zero value is not usable; call New. All
// methods are safe for concurrent use. A module is known while it registers
// at least one tool. The registry starts no goroutines and needs no Close.
type Registry struct {
	// mu guards every field. Mutations hold it while they publish to
	// subscriptions, so every subscription sees changes in Seq order.
	mu      sync.RWMutex
	modules map[string]*moduleState
	owners  map[string]string // tool name -> module
	seq     uint64
	subs    map[*Subscription]struct{}
}

// New returns an empty registry at Seq 0.
func New() *Registry {
	return &Registry{
		modules: make(map[string]*moduleState),
		owners:  make(map[string]string),
		subs:    make(map[*Subscription]struct{}),
	}
}

// Get returns the tool's entry, or false if no module registers it. The
// entry's Definition is a copy.
func (r *Registry) Get(name string) (Entry, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	module, ok := r.owners[name]
	if !ok {
		return Entry{}, false
	}
	return entryOf(name, module, r.modules[module]), true
}

// List returns every entry sorted by tool name: a consistent snapshot of
// the registry at one Seq. Definitions are copies.
func (r *Registry) List() []Entry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Entry, 0, len(r.owners))
	for name, module := range r.owners {
		out = append(out, entryOf(name, module, r.modules[module]))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Tool < out[j].Tool })
	return out
}

func entryOf(name, module string, m *moduleState) Entry {
	t := m.tools[name]
	return Entry{
		Tool: name, Module: module, Version: m.version, Digest: m.digest,
		DefinitionDigest: t.defDigest, Definition: bytes.Clone(t.def),
	}
}

// Version returns the module's version string and digest, or false if the
// module registers no tool.
func (r *Registry) Version(module string) (version, digest string, ok bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	m, ok := r.modules[module]
	if !ok {
		return "", "", false
	}
	return m.version, m.digest, true
}

// Seq returns the sequence number of the last change, 0 if none. It grows
// by one with every operation that changes something.
func (r *Registry) Seq() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.seq
}

// Register adds or updates one tool of e.Module. The registry computes
// DefinitionDigest from e.Definition (the field's input value is ignored);
// e.Tool may be empty, and otherwise must equal the definition's name.
// Because a module has one version at a time, e.Version and e.Digest become
// the version of every tool of the module.
//
// Register fails, changing nothing, with ErrInvalidModule if e.Module is
// empty, ErrInvalidDefinition if the definition is invalid, and a
// *ToolOwnedError (ErrToolOwned) if another module registers the tool.
func (r *Registry) Register(e Entry) (Change, error) {
	if e.Module == "" {
		return Change{}, fmt.Errorf("registry: register: %w: the module name is empty", ErrInvalidModule)
	}
	t, name, err := newTool(e.Definition)
	if err != nil {
		return Change{}, fmt.Errorf("registry: register a tool of module %q: %w", e.Module, err)
	}
	if e.Tool != "" && e.Tool != name {
		return Change{}, fmt.Errorf("registry: register tool %q of module %q: %w: the definition is named %q",
			e.Tool, e.Module, ErrInvalidDefinition, name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if owner, ok := r.owners[name]; ok && owner != e.Module {
		return Change{}, &ToolOwnedError{Tool: name, Owner: owner, Module: e.Module}
	}
	next := &moduleState{tools: map[string]tool{}}
	if cur, ok := r.modules[e.Module]; ok {
		next = cur.clone()
	}
	next.version, next.digest = e.Version, e.Digest
	next.tools[name] = t
	return r.apply(e.Module, next), nil
}

// Unregister removes one tool. If it was its module's last tool, the module
// is forgotten too. It fails with ErrUnknownTool if no module registers the
// tool.
func (r *Registry) Unregister(name string) (Change, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	module, ok := r.owners[name]
	if !ok {
		return Change{}, fmt.Errorf("registry: unregister tool %q: %w", name, ErrUnknownTool)
	}
	next := r.modules[module].clone()
	delete(next.tools, name)
	return r.apply(module, next), nil
}

// UpdateVersion records a new version and digest for a module whose tool
// definitions did not change (a body-only reload). It fails with
// ErrUnknownModule if the module registers no tool.
func (r *Registry) UpdateVersion(module, version, digest string) (Change, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, ok := r.modules[module]
	if !ok {
		return Change{}, fmt.Errorf("registry: update version of module %q: %w", module, ErrUnknownModule)
	}
	next := cur.clone()
	next.version, next.digest = version, digest
	return r.apply(module, next), nil
}

// SetModule atomically replaces everything the registry knows about module:
// its version, its digest and its tools, which become exactly defs (each a
// complete MCP Tool object). Tools are added, removed and updated in one
// step, under one Seq. An empty defs removes the module. This is the call
// a node makes after a commit or rollback.
//
// SetModule fails, changing nothing, with ErrInvalidModule if module is
// empty, ErrInvalidDefinition if a definition is invalid or two share a
// name, and ErrToolOwned if another module registers any of the names: the
// error then joins one *ToolOwnedError per contested tool.
func (r *Registry) SetModule(module, version, digest string, defs []json.RawMessage) (Change, error) {
	if module == "" {
		return Change{}, fmt.Errorf("registry: set module: %w: the module name is empty", ErrInvalidModule)
	}
	next := &moduleState{version: version, digest: digest, tools: make(map[string]tool, len(defs))}
	for i, def := range defs {
		t, name, err := newTool(def)
		if err != nil {
			return Change{}, fmt.Errorf("registry: set module %q: tools[%d]: %w", module, i, err)
		}
		if _, dup := next.tools[name]; dup {
			return Change{}, fmt.Errorf("registry: set module %q: tools[%d]: %w: duplicate tool name %q",
				module, i, ErrInvalidDefinition, name)
		}
		next.tools[name] = t
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var conflicts []error
	for _, name := range slices.Sorted(maps.Keys(next.tools)) {
		if owner, ok := r.owners[name]; ok && owner != module {
			conflicts = append(conflicts, &ToolOwnedError{Tool: name, Owner: owner, Module: module})
		}
	}
	switch len(conflicts) {
	case 0:
	case 1:
		return Change{}, conflicts[0]
	default:
		return Change{}, errors.Join(conflicts...)
	}
	return r.apply(module, next), nil
}

// RemoveModule removes every tool of module and forgets its version. An
// unknown module is not an error: the Change is then empty (Seq 0).
func (r *Registry) RemoveModule(module string) Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.apply(module, nil)
}

// newTool validates a definition and copies it.
func newTool(def json.RawMessage) (tool, string, error) {
	name, digest, err := parseDefinition(def)
	if err != nil {
		return tool{}, "", err
	}
	return tool{defDigest: digest, def: bytes.Clone(def)}, name, nil
}

// apply makes next (nil: absent) the state of module, computes the Change,
// assigns it a Seq and publishes it, unless nothing changed. next must not
// alias stored state and its tools must not be owned by another module.
// r.mu must be held for writing.
func (r *Registry) apply(module string, next *moduleState) Change {
	if next != nil && len(next.tools) == 0 {
		next = nil
	}
	cur := r.modules[module]
	var curTools, nextTools map[string]tool
	if cur != nil {
		curTools = cur.tools
	}
	if next != nil {
		nextTools = next.tools
	}

	c := Change{Module: module}
	rewritten := false // a kept tool's bytes changed, its digest did not
	for name, t := range nextTools {
		old, ok := curTools[name]
		switch {
		case !ok:
			c.Added = append(c.Added, name)
		case old.defDigest != t.defDigest:
			c.Updated = append(c.Updated, name)
		case !bytes.Equal(old.def, t.def):
			rewritten = true
		}
	}
	for name := range curTools {
		if _, ok := nextTools[name]; !ok {
			c.Removed = append(c.Removed, name)
		}
	}
	slices.Sort(c.Added)
	slices.Sort(c.Removed)
	slices.Sort(c.Updated)
	c.DefinitionsChanged = len(c.Added)+len(c.Removed)+len(c.Updated) > 0
	switch {
	case cur == nil || next == nil:
		c.VersionChanged = cur != next
	default:
		c.VersionChanged = cur.version != next.version || cur.digest != next.digest
	}
	if !c.DefinitionsChanged && !c.VersionChanged && !rewritten {
		return c
	}

	for _, name := range c.Removed {
		delete(r.owners, name)
	}
	for name := range nextTools {
		r.owners[name] = module
	}
	if next == nil {
		delete(r.modules, module)
	} else {
		r.modules[module] = next
	}
	r.seq++
	c.Seq = r.seq
	for s := range r.subs {
		s.merge(c)
	}
	return c
}
