// Package registry is a node's tool directory: which module registers each
// MCP tool, the module's version and digest, and the tool's definition. The
// node's MCP server subscribes to it and sends
// notifications/tools/list_changed when, and only when, the tool
// definitions a client sees have changed.
//
// The package does not depend on the loader (or on wazero): the node copies
// what the loader reports after a commit into SetModule.
//
// # Model
//
// A module registers one or more tools and has one version at a time (a
// version string and a digest, "sha256:<hex>" of the module bytes). A tool
// name belongs to at most one module; another module registering it gets
// ErrToolOwned. A module is known while it registers at least one tool.
//
//	c, err := reg.SetModule("calc", "1.1.0", digest, defs) // after a commit
//	c := reg.RemoveModule("calc")                          // after an unload
//
// Every operation that changes something gets the next sequence number (Seq)
// and returns a Change: the tools Added, Removed and Updated, whether the
// definitions changed and whether the version changed. An operation that
// changes nothing returns a Change with Seq 0 and publishes nothing.
//
// # What is a definition change
//
// A tool's definition is the MCP Tool object the module declared. Its
// identity is DefinitionDigest: the SHA-256 of its canonical JSON (sorted
// keys, no whitespace, numbers as written) without the top-level "_meta".
// Every other member counts, including ones this package does not know:
// missing a change a client would see is worse than one extra
// notification, and "_meta" is where a module puts data that must not
// trigger one.
//
// DefinitionsChanged is true iff a tool was added or removed or its
// DefinitionDigest changed. So:
//
//   - a reload that changes only the code (new version and digest, same
//     definitions) has VersionChanged only: the list is kept, nothing is sent;
//   - reordering keys, reformatting, or changing "_meta" is stored (a client
//     listing tools gets the new bytes) but is not a definition change;
//   - changing a description, title, schema, annotation or any other member,
//     or adding or removing a tool, is a definition change.
//
// # Subscriptions and coalescing
//
// Subscribe returns a Subscription. The registry never waits for a
// subscriber: each change is merged into the subscription's one pending
// Update, and a wake-up is sent on a channel with a buffer of one (C). A
// subscriber that reads late finds a single Update whose Seq is the newest
// change's, whose Modules are all modules changed since its last read, and
// whose DefinitionsChanged is the OR of the merged changes. Changes are never
// dropped, only merged, so the last change is always seen and a burst of
// reloads yields one notification. Subscriptions see changes in Seq order.
//
// Next blocks for the next Update; Run calls a function for each one until
// its context is done:
//
//	sub := reg.Subscribe()
//	defer sub.Close()
//	err := sub.Run(ctx, func(ctx context.Context, u registry.Update) error {
//		if u.DefinitionsChanged {
//			// resync the MCP server's tools from reg.List(); it notifies clients
//		}
//		return nil
//	})
//
// The package never logs and starts no goroutines; Run runs in the caller's.
//
// # Decisions
//
//   - Unknown top-level members of a definition count toward its digest,
//     only "_meta" does not (see above). The MCP SDK already serves "icons",
//     which a fixed list of members would have missed.
//   - Definitions are stored verbatim and compared canonically. A change
//     that is only in the bytes gets a Seq and is published (a mirror must
//     pick up the new bytes) with DefinitionsChanged false.
//   - A module has one version at a time: Register with a new version moves
//     every tool of the module to it.
//   - A module is known while it registers a tool: removing its last tool
//     forgets its version, and SetModule with no definitions removes it.
//   - Conflicts are checked before anything changes, so a failed operation
//     leaves the registry, its Seq and every subscription untouched.
//   - Publishing happens under the registry's lock and never blocks, which
//     gives every subscription the changes in Seq order.
//   - Close drops a subscription's pending update; Run returns nil when its
//     subscription is closed, ctx.Err() when its context is done.
package registry
