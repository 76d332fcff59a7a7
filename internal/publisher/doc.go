// Package publisher is mcpreload-publisher, the CLI that CI and operators
// use to ship tool modules to a fleet, and the Go API under it that other
// code (the demo, tests) can call directly.
//
// # API
//
// Connect and Open give a *bus.Bus; Reload checks a module locally
// (CheckModule), uploads it, publishes a reload request and follows the saga
// (Follow) to its outcome, reporting each step to a callback as an Event;
// Rollback reloads an earlier digest (RollbackTarget finds the previous
// one); Status compares desired and served digests per node; History lists
// past outcomes; Nodes lists live nodes. Errors match the sentinels in
// errors.go, and ExitCode maps them to the CLI's exit codes. The package
// does not log.
//
// # CLI
//
// Main parses flags (every flag also MCPRELOAD_<FLAG>; global flags before
// or after the command), runs one command and returns the exit code:
// 0 committed / consistent, 1 not committed / drift, 2 usage or bad input,
// 3 no outcome in time, 4 NATS or JetStream error, 130 interrupted.
//
// # Decisions
//
//   - The module is checked locally before anything is uploaded, by a
//     throwaway loader doing what a node's prepare does; a module every node
//     would refuse never reaches the object store, and CI gets exit 2 with the
//     loader's stage and code. Tool-name collisions depend on what a node
//     serves and are left to the nodes. The compilation cache is in memory
//     unless --cache-dir names one.
//   - Open binds to the existing streams and buckets instead of calling
//     bus.Open, which re-declares them: with bus.Open's defaults a publisher
//     would reset the replicas a cluster's nodes chose (--replicas 3 -> 1) and
//     the nodes bucket's TTL (--presence-ttl). It creates them, with one
//     replica, only on a NATS deployment that has none yet.
//   - Follow reads the saga's subjects from the start of the stream
//     (DeliverAll) after publishing, so no event can be missed however fast
//     the saga runs. The wait is 3 x timeout + 10s: prepare, commit and
//     rollback each may take the full per-phase timeout.
//   - History reads outcome subjects with an ordered consumer and no-wait
//     fetches, stopping when nothing is pending: it never blocks on an empty
//     stream.
//   - Output is for people and CI, not logs: live lines and tables on
//     stdout in text mode; with --output json stdout holds exactly one JSON
//     document (errors included, as {"error","exit_code",...}) and live
//     lines go to stderr. Errors always go to stderr too.
//   - The publisher connects once and fails at once (exit 4) when NATS does
//     not answer; a node, by contrast, keeps retrying in the background.
package publisher
