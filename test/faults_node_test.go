package test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/events"
)

// The node-death scenarios run a fleet of an in-process orchestrator node
// "o", an in-process node "n2" and a real node process "p" that the test
// kills with SIGKILL at a chosen point of a strategy-all saga from v1 to v2
// (phase timeout 3 s). "Served" is what faultServed reads from a node's
// log: the digests it switched to, in order.

const faultPhaseTimeout = 3 * time.Second

type faultNodeFleet struct {
	f        *fleet
	o, n2    *runningNode
	p        *faultProc
	pDir     string
	v1, v2   []byte
	d1, d2   string
	versions map[string]string
}

// newFaultNodeFleet starts o, n2 and p and commits v1 on all three.
func newFaultNodeFleet(t *testing.T) *faultNodeFleet {
	t.Helper()
	x := &faultNodeFleet{f: newFleet(t), pDir: faultDataDir(t)}
	x.o = x.f.node(t, "o", "--orchestrator")
	x.n2 = x.f.node(t, "n2")
	x.p = x.f.faultProcNode(t, "p", x.pDir)
	x.f.waitLive(t, "o", "n2", "p")
	x.v1, x.d1 = faultTiny("1", "tiny")
	x.v2, x.d2 = faultTiny("2", "tiny")
	x.versions = map[string]string{"1": x.d1, "2": x.d2}
	o := x.f.outcome(t, x.f.reload(t, "tiny", x.v1, events.StrategyAll))
	require.Equal(t, events.ResultCommitted, o.Result, o.Reason)
	x.f.waitServing(t, "tiny", x.d1, "o", "n2", "p")
	return x
}

// restartP starts p again on its data dir (its module cache) and waits
// until it is live.
func (x *faultNodeFleet) restartP(t *testing.T) *faultProc {
	t.Helper()
	p := x.f.faultProcNode(t, "p", x.pDir)
	x.f.waitLive(t, "o", "n2", "p")
	return p
}

// TestFaultNodeKilledAfterPrepareAck: p dies right after its prepare ack
// is stored. A fake node "ghost" (the fourth target, answered by the test)
// prepares only after that, so no commit can have reached p before it
// died. Every target prepared, so the saga commits (desired := v2); p's
// commit ack never comes, and at the commit deadline the missing ack is a
// NACK: the saga rolls back the nodes it told to commit (o, n2, ghost and
// p; p does not answer that either) and restores desired v1. Result
// rolled_back, one outcome.
//
// Never served: p never served v2 (it died before any commit); o and n2
// served v2 only between the commit the saga told them to make and the
// rollback, and ended on v1. After its restart p serves v1 from its cache
// and stays there (desired is v1).
func TestFaultNodeKilledAfterPrepareAck(t *testing.T) {
	x := newFaultNodeFleet(t)
	f := x.f
	stopGhost := f.faultGhost(t, "ghost")
	f.waitLive(t, "o", "n2", "p", "ghost")
	id := f.faultRequest(t, "tiny", x.v2, events.StrategyAll, faultPhaseTimeout)
	a := f.faultWaitAck(t, id, "p", events.PhasePrepare)
	require.True(t, a.OK, "p prepared: %+v", a)
	x.p.kill()

	ghost := func(phase, digest string) {
		f.ack(t, events.Ack{Saga: id, Node: "ghost", Module: "tiny", Phase: phase, Digest: digest, OK: true})
	}
	ghost(events.PhasePrepare, x.d2)
	f.waitCommand(t, id, events.PhaseCommit)
	ghost(events.PhaseCommit, x.d2)
	f.waitCommand(t, id, events.PhaseRollback)
	ghost(events.PhaseRollback, "")
	out := f.outcome(t, id)
	require.Equal(t, events.ResultRolledBack, out.Result, out.Reason)
	require.Equal(t, map[string]string{"o": "rolled_back", "n2": "rolled_back", "ghost": "rolled_back", "p": "no_ack"}, faultStates(out), out.Reason)
	require.Contains(t, out.Reason, "p no_ack")
	require.Equal(t, map[string]bool{"o": true, "n2": true, "p": true, "ghost": true}, f.faultCommandTargets(t, id, events.PhaseCommit))
	f.faultSettled(t, "tiny")
	require.Equal(t, uint64(1), f.countOutcomes(t, id), "exactly one outcome")
	require.Equal(t, x.d1, f.faultDesired(t, "tiny"), "desired restored")

	stopGhost()
	p := x.restartP(t)
	f.faultConsistent(t, "tiny", x.d1, "o", "n2", "p")

	require.Equal(t, []string{x.d1}, faultServed(x.p.logs, "tiny", x.versions), "p before it died")
	require.Equal(t, []string{x.d1}, faultServed(p.logs, "tiny", x.versions), "p after its restart: its cached v1, nothing else")
	for _, n := range []*runningNode{x.o, x.n2} {
		require.Equal(t, []string{x.d1, x.d2, x.d1}, faultServed(n.logs, "tiny", x.versions), "commit, then compensating rollback")
	}
}

