package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/mcpreload/mcpreload/events"
	"github.com/mcpreload/mcpreload/internal/bus"
	"github.com/mcpreload/mcpreload/internal/signing"
	"github.com/mcpreload/mcpreload/loader"
	"github.com/mcpreload/mcpreload/saga"
)

// agent is a node's part in the fleet: it answers saga commands (prepare,
// commit, abort, rollback) with acks, heartbeats its presence and the
// digests it serves, reconciles every module to its desired digest (at
// start, on reconnect, and whenever the desired state or a module lock
// changes), and keeps the module cache. All work on one module runs in
// order on that module's queue.
type agent struct {
	n       *Node
	log     zerolog.Logger
	cache   *moduleCache
	trusted signing.Trusted // nil: signatures are not required
	sampled zerolog.Logger  // for events that may arrive in floods
	nc      *nats.Conn
	b       *bus.Bus
	orch    *saga.Orchestrator
	src     string

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started time.Time
	beat    chan struct{} // wakes the heartbeat after a change

	mu       sync.Mutex
	queues   map[string]chan func(context.Context)
	sagas    map[string]*sagaRec
	retrying map[string]bool // modules with a reconcile retry pending
	closed   bool
}

// sagaRec is what the node remembers of one saga, so that repeated
// commands get the same answer.
type sagaRec struct {
	module string
	staged *loader.Staged
	acks   map[string]events.Ack // phase -> the ack sent
	expire *time.Timer
}

