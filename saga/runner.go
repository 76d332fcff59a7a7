package saga

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mcpreload/mcpreload/events"
	"github.com/mcpreload/mcpreload/internal/bus"
	"github.com/mcpreload/mcpreload/internal/names"
)

// Defaults of Config.
const (
	// DefaultLease is how long a request stays owned by an orchestrator
	// without a keep-alive: an orchestrator that dies loses its sagas to
	// another one after at most this long.
	DefaultLease = 10 * time.Second
	// lockRetry is how soon a request for a module locked by another saga
	// is offered again.
	lockRetry = 100 * time.Millisecond
)

// Hooks let the binary log what the orchestrator does; the package itself
// never logs. Every hook is optional and must not block.
type Hooks struct {
	Started    func(s *State, resumed bool)
	Transition func(from, to *State)
	Finished   func(o events.Outcome)
	Rejected   func(id string, err error) // a request that cannot start a saga
	Error      func(id string, err error) // an operational error, the saga goes on or is resumed later
	// Discarded counts an event refused on arrival: stream is "acks" or
	// "requests", reason "malformed", "invalid" or "wrong_subject".
	Discarded func(stream, reason string)
}

// Config configures an Orchestrator.
type Config struct {
	Bus *bus.Bus
	// Source is the CloudEvents source of the events it publishes.
	Source string
	// Lease: see DefaultLease.
	Lease time.Duration
	// Now is the clock (default time.Now).
	Now   func() time.Time
	Hooks Hooks
}

// MaxRequestAge is how old a request may be when an orchestrator first takes
// it up: as long as mcpreload-publisher waits for an outcome (three phases
// of the request's timeout, plus 10 s).
func MaxRequestAge(timeout time.Duration) time.Duration {
	if timeout <= 0 {
		timeout = events.DefaultTimeout
	}
	return 3*timeout + 10*time.Second
}

// Orchestrator runs sagas for the reload requests JetStream hands it. Any
// number may run against one NATS deployment: they share one durable
// consumer, each request goes to one of them, and a saga whose owner stops
// (or dies: its lease lapses) is resumed by another from its persisted state.
type Orchestrator struct {
	cfg  Config
	b    *bus.Bus
	cons jetstream.ConsumeContext

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	inline sync.Map // saga id -> []byte: a small module sent with its prepare commands
}

// NewOrchestrator returns an orchestrator; Start begins consuming.
func NewOrchestrator(cfg Config) *Orchestrator {
	if cfg.Lease == 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Source == "" {
		cfg.Source = "urn:mcpreload:orchestrator"
	}
	return &Orchestrator{cfg: cfg, b: cfg.Bus}
}

// Start creates (idempotently) the shared consumer and starts taking
// requests.
func (o *Orchestrator) Start(ctx context.Context) error {
	cons, err := o.b.Requests.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       bus.ConsumerOrchestrators,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.cfg.Lease,
		MaxDeliver:    -1,
		MaxAckPending: 10000,
		FilterSubject: o.b.Subjects.ReloadRequestAll(),
		Description:   "mcpreload orchestrators (shared)",
	})
	if err != nil {
		return fmt.Errorf("orchestrator consumer: %w", err)
	}
	o.ctx, o.cancel = context.WithCancel(context.Background())
	cc, err := cons.Consume(o.handle, jetstream.PullMaxMessages(64))
	if err != nil {
		o.cancel()
		return fmt.Errorf("orchestrator consume: %w", err)
	}
	o.cons = cc
	return nil
}

// Close stops taking requests and stops running sagas without finishing
// them: their requests are handed back at once, so another orchestrator
// resumes them from their persisted state. Close waits for its goroutines.
func (o *Orchestrator) Close() {
	if o.cons != nil {
		o.cons.Stop()
		<-o.cons.Closed()
	}
	if o.cancel != nil {
		o.cancel()
	}
	o.wg.Wait()
}

