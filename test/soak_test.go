package test

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/events"
	"github.com/mcpreload/mcpreload/internal/bus"
	"github.com/mcpreload/mcpreload/internal/natstest"
	"github.com/mcpreload/mcpreload/internal/wasmgen"
	"github.com/mcpreload/mcpreload/loader"
)

// soakReloads is the number of reloads of TestSoak: 20 in `make test`
// (under -race on a busy 2-core machine the test takes 13-20 s), 200 in
// `make soak`.
var soakReloads = flag.Int("soak.reloads", 20, "reloads in TestSoak (make soak runs 200)")

// Tolerances of TestSoak, between a snapshot after the warm-up and one
// after the traffic stopped and the fleet is idle (both with the MCP
// sessions open and idle HTTP connections closed). They are for the whole
// test process: 5 nodes, the embedded NATS server and the clients. A
// goroutine kept per reload exceeds them at 20 reloads (a server-side
// consumer per saga is 3); noise (timers, connections, the GC) stays
// below. Heap in use grew by 2 MiB over 20 reloads and 17 MiB over 200; a
// heap profile puts it in the NATS server's message-block buffers for the
// growing saga stream, this test's own capture of every log line, and the
// nodes' records of recent sagas (kept a minute past their deadline by
// design). A module version leaked per reload would exceed 64 MiB well
// before 200.
const (
	soakGoroutineTolerance = 20
	soakHeapToleranceMiB   = 64
)