func newAgent(n *Node, nc *nats.Conn) (*agent, error) {
	cache, err := newModuleCache(filepath.Join(n.cfg.DataDir, "modules"))
	if err != nil {
		return nil, err
	}
	var trusted signing.Trusted
	if n.cfg.TrustedKeys != "" {
		if trusted, err = signing.LoadTrusted(n.cfg.TrustedKeys); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &agent{trusted: trusted,
		n: n, log: n.log.With().Str("component", "agent").Logger(), cache: cache, nc: nc,
		src: "urn:mcpreload:node:" + n.cfg.ID, ctx: ctx, cancel: cancel, started: time.Now(),
		beat: make(chan struct{}, 1), queues: map[string]chan func(context.Context){}, sagas: map[string]*sagaRec{},
		retrying: map[string]bool{},
	}
	a.sampled = a.log.Sample(&zerolog.BurstSampler{Burst: 5, Period: time.Second})
	n.onChange = a.changed
	return a, nil
}

// loadCache serves the last-known versions from the module cache; it runs
// before NATS is reachable.
func (a *agent) loadCache(ctx context.Context) {
	cur, err := a.cache.current()
	if err != nil {
		a.log.Error().Err(err).Msg("module cache index unreadable; starting empty, will converge from NATS")
	}
	for module, digest := range cur {
		wasm, ok, err := a.cache.get(digest)
		if err != nil || !ok {
			a.log.Error().Err(err).Str("module", module).Str("digest", digest).Msg("cached module missing or corrupt; will fetch it from NATS")
			continue
		}
		if _, err := a.n.Reload(ctx, module, wasm, digest); err == nil {
			a.log.Info().Str("module", module).Str("digest", digest).Msg("serving cached module")
		}
	}
}

// connect opens the bus (retrying until NATS is reachable and JetStream
// answers) and then starts the fleet work. It runs in the background.
func (a *agent) connect() {
	backoff := 100 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(a.ctx, 10*time.Second)
		b, err := bus.Open(ctx, a.nc, bus.Options{Prefix: a.n.cfg.Prefix, Replicas: a.n.cfg.Replicas, PresenceTTL: a.n.cfg.PresenceTTL})
		cancel()
		if err == nil {
			a.b = b
			break
		}
		if a.ctx.Err() != nil {
			return
		}
		a.log.Warn().Err(err).Dur("retry_in", backoff).Msg("NATS not usable yet; serving cached modules meanwhile")
		select {
		case <-a.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
	if err := a.start(); err != nil {
		a.log.Error().Err(err).Msg("fleet mode failed to start; restart the node")
	}
}

func (a *agent) start() error {
	subj := a.b.Subjects
	// Commands arrive on <prefix>.saga.<id>.<phase>; progress, outcomes and
	// acks are not subscribed to (at a thousand nodes they would be a
	// thousand copies of every saga event).
	var subs []*nats.Subscription
	for _, leaf := range []string{events.LeafPrepare, events.LeafCommit, events.LeafAbort, events.LeafRollback} {
		sub, err := a.nc.Subscribe(subj.Saga("*", leaf), a.onCommand)
		if err != nil {
			return err
		}
		subs = append(subs, sub)
	}
	a.wg.Go(func() {
		<-a.ctx.Done()
		for _, sub := range subs {
			_ = sub.Unsubscribe()
		}
	})
	if a.n.cfg.Orchestrator {
		hooks := orchestratorHooks(a.n.log.With().Str("component", "orchestrator").Logger())
		hooks.Discarded = func(stream, reason string) { a.n.metrics.discarded.WithLabelValues(stream, reason).Inc() }
		a.orch = saga.NewOrchestrator(saga.Config{Bus: a.b, Source: "urn:mcpreload:orchestrator:" + a.n.cfg.ID, Lease: a.n.cfg.Lease,
			Hooks: hooks})
		if err := a.orch.Start(a.ctx); err != nil {
			return err
		}
		a.log.Info().Msg("orchestrator running")
	}
	a.nc.SetReconnectHandler(func(c *nats.Conn) {
		a.log.Info().Str("url", c.ConnectedUrlRedacted()).Msg("NATS reconnected; reconciling every module")
		a.mu.Lock()
		defer a.mu.Unlock()
		if !a.closed {
			a.wg.Go(a.reconcileAll)
		}
	})
	a.wg.Go(a.heartbeat)
	a.wg.Go(func() { a.watch(a.b.Desired, true) })
	a.wg.Go(func() { a.watch(a.b.Locks, false) })
	a.log.Info().Str("prefix", subj.Prefix).Msg("joined the fleet")
	return nil
}

// close leaves the fleet: presence removed, commands no longer handled.
func (a *agent) close() {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	if a.orch != nil {
		a.orch.Close()
	}
	if a.b != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = a.b.Nodes.Delete(ctx, a.n.cfg.ID)
		cancel()
	}
	a.cancel()
	a.wg.Wait()
	a.mu.Lock()
	for _, r := range a.sagas {
		if r.expire != nil {
			r.expire.Stop()
		}
		if r.staged != nil {
			a.n.loader.Abort(r.staged)
		}
	}
	a.mu.Unlock()
}

// enqueue runs f on module's queue (in order with all other work on it).
func (a *agent) enqueue(module string, f func(context.Context)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	q, ok := a.queues[module]
	if !ok {
		q = make(chan func(context.Context), 1024)
		a.queues[module] = q
		a.wg.Go(func() {
			for {
				select {
				case <-a.ctx.Done():
					return
				case f := <-q:
					f(a.ctx)
				}
			}
		})
	}
	select {
	case q <- f:
	default:
		a.log.Error().Str("module", module).Msg("module work queue full; dropping work (the desired-state watch will reconcile)")
	}
}

// changed runs (under the module lock) whenever a module's serving
// version changed: it records the version in the module cache before the
// change is acked (a node that restarts after acking a commit serves what
// it acked), and announces it in the next heartbeat.
func (a *agent) changed(module string) {
	a.cacheCurrent(module)
	select {
	case a.beat <- struct{}{}:
	default:
	}
}

// cacheCurrent records module's serving version in the module cache.
func (a *agent) cacheCurrent(module string) {
	digest, err := a.n.loader.Digest(module)
	if err != nil {
		digest = ""
	} else if wasm, err := a.n.loader.Object(module, digest); err == nil {
		if err := a.cache.put(wasm); err != nil {
			a.log.Warn().Err(err).Str("module", module).Msg("cannot write the module cache; a restart without NATS would not serve this version")
		}
	}
	if err := a.cache.setCurrent(module, digest); err != nil {
		a.log.Warn().Err(err).Msg("cannot write the module cache index")
	}
}

func (a *agent) heartbeat() {
	interval := a.n.cfg.PresenceTTL / 3
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		a.putPresence()
		select {
		case <-a.ctx.Done():
			return
		case <-t.C:
		case <-a.beat:
		}
	}
}

