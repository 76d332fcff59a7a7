package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/mcpreload/mcpreload/events"
	"github.com/mcpreload/mcpreload/internal/bus"
	"github.com/mcpreload/mcpreload/internal/node"
	"github.com/mcpreload/mcpreload/internal/publisher"
)

// fleet is what the fleet benchmarks run on: an embedded nats-server with
// JetStream (file storage in a temp dir, a real loopback TCP listener), a
// client connection with the bus on it (the publisher's side), and nodes
// started in this process through node.New and Open, each with its own
// NATS connection, its own data dir and one shared compilation cache.
type fleet struct {
	dir    string
	srv    *server.Server
	nc     *nats.Conn
	b      *bus.Bus
	logs   *logCounter
	nodes  []*fleetNode
	byID   map[string]*fleetNode
	cache  string // the shared wazero compilation cache
	prefix string

	obsMu sync.Mutex
	obs   map[string]*sagaTiming // saga id -> timing, while it is timed
}

type fleetNode struct {
	id string
	n  *node.Node
}

// startFleet starts the server and the publisher's connection; nodes are
// added with addNodes.
func startFleet(ctx context.Context, e *env, name string) (*fleet, error) {
	dir := e.tempDir(name)
	s, err := server.NewServer(&server.Options{
		ServerName: "bench", Host: "127.0.0.1", Port: server.RANDOM_PORT,
		JetStream: true, StoreDir: filepath.Join(dir, "nats"), NoLog: true, NoSigs: true,
		// nats-server caps a stream at 1,000 consumers by default, and
		// every node holds two ordered consumers (the desired and locks
		// bucket watches): past ~1,000 nodes nothing else (the
		// orchestrator's pin listing, a late node's watch) gets one.
		// Lifted here (default_max_consumers: -1) so 1,000 nodes run.
		JetStreamLimits: server.JSLimitOpts{DefaultMaxConsumers: -1},
	})
	if err != nil {
		return nil, err
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, errors.New("embedded nats-server did not start")
	}
	f := &fleet{dir: dir, srv: s, logs: &logCounter{}, byID: map[string]*fleetNode{},
		cache: filepath.Join(dir, "wazero-cache"), prefix: events.DefaultPrefix, obs: map[string]*sagaTiming{}}
	if err := os.MkdirAll(f.cache, 0o755); err != nil {
		f.close()
		return nil, err
	}
	if f.nc, err = nats.Connect(s.ClientURL(), nats.Name("bench publisher"), nats.MaxReconnects(-1)); err != nil {
		f.close()
		return nil, err
	}
	// The resources as nodes create them (default presence TTL).
	if f.b, err = bus.Open(ctx, f.nc, bus.Options{Prefix: f.prefix}); err != nil {
		f.close()
		return nil, err
	}
	if err := f.observe(); err != nil {
		f.close()
		return nil, err
	}
	return f, nil
}

// addNodes starts n more nodes (ids n0000, n0001, ...; the first node of
// the fleet also runs the orchestrator) and waits until all are live.
func (f *fleet) addNodes(ctx context.Context, n int) error {
	first := len(f.nodes)
	added := make([]*fleetNode, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range n {
		id := fmt.Sprintf("n%04d", first+i)
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			added[i], errs[i] = f.startNode(ctx, id, first+i == 0)
		})
	}
	wg.Wait()
	for _, fn := range added {
		if fn != nil {
			f.nodes = append(f.nodes, fn)
			f.byID[fn.id] = fn
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return f.waitLive(ctx, len(f.nodes), 3*time.Minute)
}

func (f *fleet) startNode(ctx context.Context, id string, orchestrator bool) (*fleetNode, error) {
	data := filepath.Join(f.dir, "nodes", id)
	if err := os.MkdirAll(filepath.Join(data, "cache"), 0o755); err != nil {
		return nil, err
	}
	if err := os.Symlink(f.cache, filepath.Join(data, "cache", "wazero")); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, err
	}
	args := []string{"--id", id, "--nats-url", f.srv.ClientURL(), "--data-dir", data,
		"--mcp-listen", "127.0.0.1:0", "--log-format", "json", "--prefix", f.prefix}
	if orchestrator {
		args = append(args, "--orchestrator")
	}
	cfg, err := node.ParseFlags(args, func(string) string { return "" }, io.Discard)
	if err != nil {
		return nil, err
	}
	// The node's own logger, as node.Main builds it (JSON, info level),
	// writing to a sink that keeps only warnings and errors.
	log := zerolog.New(f.logs).With().Timestamp().Str("node", id).Logger().Level(zerolog.InfoLevel)
	n, err := node.New(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	if err := n.Open(ctx); err != nil {
		_ = n.Close(context.Background())
		return nil, fmt.Errorf("node %s: %w", id, err)
	}
	return &fleetNode{id: id, n: n}, nil
}

// waitLive waits until want nodes have a presence key.
func (f *fleet) waitLive(ctx context.Context, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		got, err := f.liveCount(ctx)
		if err == nil && got >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d nodes live after %s (last error: %v; node warnings: %s)", got, want, timeout, err, f.logs.summary())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (f *fleet) liveCount(ctx context.Context) (int, error) {
	lister, err := f.b.Nodes.ListKeys(ctx)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return 0, nil
		}
		return 0, err
	}
	n := 0
	for range lister.Keys() {
		n++
	}
	return n, nil
}

