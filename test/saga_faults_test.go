package test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/events"
	"github.com/mcpreload/mcpreload/internal/natstest"
	"github.com/mcpreload/mcpreload/internal/wasmgen"
	"github.com/mcpreload/mcpreload/loader"
)

// TestOrchestratorTakeover: the orchestrator running a saga stops mid-saga
// (a target, "ghost", has not answered); another orchestrator resumes the
// saga from its persisted state and finishes it. One outcome.
func TestOrchestratorTakeover(t *testing.T) {
	f := newFleet(t)
	o1 := f.node(t, "o1", "--orchestrator")
	o2 := f.node(t, "o2", "--orchestrator")
	f.fakeNode(t, "ghost")
	f.waitLive(t, "o1", "o2", "ghost")
	wasm := wasmgen.Tiny(wasmgen.Spec{Version: "1", Stateless: true})
	id := f.reload(t, "tiny", wasm, events.StrategyAll, "ghost")
	cmd := f.waitCommand(t, id, events.PhasePrepare)
	require.Equal(t, []string{"ghost"}, cmd.Targets)

	// Stop whichever orchestrator owns the saga.
	require.Eventually(t, func() bool { return hasSaga(o1.logs, id) || hasSaga(o2.logs, id) }, 30*time.Second, time.Millisecond)
	owner, other := o1, o2
	if hasSaga(o2.logs, id) {
		owner, other = o2, o1
	}
	require.Equal(t, 0, owner.stop())
	other.logs.Wait(t, 0, 30*time.Second, msg("saga started", "saga", id, "phase", "preparing"))

	// The ghost answers only now, to the new owner.
	f.ack(t, events.Ack{Saga: id, Node: "ghost", Module: "tiny", Phase: events.PhasePrepare, Digest: loader.DigestOf(wasm), OK: true})
	f.waitCommand(t, id, events.PhaseCommit)
	f.ack(t, events.Ack{Saga: id, Node: "ghost", Module: "tiny", Phase: events.PhaseCommit, Digest: loader.DigestOf(wasm), OK: true})
	o := f.outcome(t, id)
	require.Equal(t, events.ResultCommitted, o.Result, o.Reason)
	require.Equal(t, uint64(1), f.countOutcomes(t, id), "exactly one outcome")
}

// TestNATSRestartMidSaga: the NATS server restarts (same store) while a
// saga waits for a node; the saga then completes, and the request, state
// and acks survived.
func TestNATSRestartMidSaga(t *testing.T) {
	f := newFleet(t)
	f.node(t, "n1", "--orchestrator")
	f.fakeNode(t, "ghost")
	f.waitLive(t, "n1", "ghost")
	wasm := wasmgen.Tiny(wasmgen.Spec{Version: "1", Stateless: true})
	id := f.reload(t, "tiny", wasm, events.StrategyAll)
	f.waitCommand(t, id, events.PhasePrepare)

	f.srv.Stop()
	f.srv = natstest.RunAt(t, f.srv.StoreDir, f.srv.Port)
	require.Eventually(t, func() bool { return f.nc.IsConnected() }, 30*time.Second, 10*time.Millisecond)
	f.fakeNode(t, "ghost") // its presence may have expired while the server was down

	f.ack(t, events.Ack{Saga: id, Node: "ghost", Module: "tiny", Phase: events.PhasePrepare, Digest: loader.DigestOf(wasm), OK: true})
	f.waitCommand(t, id, events.PhaseCommit)
	f.ack(t, events.Ack{Saga: id, Node: "ghost", Module: "tiny", Phase: events.PhaseCommit, Digest: loader.DigestOf(wasm), OK: true})
	o := f.outcome(t, id)
	require.Equal(t, events.ResultCommitted, o.Result, o.Reason)
	require.Equal(t, uint64(1), f.countOutcomes(t, id))
	f.waitServing(t, "tiny", loader.DigestOf(wasm), "n1")
}

// TestDuplicateAndStaleEvents: the same request twice is one saga; acks
// for another saga or a finished one change nothing.
func TestDuplicateAndStaleEvents(t *testing.T) {
	f := newFleet(t)
	f.node(t, "n1", "--orchestrator")
	f.waitLive(t, "n1")
	ctx := context.Background()
	v1 := wasmgen.Tiny(wasmgen.Spec{Version: "1", Stateless: true})
	digest, _, err := f.b.PutModule(ctx, v1)
	require.NoError(t, err)
	req := events.ReloadRequest{Module: "tiny", Digest: digest, Strategy: events.StrategyAll}
	e, err := events.New(events.TypeReloadRequested, "urn:test", "tiny", req)
	require.NoError(t, err)
	for range 2 {
		m, err := events.ToNATS(ctx, f.b.Subjects.ReloadRequest("tiny"), e)
		require.NoError(t, err)
		ack, err := f.b.JS.PublishMsg(ctx, m)
		require.NoError(t, err)
		require.Equal(t, uint64(1), ack.Sequence, "the second publish is deduplicated")
	}
	require.Equal(t, events.ResultCommitted, f.outcome(t, e.ID()).Result)

	// Stale and foreign acks.
	f.ack(t, events.Ack{Saga: e.ID(), Node: "n1", Module: "tiny", Phase: events.PhaseCommit, Digest: digest, OK: false, Code: "forged", Message: "late"})
	f.ack(t, events.Ack{Saga: "no-such-saga", Node: "n1", Module: "tiny", Phase: events.PhasePrepare, Digest: digest, OK: true})
	v2 := wasmgen.Tiny(wasmgen.Spec{Version: "2", Stateless: true})
	id2 := f.reload(t, "tiny", v2, events.StrategyAll)
	require.Equal(t, events.ResultCommitted, f.outcome(t, id2).Result, "a later saga is not disturbed")
	require.Equal(t, uint64(1), f.countOutcomes(t, e.ID()), "the finished saga got no second outcome")
	require.Equal(t, uint64(0), f.countOutcomes(t, "no-such-saga"))
	d, _, err := f.b.GetDesired(ctx, "tiny", "")
	require.NoError(t, err)
	require.Equal(t, loader.DigestOf(v2), d.Digest)
}

// TestConcurrentRequestsAreSerialized: two requests for one module at
// once run one after the other; both get outcomes; the later one wins.
func TestConcurrentRequestsAreSerialized(t *testing.T) {
	f := newFleet(t)
	n1 := f.node(t, "n1", "--orchestrator")
	f.node(t, "n2")
	f.waitLive(t, "n1", "n2")
	v1, v2 := wasmgen.Tiny(wasmgen.Spec{Version: "1", Stateless: true}), wasmgen.Tiny(wasmgen.Spec{Version: "2", Stateless: true})
	a := f.reload(t, "tiny", v1, events.StrategyAll)
	b := f.reload(t, "tiny", v2, events.StrategyAll)
	oa, ob := f.outcome(t, a), f.outcome(t, b)
	require.Equal(t, events.ResultCommitted, oa.Result, oa.Reason)
	require.Equal(t, events.ResultCommitted, ob.Result, ob.Reason)
	require.False(t, ob.StartedAt.Before(oa.FinishedAt), "the second saga started after the first finished")
	d, _, err := f.b.GetDesired(context.Background(), "tiny", "")
	require.NoError(t, err)
	require.Equal(t, loader.DigestOf(v2), d.Digest)
	f.waitServing(t, "tiny", loader.DigestOf(v2), "n1", "n2")
	_ = n1
}
