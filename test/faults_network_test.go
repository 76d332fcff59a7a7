package test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/events"
)

// TestFaultNodeCutOffDuringCommit: node q reaches NATS through a TCP proxy.
// A quorum saga targets q and two fake nodes g1, g2 (the test answers for
// them, so each step happens when the test says). Right after q's prepare
// ack is stored the proxy cuts q off; g1 prepares, the saga decides to
// commit (q and g1 are a majority of 3) and sends the commit, which q
// misses (commands are core NATS). g1 and g2 commit: the saga completes
// with q still "committing". When the proxy lets q back, q reconciles to the
// desired v2 (as does o, which was not a target).
//
// Never served: q served only v1 while cut off (it never got a commit),
// then v2 after reconnecting; one outcome.
func TestFaultNodeCutOffDuringCommit(t *testing.T) {
	f := newFleet(t)
	o := f.node(t, "o", "--orchestrator")
	px := newFaultProxy(t, f.srv.Addr().String())
	q := f.node(t, "q", "--nats-url", px.url())
	f.waitLive(t, "o", "q")
	v1, d1 := faultTiny("1", "tiny")
	v2, d2 := faultTiny("2", "tiny")
	versions := map[string]string{"1": d1, "2": d2}
	require.Equal(t, events.ResultCommitted, f.outcome(t, f.reload(t, "tiny", v1, events.StrategyAll)).Result)
	f.waitServing(t, "tiny", d1, "o", "q")

	f.faultGhost(t, "g1")
	f.faultGhost(t, "g2")
	id := f.faultRequest(t, "tiny", v2, events.StrategyQuorum, 20*time.Second, "q", "g1", "g2")
	require.True(t, f.faultWaitAck(t, id, "q", events.PhasePrepare).OK)
	px.cutAll()

	ack := func(node, phase string) {
		f.ack(t, events.Ack{Saga: id, Node: node, Module: "tiny", Phase: phase, Digest: d2, OK: true, PreviousDigest: ""})
	}
	ack("g1", events.PhasePrepare)
	cmd := f.waitCommand(t, id, events.PhaseCommit)
	require.ElementsMatch(t, []string{"g1", "q"}, cmd.Targets)
	ack("g1", events.PhaseCommit)
	ack("g2", events.PhasePrepare) // told to commit as it prepares after the decision
	ack("g2", events.PhaseCommit)
	out := f.outcome(t, id)
	require.Equal(t, events.ResultCommitted, out.Result, out.Reason)
	require.Equal(t, map[string]string{"q": "committing", "g1": "committed", "g2": "committed"}, faultStates(out))
	require.Equal(t, d2, f.faultDesired(t, "tiny"))
	require.Equal(t, []string{d1}, faultServed(q.logs, "tiny", versions), "q cannot have committed while cut off")

	px.restore()
	start := time.Now()
	f.faultConsistent(t, "tiny", d2, "o", "q")
	t.Logf("q converged %v after the proxy let it back", time.Since(start).Round(time.Millisecond))
	f.faultSettled(t, "tiny")
	require.Equal(t, uint64(1), f.countOutcomes(t, id))
	require.Equal(t, []string{d1, d2}, faultServed(q.logs, "tiny", versions))
	require.Equal(t, []string{d1, d2}, faultServed(o.logs, "tiny", versions))
}

