package test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/events"
	"github.com/mcpreload/mcpreload/saga"
)

// TestFaultOrchestratorKilled: the orchestrator owning a saga is a real
// process ("o1", --lease 2s) killed with SIGKILL at a phase boundary. Only
// then does a second orchestrator ("o2", in-process) start, so o1 owned the
// saga for sure; o1's lease lapses and o2 resumes the saga from its
// persisted state. Each boundary gets its own module and a fresh o1; the
// targets are the real node n2 and a fake node "ghost" the test answers
// for, so the saga waits at each boundary until the test moves it on.
//
// Every case ends with: one committed outcome, the module's lock released
// and its request acknowledged, the saga state terminal, and every live
// real node (n2, and o2 which joined late) on the new version. Nothing else
// was ever desired, so no node may serve anything but it.
func TestFaultOrchestratorKilled(t *testing.T) {
	t.Parallel() // long timeouts, mostly waiting: overlaps with the other such tests
	f := newFleet(t)
	n2 := f.node(t, "n2")
	f.waitLive(t, "n2")

	type sagaRef struct{ id, module, digest string }
	ghostAck := func(t *testing.T, s sagaRef, phase string) {
		f.ack(t, events.Ack{Saga: s.id, Node: "ghost", Module: s.module, Phase: phase, Digest: s.digest, OK: true})
	}
	cases := []struct {
		name string
		// kill runs once the request is published: it waits for the
		// boundary (answering for the ghost as needed), then kills o1.
		kill func(t *testing.T, s sagaRef, o1 *faultProc)
		// resumed: o2 must take the saga over (false: o1 may have
		// finished it before it died).
		resumed bool
	}{
		{"after the prepare command", func(t *testing.T, s sagaRef, o1 *faultProc) {
			f.waitCommand(t, s.id, events.PhasePrepare)
			o1.kill()
		}, true},
		{"after the last prepare ack, racing the commit decision", func(t *testing.T, s sagaRef, o1 *faultProc) {
			require.True(t, f.faultWaitAck(t, s.id, "n2", events.PhasePrepare).OK)
			ghostAck(t, s, events.PhasePrepare)
			o1.kill()
		}, true},
		{"after the commit command", func(t *testing.T, s sagaRef, o1 *faultProc) {
			require.True(t, f.faultWaitAck(t, s.id, "n2", events.PhasePrepare).OK)
			ghostAck(t, s, events.PhasePrepare)
			f.waitCommand(t, s.id, events.PhaseCommit)
			o1.kill()
		}, true},
		{"after the commit acks, racing the outcome", func(t *testing.T, s sagaRef, o1 *faultProc) {
			require.True(t, f.faultWaitAck(t, s.id, "n2", events.PhasePrepare).OK)
			ghostAck(t, s, events.PhasePrepare)
			require.True(t, f.faultWaitAck(t, s.id, "n2", events.PhaseCommit).OK)
			ghostAck(t, s, events.PhaseCommit)
			o1.kill()
		}, false},
		{"after the outcome, racing the lock release and the request ack", func(t *testing.T, s sagaRef, o1 *faultProc) {
			require.True(t, f.faultWaitAck(t, s.id, "n2", events.PhasePrepare).OK)
			ghostAck(t, s, events.PhasePrepare)
			require.True(t, f.faultWaitAck(t, s.id, "n2", events.PhaseCommit).OK)
			ghostAck(t, s, events.PhaseCommit)
			f.outcome(t, s.id)
			o1.kill()
		}, false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			module := []string{"ma", "mb", "mc", "md", "me"}[i]
			wasm, digest := faultTiny("1", module+"_tool")
			o1 := f.faultProcNode(t, "o1", faultDataDir(t), "--orchestrator")
			o1.logs.Wait(t, 0, 30*time.Second, msg("orchestrator running"))
			f.faultGhost(t, "ghost")
			s := sagaRef{f.faultRequest(t, module, wasm, events.StrategyAll, 30*time.Second, "n2", "ghost"), module, digest}
			id := s.id
			tc.kill(t, s, o1)
			require.True(t, hasSaga(o1.logs, id), "o1, the only orchestrator, took the request")

			o2 := f.node(t, "o2", "--orchestrator")
			if tc.resumed {
				o2.logs.Wait(t, 0, 30*time.Second, msg("saga started", "saga", id))
			}
			// The ghost now answers every phase; an ack the saga already
			// has is ignored.
			ghostAck(t, s, events.PhasePrepare)
			cmd := f.waitCommand(t, id, events.PhaseCommit)
			require.ElementsMatch(t, []string{"n2", "ghost"}, cmd.Targets)
			ghostAck(t, s, events.PhaseCommit)

			out := f.outcome(t, id)
			require.Equal(t, events.ResultCommitted, out.Result, out.Reason)
			require.Equal(t, map[string]string{"n2": "committed", "ghost": "committed"}, faultStates(out))
			f.faultSettled(t, module)
			t.Logf("o2 resumed the saga: %v", hasSaga(o2.logs, id))
			require.Equal(t, uint64(1), f.countOutcomes(t, id), "exactly one outcome")
			e, err := f.b.State.Get(context.Background(), id)
			require.NoError(t, err)
			var st saga.State
			require.NoError(t, json.Unmarshal(e.Value(), &st))
			require.Equal(t, saga.Completed, st.Phase, "the persisted saga state is final")
			f.faultConsistent(t, module, digest, "n2", "o2")
			for _, l := range []*logSink{n2.logs, o2.logs, o1.logs} {
				for _, d := range faultServed(l, module, nil) {
					require.Equal(t, digest, d)
				}
			}
			require.Equal(t, 0, o2.stop())
		})
	}
}