// handle runs for each request, serially: it takes the module lock in
// arrival order, then runs the saga in its own goroutine.
func (o *Orchestrator) handle(m jetstream.Msg) {
	ctx := o.ctx
	e, err := events.FromNATS(ctx, &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
	var req *events.ReloadRequest
	if err == nil {
		req, err = events.DecodeReloadRequest(e)
	}
	if err != nil {
		o.discarded("requests", "invalid")
		// An event that did not decode still names its id in the
		// deduplication header: answer it there.
		id := m.Headers().Get(jetstream.MsgIDHeader)
		if e != nil {
			id = e.ID()
		}
		o.reject(ctx, m, id, err)
		return
	}
	id := e.ID()
	if want := o.b.Subjects.ReloadRequest(req.Module); m.Subject() != want {
		o.discarded("requests", "wrong_subject")
		o.reject(ctx, m, id, fmt.Errorf("request for module %q published on %s, want %s", req.Module, m.Subject(), want))
		return
	}
	st, rev, err := o.loadState(ctx, id)
	if err != nil {
		o.hookError(id, err)
		_ = m.NakWithDelay(lockRetry)
		return
	}
	if st == nil {
		// A request nobody took up while its publisher was waiting (no
		// orchestrator ran) is not started late and unexpectedly.
		if md, err := m.Metadata(); err == nil {
			if age, limit := o.cfg.Now().Sub(md.Timestamp), MaxRequestAge(time.Duration(req.Timeout)); age > limit {
				// An owner that died between locking and persisting left
				// the lock under this saga's id: release it.
				o.unlock(ctx, req.Module, id)
				o.reject(ctx, m, id, fmt.Errorf("request expired: published %v ago, after %v no publisher is waiting any more; publish it again", age.Round(time.Second), limit))
				return
			}
		}
	}
	if st == nil || !st.Phase.Terminal() {
		held, err := o.lock(ctx, req.Module, id)
		if err != nil {
			o.hookError(id, err)
			_ = m.NakWithDelay(lockRetry)
			return
		}
		if !held { // another saga runs on this module: serialize
			_ = m.NakWithDelay(lockRetry)
			return
		}
	}
	o.wg.Go(func() { o.run(m, id, req, st, rev) })
}

// reject ends a request that cannot become a saga with a failed outcome
// (when it has a usable id) and removes it from the queue.
func (o *Orchestrator) reject(ctx context.Context, m jetstream.Msg, id string, err error) {
	if events.ValidateID(id) != nil {
		id = ""
	}
	if o.cfg.Hooks.Rejected != nil {
		o.cfg.Hooks.Rejected(id, err)
	}
	if id != "" {
		now := o.cfg.Now()
		out := events.Outcome{Saga: id, Module: "unknown", Result: events.ResultAborted, Strategy: events.StrategyAll,
			Reason: "invalid reload request: " + err.Error(), StartedAt: now, FinishedAt: now}
		var rr struct {
			Module string `json:"module"`
			Digest string `json:"digest"`
		}
		if json.Unmarshal(m.Data(), &rr) == nil {
			if names.Module(rr.Module) {
				out.Module = rr.Module
			}
			if names.Digest(rr.Digest) {
				out.Digest = rr.Digest
			}
		}
		_ = o.publishOutcome(ctx, out)
	}
	_ = m.TermWithReason(err.Error())
}

// lock takes the module's lock for saga id; false if another saga holds it.
func (o *Orchestrator) lock(ctx context.Context, module, id string) (bool, error) {
	_, err := o.b.Locks.Create(ctx, module, []byte(id))
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return false, fmt.Errorf("lock %s: %w", module, err)
	}
	e, err := o.b.Locks.Get(ctx, module)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil // released meanwhile: the retry will take it
	}
	if err != nil {
		return false, fmt.Errorf("lock %s: %w", module, err)
	}
	return string(e.Value()) == id, nil
}

func (o *Orchestrator) unlock(ctx context.Context, module, id string) {
	e, err := o.b.Locks.Get(ctx, module)
	if err != nil || string(e.Value()) != id {
		return
	}
	if err := o.b.Locks.Delete(ctx, module, jetstream.LastRevision(e.Revision())); err != nil {
		o.hookError(id, fmt.Errorf("release lock %s: %w", module, err))
	}
}

func (o *Orchestrator) loadState(ctx context.Context, id string) (*State, uint64, error) {
	e, err := o.b.State.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("saga state %s: %w", id, err)
	}
	var s State
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		return nil, 0, fmt.Errorf("saga state %s: %w", id, err)
	}
	return &s, e.Revision(), nil
}

// errLostOwnership stops a saga whose state another orchestrator updated.
var errLostOwnership = errors.New("another orchestrator owns the saga now")