func (a *agent) putPresence() {
	p := bus.Presence{Node: a.n.cfg.ID, Modules: map[string]string{}, Versions: map[string]string{},
		Started: a.started, Updated: time.Now()}
	if a.n.listener != nil {
		p.MCP = "http://" + a.n.listener.Addr().String() + "/mcp"
	}
	for _, s := range a.n.loader.Stats() {
		p.Modules[s.Module], p.Versions[s.Module] = s.Digest, s.Version
	}
	b, _ := json.Marshal(p)
	ctx, cancel := context.WithTimeout(a.ctx, 5*time.Second)
	defer cancel()
	if _, err := a.b.Nodes.Put(ctx, a.n.cfg.ID, b); err != nil && a.ctx.Err() == nil {
		a.log.Warn().Err(err).Msg("heartbeat failed; the node may drop out of the live set until NATS answers")
	}
}

// watch follows a bucket and reconciles the module each change concerns.
// Desired keys are "<module>" or "<module>.<node>" (a pin); lock keys are
// "<module>" and matter when a lock is released.
func (a *agent) watch(kv jetstream.KeyValue, desired bool) {
	for a.ctx.Err() == nil {
		w, err := kv.WatchAll(a.ctx)
		if err != nil {
			a.log.Warn().Err(err).Str("bucket", kv.Bucket()).Msg("watch failed; retrying")
			select {
			case <-a.ctx.Done():
				return
			case <-time.After(time.Second):
				continue
			}
		}
		for e := range w.Updates() {
			if e == nil {
				if desired {
					a.reconcileCached()
				}
				continue
			}
			module, node, _ := strings.Cut(e.Key(), ".")
			if node != "" && node != a.n.cfg.ID {
				continue
			}
			if !desired && e.Operation() == jetstream.KeyValuePut {
				continue // a lock taken: nothing to do until it is released
			}
			a.enqueue(module, func(ctx context.Context) { a.reconcile(ctx, module) })
		}
		_ = w.Stop()
	}
}

// reconcileCached reconciles modules the node serves from the bus but that
// have no desired key (their desired state was removed).
func (a *agent) reconcileCached() {
	cur, _ := a.cache.current()
	for module := range cur {
		a.enqueue(module, func(ctx context.Context) { a.reconcile(ctx, module) })
	}
}

// reconcile brings module to its desired digest, unless a saga holds the
// module's lock (the saga decides then).
func (a *agent) reconcile(ctx context.Context, module string) {
	if _, err := a.b.Locks.Get(ctx, module); err == nil {
		return
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		a.log.Warn().Err(err).Str("module", module).Msg("cannot read the module lock; will reconcile on the next change")
		return
	}
	want, _, err := a.b.GetDesired(ctx, module, a.n.cfg.ID)
	if err != nil {
		a.log.Warn().Err(err).Str("module", module).Msg("cannot read the desired version")
		return
	}
	have, _ := a.n.loader.Digest(module)
	switch want.Digest {
	case have:
		return
	case "":
		cached, _ := a.cache.current()
		if _, fromBus := cached[module]; !fromBus || have == "" {
			return
		}
		a.log.Info().Str("module", module).Msg("reconcile: the module has no desired version any more; unloading it")
		_ = a.n.Unload(ctx, module)
		return
	}
	log := a.log.With().Str("module", module).Str("digest", want.Digest).Str("from", have).Logger()
	wasm, err := a.fetchUntil(ctx, want.Digest, time.Now().Add(10*time.Second))
	if err != nil {
		log.Error().Err(err).Str("code", fetchCode(err)).Msg("reconcile: cannot fetch the desired version; still serving the current one")
		if !bus.Permanent(err) {
			a.retryReconcile(module)
		}
		return
	}
	if _, err := a.n.Reload(ctx, module, wasm, want.Digest); err != nil {
		log.Error().Err(err).Str("code", loader.Code(err)).Msg("reconcile: the desired version does not load here; still serving the current one")
		return
	}
	log.Info().Msg("reconciled to the desired version")
}

