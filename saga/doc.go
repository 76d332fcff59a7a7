// Package saga coordinates a fleet-wide reload as a saga with two-phase
// commit semantics (xDS-style acks), in two parts:
//
//   - the machine (machine.go): a pure function Step(state, event) ->
//     (state, effects) with no clock, randomness or I/O inside, tested
//     with golden files (testdata/*.txt);
//   - the runner (runner.go): the only part that touches NATS. It persists
//     every new state in JetStream KV with compare-and-set before it
//     performs the state's effects, so an orchestrator that takes over a
//     saga whose owner died replays the effects of the current state
//     (commands to nodes are idempotent per saga and node).
//
// The phases, by strategy:
//
//	preparing   --all: every target prepared / quorum: a majority prepared--> committing
//	preparing   --a rejection that makes the strategy impossible, or the deadline--> aborted
//	committing  --desired := digest (before any commit command); all / a majority committed--> completed
//	committing  --failures beyond what the strategy allows, or the deadline--> rolling_back
//	rolling_back --desired := previous; rollback on every node told to commit--> rolled_back
//	local       --each named node prepares and commits on its own--> completed | failed
//
// A missing ack by a phase deadline counts as a NACK. Every terminal state
// emits exactly one Finish effect carrying the outcome.
package saga