// run drives one saga to its end, or until the orchestrator closes or loses
// the saga to another owner.
func (o *Orchestrator) run(m jetstream.Msg, id string, req *events.ReloadRequest, st *State, rev uint64) {
	ctx, cancel := context.WithCancel(o.ctx)
	defer cancel()
	finished := false
	defer func() {
		if !finished && o.ctx.Err() != nil {
			// Closing: hand the request back for another owner at once.
			_ = m.Nak()
		}
	}()

	// Keep the request (the lease on the saga) while the saga runs.
	go func() {
		t := time.NewTicker(o.cfg.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = m.InProgress()
			}
		}
	}()

	inbox := make(chan Event, 256)
	acks, ackCons, err := o.followAcks(ctx, id, inbox)
	if err != nil {
		o.hookError(id, err)
		_ = m.NakWithDelay(lockRetry)
		return
	}
	defer func() {
		acks.Stop()
		// Stop leaves the consumer on the server until its inactivity
		// threshold; a finished saga's is deleted at once.
		if info := ackCons.CachedInfo(); info != nil {
			dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = o.b.JS.DeleteConsumer(dctx, o.b.Names.SagaStream, info.Name)
			dcancel()
		}
	}()

	var fx []Effect
	if st == nil {
		start, err := o.startEvent(ctx, id, req)
		if err != nil {
			o.hookError(id, err)
			_ = m.NakWithDelay(lockRetry)
			return
		}
		st, fx = Step(nil, start)
		fx = coalesce(fx)
		b, _ := json.Marshal(st)
		if rev, err = o.b.State.Create(ctx, id, b); err != nil {
			o.hookError(id, fmt.Errorf("persist saga state: %w", err))
			_ = m.NakWithDelay(lockRetry)
			return
		}
		o.hookStarted(st, false)
	} else {
		fx = Resume(st)
		o.hookStarted(st, true)
	}

	timers := map[time.Time]*time.Timer{}
	defer func() {
		for _, t := range timers {
			t.Stop()
		}
	}()
	// Commands travel on core NATS: a node that was reconnecting at that
	// moment misses one. Until the phase is decided, repeat the current
	// phase's commands to the targets that have not answered (nodes answer
	// a repeat with the same ack).
	resend := time.NewTicker(resendInterval)
	defer resend.Stop()
	for {
		var done bool
		var follow []Event
		done, follow, err = o.perform(ctx, m, st, fx, inbox, timers)
		if err != nil {
			o.hookError(id, err)
			return
		}
		if done {
			finished = true
			return
		}
		var batch []Event
		if len(follow) > 0 {
			batch = follow
		} else {
			select {
			case <-ctx.Done():
				return
			case <-resend.C:
				for _, f := range Resume(st) {
					if send, ok := f.(Send); ok {
						if err := o.send(ctx, st, send); err != nil {
							o.hookError(id, err)
						}
					}
				}
				fx = nil // the loop performs fx first: nothing new to perform
				continue
			case ev := <-inbox:
				batch = append(batch, ev)
			}
			// Take whatever else arrived meanwhile: one state write for a
			// burst of acks instead of one per ack.
		drain:
			for len(batch) < maxBatch {
				select {
				case ev := <-inbox:
					batch = append(batch, ev)
				default:
					break drain
				}
			}
		}
		next, nfx := StepBatch(st, batch)
		if next == st {
			fx = nil
			continue
		}
		b, _ := json.Marshal(next)
		rev, err = o.b.State.Update(ctx, id, b, rev)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			o.hookError(id, errLostOwnership)
			return
		}
		if err != nil {
			// Not persisted: the effects must not happen. Give the saga
			// up; whoever takes the request next resumes from the last
			// persisted state.
			o.hookError(id, fmt.Errorf("persist saga state: %w", err))
			_ = m.NakWithDelay(lockRetry)
			return
		}
		if o.cfg.Hooks.Transition != nil {
			o.cfg.Hooks.Transition(st, next)
		}
		st, fx = next, coalesce(nfx)
	}
}

// resendInterval is how often unanswered commands are repeated.
const resendInterval = 2 * time.Second

// maxBatch bounds how many events one state write covers.
const maxBatch = 4096

