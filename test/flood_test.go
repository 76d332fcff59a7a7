package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/events"
	"github.com/mcpreload/mcpreload/internal/bus"
	"github.com/mcpreload/mcpreload/internal/wasmgen"
)

// floodKind is one kind of event in the flood.
type floodKind struct {
	name string
	n    int
	// build returns the i-th event and, if the event must end with an
	// outcome of its own (an invalid request with a usable id), its saga id.
	build func(i int) (*nats.Msg, string)
	// early kinds are published (and stored) before the legitimate request,
	// so that its saga reads every one of them: see the acks below.
	early bool
	// refused: over the streams' max message size, JetStream refuses it
	// (err_code 10054).
	refused bool
	// counted lists where mcpreload_events_discarded_total counts each
	// event, as "<node> <stream>/<reason>"; empty means nowhere.
	counted []string
	// reason, for kinds with outcomes: a part of the aborted outcome's
	// reason, after "invalid reload request: ".
	reason string
}

// TestFloodDoesNotDisturbAReload: while a legitimate reload runs, 10,000
// malformed, invalid, oversize and forged events arrive on the request and
// saga subjects from several publishers. The reload commits with one
// outcome and every node serves the new version; every flood event that
// reaches a node or the orchestrator is counted in
// mcpreload_events_discarded_total exactly where it arrives; every invalid
// request with a usable id gets one aborted outcome saying what was wrong;
// requests for huge or missing objects are refused by the nodes with their
// error codes; forged commands for unknown sagas are answered and change
// nothing.
//
// Where the flood goes (see the kinds below for the counts):
//   - Request subjects (<prefix>.reload.request.<module>): everything the
//     request stream stores reaches the orchestrator (node n1), which counts
//     it under stream="requests" (reason invalid, or wrong_subject) and
//     answers every one with an event id with an aborted outcome. Events
//     over the streams' max message size (69,632 bytes) are refused by
//     JetStream (err_code 10054): nobody ever sees them. Events over 64 KiB
//     but under that limit are stored and refused by the reader.
//   - Ack subjects (<prefix>.saga.<id>.ack.<node>): only the orchestrator
//     reads acks, and only those of a saga it runs (an ordered consumer
//     from the saga's first ack on). Acks for unknown sagas are stored and
//     never read by anyone: no saga follows them, and nodes' command
//     subscription (<prefix>.saga.*.*) does not match ack subjects. Broken
//     acks on the legitimate saga's subjects are counted under
//     stream="acks"; they are published before its request, so that its
//     saga reads all of them whenever it starts.
//   - Command subjects (<prefix>.saga.<id>.<phase>): every node's core
//     subscription receives every event (including those JetStream refuses
//     to store: a refusal by the stream does not stop core delivery), so
//     each is counted once per node under stream="commands" (malformed,
//     invalid; wrong_subject by the nodes it targets, here all). Events of
//     an unknown type there are ignored like progress and outcome events,
//     uncounted. Forged valid commands for unknown sagas are not refused
//     (without --trusted-keys nodes cannot tell them apart; NATS
//     permissions keep them out in production): they are answered with acks
//     and change nothing.
func TestFloodDoesNotDisturbAReload(t *testing.T) {
	f := newFleet(t)
	ids := []string{"n1", "n2", "n3"}
	// Modules over 256 KiB are refused by every node: a request for a
	// bigger object is refused at fetch (too_large).
	const maxModule = 256 << 10
	capFlag := strconv.Itoa(maxModule)
	// The orchestrator's lease is its request consumer's AckWait: a
	// request still waiting in its pull buffer when that expires is
	// delivered (and counted) again. 30s keeps the counts exact under
	// -race; with the fleet's usual 2s some of the flood arrives twice.
	nodes := map[string]*runningNode{
		"n1": f.node(t, "n1", "--orchestrator", "--lease", "30s", "--max-module-bytes", capFlag),
		"n2": f.node(t, "n2", "--max-module-bytes", capFlag),
		"n3": f.node(t, "n3", "--max-module-bytes", capFlag),
	}
	f.waitLive(t, ids...)
	ctx := t.Context()
	subj := f.b.Subjects

	v1 := wasmgen.Tiny(wasmgen.Spec{Version: "1", Stateless: true, Tools: []string{"echo"}, Reply: "echo v1"})
	v2 := wasmgen.Tiny(wasmgen.Spec{Version: "2", Stateless: true, Tools: []string{"echo"}, Reply: "echo v2"})
	first := f.reload(t, "tool", v1, events.StrategyAll)
	require.Equal(t, events.ResultCommitted, f.outcome(t, first).Result)
	for id, n := range nodes {
		require.Empty(t, discardedEvents(t, n.url), "%s: nothing discarded before the flood", id)
	}

	v2Digest, _, err := f.b.PutModule(ctx, v2)
	require.NoError(t, err)
	hugeDigest, _, err := f.b.PutModule(ctx, bytes.Repeat([]byte{0}, maxModule+1))
	require.NoError(t, err)
	missingDigest := "sha256:" + strings.Repeat("0", 64) // well-formed, never uploaded
	legitID := uuid.NewString()
	legit := floodValid(t, subj.ReloadRequest("tool"), events.TypeReloadRequested, legitID,
		events.ReloadRequest{Module: "tool", Digest: v2Digest, Strategy: events.StrategyAll, Timeout: events.Duration(30 * time.Second)})
	hugeID, missingID := uuid.NewString(), uuid.NewString()
	huge := floodValid(t, subj.ReloadRequest("huge"), events.TypeReloadRequested, hugeID,
		events.ReloadRequest{Module: "huge", Digest: hugeDigest, Strategy: events.StrategyAll, Timeout: events.Duration(30 * time.Second)})
	missing := floodValid(t, subj.ReloadRequest("missing"), events.TypeReloadRequested, missingID,
		events.ReloadRequest{Module: "missing", Digest: missingDigest, Strategy: events.StrategyAll, Timeout: events.Duration(30 * time.Second)})

	everyNode := func(what string) []string {
		out := make([]string, len(ids))
		for i, id := range ids {
			out[i] = id + " " + what
		}
		return out
	}
	garbage := func(subject string, i int) *nats.Msg {
		m := nats.NewMsg(subject)
		m.Data = fmt.Appendf(nil, "flood %d: \x00\xff not a CloudEvent", i)
		if i%2 == 1 { // looks like binary mode, but a spec version nobody speaks
			m.Header.Set("ce-specversion", "0.3")
		}
		return m
	}
	// pad replaces a message's payload with a JSON request of size bytes.
	pad := func(m *nats.Msg, size int) *nats.Msg {
		head := `{"module":"flood","digest":"` + missingDigest + `","strategy":"all","padding":"`
		m.Data = []byte(head + strings.Repeat("x", size-len(head)-2) + `"}`)
		return m
	}
	deadline := time.Now().Add(time.Minute)
	request := func(data map[string]any) func(int) (*nats.Msg, string) {
		return func(int) (*nats.Msg, string) {
			id := uuid.NewString()
			return floodEvent(t, subj.ReloadRequest("flood"), events.TypeReloadRequested, id, data), id
		}
	}
	ack := func(saga, subjectNode, payloadNode string) *nats.Msg {
		a := events.Ack{Saga: saga, Node: payloadNode, Module: "tool", Phase: events.PhasePrepare, Digest: v2Digest, OK: true}
		return floodValid(t, subj.Saga(saga, events.AckLeaf(subjectNode)), events.TypeAck, uuid.NewString(), a)
	}
	command := func(typ, saga, subject, digest string) *nats.Msg {
		c := events.Command{Saga: saga, Module: "flood", Digest: digest, Targets: ids, Deadline: deadline}
		return floodValid(t, subject, typ, uuid.NewString(), c)
	}
	forged := map[string]string{} // forged command's saga id -> phase
	forgedPhases := []string{events.PhasePrepare, events.PhaseCommit, events.PhaseAbort}
	forgedTypes := map[string]string{events.PhasePrepare: events.TypePrepare, events.PhaseCommit: events.TypeCommit, events.PhaseAbort: events.TypeAbort}
	unknownSagaAcks := map[string]bool{}

	kinds := []floodKind{
		// Request subjects.
		{name: "request: not a CloudEvent", n: 1000, counted: []string{"n1 requests/invalid"},
			build: func(i int) (*nats.Msg, string) { return garbage(subj.ReloadRequest("flood"), i), "" }},
		{name: "request: CloudEvent of an unknown type", n: 1000, counted: []string{"n1 requests/invalid"},
			reason: `type "io.example.flood.v1": not a reload request`,
			build: func(int) (*nats.Msg, string) {
				id := uuid.NewString()
				return floodEvent(t, subj.ReloadRequest("flood"), "io.example.flood.v1", id, map[string]any{"module": "flood"}), id
			}},
		{name: "request: bad digest", n: 500, counted: []string{"n1 requests/invalid"},
			reason: `digest "sha256:xyz": want sha256:<64 lowercase hex digits>`,
			build:  request(map[string]any{"module": "flood", "digest": "sha256:xyz", "strategy": "all"})},
		{name: "request: unknown strategy", n: 500, counted: []string{"n1 requests/invalid"},
			reason: `strategy "sometimes": want all, quorum or local`,
			build:  request(map[string]any{"module": "flood", "digest": v2Digest, "strategy": "sometimes"})},
		{name: "request: absurd timeout", n: 500, counted: []string{"n1 requests/invalid"},
			reason: "timeout 9999h0m0s: want more than 0 and at most 1h0m0s",
			build:  request(map[string]any{"module": "flood", "digest": v2Digest, "strategy": "all", "timeout": "9999h"})},
		{name: "request: local without nodes", n: 500, counted: []string{"n1 requests/invalid"},
			reason: "strategy local: nodes must list at least one node",
			build:  request(map[string]any{"module": "flood", "digest": v2Digest, "strategy": "local"})},
		{name: "request: on another module's subject", n: 500, counted: []string{"n1 requests/wrong_subject"},
			reason: `request for module "flood" published on ` + subj.ReloadRequest("elsewhere"),
			build: func(int) (*nats.Msg, string) {
				id := uuid.NewString()
				return floodValid(t, subj.ReloadRequest("elsewhere"), events.TypeReloadRequested, id,
					events.ReloadRequest{Module: "flood", Digest: v2Digest, Strategy: events.StrategyAll}), id
			}},
		{name: "request: over 64 KiB, under the stream limit", n: 100, counted: []string{"n1 requests/invalid"},
			reason: fmt.Sprintf("limit is %d", events.MaxEventBytes),
			build: func(i int) (*nats.Msg, string) {
				m, id := request(map[string]any{})(i)
				return pad(m, events.MaxEventBytes+512), id
			}},
		{name: "request: over the stream limit", n: 250, refused: true,
			build: func(i int) (*nats.Msg, string) {
				m, _ := request(map[string]any{})(i)
				return pad(m, 100<<10), ""
			}},

		// Ack subjects.
		{name: "ack: unknown saga", n: 950, build: func(int) (*nats.Msg, string) {
			id := uuid.NewString()
			unknownSagaAcks[id] = true
			return ack(id, "n1", "n1"), ""
		}},
		{name: "ack: unknown saga, node not the subject's", n: 250, build: func(int) (*nats.Msg, string) {
			id := uuid.NewString()
			unknownSagaAcks[id] = true
			return ack(id, "n1", "n2"), ""
		}},
		{name: "ack: the reload's saga, node not the subject's", n: 500, early: true, counted: []string{"n1 acks/wrong_subject"},
			build: func(i int) (*nats.Msg, string) { return ack(legitID, ids[i%3], ids[(i+1)%3]), "" }},
		{name: "ack: the reload's saga, not a CloudEvent", n: 125, early: true, counted: []string{"n1 acks/malformed"},
			build: func(i int) (*nats.Msg, string) { return garbage(subj.Saga(legitID, events.AckLeaf(ids[i%3])), i), "" }},
		{name: "ack: the reload's saga, invalid payload", n: 125, early: true, counted: []string{"n1 acks/invalid"},
			build: func(i int) (*nats.Msg, string) {
				return floodEvent(t, subj.Saga(legitID, events.AckLeaf(ids[i%3])), events.TypeAck, uuid.NewString(),
					map[string]any{"saga": legitID, "node": ids[i%3], "module": "tool", "phase": "explode", "digest": v2Digest, "ok": true}), ""
			}},

		// Command subjects.
		{name: "command: not a CloudEvent", n: 1000, counted: everyNode("commands/malformed"),
			build: func(i int) (*nats.Msg, string) {
				return garbage(subj.Saga(uuid.NewString(), forgedPhases[i%3]), i), ""
			}},
		{name: "command: invalid payload", n: 1000, counted: everyNode("commands/invalid"),
			build: func(int) (*nats.Msg, string) {
				id := uuid.NewString()
				return floodEvent(t, subj.Saga(id, events.PhasePrepare), events.TypePrepare, uuid.NewString(),
					map[string]any{"saga": id, "module": "flood", "digest": "sha256:nope", "targets": ids, "deadline": deadline}), ""
			}},
		{name: "command: on another saga's subject", n: 500, counted: everyNode("commands/wrong_subject"),
			build: func(int) (*nats.Msg, string) {
				return command(events.TypeAbort, uuid.NewString(), subj.Saga(uuid.NewString(), events.PhaseAbort), v2Digest), ""
			}},
		{name: "command: over the stream limit", n: 150, refused: true, counted: everyNode("commands/malformed"),
			build: func(int) (*nats.Msg, string) {
				id := uuid.NewString()
				return pad(command(events.TypeCommit, id, subj.Saga(id, events.PhaseCommit), v2Digest), 100<<10), ""
			}},
		{name: "command: CloudEvent of an unknown type", n: 250,
			build: func(int) (*nats.Msg, string) {
				return floodEvent(t, subj.Saga(uuid.NewString(), events.PhaseCommit), "io.example.flood.v1", uuid.NewString(), map[string]any{"module": "flood"}), ""
			}},
		{name: "command: forged, for an unknown saga", n: 300,
			build: func(i int) (*nats.Msg, string) {
				id, phase := uuid.NewString(), forgedPhases[i%3]
				forged[id] = phase
				return command(forgedTypes[phase], id, subj.Saga(id, phase), missingDigest), ""
			}},
	}

	// Build the flood and what it must leave behind.
	var early, late []floodMsg
	want := map[string]map[string]float64{}
	wantOutcomes := map[string]*floodKind{} // saga id -> kind
	total, refused := 0, 0
	for k := range kinds {
		kind := &kinds[k]
		for i := range kind.n {
			m, id := kind.build(i)
			if id != "" {
				wantOutcomes[id] = kind
			}
			fm := floodMsg{m: m, refused: kind.refused, kind: kind.name}
			if kind.early {
				early = append(early, fm)
			} else {
				late = append(late, fm)
			}
		}
		for _, where := range kind.counted {
			node, metric, _ := strings.Cut(where, " ")
			if want[node] == nil {
				want[node] = map[string]float64{}
			}
			want[node][metric] += float64(kind.n)
		}
		total += kind.n
		if kind.refused {
			refused += kind.n
		}
	}
	require.Equal(t, 10000, total)

	// A connection of its own, publishing asynchronously from 4 goroutines.
	js, err := jetstream.New(f.srv.Connect(t), jetstream.WithPublishAsyncMaxPending(512), jetstream.WithPublishAsyncTimeout(time.Minute))
	require.NoError(t, err)
	began := time.Now()
	floodPublish(t, js, early, 4, nil)
	var reloadStarted time.Time
	floodPublish(t, js, late, 4, func() {
		reloadStarted = time.Now()
		for _, m := range []*nats.Msg{legit, huge, missing} {
			_, err := f.b.JS.PublishMsg(ctx, m)
			require.NoError(t, err)
		}
	})
	published := time.Since(began)

	// The legitimate reload.
	o := f.outcome(t, legitID)
	reloadTook := time.Since(reloadStarted)
	require.Equal(t, events.ResultCommitted, o.Result, o.Reason)
	require.Len(t, o.Nodes, 3)
	for _, nr := range o.Nodes {
		require.Equal(t, events.NodeCommitted, nr.State, nr.Node)
	}
	require.Equal(t, uint64(1), f.countOutcomes(t, legitID), "exactly one outcome")
	f.waitServing(t, "tool", v2Digest, ids...)
	for _, id := range ids {
		require.Equal(t, "echo v2", connect(t, nodes[id].url).callText(t, "echo", nil), "%s serves v2", id)
	}
	d, _, err := f.b.GetDesired(ctx, "tool", "")
	require.NoError(t, err)
	require.Equal(t, v2Digest, d.Digest)

	// Requests for objects nodes refuse: the nodes' codes in the reasons.
	oh := f.outcome(t, hugeID)
	require.Equal(t, events.ResultAborted, oh.Result)
	require.Contains(t, oh.Reason, "rejected (too_large)")
	require.Contains(t, oh.Reason, fmt.Sprintf("the cap is %d", maxModule))
	om := f.outcome(t, missingID)
	require.Equal(t, events.ResultAborted, om.Result)
	require.Contains(t, om.Reason, "rejected (object_missing)")
	require.Contains(t, om.Reason, "upload it with mcpreload-publisher")

	// The flood is absorbed: poll until every count is in, the request
	// queue is empty and every forged command is answered, then compare
	// exactly.
	ackCounts := func() map[string]uint64 {
		info, err := f.b.Sagas.Info(ctx, jetstream.WithSubjectFilter(subj.Saga("*", "ack.*")))
		require.NoError(t, err)
		return info.State.Subjects
	}
	forgedAcks := func(acks map[string]uint64) int {
		n := 0
		for id := range forged {
			for _, node := range ids {
				n += int(acks[subj.Saga(id, events.AckLeaf(node))])
			}
		}
		return n
	}
	absorbed := time.Now()
	var got map[string]map[string]float64
	var queue, answered int
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for stop := time.Now().Add(2 * time.Minute); time.Now().Before(stop); <-tick.C {
		got = map[string]map[string]float64{}
		for id, n := range nodes {
			if c := discardedEvents(t, n.url); len(c) > 0 {
				got[id] = c
			}
		}
		ci, err := f.b.Requests.Consumer(ctx, bus.ConsumerOrchestrators)
		require.NoError(t, err)
		queue = int(ci.CachedInfo().NumPending) + ci.CachedInfo().NumAckPending
		if !maps.EqualFunc(got, want, maps.Equal) || queue != 0 {
			continue
		}
		// Listing every ack subject is costly: only once the rest is in.
		if answered = forgedAcks(ackCounts()); answered == 3*len(forged) {
			break
		}
	}
	require.Equal(t, want, got, "mcpreload_events_discarded_total by node and stream/reason")
	require.Zero(t, queue, "requests left in the orchestrators' queue")
	require.Equal(t, 3*len(forged), answered, "acks to forged commands")
	t.Logf("flood: %d events published in %v (%d refused by JetStream); the reload committed %v after its request; flood absorbed %v after the reload",
		total, published.Round(time.Millisecond), refused, reloadTook.Round(time.Millisecond), time.Since(absorbed).Round(time.Millisecond))

	// Exactly one outcome per invalid request with an id, and no others.
	info, err := f.b.Sagas.Info(ctx, jetstream.WithSubjectFilter(subj.Saga("*", events.LeafOutcome)))
	require.NoError(t, err)
	outcomes := info.State.Subjects
	for _, id := range []string{first, legitID, hugeID, missingID} {
		require.Equal(t, uint64(1), outcomes[subj.Saga(id, events.LeafOutcome)], "outcome of %s", id)
	}
	for id, kind := range wantOutcomes {
		require.Equal(t, uint64(1), outcomes[subj.Saga(id, events.LeafOutcome)], "outcome of a %q event", kind.name)
	}
	require.Len(t, outcomes, 4+len(wantOutcomes), "no outcome for events without an id, or refused by JetStream")

	// The reasons say what was wrong, for the first request of each kind.
	checked := map[string]bool{}
	for _, id := range slices.Sorted(maps.Keys(wantOutcomes)) {
		kind := wantOutcomes[id]
		if checked[kind.name] {
			continue
		}
		checked[kind.name] = true
		o := f.outcome(t, id)
		require.Equal(t, events.ResultAborted, o.Result, kind.name)
		require.Equal(t, "flood", o.Module, kind.name)
		require.True(t, strings.HasPrefix(o.Reason, "invalid reload request: "), "%s: %s", kind.name, o.Reason)
		require.Contains(t, o.Reason, kind.reason, kind.name)
	}
	require.Len(t, checked, 7, "every kind of invalid request was checked")

	// Acks for unknown sagas were stored, and read by nobody (the counts
	// above have none of them).
	acks := ackCounts()
	for id := range unknownSagaAcks {
		require.Equal(t, uint64(1), acks[subj.Saga(id, events.AckLeaf("n1"))])
	}

	// Forged commands for unknown sagas: answered, nothing changed.
	answers := map[string]events.Ack{}
	for id, phase := range forged {
		if _, done := answers[phase]; done {
			continue
		}
		_, data := rawLastMsg(t, f.nc, f.b.Names.SagaStream, subj.Saga(id, events.AckLeaf("n3")))
		var a events.Ack
		require.NoError(t, json.Unmarshal(data, &a))
		answers[phase] = a
	}
	require.True(t, answers[events.PhaseAbort].OK, "an abort for an unknown saga has nothing to discard: %+v", answers[events.PhaseAbort])
	require.Equal(t, "object_missing", answers[events.PhasePrepare].Code, "%+v", answers[events.PhasePrepare])
	require.True(t, answers[events.PhaseCommit].Stale, "%+v", answers[events.PhaseCommit])
	require.Equal(t, "not_prepared", answers[events.PhaseCommit].Code)
	f.waitServing(t, "tool", v2Digest, ids...)
	for id, n := range nodes {
		for _, m := range scrape(t, n.url)["mcpreload_module_info"].GetMetric() {
			for _, lp := range m.GetLabel() {
				require.False(t, lp.GetName() == "module" && lp.GetValue() == "flood", "%s loaded the forged module", id)
			}
		}
		code, _ := httpGet(t, n.url+"/readyz")
		require.Equal(t, 200, code, "%s still ready", id)
	}
}

