package test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/events"
	"github.com/mcpreload/mcpreload/internal/bus"
	"github.com/mcpreload/mcpreload/internal/natstest"
	"github.com/mcpreload/mcpreload/internal/publisher"
)

// fleet is an embedded JetStream server and a bus client on it.
type fleet struct {
	srv *natstest.Server
	nc  *nats.Conn
	b   *bus.Bus
}

func newFleet(tb testing.TB) *fleet {
	tb.Helper()
	s := natstest.Run(tb)
	nc, b := s.OpenBus(tb, 3*time.Second)
	return &fleet{srv: s, nc: nc, b: b}
}

// node starts a fleet node through node.Main.
func (f *fleet) node(tb testing.TB, id string, extra ...string) *runningNode {
	tb.Helper()
	args := append([]string{"--id", id, "--nats-url", f.srv.ClientURL(), "--presence-ttl", "3s", "--lease", "2s"}, extra...)
	n := startNode(tb, args...)
	n.logs.Wait(tb, 0, 30*time.Second, msg("joined the fleet"))
	return n
}

// waitLive waits until exactly the given nodes are live.
func (f *fleet) waitLive(tb testing.TB, ids ...string) {
	tb.Helper()
	natstest.WaitLive(tb, f.b, ids...)
}

// reload uploads wasm and publishes a reload request; it returns the saga id.
func (f *fleet) reload(tb testing.TB, module string, wasm []byte, strategy events.Strategy, nodes ...string) string {
	tb.Helper()
	ctx := context.Background()
	digest, _, err := f.b.PutModule(ctx, wasm)
	require.NoError(tb, err)
	return f.request(tb, events.ReloadRequest{Module: module, Digest: digest, Strategy: strategy, Nodes: nodes, Timeout: events.Duration(10 * time.Second)})
}

func (f *fleet) request(tb testing.TB, req events.ReloadRequest) string {
	tb.Helper()
	id := uuid.NewString()
	e, err := events.New(events.TypeReloadRequested, "urn:test", req.Module, req, events.WithID(id))
	require.NoError(tb, err)
	m, err := events.ToNATS(context.Background(), f.b.Subjects.ReloadRequest(req.Module), e)
	require.NoError(tb, err)
	_, err = f.b.JS.PublishMsg(context.Background(), m)
	require.NoError(tb, err)
	return id
}

// outcome waits for the saga's outcome event and returns it.
func (f *fleet) outcome(tb testing.TB, id string) *events.Outcome {
	tb.Helper()
	outs := f.outcomes(tb, id, 1)
	return outs[0]
}

// outcomes collects n outcome events of the saga (all of them since the
// stream began).
func (f *fleet) outcomes(tb testing.TB, id string, n int) []*events.Outcome {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	oc, err := f.b.JS.OrderedConsumer(ctx, f.b.Names.SagaStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{f.b.Subjects.Saga(id, events.LeafOutcome)},
	})
	require.NoError(tb, err)
	var out []*events.Outcome
	for len(out) < n {
		m, err := oc.Next(jetstream.FetchContext(ctx))
		require.NoError(tb, err, "waiting for the outcome of saga %s", id)
		e, err := events.FromNATS(ctx, &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
		require.NoError(tb, err)
		o, err := events.DecodeOutcome(e)
		require.NoError(tb, err)
		out = append(out, o)
	}
	return out
}

// countOutcomes returns how many outcome events the saga has in the stream.
func (f *fleet) countOutcomes(tb testing.TB, id string) uint64 {
	tb.Helper()
	info, err := f.b.Sagas.Info(context.Background(), jetstream.WithSubjectFilter(f.b.Subjects.Saga(id, events.LeafOutcome)))
	require.NoError(tb, err)
	return info.State.Subjects[f.b.Subjects.Saga(id, events.LeafOutcome)]
}

// serving returns the digest of module each live node reports.
func (f *fleet) serving(tb testing.TB, module string) map[string]string {
	tb.Helper()
	live, err := f.b.LiveNodes(context.Background())
	require.NoError(tb, err)
	out := map[string]string{}
	for id, p := range live {
		out[id] = p.Modules[module]
	}
	return out
}

// waitServing waits until every given node reports digest for module.
func (f *fleet) waitServing(tb testing.TB, module, digest string, ids ...string) {
	tb.Helper()
	require.Eventually(tb, func() bool {
		s := f.serving(tb, module)
		for _, id := range ids {
			if s[id] != digest {
				return false
			}
		}
		return true
	}, 30*time.Second, 10*time.Millisecond, "nodes %v should serve %s %s", ids, module, digest)
}

// fakeNode registers a node in the live set that only the test speaks
// for: sagas wait on it until the test acks, which pins a saga mid-phase
// deterministically.
func (f *fleet) fakeNode(tb testing.TB, id string) {
	tb.Helper()
	b, err := json.Marshal(bus.Presence{Node: id, Modules: map[string]string{}, Updated: time.Now()})
	require.NoError(tb, err)
	_, err = f.b.Nodes.Put(context.Background(), id, b)
	require.NoError(tb, err)
}

// ack publishes an ack as node for the saga.
func (f *fleet) ack(tb testing.TB, a events.Ack) {
	tb.Helper()
	e, err := events.New(events.TypeAck, "urn:test:"+a.Node, a.Module, a)
	require.NoError(tb, err)
	m, err := events.ToNATS(context.Background(), f.b.Subjects.Saga(a.Saga, events.AckLeaf(a.Node)), e)
	require.NoError(tb, err)
	_, err = f.b.JS.PublishMsg(context.Background(), m)
	require.NoError(tb, err)
}

// waitCommand waits for the saga's command of the given phase and returns it.
func (f *fleet) waitCommand(tb testing.TB, id, phase string) *events.Command {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	oc, err := f.b.JS.OrderedConsumer(ctx, f.b.Names.SagaStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{f.b.Subjects.Saga(id, phase)},
	})
	require.NoError(tb, err)
	m, err := oc.Next(jetstream.FetchContext(ctx))
	require.NoError(tb, err, "waiting for the %s command of saga %s", phase, id)
	e, err := events.FromNATS(ctx, &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
	require.NoError(tb, err)
	cmd, err := events.DecodeCommand(e)
	require.NoError(tb, err)
	return cmd
}

// requireConsistent checks what `mcpreload-publisher status` checks: every
// live node serves the module's desired digest.
func (f *fleet) requireConsistent(tb testing.TB, module string) {
	tb.Helper()
	rep, err := publisher.Status(context.Background(), f.b, module)
	require.NoError(tb, err)
	require.True(tb, rep.Consistent, "status: %+v", rep.Modules)
}