// TestFaultNodeKilledAfterCommitAck: p dies right after its commit ack is
// stored. Every target committed, so the saga completes (one outcome), and
// p, restarted on its data dir, serves v2 from its module cache at once
// (before NATS answers) and stays on it.
//
// Never served: no node ever served anything but v1 and then v2; p never
// goes back to v1 after acking v2 (TestFaultCommitAckedBeforeCached pins
// the cache-before-ack order down deterministically).
func TestFaultNodeKilledAfterCommitAck(t *testing.T) {
	x := newFaultNodeFleet(t)
	f := x.f
	id := f.faultRequest(t, "tiny", x.v2, events.StrategyAll, faultPhaseTimeout)
	a := f.faultWaitAck(t, id, "p", events.PhaseCommit)
	require.True(t, a.OK, "p committed: %+v", a)
	x.p.kill()

	out := f.outcome(t, id)
	require.Equal(t, events.ResultCommitted, out.Result, out.Reason)
	require.Equal(t, map[string]string{"o": "committed", "n2": "committed", "p": "committed"}, faultStates(out))
	f.faultSettled(t, "tiny")
	require.Equal(t, uint64(1), f.countOutcomes(t, id), "exactly one outcome")

	p := x.restartP(t)
	p.logs.Wait(t, 0, 10*time.Second, msg("serving cached module", "module", "tiny", "digest", x.d2))
	f.faultConsistent(t, "tiny", x.d2, "o", "n2", "p")

	require.Equal(t, []string{x.d1, x.d2}, faultServed(x.p.logs, "tiny", x.versions), "p before it died")
	require.Equal(t, []string{x.d2}, faultServed(p.logs, "tiny", x.versions), "p after its restart")
	for _, n := range []*runningNode{x.o, x.n2} {
		require.Equal(t, []string{x.d1, x.d2}, faultServed(n.logs, "tiny", x.versions))
	}
}

// TestFaultCommitAckedBeforeCached: p's commit ack reaches NATS, and p
// freezes right after sending it (the proxy between p and NATS holds
// everything NATS sends p from then on, so p never learns the ack was
// stored) and is killed (SIGKILL). The saga counts p as committed and
// completes. p restarts on its data dir with NATS unreachable: by design
// it serves its last-known version from its module cache, and the last
// version it acknowledged serving is v2. (Regression test: the node used
// to queue the cache write behind the ack, and restarted on v1.)
func TestFaultCommitAckedBeforeCached(t *testing.T) {
	f := newFleet(t)
	f.node(t, "o", "--orchestrator")
	px := newFaultProxy(t, f.srv.Addr().String())
	pDir := faultDataDir(t)
	p := f.faultProcNode(t, "p", pDir, "--nats-url", px.url())
	f.waitLive(t, "o", "p")
	v1, d1 := faultTiny("1", "tiny")
	v2, d2 := faultTiny("2", "tiny")
	versions := map[string]string{"1": d1, "2": d2}
	require.Equal(t, events.ResultCommitted, f.outcome(t, f.reload(t, "tiny", v1, events.StrategyAll)).Result)
	f.waitServing(t, "tiny", d1, "o", "p")

	f.faultGhost(t, "ghost")
	id := f.faultRequest(t, "tiny", v2, events.StrategyAll, 10*time.Second, "p", "ghost")
	require.True(t, f.faultWaitAck(t, id, "p", events.PhasePrepare).OK)
	// p's next publish on its ack subject is its commit ack.
	tripped := px.tripOnForward("PUB " + f.b.Subjects.Saga(id, events.AckLeaf("p")) + " ")
	f.ack(t, events.Ack{Saga: id, Node: "ghost", Module: "tiny", Phase: events.PhasePrepare, Digest: d2, OK: true})
	select {
	case <-tripped:
	case <-time.After(30 * time.Second):
		t.Fatal("p never acked its commit")
	}
	p.kill()
	f.ack(t, events.Ack{Saga: id, Node: "ghost", Module: "tiny", Phase: events.PhaseCommit, Digest: d2, OK: true})
	out := f.outcome(t, id)
	require.Equal(t, events.ResultCommitted, out.Result, out.Reason)
	require.Equal(t, map[string]string{"p": "committed", "ghost": "committed"}, faultStates(out))
	require.Equal(t, []string{d1, d2}, faultServed(p.logs, "tiny", versions), "p served v2 when it acked")

	restarted := startFaultProc(t, "p", pDir, "--nats-url", faultClosedURL(t))
	require.Equal(t, []string{d2}, faultServed(restarted.logs, "tiny", versions),
		"restarted without NATS, p serves the version it acknowledged")
}