// ids returns the ids of the first n nodes.
func (f *fleet) ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = f.nodes[i].id
	}
	return out
}

// closeNodes stops every node, a few at a time.
func (f *fleet) closeNodes() {
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, fn := range f.nodes {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			_ = fn.n.Close(context.Background())
		})
	}
	wg.Wait()
	f.nodes, f.byID = nil, map[string]*fleetNode{}
}

func (f *fleet) close() {
	f.closeNodes()
	if f.nc != nil {
		f.nc.Close()
	}
	f.srv.Shutdown()
	f.srv.WaitForShutdown()
}

// put uploads wasm to the object store (outside any timing).
func (f *fleet) put(ctx context.Context, wasm []byte) (string, error) {
	d, _, err := f.b.PutModule(ctx, wasm)
	return d, err
}

// sagaTiming is one reload: when it was published, when the publisher's
// connection received the outcome, and when each event of the saga was
// made (the CloudEvents time of the commands, acks and outcome, set by the
// orchestrator and the nodes, all in this process). Creation times do not
// depend on when the observing goroutine gets scheduled, which on 2 busy
// cores can be tens of milliseconds late.
type sagaTiming struct {
	start       time.Time // publisher.Publish called
	prepare     time.Time // first prepare command made
	commit      time.Time // first commit command made
	acks        []time.Time
	outcomeMade time.Time
	outcome     time.Time     // outcome event received
	followed    time.Time     // publisher.Follow returned (follow mode only)
	cpu         time.Duration // process CPU time (user+sys) from publish to outcome
	result      *events.Outcome
	outcomeCh   chan struct{}
}

func (t *sagaTiming) follow() bool { return !t.followed.IsZero() }

// total is the reload's latency: publish to outcome received, on the
// subscription or by publisher.Follow.
func (t *sagaTiming) total() time.Duration {
	if t.follow() {
		return t.followed.Sub(t.start)
	}
	return t.outcome.Sub(t.start)
}

// steps splits a two-phase saga (strategy all or local) into: publish ->
// prepare command made, -> last prepare ack made, -> commit command made,
// -> last commit ack made, -> outcome made, -> outcome received. ok is
// false if the saga did not have that shape.
func (t *sagaTiming) steps() (d [6]time.Duration, ok bool) {
	if t.prepare.IsZero() || t.commit.IsZero() || t.outcomeMade.IsZero() {
		return d, false
	}
	var lastPrep, lastCommit time.Time
	for _, a := range t.acks {
		switch {
		case a.Before(t.commit) && a.After(lastPrep):
			lastPrep = a
		case !a.Before(t.commit) && a.After(lastCommit):
			lastCommit = a
		}
	}
	if lastPrep.IsZero() || lastCommit.IsZero() {
		return d, false
	}
	return [6]time.Duration{t.prepare.Sub(t.start), lastPrep.Sub(t.prepare), t.commit.Sub(lastPrep),
		lastCommit.Sub(t.commit), t.outcomeMade.Sub(lastCommit), t.outcome.Sub(t.outcomeMade)}, true
}

// eventTime is the CloudEvents time of a binary-mode event (its ce-time
// header), without decoding the event.
func eventTime(m *nats.Msg) time.Time {
	v, err := url.PathUnescape(m.Header.Get("ce-time"))
	if err != nil {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339Nano, v)
	return t
}

// observe subscribes the publisher's connection to every saga subject and
// records, for the saga being timed, when each command, ack and the
// outcome was made, and when the outcome arrived. Only outcomes are
// decoded.
func (f *fleet) observe() error {
	_, err := f.nc.Subscribe(f.b.Subjects.SagaWildcard(), func(m *nats.Msg) {
		now := time.Now()
		id, leaf, ok := f.b.Subjects.ParseSaga(m.Subject)
		if !ok {
			return
		}
		f.obsMu.Lock()
		defer f.obsMu.Unlock()
		t := f.obs[id]
		if t == nil {
			return
		}
		switch {
		case leaf == events.LeafPrepare && t.prepare.IsZero():
			t.prepare = eventTime(m)
		case leaf == events.LeafCommit && t.commit.IsZero():
			t.commit = eventTime(m)
		case strings.HasPrefix(leaf, "ack."):
			t.acks = append(t.acks, eventTime(m))
		case leaf == events.LeafOutcome && t.outcome.IsZero():
			t.outcome, t.outcomeMade = now, eventTime(m)
			if e, err := events.FromNATS(context.Background(), m); err == nil {
				t.result, _ = events.DecodeOutcome(e)
			}
			close(t.outcomeCh)
		}
	})
	if err != nil {
		return err
	}
	return f.nc.Flush()
}