// floodMsg is one flood event and whether JetStream must refuse it.
type floodMsg struct {
	m       *nats.Msg
	refused bool
	kind    string
}

// floodPublish publishes msgs with asynchronous JetStream publishes from
// workers goroutines (message i from worker i%workers), calls also (if not
// nil) from the calling goroutine once they are under way, and waits until
// every publish is acknowledged. JetStream must store every message but
// the refused ones, which it must refuse for their size.
func floodPublish(tb testing.TB, js jetstream.JetStream, msgs []floodMsg, workers int, also func()) {
	tb.Helper()
	futures := make([]jetstream.PubAckFuture, len(msgs))
	errs := make([]error, workers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			<-start
			for i := w; i < len(msgs); i += workers {
				futures[i], errs[w] = js.PublishMsgAsync(msgs[i].m, jetstream.WithStallWait(time.Minute))
				if errs[w] != nil {
					return
				}
			}
		})
	}
	close(start)
	if also != nil {
		also()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(tb, err)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(2 * time.Minute):
		tb.Fatalf("%d async publishes still unacknowledged", js.PublishAsyncPending())
	}
	for i, paf := range futures {
		select {
		case <-paf.Ok():
			require.False(tb, msgs[i].refused, "%s: JetStream stored a %d-byte message", msgs[i].kind, len(msgs[i].m.Data))
		case err := <-paf.Err():
			var api *jetstream.APIError
			if msgs[i].refused && errors.As(err, &api) && api.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum {
				continue
			}
			require.NoError(tb, err, "%s", msgs[i].kind)
		}
	}
}