// retryReconcile reconciles module again later, after a transient failure
// (NATS unreachable): at most one retry is pending per module.
func (a *agent) retryReconcile(module string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed || a.retrying[module] {
		return
	}
	a.retrying[module] = true
	time.AfterFunc(2*time.Second, func() {
		a.mu.Lock()
		delete(a.retrying, module)
		a.mu.Unlock()
		a.enqueue(module, func(ctx context.Context) { a.reconcile(ctx, module) })
	})
}

// reconcileAll reconciles every module with a desired version or in the
// module cache: after a reconnect, changes made while the node was cut off
// are not replayed by the watches.
func (a *agent) reconcileAll() {
	ctx, cancel := context.WithTimeout(a.ctx, 10*time.Second)
	defer cancel()
	modules := map[string]bool{}
	if lister, err := a.b.Desired.ListKeys(ctx); err == nil {
		for k := range lister.Keys() {
			m, node, _ := strings.Cut(k, ".")
			if node == "" || node == a.n.cfg.ID {
				modules[m] = true
			}
		}
	} else {
		a.log.Warn().Err(err).Msg("cannot list desired versions after reconnecting; will reconcile on the next change")
	}
	cached, _ := a.cache.current()
	for m := range cached {
		modules[m] = true
	}
	for m := range modules {
		a.enqueue(m, func(ctx context.Context) { a.reconcile(ctx, m) })
	}
}

// fetch returns a module's bytes from the local cache or the object store.
func (a *agent) fetch(ctx context.Context, digest string) ([]byte, error) {
	if wasm, ok, err := a.cache.get(digest); ok {
		return wasm, nil
	} else if err != nil {
		a.log.Warn().Err(err).Msg("module cache")
	}
	wasm, err := a.b.GetModule(ctx, digest, a.n.cfg.MaxModuleBytes)
	if err != nil {
		return nil, err
	}
	return wasm, nil
}

// fetchUntil fetches like fetch, retrying transient failures (NATS
// reconnecting) until shortly before deadline.
func (a *agent) fetchUntil(ctx context.Context, digest string, deadline time.Time) ([]byte, error) {
	wait := 50 * time.Millisecond
	for {
		wasm, err := a.fetch(ctx, digest)
		if err == nil || bus.Permanent(err) || time.Until(deadline) < 2*wait {
			return wasm, err
		}
		a.log.Warn().Err(err).Str("digest", digest).Msg("fetch failed; retrying")
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, time.Second)
	}
}

// onCommand receives saga commands (core NATS, in order) and queues the
// ones addressed to this node on their module's queue.
func (a *agent) onCommand(m *nats.Msg) {
	e, err := events.FromNATS(a.ctx, m)
	if err != nil {
		a.discard("malformed", m.Subject, err)
		return
	}
	if _, isCmd := events.PhaseOf(e.Type()); !isCmd || e.Type() == events.TypeAck {
		return // progress, outcome
	}
	cmd, err := events.DecodeCommand(e)
	if err != nil {
		a.discard("invalid", m.Subject, err)
		return
	}
	if !slices.Contains(cmd.Targets, a.n.cfg.ID) {
		return
	}
	phase, _ := events.PhaseOf(e.Type())
	if want := a.b.Subjects.Saga(cmd.Saga, phase); m.Subject != want {
		a.discard("wrong_subject", m.Subject, fmt.Errorf("command for saga %s published on %s", cmd.Saga, m.Subject))
		return
	}
	a.enqueue(cmd.Module, func(ctx context.Context) { a.handle(ctx, phase, cmd) })
}