// reload publishes a request for digest (already stored) exactly as
// mcpreload-publisher does (publisher.Publish) and waits for the outcome:
// on the observing subscription, or, with follow, through publisher.Follow
// (what the CLI waits with). It fails unless the saga committed.
func (f *fleet) reload(ctx context.Context, module, digest string, strategy events.Strategy, nodes []string, follow bool) (*sagaTiming, error) {
	id := uuid.NewString()
	req := events.ReloadRequest{Module: module, Digest: digest, Strategy: strategy, Nodes: nodes,
		Timeout: events.Duration(2 * time.Minute)}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	t := &sagaTiming{outcomeCh: make(chan struct{})}
	f.obsMu.Lock()
	f.obs[id] = t
	f.obsMu.Unlock()
	defer func() {
		f.obsMu.Lock()
		delete(f.obs, id)
		f.obsMu.Unlock()
	}()
	cpu0 := cpuTime()
	t.start = time.Now()
	if err := publisher.Publish(ctx, f.b, req, id, ""); err != nil {
		return nil, err
	}
	if follow {
		out, err := publisher.Follow(ctx, f.b, id, nil)
		if err != nil {
			return nil, fmt.Errorf("saga %s: %w (node warnings: %s)", id, err, f.logs.summary())
		}
		t.followed = time.Now()
		if out.Result != events.ResultCommitted {
			return nil, fmt.Errorf("saga %s: %s: %s", id, out.Result, out.Reason)
		}
	}
	select {
	case <-t.outcomeCh:
	case <-ctx.Done():
		return nil, fmt.Errorf("saga %s: no outcome: %w (node warnings: %s)", id, ctx.Err(), f.logs.summary())
	}
	t.cpu = cpuTime() - cpu0
	f.obsMu.Lock()
	defer f.obsMu.Unlock()
	if t.result == nil {
		return nil, fmt.Errorf("saga %s: undecodable outcome", id)
	}
	if t.result.Result != events.ResultCommitted {
		return nil, fmt.Errorf("saga %s: %s: %s", id, t.result.Result, t.result.Reason)
	}
	return t, nil
}

// settle waits, outside any timing, until the given nodes serve digest
// (quorum's leftovers converge through the desired state after the
// outcome) and the module's saga lock is released, so one repetition never
// pays for the previous one.
func (f *fleet) settle(ctx context.Context, module, digest string, nodes []string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for _, id := range nodes {
		n := f.byID[id].n
		for {
			if d, _ := n.Loader().Digest(module); d == digest {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("node %s does not serve %s %s (node warnings: %s)", id, module, digest, f.logs.summary())
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	for {
		_, err := f.b.Locks.Get(ctx, module)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lock on %s not released: %v", module, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return f.quiesce(ctx)
}

// quiesce waits (up to 30s) until the process and the server are back to
// idle: after a saga every node reacts to the lock's release and the
// desired state change (reconciles, heartbeats), and retires the version
// it replaced; the next repetition must not pay for that. Idle means, over
// 50ms, no more messages than heartbeats send and under 10ms of CPU.
func (f *fleet) quiesce(ctx context.Context) error {
	const window = 50 * time.Millisecond
	idleMsgs := int64(10 + len(f.nodes)/20)
	deadline := time.Now().Add(30 * time.Second)
	prevMsgs, prevCPU := int64(-1), time.Duration(0)
	for time.Now().Before(deadline) {
		v, err := f.srv.Varz(nil)
		if err != nil {
			return err
		}
		cpu := cpuTime()
		if prevMsgs >= 0 && v.InMsgs-prevMsgs <= idleMsgs && cpu-prevCPU < window/5 {
			return nil
		}
		prevMsgs, prevCPU = v.InMsgs, cpu
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(window):
		}
	}
	return nil // busy for 30s: measure anyway
}

// cpuTime is the CPU time (user+sys) the process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// logCounter is the nodes' log sink: info and debug lines are encoded (as
// a real node does) and dropped; warnings and errors are counted and the
// last one kept, so a run can say whether nodes complained.
type logCounter struct {
	warn atomic.Int64
	mu   sync.Mutex
	last string
}

func (l *logCounter) Write(p []byte) (int, error) { return len(p), nil }

func (l *logCounter) WriteLevel(level zerolog.Level, p []byte) (int, error) {
	if level >= zerolog.WarnLevel {
		l.warn.Add(1)
		l.mu.Lock()
		l.last = string(bytes.TrimSpace(p))
		l.mu.Unlock()
	}
	return len(p), nil
}

func (l *logCounter) summary() string {
	n := l.warn.Load()
	if n == 0 {
		return "none"
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("%d, last: %s", n, l.last)
}