// floodValid encodes a valid mcpreload event.
func floodValid(tb testing.TB, subject, typ, id string, payload any) *nats.Msg {
	tb.Helper()
	e, err := events.New(typ, "urn:test:flood", "flood", payload, events.WithID(id))
	require.NoError(tb, err)
	m, err := events.ToNATS(context.Background(), subject, e)
	require.NoError(tb, err)
	return m
}

// floodEvent encodes a valid CloudEvent of any type with any JSON data,
// bypassing mcpreload's payload validation.
func floodEvent(tb testing.TB, subject, typ, id string, data any) *nats.Msg {
	tb.Helper()
	e := event.New()
	e.SetID(id)
	e.SetType(typ)
	e.SetSource("urn:test:flood")
	e.SetTime(time.Now())
	require.NoError(tb, e.SetData(event.ApplicationJSON, data))
	m, err := events.ToNATS(context.Background(), subject, e)
	require.NoError(tb, err)
	return m
}

// discardedEvents returns a node's mcpreload_events_discarded_total by
// "stream/reason" (empty before anything was discarded).
func discardedEvents(tb testing.TB, url string) map[string]float64 {
	tb.Helper()
	out := map[string]float64{}
	fam, ok := scrape(tb, url)["mcpreload_events_discarded_total"]
	if !ok {
		return out
	}
	for _, m := range fam.Metric {
		l := map[string]string{}
		for _, lp := range m.Label {
			l[lp.GetName()] = lp.GetValue()
		}
		out[l["stream"]+"/"+l["reason"]] = m.GetCounter().GetValue()
	}
	return out
}