// TestFaultNodeKilledMidCommit: p dies as soon as the commit command is in
// the saga stream, racing its own commit. Whether its commit ack made it
// decides the outcome, and the test asserts the invariants for both:
//   - the ack is stored: committed, desired v2, everyone ends on v2;
//   - it is not: at the commit deadline p is no_ack, the saga rolls back
//     (o, n2 told to go back, desired v1), everyone ends on v1.
//
// Never served: o and n2 switch to v2 on the commit the saga sent, and back
// to v1 only in a rollback. p may have committed v2 without its ack getting
// out; then its restart may serve v2 from its cache until it reconciles to
// v1 (a commit the saga told it to make, compensated). Every node ends on
// the desired version and serves nothing but v1 and v2 on the way.
// TestFaultCommitAckLost is the "ack did not make it" branch made
// deterministic.
func TestFaultNodeKilledMidCommit(t *testing.T) {
	x := newFaultNodeFleet(t)
	f := x.f
	id := f.faultRequest(t, "tiny", x.v2, events.StrategyAll, faultPhaseTimeout)
	cmd := f.waitCommand(t, id, events.PhaseCommit)
	require.ElementsMatch(t, []string{"o", "n2", "p"}, cmd.Targets)
	x.p.kill()

	out := f.outcome(t, id)
	f.faultSettled(t, "tiny")
	require.Equal(t, uint64(1), f.countOutcomes(t, id), "exactly one outcome")
	acked := false
	for _, a := range f.faultAcks(t, id, "p") {
		if a.Phase == events.PhaseCommit && a.OK {
			acked = true
		}
	}
	want, states := x.d1, map[string]string{"o": "rolled_back", "n2": "rolled_back", "p": "no_ack"}
	result := events.ResultRolledBack
	if acked {
		want, states, result = x.d2, map[string]string{"o": "committed", "n2": "committed", "p": "committed"}, events.ResultCommitted
	}
	t.Logf("p's commit ack stored before it died: %v; outcome %s", acked, out.Result)
	require.Equal(t, result, out.Result, out.Reason)
	require.Equal(t, states, faultStates(out))

	p := x.restartP(t)
	f.faultConsistent(t, "tiny", want, "o", "n2", "p")

	for _, n := range []*runningNode{x.o, x.n2} {
		if acked {
			require.Equal(t, []string{x.d1, x.d2}, faultServed(n.logs, "tiny", x.versions))
		} else {
			require.Equal(t, []string{x.d1, x.d2, x.d1}, faultServed(n.logs, "tiny", x.versions))
		}
	}
	before := faultServed(x.p.logs, "tiny", x.versions)
	require.Subset(t, [][]string{{x.d1}, {x.d1, x.d2}}, [][]string{before}, "p before it died")
	after := faultServed(p.logs, "tiny", x.versions)
	require.NotEmpty(t, after)
	require.Equal(t, want, after[len(after)-1], "p ends on the desired version")
	if before[len(before)-1] == x.d2 {
		// The module cache is written before the line is logged (and the
		// commit acked): having logged v2, p restarts on v2.
		require.Equal(t, x.d2, after[0], "p restarts on what it last served (its module cache)")
	}
	for _, d := range after {
		require.Contains(t, []string{x.d1, x.d2}, d)
	}
}