// TestSoak: a 5-node fleet (one orchestrator) under continuous MCP traffic
// (two sessions per node, each calling the tool in a loop, paced by
// soakCallEvery) while -soak.reloads consecutive reloads alternate two
// versions of a stateful tool (tiny modules: each reload drains the calls
// in flight, saves the state and migrates it). Every reload commits on all
// 5 nodes with exactly one outcome; no MCP call fails and every reply is one version's whole
// reply; no session sees its node flip versions more often than there were
// reloads (no flapping back to the old version); the nodes' own call
// metrics agree with the clients; goroutines and heap in use do not grow
// beyond the tolerances above. It logs one parseable line:
//
//	soak: reloads=200 calls=... failed=0 goroutines=A→B heap=X→Y MiB ...
//
// Tiny modules rather than the counter examples: decoding a 3.4 MB Go
// module on 5 nodes at every reload takes 1-3 s under -race on 2 cores,
// which would put 20 reloads past make test's budget.
func TestSoak(t *testing.T) {
	began := time.Now()
	f := soakFleet(t)
	ids := []string{"n1", "n2", "n3", "n4", "n5"}
	nodes := make([]*runningNode, len(ids))
	for i, id := range ids {
		args := []string{"--presence-ttl", soakPresenceTTL.String()}
		if i == 0 {
			args = append(args, "--orchestrator")
		}
		nodes[i] = f.node(t, id, args...)
	}
	f.waitLive(t, ids...)
	const tool = "soak_echo"
	replies := []string{"soak reply from version 1", "soak reply from version 2"}
	versions := make([][]byte, len(replies))
	for i, r := range replies {
		versions[i] = wasmgen.Tiny(wasmgen.Spec{Version: strconv.Itoa(i + 1), Tools: []string{tool}, Reply: r,
			StateSave: "state of version " + strconv.Itoa(i+1), CodeChange: "ok", SpinIterations: 20000})
	}
	var took []time.Duration
	var sagas []string
	reload := func(wasm []byte) {
		t.Helper()
		start := time.Now()
		id, o := soakReload(t, f, "soak", wasm)
		took = append(took, time.Since(start))
		sagas = append(sagas, id)
		require.Equal(t, events.ResultCommitted, o.Result, o.Reason)
		require.Len(t, o.Nodes, len(ids))
		for _, nr := range o.Nodes {
			require.Equal(t, events.NodeCommitted, nr.State, "%s: %s", nr.Node, nr.Message)
		}
	}
	reload(versions[0])
	f.waitServing(t, "soak", loader.DigestOf(versions[0]), ids...)

	const sessionsPerNode = 2
	tr := &soakTraffic{tool: tool, replies: replies}
	for i, n := range nodes {
		for range sessionsPerNode {
			tr.callers = append(tr.callers, &soakCaller{node: ids[i], c: connect(t, n.url)})
		}
	}

	// Warm-up: traffic through one round trip v1 -> v2 -> v1, so that
	// both versions were compiled, cached and migrated on every node.
	stop := tr.start()
	reload(versions[1])
	reload(versions[0])
	stop()
	took = took[:0]
	g0, h0 := soakSnapshot(t)

	soakStart := time.Now()
	stop = tr.start()
	for i := range *soakReloads {
		reload(versions[(i+1)%2])
	}
	stop()
	soakTook := time.Since(soakStart)
	last := (*soakReloads) % 2
	f.waitServing(t, "soak", loader.DigestOf(versions[last]), ids...)

	// No failed call, no flapping.
	require.Empty(t, tr.errs, "%d of %d calls failed", tr.failed.Load(), tr.calls.Load())
	require.Zero(t, tr.failed.Load())
	require.Greater(t, tr.calls.Load(), int64(10*len(tr.callers)), "calls kept running across the reloads")
	for _, c := range tr.callers {
		require.LessOrEqual(t, c.flips, *soakReloads, "a session on %s saw its node change version more often than it was reloaded", c.node)
		require.Equal(t, replies[last], c.c.callText(t, tool, nil), "%s serves the last version", c.node)
	}

	// The nodes counted every call of the clients as ok (and the
	// checks just made), and nothing else.
	var ok float64
	for i, n := range nodes {
		for _, m := range scrape(t, n.url)["mcpreload_tool_calls_total"].GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			require.Equal(t, "ok", labels["outcome"], "%s: %v %s calls", ids[i], m.GetCounter().GetValue(), labels["tool"])
			ok += m.GetCounter().GetValue()
		}
	}
	require.Equal(t, float64(tr.calls.Load()+int64(len(tr.callers))), ok, "calls counted by the nodes")

	// Exactly one outcome per saga, in the saga stream.
	info, err := f.b.Sagas.Info(t.Context(), jetstream.WithSubjectFilter(f.b.Subjects.Saga("*", events.LeafOutcome)))
	require.NoError(t, err)
	require.Len(t, info.State.Subjects, len(sagas), "one outcome subject per saga")
	for _, id := range sagas {
		require.Equal(t, uint64(1), info.State.Subjects[f.b.Subjects.Saga(id, events.LeafOutcome)], "outcomes of saga %s", id)
	}

	g1, h1 := soakSnapshot(t)
	slices.Sort(took)
	t.Logf("soak: reloads=%d calls=%d failed=%d goroutines=%d→%d heap=%.1f→%.1f MiB reload_p50=%v reload_max=%v soak=%v total=%v",
		*soakReloads, tr.calls.Load(), tr.failed.Load(), g0, g1, h0, h1,
		took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond),
		soakTook.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	if g1 > g0+soakGoroutineTolerance {
		var b strings.Builder
		_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
		t.Logf("goroutines at the end:\n%s", b.String())
	}
	require.LessOrEqual(t, g1, g0+soakGoroutineTolerance, "goroutines grew from %d to %d", g0, g1)
	require.LessOrEqual(t, h1, h0+soakHeapToleranceMiB, "heap in use grew from %.1f to %.1f MiB", h0, h1)
}

// soakPresenceTTL is the production default rather than the fleet
// helpers' 3s: the soak requires every node in every saga, and a node whose
// heartbeat a loaded 2-core machine delays past the TTL sits a saga out
// (by design: it converges afterwards).
const soakPresenceTTL = 10 * time.Second

// soakFleet is newFleet with the presence bucket's TTL at soakPresenceTTL
// (the bucket keeps the TTL of whoever creates it first).
func soakFleet(tb testing.TB) *fleet {
	tb.Helper()
	s := natstest.Run(tb)
	nc := s.Connect(tb)
	b, err := bus.Open(context.Background(), nc, bus.Options{PresenceTTL: soakPresenceTTL})
	require.NoError(tb, err)
	return &fleet{srv: s, nc: nc, b: b}
}

