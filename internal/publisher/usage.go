package publisher

const rootUsage = `mcpreload-publisher: ship WebAssembly tool modules to an mcpreload fleet over NATS JetStream.

Usage:
  mcpreload-publisher [global flags] <command> [flags]
  mcpreload-publisher <command> --help

Commands:
  reload     check a module locally, upload it, reload it on the fleet and follow the saga
  rollback   reload the previous desired version of a module (or --to a stored digest)
  status     desired versus served version on every live node (check_consistency)
  history    past sagas from the saga stream, newest last
  nodes      live nodes, the modules and versions they serve, their heartbeats

Examples:
  mcpreload-publisher reload --module counter --wasm build/wasm/counter-v2.wasm
  mcpreload-publisher reload --module counter --wasm counter.wasm --strategy quorum --timeout 1m --output json
  mcpreload-publisher reload --module counter --wasm counter.wasm --strategy local --nodes n1,n2
  mcpreload-publisher status --module counter
  mcpreload-publisher rollback --module counter
  mcpreload-publisher history --limit 5
  MCPRELOAD_NATS_URL=nats://nats.example.com:4222 MCPRELOAD_CREDS=ci.creds mcpreload-publisher nodes

Global flags go before or after the command. Every flag can also be set in the
environment as MCPRELOAD_<FLAG> (e.g. MCPRELOAD_NATS_URL, MCPRELOAD_OUTPUT=json);
a flag on the command line wins.
` + exitCodes + `
Global flags:
`

const exitCodes = `
Exit codes:
  0    reload/rollback committed; status consistent; history and nodes done
  1    the saga did not commit (result aborted, rolled_back or failed); status found drift
  2    usage or bad input: bad flags, unreadable file, a module the local check refuses
       (nothing is uploaded), bad module name, strategy, nodes or digest, unknown module
  3    no outcome in time (3 x --timeout + 10s): the saga may still finish, see history
  4    NATS unreachable, or a JetStream error (JetStream disabled, permissions)
  130  interrupted (SIGINT/SIGTERM) while waiting; a published saga goes on
`

const reloadUsage = `mcpreload-publisher reload: ship a new version of a module to the fleet.

Usage:
  mcpreload-publisher reload --module NAME --wasm FILE [--strategy all|quorum|local] [--nodes a,b]
                             [--timeout 30s] [--no-wait] [global flags]

Steps: the module is checked locally the way a node prepares it (compile, ABI,
a probe instance, describe), so an invalid module is refused before anything
is uploaded; then it is uploaded to the object store under its sha256 digest
(unless already stored), a reload request is published, and the saga is
followed live: one line per progress event and per node ack, then the outcome
and a table of nodes. With --output json, exactly one JSON document is printed
at the end (progress lines go to stderr):
  {"saga","module","digest","strategy","result","reason","nodes":[...],
   "started_at","finished_at","uploaded","took_ms"}
and with --no-wait: {"saga","module","digest","published":true,"uploaded"}.

Strategies:
  all     commit only if every target node prepares, else abort everywhere
  quorum  commit when a majority prepares; the rest converge to the desired version
  local   reload only the --nodes, each on its own (pins the version on them)

Examples:
  mcpreload-publisher reload --module counter --wasm build/wasm/counter-v2.wasm
  mcpreload-publisher reload --module calc --wasm calc.wasm --strategy quorum --output json | jq .result
  mcpreload-publisher reload --module calc --wasm calc.wasm --strategy local --nodes n1
  mcpreload-publisher reload --module calc --wasm calc.wasm --no-wait
` + exitCodes + `
Flags:
`

const rollbackUsage = `mcpreload-publisher rollback: go back to an earlier version of a module.

Usage:
  mcpreload-publisher rollback --module NAME [--to sha256:HEX] [--strategy all] [--timeout 30s] [global flags]

Without --to, the target is the previous distinct digest in the module's
desired-state history (the bucket keeps 16 revisions). The version must still
be in the object store. The rollback is a normal reload saga of that digest,
followed and reported like reload, with the same exit codes.

Examples:
  mcpreload-publisher rollback --module counter
  mcpreload-publisher rollback --module counter --to sha256:4f2a...   # a digest from history
` + exitCodes + `
Flags:
`

const statusUsage = `mcpreload-publisher status: is every live node serving its desired version?

Usage:
  mcpreload-publisher status [--module NAME] [global flags]

For each module: the desired digest (a per-node pin from strategy local wins
over the fleet-wide one) and, per live node, the digest and version it serves:
  OK         serves its desired digest
  DRIFT      serves another digest
  MISSING    should serve the module and does not
  UNMANAGED  serves a module that has no desired digest (not an error)
Exit 1 if any node is DRIFT or MISSING. A saga in progress is named: drift is
expected until it ends.

Examples:
  mcpreload-publisher status
  mcpreload-publisher status --module counter --output json
` + exitCodes + `
Flags:
`

const historyUsage = `mcpreload-publisher history: past sagas, newest last.

Usage:
  mcpreload-publisher history [--module NAME] [--limit 20] [global flags]

Reads the outcomes kept in the saga stream (30 days) and prints, per saga: when
it finished, its id, module, digest, strategy, result and reason. With
--output json: an array of outcome events.

Examples:
  mcpreload-publisher history
  mcpreload-publisher history --module counter --limit 5 --output json
` + exitCodes + `
Flags:
`

const keygenUsage = `mcpreload-publisher keygen: create a key pair for signed reloads.

Usage:
  mcpreload-publisher keygen --out FILE

Writes a new ed25519 seed (nkeys format, starts with SU) to FILE, readable
by its owner only, and prints the public key (starts with U). Keep the seed
in the CI's secret store and pass it to reload and rollback with --sign-key;
give the public key to every node in the file named by --trusted-keys (one
key per line). A node with --trusted-keys refuses reloads that are unsigned
or signed by another key. See docs/RELIABILITY.md.

Examples:
  mcpreload-publisher keygen --out ci.seed
  mcpreload-publisher keygen --out ci.seed --output json
` + exitCodes + `
Flags:
`

const nodesUsage = `mcpreload-publisher nodes: the live nodes.

Usage:
  mcpreload-publisher nodes [global flags]

Lists every node with a current presence heartbeat: its MCP endpoint, the
modules, versions and digests it serves, how long ago it reported and since
when it runs.

Examples:
  mcpreload-publisher nodes
  mcpreload-publisher nodes --output json
` + exitCodes + `
Flags:
`