// discard counts a refused command and logs it, at most a few times a
// second (a flood of garbage must not flood the log).
func (a *agent) discard(reason, subject string, err error) {
	a.n.metrics.discarded.WithLabelValues("commands", reason).Inc()
	a.sampled.Warn().Err(err).Str("subject", subject).Str("reason", reason).Msg("ignoring an event on a saga subject")
}

func (a *agent) record(cmd *events.Command) *sagaRec {
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.sagas[cmd.Saga]
	if !ok {
		r = &sagaRec{module: cmd.Module, acks: map[string]events.Ack{}}
		a.sagas[cmd.Saga] = r
		// Forget the saga (and drop anything it staged) a while after its
		// deadline: staged versions no commit or abort reaches expire.
		r.expire = time.AfterFunc(time.Until(cmd.Deadline)+time.Minute, func() {
			a.enqueue(cmd.Module, func(context.Context) { a.forget(cmd.Saga) })
		})
	}
	return r
}

func (a *agent) forget(id string) {
	a.mu.Lock()
	r := a.sagas[id]
	delete(a.sagas, id)
	a.mu.Unlock()
	if r != nil && r.staged != nil {
		a.n.loader.Abort(r.staged)
		a.log.Info().Str("saga", id).Str("module", r.module).Msg("staged version expired without commit or abort; discarded")
	}
}

// handle executes one command and acks it. A repeated command gets the
// same ack again and changes nothing.
func (a *agent) handle(ctx context.Context, phase string, cmd *events.Command) {
	r := a.record(cmd)
	if prev, done := r.acks[phase]; done {
		a.ack(ctx, prev)
		return
	}
	ack := events.Ack{Saga: cmd.Saga, Node: a.n.cfg.ID, Module: cmd.Module, Phase: phase, Digest: cmd.Digest}
	ack.PreviousDigest, _ = a.n.loader.Digest(cmd.Module)
	log := a.log.With().Str("saga", cmd.Saga).Str("module", cmd.Module).Str("digest", cmd.Digest).Str("phase", phase).Logger()
	fail := func(stage, code string, err error) {
		ack.OK, ack.Stage, ack.Code, ack.Message = false, stage, code, err.Error()
	}
	mu := a.n.moduleLock(cmd.Module)
	mu.Lock()
	switch phase {
	case events.PhasePrepare:
		if a.trusted != nil {
			if err := a.trusted.Verify(cmd.Module, cmd.Digest, cmd.Saga, cmd.Signature, cmd.Key); err != nil {
				fail("verify", signing.Code(err), fmt.Errorf("%w; sign it with mcpreload-publisher --sign-key (see docs/RELIABILITY.md)", err))
				break
			}
		}
		wasm := cmd.Inline
		if len(wasm) == 0 || loader.DigestOf(wasm) != cmd.Digest {
			var err error
			if wasm, err = a.fetchUntil(ctx, cmd.Digest, cmd.Deadline); err != nil {
				fail("fetch", fetchCode(err), err)
				break
			}
		}
		staged, err := a.n.prepare(ctx, cmd.Module, wasm, cmd.Digest)
		if err != nil {
			fail(loader.StageOf(err), loader.Code(err), err)
			break
		}
		r.staged, ack.OK = staged, true
	case events.PhaseCommit:
		switch {
		case r.staged != nil:
			staged := r.staged
			r.staged = nil
			if _, err := a.n.commit(ctx, staged); err != nil {
				fail(loader.StageOf(err), loader.Code(err), err)
				break
			}
			ack.OK = true
		case ack.PreviousDigest == cmd.Digest:
			ack.OK = true // already serving it
		default:
			ack.Stale = true
			fail("commit", "not_prepared", errors.New("no version staged for this saga (prepare missed or expired)"))
		}
	case events.PhaseAbort:
		if r.staged != nil {
			a.n.loader.Abort(r.staged)
			r.staged = nil
		}
		ack.OK = true
	case events.PhaseRollback:
		err := a.rollbackTo(ctx, cmd.Module, cmd.Digest)
		switch {
		case err != nil && (bus.Permanent(err) || loader.StageOf(err) == ""):
			fail("fetch", fetchCode(err), err)
		case err != nil:
			fail(loader.StageOf(err), loader.Code(err), err)
		default:
			ack.OK = true
		}
	}
	mu.Unlock()
	r.acks[phase] = ack
	if ack.OK {
		log.Info().Msg("saga command done")
	} else {
		log.Warn().Str("code", ack.Code).Str("reason", ack.Message).Msg("saga command failed")
	}
	a.ack(ctx, ack)
}