// coalesce merges Send effects of the same phase, digest and deadline into
// one command with all their targets (a quorum's late commits, a local
// saga's per-node commits), placed where the last of them was, so a node's
// pin still precedes its commit.
func coalesce(fx []Effect) []Effect {
	type key struct {
		phase, digest string
		deadline      time.Time
	}
	count := map[key]int{}
	for _, f := range fx {
		if s, ok := f.(Send); ok {
			count[key{s.Phase, s.Digest, s.Deadline}]++
		}
	}
	if len(count) == 0 {
		return fx
	}
	merged := map[key][]string{}
	out := make([]Effect, 0, len(fx))
	for _, f := range fx {
		s, ok := f.(Send)
		if !ok {
			out = append(out, f)
			continue
		}
		k := key{s.Phase, s.Digest, s.Deadline}
		merged[k] = append(merged[k], s.Targets...)
		if count[k]--; count[k] == 0 {
			s.Targets = merged[k]
			out = append(out, s)
		}
	}
	return out
}

// startEvent gathers what the machine needs to start: live nodes with
// their digests of the module, the desired digest, and the object's presence.
func (o *Orchestrator) startEvent(ctx context.Context, id string, req *events.ReloadRequest) (Start, error) {
	var live map[string]bus.Presence
	var err error
	if len(req.Nodes) > 0 {
		live, err = o.b.NamedNodes(ctx, req.Nodes)
	} else {
		live, err = o.b.LiveNodes(ctx)
	}
	if err != nil {
		return Start{}, fmt.Errorf("live nodes: %w", err)
	}
	digests := make(map[string]string, len(live))
	for node, p := range live {
		digests[node] = p.Modules[req.Module]
	}
	d, _, err := o.b.GetDesired(ctx, req.Module, "")
	if err != nil {
		return Start{}, err
	}
	return Start{Now: o.cfg.Now(), ID: id, Request: *req, Live: digests, Desired: d.Digest}, nil
}