// TestFaultClusterLosesSagaStreamLeader: on a 3-server JetStream cluster
// (every stream and bucket R3), a saga is held by a fake target ("ghost")
// after the real targets, the orchestrator node o and n2, prepared; the
// server leading MCPRELOAD_SAGAS is shut down; then the ghost prepares and
// commits. The saga completes with one outcome, and o and n2 serve the new
// version.
//
// o and n2 connect only to the two other servers: the fault is the loss of
// the stream's leader (and of every consumer that lived on that server),
// not a node cut off NATS, which can miss a command broadcast during its
// reconnect (that is TestFaultNodeCutOffDuringCommit). Depending on where
// the orchestrator's ack consumer lived, the saga may stall for about 10 s
// (two missed 5 s consumer heartbeats) before it goes on, so the phase
// timeout is 30 s.
func TestFaultClusterLosesSagaStreamLeader(t *testing.T) {
	t.Parallel() // long timeouts, mostly waiting: overlaps with the other such tests
	c := newFaultCluster(t)
	f := c.fleet(t)
	info, err := f.b.Sagas.Info(context.Background())
	require.NoError(t, err)
	require.NotNil(t, info.Cluster)
	leader := info.Cluster.Leader
	require.NotEmpty(t, leader)
	c.node(t, "o", c.urlsExcept(leader), "--orchestrator")
	c.node(t, "n2", c.urlsExcept(leader))
	f.faultGhost(t, "ghost")
	f.waitLive(t, "o", "n2", "ghost")
	v1, d1 := faultTiny("1", "tiny")

	id := f.faultRequest(t, "tiny", v1, events.StrategyAll, 30*time.Second)
	require.ElementsMatch(t, []string{"o", "n2", "ghost"}, f.faultWaitCommand(t, id, events.PhasePrepare).Targets)
	require.True(t, f.faultWaitAck(t, id, "o", events.PhasePrepare).OK)
	require.True(t, f.faultWaitAck(t, id, "n2", events.PhasePrepare).OK)

	info, err = f.b.Sagas.Info(context.Background())
	require.NoError(t, err)
	require.Equal(t, leader, info.Cluster.Leader, "the leader the nodes stay away from is still the leader")
	s := c.server(t, leader)
	s.Shutdown()
	s.WaitForShutdown()
	t.Logf("shut down %s, the leader of %s", leader, f.b.Names.SagaStream)
	start := time.Now()

	f.faultAckRetry(t, events.Ack{Saga: id, Node: "ghost", Module: "tiny", Phase: events.PhasePrepare, Digest: d1, OK: true})
	f.faultWaitCommand(t, id, events.PhaseCommit)
	f.faultAckRetry(t, events.Ack{Saga: id, Node: "ghost", Module: "tiny", Phase: events.PhaseCommit, Digest: d1, OK: true})
	out := f.faultOutcome(t, id)
	t.Logf("saga finished %v after the leader loss", time.Since(start).Round(time.Millisecond))
	require.Equal(t, events.ResultCommitted, out.Result, out.Reason)
	require.Equal(t, map[string]string{"o": "committed", "n2": "committed", "ghost": "committed"}, faultStates(out))
	f.faultSettled(t, "tiny")
	require.Equal(t, uint64(1), f.countOutcomes(t, id))
	f.faultConsistent(t, "tiny", d1, "o", "n2")
	info, err = f.b.Sagas.Info(context.Background())
	require.NoError(t, err)
	require.NotEqual(t, leader, info.Cluster.Leader)
}

// TestFaultReconcileFetchInterrupted: node "w" is live but not a target
// of a saga that commits v2 on o and n2 (named nodes). When the saga
// releases the module's lock, w reconciles to the new desired v2; its NATS
// connection (through a proxy) is cut exactly when it asks the object
// store for v2, and reconnects at once. The fault is transient: the design
// has nodes reconcile on start, on reconnect and on desired-state changes
// (DESIGN.md: "Node reconciliation (start-up, reconnect, desired-state
// watch)"; agent.go: "reconciles every module to its desired digest (at
// start, on reconnect, ...)"), so w must still converge to v2 once it is
// reconnected, without a restart or another saga. (Regression test:
// reconcile used to fetch once, and a reconnect did not reconcile, so w
// stayed on v1 until the next desired-state change or a restart.)
//
// Never served: w serves v1 until it serves v2.
func TestFaultReconcileFetchInterrupted(t *testing.T) {
	t.Parallel() // long timeouts, mostly waiting: overlaps with the other such tests
	f := newFleet(t)
	f.node(t, "o", "--orchestrator")
	f.node(t, "n2")
	px := newFaultProxy(t, f.srv.Addr().String())
	w := f.node(t, "w", "--nats-url", px.url())
	f.waitLive(t, "o", "n2", "w")
	v1, d1 := faultTiny("1", "tiny")
	v2, d2 := faultTiny("2", "tiny")
	versions := map[string]string{"1": d1, "2": d2}
	require.Equal(t, events.ResultCommitted, f.outcome(t, f.reload(t, "tiny", v1, events.StrategyAll)).Result)
	f.waitServing(t, "tiny", d1, "o", "n2", "w")

	// Object store reads are direct gets (or message gets) on the bucket's
	// stream; nothing else a node sends names them.
	tripped := px.tripOn("GET.OBJ_" + f.b.Names.ModulesBucket)
	out := f.outcome(t, f.faultRequest(t, "tiny", v2, events.StrategyAll, 10*time.Second, "o", "n2"))
	require.Equal(t, events.ResultCommitted, out.Result, out.Reason)
	select {
	case <-tripped:
	case <-time.After(30 * time.Second):
		t.Fatal("w never fetched v2")
	}
	f.faultConsistent(t, "tiny", d2, "o", "n2", "w")
	require.Equal(t, []string{d1, d2}, faultServed(w.logs, "tiny", versions))
}

