// Package loader loads MCP tool modules (WebAssembly, ABI v1) into a running
// process the way Erlang/OTP loads BEAM code: a new version is compiled and
// validated before it can serve (Prepare), swapped in atomically (Commit),
// kept beside the previous one for an instant Rollback, and its state is
// migrated between versions by the module's own mcpr_code_change.
//
// Versions are identified by content: the "sha256:<hex>" digest of the module
// bytes. A module has at most two loaded versions, current and old, plus any
// number of staged (prepared, not committed) candidates.
//
// # Life cycle
//
//	staged, err := l.Prepare(ctx, "counter", wasm, digest) // nothing serving changes
//	res, err := l.Commit(ctx, staged)                     // or l.Abort(staged)
//	rb, err := l.Rollback(ctx, "counter")                 // back to the old version
//
// A failed Prepare or Commit leaves the serving version, and its state,
// exactly as it was. Every error a caller may branch on wraps one of the Err*
// sentinels and is an *Error carrying the module, the stage and a reason.
//
// # Calls
//
// Call routes by tool name to the module that declares it. A call always runs
// on exactly one version: calls that started before a Commit finish on the
// old version, calls that start after it run on the new one. A stateful module
// runs as one instance with serialized calls (like a gen_server); a module
// that declares itself stateless gets a bounded pool of instances. Every call
// has a deadline and every instance a memory cap; an instance that trapped or
// overran its deadline is discarded and the next call gets a fresh one.
//
// The loader never logs. Guest stdout and stderr go to Config.Output.
//
// See docs/ABI.md for the module ABI and the exact rules for state migration.
package loader