// soakReload uploads wasm, publishes a reload request (strategy all) and
// waits for its outcome the way PROTOCOL.md §7 suggests: a core
// subscription to the outcome subject made before publishing. Unlike
// fleet.outcome it leaves no consumer on the server (an ordered consumer
// stays there for its 5-minute inactivity threshold), which would count as
// growth here.
func soakReload(tb testing.TB, f *fleet, module string, wasm []byte) (string, *events.Outcome) {
	tb.Helper()
	ctx := context.Background()
	digest, _, err := f.b.PutModule(ctx, wasm)
	require.NoError(tb, err)
	id := uuid.NewString()
	sub, err := f.nc.SubscribeSync(f.b.Subjects.Saga(id, events.LeafOutcome))
	require.NoError(tb, err)
	defer func() { _ = sub.Unsubscribe() }()
	require.NoError(tb, f.nc.Flush())
	req := events.ReloadRequest{Module: module, Digest: digest, Strategy: events.StrategyAll, Timeout: events.Duration(30 * time.Second)}
	e, err := events.New(events.TypeReloadRequested, "urn:test:soak", module, req, events.WithID(id))
	require.NoError(tb, err)
	m, err := events.ToNATS(ctx, f.b.Subjects.ReloadRequest(module), e)
	require.NoError(tb, err)
	_, err = f.b.JS.PublishMsg(ctx, m)
	require.NoError(tb, err)
	m, err = sub.NextMsg(2 * time.Minute)
	require.NoError(tb, err, "no outcome for saga %s", id)
	oe, err := events.FromNATS(ctx, m)
	require.NoError(tb, err)
	o, err := events.DecodeOutcome(oe)
	require.NoError(tb, err)
	return id, o
}

// soakCaller is one MCP session calling the tool in a loop; only its
// goroutine touches last and flips while it runs.
type soakCaller struct {
	node  string
	c     *client
	last  string // the last reply
	flips int    // reply changes seen since start
}

// soakCallEvery paces each session: 10 sessions make up to 500 calls/s.
const soakCallEvery = 20 * time.Millisecond

// soakTraffic runs every caller in a goroutine of its own until stopped.
type soakTraffic struct {
	tool    string
	replies []string // the replies a call may return
	callers []*soakCaller
	calls   atomic.Int64
	failed  atomic.Int64

	mu   sync.Mutex
	errs []error // the first failures
}

// start starts the callers; the returned func stops them and waits.
func (tr *soakTraffic) start() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, c := range tr.callers {
		c.flips = 0
		wg.Go(func() {
			// At most one call per soakCallEvery: unpaced callers take
			// whatever CPU -race leaves and double the reload time.
			pace := time.NewTicker(soakCallEvery)
			defer pace.Stop()
			for {
				select {
				case <-done:
					return
				case <-pace.C:
				}
				if err := tr.call(c); err != nil {
					tr.failed.Add(1)
					tr.mu.Lock()
					if len(tr.errs) < 10 {
						tr.errs = append(tr.errs, err)
					}
					tr.mu.Unlock()
				}
			}
		})
	}
	return func() {
		close(done)
		wg.Wait()
	}
}

// call makes one call and checks its reply.
func (tr *soakTraffic) call(c *soakCaller) error {
	tr.calls.Add(1)
	res, err := c.c.CallTool(context.Background(), &mcp.CallToolParams{Name: tr.tool})
	if err != nil {
		return fmt.Errorf("%s: %w", c.node, err)
	}
	if len(res.Content) == 0 {
		return fmt.Errorf("%s: empty result", c.node)
	}
	text, _ := res.Content[0].(*mcp.TextContent)
	if text == nil || res.IsError || !slices.Contains(tr.replies, text.Text) {
		return fmt.Errorf("%s: not a version's reply (isError %v): %+v", c.node, res.IsError, res.Content[0])
	}
	if c.last != "" && text.Text != c.last {
		c.flips++
	}
	c.last = text.Text
	return nil
}

// soakSnapshot returns the process's goroutine count, once it has
// settled, and its heap in use after a GC, in MiB. Idle keep-alive
// connections are closed first: how many the pool keeps is noise.
func soakSnapshot(tb testing.TB) (int, float64) {
	tb.Helper()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	g := settledGoroutines(tb)
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return g, float64(ms.HeapInuse) / (1 << 20)
}

// settledGoroutines polls runtime.NumGoroutine every 50ms until it varied
// by at most 2 over the last second, and returns the lowest count of that
// second. Closed connections and finished timers take a moment to leave;
// after 30s it returns the lowest of the last second as it is.
func settledGoroutines(tb testing.TB) int {
	tb.Helper()
	const window = 20
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var samples []int
	for deadline := time.Now().Add(30 * time.Second); ; <-tick.C {
		samples = append(samples, runtime.NumGoroutine())
		if len(samples) > window {
			samples = samples[1:]
		}
		lo, hi := slices.Min(samples), slices.Max(samples)
		if (len(samples) == window && hi-lo <= 2) || time.Now().After(deadline) {
			return lo
		}
	}
}