// TestFaultCommitAckLost: node q commits v2 but its commit ack is lost:
// the proxy between q and NATS cuts the connection exactly when q
// publishes it, and q reconnects at once. The other target, a fake node
// "ghost", committed, so the saga (strategy all) waits for q until the
// commit deadline, where the missing ack is a NACK: it rolls back every
// node it told to commit, q included, which (reconnected) rolls back to
// v1. This is TestFaultNodeKilledMidCommit's "ack did not make it" branch,
// made deterministic.
//
// Never served: q served v2 only between the commit the saga told it to
// make and the rollback, and ends on v1 with the desired state.
func TestFaultCommitAckLost(t *testing.T) {
	f := newFleet(t)
	f.node(t, "o", "--orchestrator")
	px := newFaultProxy(t, f.srv.Addr().String())
	q := f.node(t, "q", "--nats-url", px.url())
	f.waitLive(t, "o", "q")
	v1, d1 := faultTiny("1", "tiny")
	v2, d2 := faultTiny("2", "tiny")
	versions := map[string]string{"1": d1, "2": d2}
	require.Equal(t, events.ResultCommitted, f.outcome(t, f.reload(t, "tiny", v1, events.StrategyAll)).Result)
	f.waitServing(t, "tiny", d1, "o", "q")

	f.faultGhost(t, "ghost")
	id := f.faultRequest(t, "tiny", v2, events.StrategyAll, 4*time.Second, "q", "ghost")
	require.True(t, f.faultWaitAck(t, id, "q", events.PhasePrepare).OK)
	// q's next publish on its ack subject is its commit ack.
	tripped := px.tripOn("PUB " + f.b.Subjects.Saga(id, events.AckLeaf("q")) + " ")
	ghost := func(phase, digest string) {
		f.ack(t, events.Ack{Saga: id, Node: "ghost", Module: "tiny", Phase: phase, Digest: digest, OK: true, PreviousDigest: d1})
	}
	ghost(events.PhasePrepare, d2)
	f.waitCommand(t, id, events.PhaseCommit)
	ghost(events.PhaseCommit, d2)
	select {
	case <-tripped:
	case <-time.After(30 * time.Second):
		t.Fatal("q never acked its commit")
	}
	q.logs.Wait(t, 0, 10*time.Second, msg("module reloaded", "module", "tiny", "digest", d2))

	rb := f.waitCommand(t, id, events.PhaseRollback)
	require.ElementsMatch(t, []string{"q", "ghost"}, rb.Targets)
	require.Equal(t, d1, rb.Digest)
	ghost(events.PhaseRollback, d1)
	out := f.outcome(t, id)
	require.Equal(t, events.ResultRolledBack, out.Result, out.Reason)
	require.Equal(t, map[string]string{"q": "rolled_back", "ghost": "rolled_back"}, faultStates(out), out.Reason)
	require.Contains(t, out.Reason, "q no_ack")
	f.faultSettled(t, "tiny")
	require.Equal(t, uint64(1), f.countOutcomes(t, id))
	f.faultConsistent(t, "tiny", d1, "o", "q")
	require.Equal(t, []string{d1, d2, d1}, faultServed(q.logs, "tiny", versions))
}