// TestFaultOrchestratorKilledBeforePersistingState: the only orchestrator,
// a real process ("o1") reaching NATS through a proxy, takes a request,
// locks the module and dies (SIGKILL) exactly when it is about to persist
// the saga's first state (the proxy fires on its publish to the state
// bucket). No orchestrator runs for longer than the request's maximum age
// (saga.MaxRequestAge: 3 x timeout + 10 s; the injected outage). Then "o2"
// starts and, as designed, refuses the stale request with an aborted
// outcome. Nothing runs on the module any more, so its lock must be free:
// a new request for the module runs, and nodes reconcile it again.
// (Regression test: the refusal used to leave the lock in place for
// good: every later request for the module was handed back forever.)
func TestFaultOrchestratorKilledBeforePersistingState(t *testing.T) {
	t.Parallel() // long timeouts, mostly waiting: overlaps with the other such tests
	f := newFleet(t)
	f.node(t, "n2")
	px := newFaultProxy(t, f.srv.Addr().String())
	o1 := f.faultProcNode(t, "o1", faultDataDir(t), "--orchestrator", "--nats-url", px.url())
	o1.logs.Wait(t, 0, 30*time.Second, msg("orchestrator running"))
	f.waitLive(t, "n2", "o1")
	wasm, digest := faultTiny("1", "tiny")

	tripped := px.tripOn("PUB $KV." + f.b.Names.StateBucket + ".")
	published := time.Now()
	id := f.faultRequest(t, "tiny", wasm, events.StrategyAll, time.Millisecond)
	select {
	case <-tripped:
	case <-time.After(30 * time.Second):
		t.Fatal("o1 never persisted a saga state")
	}
	px.cutAll()
	o1.kill()
	lock, err := f.b.Locks.Get(context.Background(), "tiny")
	require.NoError(t, err, "o1 locked the module before it died")
	require.Equal(t, id, string(lock.Value()))
	_, err = f.b.State.Get(context.Background(), id)
	require.ErrorIs(t, err, jetstream.ErrKeyNotFound, "o1 died before persisting the saga")

	// The outage: no orchestrator until the request is too old to start
	// (the fault's duration, not a synchronisation).
	<-time.After(time.Until(published.Add(saga.MaxRequestAge(time.Millisecond) + time.Second)))
	f.node(t, "o2", "--orchestrator")
	out := f.outcome(t, id)
	require.Equal(t, events.ResultAborted, out.Result)
	require.Contains(t, out.Reason, "request expired")
	require.Eventually(t, func() bool {
		info, err := f.b.Requests.Info(context.Background())
		return err == nil && info.State.Msgs == 0
	}, 10*time.Second, 10*time.Millisecond, "the refused request is gone")
	f.faultSettled(t, "tiny")
	require.Equal(t, uint64(1), f.countOutcomes(t, id))

	again := f.outcome(t, f.faultRequest(t, "tiny", wasm, events.StrategyAll, 10*time.Second, "n2", "o2"))
	require.Equal(t, events.ResultCommitted, again.Result, again.Reason)
	f.faultConsistent(t, "tiny", digest, "n2", "o2")
}
