package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mcpreload/mcpreload/registry"
)

// A node records each committed module version with SetModule. Only changes
// to what a client sees count as definition changes; a burst of changes
// reaches a subscriber as one update.
func Example() {
	reg := registry.New()
	sub := reg.Subscribe()
	defer sub.Close()

	add := json.RawMessage(`{"name":"add","description":"Add a and b","inputSchema":{"type":"object"}}`)
	c, _ := reg.SetModule("calc", "1.0.0", "sha256:01", []json.RawMessage{add})
	fmt.Println("v1.0.0: added", c.Added, "definitions changed:", c.DefinitionsChanged)

	// A reload that changes only the code keeps the tool list.
	c, _ = reg.SetModule("calc", "1.0.1", "sha256:02", []json.RawMessage{add})
	fmt.Println("v1.0.1: version changed:", c.VersionChanged, "definitions changed:", c.DefinitionsChanged)

	// So does a reformatted definition.
	reformatted := json.RawMessage(`{ "inputSchema": {"type": "object"}, "description": "Add a and b", "name": "add" }`)
	c, _ = reg.SetModule("calc", "1.0.1", "sha256:02", []json.RawMessage{reformatted})
	fmt.Println("reformatted: definitions changed:", c.DefinitionsChanged)

	// A new description is a definition change.
	sum := json.RawMessage(`{"name":"add","description":"Sum of a and b","inputSchema":{"type":"object"}}`)
	c, _ = reg.SetModule("calc", "1.1.0", "sha256:03", []json.RawMessage{sum})
	fmt.Println("v1.1.0: updated", c.Updated, "definitions changed:", c.DefinitionsChanged)

	// The subscriber did not read: it finds one update for all four changes.
	u, _ := sub.Pending()
	fmt.Printf("update: seq %d, modules %v, definitions changed: %v\n", u.Seq, u.Modules, u.DefinitionsChanged)

	_, err := reg.SetModule("calc2", "1.0.0", "sha256:04", []json.RawMessage{sum})
	fmt.Println(errors.Is(err, registry.ErrToolOwned))
	// Output:
	// v1.0.0: added [add] definitions changed: true
	// v1.0.1: version changed: true definitions changed: false
	// reformatted: definitions changed: false
	// v1.1.0: updated [add] definitions changed: true
	// update: seq 4, modules [calc], definitions changed: true
	// true
}

// Run is how a node's MCP server follows the registry: it resyncs its tools
// and notifies clients once per coalesced update that changed definitions.
func ExampleSubscription_Run() {
	reg := registry.New()
	sub := reg.Subscribe()
	defer sub.Close()

	def := json.RawMessage(`{"name":"upper","inputSchema":{"type":"object"}}`)
	_, _ = reg.SetModule("text", "1", "sha256:01", []json.RawMessage{def})
	_, _ = reg.SetModule("text", "2", "sha256:02", []json.RawMessage{def})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := sub.Run(ctx, func(ctx context.Context, u registry.Update) error {
		if u.DefinitionsChanged {
			fmt.Printf("seq %d: send notifications/tools/list_changed for %v\n", u.Seq, u.Modules)
		}
		cancel() // a real server runs until shutdown
		return nil
	})
	fmt.Println(err)
	// Output:
	// seq 2: send notifications/tools/list_changed for [text]
	// context canceled
}

func ExampleDefinitionDigest() {
	a, _ := registry.DefinitionDigest(json.RawMessage(`{"name":"add","inputSchema":{"type":"object","required":["a"]}}`))
	b, _ := registry.DefinitionDigest(json.RawMessage(`{ "inputSchema": { "required": ["a"], "type": "object" }, "name": "add", "_meta": {"build": 7} }`))
	fmt.Println(a == b)
	_, err := registry.DefinitionDigest(json.RawMessage(`{"description":"no name"}`))
	fmt.Println(err)
	// Output:
	// true
	// registry: invalid tool definition: "name" is missing
}