// followAcks feeds the saga's acks, from the first one on (so a resumed
// saga sees acks its previous owner missed), into inbox.
func (o *Orchestrator) followAcks(ctx context.Context, id string, inbox chan<- Event) (jetstream.ConsumeContext, jetstream.Consumer, error) {
	oc, err := o.b.JS.OrderedConsumer(ctx, o.b.Names.SagaStream, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{o.b.Subjects.Saga(id, "ack.>")},
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: time.Minute,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("follow acks: %w", err)
	}
	// Short heartbeats: a consumer lost with its server (a cluster leader
	// change) is noticed and recreated in seconds, not after the default 10.
	cc, err := oc.Consume(func(m jetstream.Msg) {
		e, err := events.FromNATS(ctx, &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
		if err != nil {
			o.discarded("acks", "malformed")
			o.hookError(id, fmt.Errorf("ignoring malformed ack on %s: %w", m.Subject(), err))
			return
		}
		a, err := events.DecodeAck(e)
		if err != nil {
			o.discarded("acks", "invalid")
			o.hookError(id, fmt.Errorf("ignoring invalid ack on %s: %w", m.Subject(), err))
			return
		}
		if want := o.b.Subjects.Saga(id, events.AckLeaf(a.Node)); m.Subject() != want || a.Saga != id {
			o.discarded("acks", "wrong_subject")
			o.hookError(id, fmt.Errorf("ignoring ack from %s for saga %s published on %s", a.Node, a.Saga, m.Subject()))
			return
		}
		select {
		case inbox <- AckReceived{Now: o.cfg.Now(), Ack: *a}:
		case <-ctx.Done():
		}
	}, jetstream.PullExpiry(3*time.Second), jetstream.PullHeartbeat(time.Second))
	if err != nil {
		return nil, nil, fmt.Errorf("follow acks: %w", err)
	}
	return cc, oc, nil
}

// perform carries out effects in order. It returns done once the saga's
// Finish was performed, and events to feed back (a desired-state conflict).
func (o *Orchestrator) perform(ctx context.Context, m jetstream.Msg, st *State, fx []Effect, inbox chan Event, timers map[time.Time]*time.Timer) (bool, []Event, error) {
	for _, f := range fx {
		switch f := f.(type) {
		case Send:
			if err := o.send(ctx, st, f); err != nil {
				return false, nil, err
			}
		case SetDesired:
			found, conflict, err := o.setDesired(ctx, st, f)
			if err != nil {
				return false, nil, err
			}
			if conflict && st.Phase == Committing {
				return false, []Event{DesiredConflict{Now: o.cfg.Now(), Found: found}}, nil
			}
			if conflict && o.cfg.Hooks.Error != nil {
				o.cfg.Hooks.Error(st.ID, fmt.Errorf("desired %s is %q, not %q as the saga expected: left as it is", st.Module, found, f.Expect))
			}
		case SetPin:
			key := bus.PinKey(st.Module, f.Node)
			var err error
			if f.Digest == "" {
				err = o.b.Desired.Delete(ctx, key)
				if errors.Is(err, jetstream.ErrKeyNotFound) {
					err = nil
				}
			} else {
				b, _ := json.Marshal(bus.Desired{Digest: f.Digest, Saga: st.ID, Updated: o.cfg.Now()})
				_, err = o.b.Desired.Put(ctx, key, b)
			}
			if err != nil {
				return false, nil, fmt.Errorf("pin %s on %s: %w", st.Module, f.Node, err)
			}
		case Progress:
			o.progress(ctx, st, f)
		case SetTimer:
			if _, ok := timers[f.At]; !ok {
				at := f.At
				timers[at] = time.AfterFunc(time.Until(at), func() {
					select {
					case inbox <- Tick{Now: o.cfg.Now()}:
					case <-ctx.Done():
					}
				})
			}
		case Finish:
			if f.Outcome.Result == events.ResultCommitted && st.Strategy != events.StrategyLocal {
				if err := o.clearPins(ctx, st); err != nil {
					return false, nil, err
				}
			}
			if err := o.publishOutcome(ctx, f.Outcome); err != nil {
				return false, nil, err
			}
			o.unlock(ctx, st.Module, st.ID)
			o.inline.Delete(st.ID)
			if err := m.DoubleAck(ctx); err != nil {
				o.hookError(st.ID, fmt.Errorf("ack request: %w", err))
			}
			if o.cfg.Hooks.Finished != nil {
				o.cfg.Hooks.Finished(f.Outcome)
			}
			return true, nil, nil
		}
	}
	return false, nil, nil
}

var commandTypes = map[string]string{
	events.PhasePrepare:  events.TypePrepare,
	events.PhaseCommit:   events.TypeCommit,
	events.PhaseAbort:    events.TypeAbort,
	events.PhaseRollback: events.TypeRollback,
}

func (o *Orchestrator) send(ctx context.Context, st *State, f Send) error {
	cmd := events.Command{Saga: st.ID, Module: st.Module, Digest: f.Digest, Targets: f.Targets, Deadline: f.Deadline}
	if f.Phase == events.PhasePrepare {
		cmd.Signature, cmd.Key = st.Signature, st.Key
		cmd.Inline = o.inlined(ctx, st)
	}
	e, err := events.New(commandTypes[f.Phase], o.cfg.Source, st.Module, cmd)
	if err != nil {
		return fmt.Errorf("%s command: %w", f.Phase, err)
	}
	msg, err := events.ToNATS(ctx, o.b.Subjects.Saga(st.ID, f.Phase), e)
	if err != nil {
		return err
	}
	if _, err := o.b.JS.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publish %s command: %w", f.Phase, err)
	}
	return nil
}

// setDesired applies a SetDesired by compare-and-set. conflict is set, with
// the digest found, if the desired state moved under the saga.
func (o *Orchestrator) setDesired(ctx context.Context, st *State, f SetDesired) (found string, conflict bool, err error) {
	cur, rev, err := o.b.GetDesired(ctx, st.Module, "")
	if err != nil {
		return "", false, err
	}
	switch cur.Digest {
	case f.Digest:
		return "", false, nil // already done (a resumed saga)
	case f.Expect:
	default:
		return cur.Digest, true, nil
	}
	if f.Digest == "" {
		err = o.b.Desired.Delete(ctx, st.Module, jetstream.LastRevision(rev))
	} else {
		b, _ := json.Marshal(bus.Desired{Digest: f.Digest, Saga: st.ID, Updated: o.cfg.Now(), Compensation: st.Phase == RollingBack})
		if rev == 0 {
			_, err = o.b.Desired.Create(ctx, st.Module, b)
		} else {
			_, err = o.b.Desired.Update(ctx, st.Module, b, rev)
		}
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		now, _, gerr := o.b.GetDesired(ctx, st.Module, "")
		if gerr != nil {
			return "", false, gerr
		}
		return now.Digest, true, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("set desired %s: %w", st.Module, err)
	}
	return "", false, nil
}