// rollbackTo makes module serve digest ("" = unload): a no-op if it does,
// the loader's instant rollback if digest is the old version, else a reload
// of digest. Callers hold the module lock.
func (a *agent) rollbackTo(ctx context.Context, module, digest string) error {
	cur, old, err := a.n.loader.Versions(module)
	switch {
	case err != nil && digest == "":
		return nil
	case err == nil && cur.Digest == digest:
		return nil
	case digest == "":
		return a.n.unload(ctx, module)
	case old != nil && old.Digest == digest:
		_, err := a.n.rollback(ctx, module)
		return err
	}
	wasm, err := a.fetch(ctx, digest)
	if err != nil {
		return err
	}
	staged, err := a.n.prepare(ctx, module, wasm, digest)
	if err != nil {
		return err
	}
	_, err = a.n.commit(ctx, staged)
	return err
}

func fetchCode(err error) string {
	switch {
	case errors.Is(err, bus.ErrNoObject):
		return "object_missing"
	case errors.Is(err, bus.ErrObjectTooLarge):
		return "too_large"
	case errors.Is(err, bus.ErrObjectCorrupt):
		return "object_corrupt"
	}
	return "fetch_failed"
}

func (a *agent) ack(ctx context.Context, ack events.Ack) {
	e, err := events.New(events.TypeAck, a.src, ack.Module, ack)
	if err == nil {
		var m *nats.Msg
		if m, err = events.ToNATS(ctx, a.b.Subjects.Saga(ack.Saga, events.AckLeaf(ack.Node)), e); err == nil {
			_, err = a.b.JS.PublishMsg(ctx, m)
		}
	}
	if err != nil {
		a.log.Error().Err(err).Str("saga", ack.Saga).Str("phase", ack.Phase).Msg("cannot publish the ack; the saga will count it as missing")
	}
}

func orchestratorHooks(log zerolog.Logger) saga.Hooks {
	sampled := log.Sample(&zerolog.BurstSampler{Burst: 5, Period: time.Second})
	return saga.Hooks{
		Started: func(s *saga.State, resumed bool) {
			ev := log.Info()
			if resumed {
				ev = log.Warn()
			}
			ev.Str("saga", s.ID).Str("module", s.Module).Str("digest", s.Digest).Str("strategy", string(s.Strategy)).
				Int("targets", len(s.Nodes)).Bool("resumed", resumed).Str("phase", string(s.Phase)).Msg("saga started")
		},
		Transition: func(from, to *saga.State) {
			if from.Phase != to.Phase {
				log.Info().Str("saga", to.ID).Str("module", to.Module).Str("from", string(from.Phase)).Str("to", string(to.Phase)).Msg("saga phase")
			}
		},
		Finished: func(o events.Outcome) {
			ev := log.Info()
			if o.Result != events.ResultCommitted {
				ev = log.Warn()
			}
			ev.Str("saga", o.Saga).Str("module", o.Module).Str("digest", o.Digest).Str("result", o.Result).Str("reason", o.Reason).
				Dur("took", o.FinishedAt.Sub(o.StartedAt)).Msg("saga finished")
		},
		Rejected: func(id string, err error) {
			sampled.Warn().Str("saga", id).Err(err).Msg("reload request refused")
		},
		Error: func(id string, err error) {
			sampled.Warn().Str("saga", id).Err(err).Msg("saga")
		},
	}
}