// clearPins removes per-node pins of the module once a fleet-wide reload
// committed: it supersedes local reloads. (A rolled back saga leaves them.)
func (o *Orchestrator) clearPins(ctx context.Context, st *State) error {
	// One stream-info request tells which pin keys ever existed (no
	// consumer, unlike listing keys); pins are rare, so usually none.
	stream, err := o.b.JS.Stream(ctx, "KV_"+o.b.Names.DesiredBucket)
	if err != nil {
		return fmt.Errorf("list pins: %w", err)
	}
	prefix := "$KV." + o.b.Names.DesiredBucket + "."
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(prefix+st.Module+".>"))
	if err != nil {
		return fmt.Errorf("list pins: %w", err)
	}
	for subject := range info.State.Subjects {
		k := strings.TrimPrefix(subject, prefix)
		if _, err := o.b.Desired.Get(ctx, k); errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // deleted before: only its marker is left
		}
		if err := o.b.Desired.Purge(ctx, k); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("clear pin %s: %w", k, err)
		}
	}
	return nil
}

// inlined returns the module's bytes if it is small enough to travel in
// the prepare command (nil otherwise, or if it cannot be read: the nodes
// then fetch it themselves and report what is wrong).
func (o *Orchestrator) inlined(ctx context.Context, st *State) []byte {
	if b, ok := o.inline.Load(st.ID); ok {
		return b.([]byte)
	}
	var b []byte
	if info, err := o.b.Modules.GetInfo(ctx, st.Digest); err == nil && info.Size <= events.MaxInlineBytes {
		if wasm, err := o.b.GetModule(ctx, st.Digest, events.MaxInlineBytes); err == nil {
			b = wasm
		}
	}
	o.inline.Store(st.ID, b)
	return b
}

func (o *Orchestrator) progress(ctx context.Context, st *State, f Progress) {
	p := events.Progress{Saga: st.ID, Module: st.Module, Phase: f.Phase, Message: f.Message, Nodes: map[string]string{}}
	for id, n := range st.Nodes {
		p.Nodes[id] = string(n.State)
	}
	e, err := events.New(events.TypeSagaProgress, o.cfg.Source, st.Module, p)
	if err != nil {
		o.hookError(st.ID, err)
		return
	}
	msg, err := events.ToNATS(ctx, o.b.Subjects.Saga(st.ID, events.LeafProgress), e)
	if err != nil {
		o.hookError(st.ID, err)
		return
	}
	if _, err := o.b.JS.PublishMsgAsync(msg); err != nil {
		o.hookError(st.ID, err)
	}
}

// publishOutcome publishes the saga's outcome exactly once: the message id
// is derived from the saga id, so a repeat (a resumed saga) is dropped by
// JetStream's deduplication.
func (o *Orchestrator) publishOutcome(ctx context.Context, out events.Outcome) error {
	typ := events.TypeSagaFailed
	if out.Result == events.ResultCommitted {
		typ = events.TypeSagaCompleted
	}
	e, err := events.New(typ, o.cfg.Source, out.Module, out, events.WithID(OutcomeID(out.Saga)))
	if err != nil {
		return fmt.Errorf("outcome: %w", err)
	}
	msg, err := events.ToNATS(ctx, o.b.Subjects.Saga(out.Saga, events.LeafOutcome), e)
	if err != nil {
		return err
	}
	if _, err := o.b.JS.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publish outcome: %w", err)
	}
	return nil
}

// OutcomeID is the event id (and so the JetStream message id) of a saga's
// outcome: derived from the saga id, so a resumed saga's repeat is
// deduplicated, and short whatever the saga id's length.
func OutcomeID(saga string) string {
	sum := sha256.Sum256([]byte(saga))
	return "outcome-" + hex.EncodeToString(sum[:16])
}

func (o *Orchestrator) discarded(stream, reason string) {
	if o.cfg.Hooks.Discarded != nil {
		o.cfg.Hooks.Discarded(stream, reason)
	}
}

func (o *Orchestrator) hookError(id string, err error) {
	if o.cfg.Hooks.Error != nil {
		o.cfg.Hooks.Error(id, err)
	}
}

func (o *Orchestrator) hookStarted(s *State, resumed bool) {
	if o.cfg.Hooks.Started != nil {
		o.cfg.Hooks.Started(s, resumed)
	}
}
