package saga

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mcpreload/mcpreload/events"
)

// Phase is where a saga is.
type Phase string

// Phases. The last three are terminal.
const (
	Preparing   Phase = "preparing"
	Committing  Phase = "committing"
	RollingBack Phase = "rolling_back"
	Local       Phase = "local" // strategy local: every node on its own
	Completed   Phase = "completed"
	Aborted     Phase = "aborted"
	RolledBack  Phase = "rolled_back"
	Failed      Phase = "failed" // strategy local with a node that did not commit
)

// Terminal reports whether p is a final phase.
func (p Phase) Terminal() bool {
	return p == Completed || p == Aborted || p == RolledBack || p == Failed
}

// NodeState is where one target node is in the saga.
type NodeState string

// Node states.
const (
	NodePending        NodeState = "pending"  // prepare sent, no answer
	NodePrepared       NodeState = "prepared" // staged the new version
	NodeRejected       NodeState = "rejected" // refused in prepare
	NodeCommitting     NodeState = "committing"
	NodeCommitted      NodeState = "committed"
	NodeCommitFailed   NodeState = "commit_failed"
	NodeRollingBack    NodeState = "rolling_back"
	NodeRolledBack     NodeState = "rolled_back"
	NodeRollbackFailed NodeState = "rollback_failed"
	NodeAborted        NodeState = "aborted"
	NodeNoAck          NodeState = "no_ack" // missed a phase deadline
)

// Node is one target's record.
type Node struct {
	State    NodeState `json:"state"`
	Previous string    `json:"previous,omitempty"` // digest it served before the saga
	Stage    string    `json:"stage,omitempty"`
	Code     string    `json:"code,omitempty"`
	Message  string    `json:"message,omitempty"`
	// Told is set once the node was sent a commit: only such nodes are
	// rolled back in compensation.
	Told bool `json:"told,omitempty"`
}

// State is a saga's complete state. It is what the runner persists.
type State struct {
	ID       string          `json:"id"`
	Module   string          `json:"module"`
	Digest   string          `json:"digest"`
	Strategy events.Strategy `json:"strategy"`
	Timeout  time.Duration   `json:"timeout"`
	// PreviousDesired is the module's desired digest when the saga started
	// ("" if none); a rollback restores it.
	PreviousDesired string           `json:"previous_desired,omitempty"`
	Phase           Phase            `json:"phase"`
	Nodes           map[string]*Node `json:"nodes"`
	Deadline        time.Time        `json:"deadline"`
	StartedAt       time.Time        `json:"started_at"`
	FinishedAt      time.Time        `json:"finished_at,omitzero"`
	Reason          string           `json:"reason,omitempty"`
	// Signature and Key are the request's, passed on with prepare commands.
	Signature string `json:"signature,omitempty"`
	Key       string `json:"key,omitempty"`
}

// Event is an input to the machine.
type Event interface{ isEvent() }

// Start begins a saga. Live maps each live node to the digest of the
// module it serves ("" if none); Desired is the module's desired digest.
type Start struct {
	Now     time.Time
	ID      string
	Request events.ReloadRequest
	Live    map[string]string
	Desired string
}

// AckReceived delivers a node's ack.
type AckReceived struct {
	Now time.Time
	Ack events.Ack
}

// Tick tells the machine the time; it enforces deadlines.
type Tick struct{ Now time.Time }

// DesiredConflict reports that the SetDesired effect failed because the
// desired digest was no longer what the saga expected (someone else changed
// it). Only meaningful while committing, before commit commands went out.
type DesiredConflict struct {
	Now   time.Time
	Found string
}

func (Start) isEvent()           {}
func (AckReceived) isEvent()     {}
func (Tick) isEvent()            {}
func (DesiredConflict) isEvent() {}

// Effect is an output of the machine, performed by the runner in order.
type Effect interface{ isEffect() }

// Send sends a command (events.PhasePrepare, PhaseCommit, PhaseAbort,
// PhaseRollback) to Targets. For a rollback Digest is the digest to go back
// to ("" means: unload the module).
type Send struct {
	Phase    string
	Digest   string
	Targets  []string
	Deadline time.Time
}

// SetDesired sets the module's desired digest ("" deletes it) if it is
// still Expect; on a mismatch the runner feeds DesiredConflict back.
type SetDesired struct {
	Digest string
	Expect string
}

// Progress is an informational event for followers (the publisher CLI).
type Progress struct {
	Phase   string
	Message string
}

// SetPin pins the module on one node to Digest (strategy local: the node
// runs a version the fleet's desired state does not name, and must not be
// reconciled away from it). An empty Digest removes the pin.
type SetPin struct {
	Node   string
	Digest string
}

// SetTimer asks for a Tick at At.
type SetTimer struct{ At time.Time }

// Finish ends the saga: publish the outcome, release the module lock.
type Finish struct{ Outcome events.Outcome }

func (Send) isEffect()       {}
func (SetDesired) isEffect() {}
func (SetPin) isEffect()     {}
func (Progress) isEffect()   {}
func (SetTimer) isEffect()   {}
func (Finish) isEffect()     {}

// Step applies e to s and returns the new state and the effects to
// perform. It never modifies s. Events that do not apply (an ack for another
// saga, from a non-target, for a phase already past, anything after the end)
// return s unchanged and no effects.
func Step(s *State, e Event) (*State, []Effect) {
	if st, ok := e.(Start); ok {
		if s != nil {
			return s, nil
		}
		return start(st)
	}
	if s == nil || s.Phase.Terminal() {
		return s, nil
	}
	n := s.clone()
	var fx []Effect
	switch ev := e.(type) {
	case AckReceived:
		if !ev.Now.Before(s.Deadline) {
			// Past the deadline a missing ack is a NACK, whatever arrives
			// late: decide as the deadline's tick would.
			return Step(s, Tick{Now: ev.Now})
		}
		if !n.applyAck(ev.Ack, &fx) {
			return s, nil
		}
		n.evaluate(ev.Now, &fx)
	case Tick:
		if ev.Now.Before(n.Deadline) {
			return s, nil
		}
		n.evaluate(ev.Now, &fx)
	case DesiredConflict:
		if n.Phase != Committing {
			return s, nil
		}
		n.abort(ev.Now, fmt.Sprintf("the desired version of %s changed to %q during the saga; nothing was committed", n.Module, ev.Found), &fx)
	default:
		return s, nil
	}
	return n, fx
}

// StepBatch applies events that arrived together, as the runner drains
// them: acks are recorded one after another and the strategy decides once
// after them (ticks and conflicts decide on arrival, as in Step). With
// strategy all the result is that of Step applied in order; with quorum the
// decision may include more prepared nodes than the first majority, never
// fewer. It never modifies s.
func StepBatch(s *State, evs []Event) (*State, []Effect) {
	if len(evs) == 1 || s == nil || s.Phase.Terminal() {
		var fx []Effect
		for _, e := range evs {
			var efx []Effect
			s, efx = Step(s, e)
			fx = append(fx, efx...)
		}
		return s, fx
	}
	n := s.clone()
	var fx []Effect
	changed, pending := false, false
	var last time.Time
	flush := func() {
		if pending && !n.Phase.Terminal() {
			n.evaluate(last, &fx)
		}
		pending = false
	}
	for _, e := range evs {
		if n.Phase.Terminal() {
			break
		}
		if a, ok := e.(AckReceived); ok && a.Now.Before(n.Deadline) {
			if n.applyAck(a.Ack, &fx) {
				changed, pending, last = true, true, a.Now
			}
			continue
		}
		flush()
		if a, ok := e.(AckReceived); ok { // late: a NACK, decided as a tick
			e = Tick{Now: a.Now}
		}
		if next, efx := Step(n, e); next != n {
			n, fx, changed = next, append(fx, efx...), true
		}
	}
	flush()
	if !changed {
		return s, nil
	}
	return n, fx
}

func start(e Start) (*State, []Effect) {
	r := e.Request
	timeout := time.Duration(r.Timeout)
	if timeout <= 0 {
		timeout = events.DefaultTimeout
	}
	s := &State{
		ID: e.ID, Module: r.Module, Digest: r.Digest, Strategy: r.Strategy, Timeout: timeout,
		PreviousDesired: e.Desired, Nodes: map[string]*Node{}, StartedAt: e.Now,
		Signature: r.Signature, Key: r.Key,
		Deadline: e.Now.Add(timeout),
	}
	var missing []string
	if len(r.Nodes) > 0 {
		for _, id := range r.Nodes {
			prev, live := e.Live[id]
			if !live {
				missing = append(missing, id)
				continue
			}
			s.Nodes[id] = &Node{State: NodePending, Previous: prev}
		}
	} else {
		for id, prev := range e.Live {
			s.Nodes[id] = &Node{State: NodePending, Previous: prev}
		}
	}
	var fx []Effect
	if len(s.Nodes) > 0 {
		// Every named node is in the outcome: one that is not live counts
		// as a node that did not answer (local: the others still reload;
		// all: nothing changes; quorum: it counts against the majority).
		for _, id := range missing {
			s.Nodes[id] = &Node{State: NodeNoAck, Code: "not_live", Message: "not live when the saga started"}
		}
	}
	if len(missing) > 0 && len(s.Nodes) > len(missing) && r.Strategy != events.StrategyLocal {
		s.Phase = Preparing
		var pre []Effect
		s.evaluate(e.Now, &pre)
		if s.Phase.Terminal() {
			// Decided before any command went out: nothing to abort.
			for _, f := range pre {
				if _, ok := f.(Finish); ok {
					fx = append(fx, f)
				}
			}
			return s, fx
		}
	}
	if len(s.ids(func(n *Node) bool { return n.State == NodePending })) == 0 {
		s.Phase = Aborted
		reason := "no live node to reload: start nodes (or check --nodes) and retry"
		if len(missing) > 0 {
			reason = fmt.Sprintf("none of the named nodes is live (%s)", strings.Join(missing, ", "))
		}
		s.finish(e.Now, Aborted, reason, &fx)
		return s, fx
	}
	s.Phase = Preparing
	if r.Strategy == events.StrategyLocal {
		s.Phase = Local
	}
	targets := s.ids(func(n *Node) bool { return n.State == NodePending })
	fx = append(fx,
		Send{Phase: events.PhasePrepare, Digest: s.Digest, Targets: targets, Deadline: s.Deadline},
		SetTimer{At: s.Deadline},
		Progress{Phase: string(s.Phase), Message: fmt.Sprintf("preparing %s %s on %d node(s): %s", s.Module, s.Digest, len(targets), strings.Join(targets, ", "))},
	)
	return s, fx
}

// applyAck records an ack; it reports false if the ack does not apply.
func (s *State) applyAck(a events.Ack, fx *[]Effect) bool {
	node, ok := s.Nodes[a.Node]
	if !ok || a.Saga != s.ID {
		return false
	}
	fail := func(st NodeState) {
		node.State, node.Stage, node.Code, node.Message = st, a.Stage, a.Code, a.Message
	}
	switch {
	case a.Phase == events.PhasePrepare && node.State == NodePending:
		if !a.OK {
			fail(NodeRejected)
			return true
		}
		node.State = NodePrepared
		if a.PreviousDigest != "" {
			node.Previous = a.PreviousDigest
		}
		// Local: each node commits as soon as it is prepared. Quorum: a
		// node preparing after the decision is told to commit too.
		if s.Phase == Local || s.Phase == Committing {
			node.State, node.Told = NodeCommitting, true
			if s.Phase == Local {
				*fx = append(*fx, SetPin{Node: a.Node, Digest: s.Digest})
			}
			*fx = append(*fx, Send{Phase: events.PhaseCommit, Digest: s.Digest, Targets: []string{a.Node}, Deadline: s.Deadline})
		}
		return true
	case a.Phase == events.PhaseCommit && node.State == NodeCommitting:
		if a.OK {
			node.State = NodeCommitted
		} else {
			fail(NodeCommitFailed)
			if s.Phase == Local {
				// The node kept its version: drop the pin set before the
				// commit, or reconciliation would retry the failed one.
				*fx = append(*fx, SetPin{Node: a.Node, Digest: ""})
			}
		}
		return true
	case a.Phase == events.PhaseRollback && node.State == NodeRollingBack:
		if a.OK {
			node.State = NodeRolledBack
		} else {
			fail(NodeRollbackFailed)
		}
		return true
	}
	return false
}

// evaluate takes the decision the strategy allows at time now.
func (s *State) evaluate(now time.Time, fx *[]Effect) {
	late := !now.Before(s.Deadline)
	c := s.count()
	total := len(s.Nodes)
	need := total/2 + 1
	switch s.Phase {
	case Preparing:
		if late {
			s.expire(NodePending)
			c = s.count()
		}
		switch s.Strategy {
		case events.StrategyQuorum:
			switch {
			case c[NodePrepared] >= need:
				s.commit(now, fx)
			case c[NodeRejected]+c[NodeNoAck] > total-need:
				s.abort(now, fmt.Sprintf("no majority can prepare: need %d of %d; %s", need, total, s.failures()), fx)
			}
		default: // all
			switch {
			case c[NodeRejected]+c[NodeNoAck] > 0:
				s.abort(now, "not every node prepared: "+s.failures(), fx)
			case c[NodePrepared] == total:
				s.commit(now, fx)
			}
		}
	case Committing:
		if late {
			s.expire(NodeCommitting)
			c = s.count()
		}
		committed, failed := c[NodeCommitted], c[NodeCommitFailed]+c[NodeNoAck]
		switch s.Strategy {
		case events.StrategyQuorum:
			switch {
			case committed >= need:
				s.complete(now, fmt.Sprintf("committed on %d of %d nodes (quorum %d); the rest converge to the desired version", committed, total, need), fx)
			case committed+c[NodeCommitting]+c[NodePending]+c[NodePrepared] < need || (late && committed < need):
				s.rollback(now, fmt.Sprintf("commit failed on too many nodes for a quorum of %d: %s", need, s.failures()), fx)
			}
		default:
			switch {
			case failed > 0:
				s.rollback(now, "commit failed: "+s.failures(), fx)
			case committed == total:
				s.complete(now, fmt.Sprintf("committed on all %d nodes", total), fx)
			}
		}
	case RollingBack:
		if late {
			s.expire(NodeRollingBack)
			c = s.count()
		}
		if c[NodeRollingBack] == 0 {
			s.finish(now, RolledBack, s.Reason, fx)
		}
	case Local:
		if late {
			s.expire(NodePending)
			s.expire(NodeCommitting)
			c = s.count()
		}
		if c[NodePending]+c[NodeCommitting] > 0 {
			return
		}
		if c[NodeCommitted] == total {
			s.finish(now, Completed, fmt.Sprintf("committed on %s", strings.Join(s.ids(nil), ", ")), fx)
			return
		}
		s.finish(now, Failed, fmt.Sprintf("committed on %d of %d named nodes; %s", c[NodeCommitted], total, s.failures()), fx)
	}
}

func (s *State) commit(now time.Time, fx *[]Effect) {
	s.Phase, s.Deadline = Committing, now.Add(s.Timeout)
	targets := s.ids(func(n *Node) bool { return n.State == NodePrepared })
	for _, id := range targets {
		s.Nodes[id].State, s.Nodes[id].Told = NodeCommitting, true
	}
	// The desired state changes first, by compare-and-set: two sagas can
	// never both decide, and nodes that miss the commit converge to it.
	*fx = append(*fx,
		SetDesired{Digest: s.Digest, Expect: s.PreviousDesired},
		Send{Phase: events.PhaseCommit, Digest: s.Digest, Targets: targets, Deadline: s.Deadline},
		SetTimer{At: s.Deadline},
		Progress{Phase: string(Committing), Message: fmt.Sprintf("committing on %d node(s)", len(targets))},
	)
}

func (s *State) complete(now time.Time, reason string, fx *[]Effect) {
	// Quorum: nodes that staged but were not needed discard what they
	// staged; they converge through the desired state.
	if leftovers := s.ids(func(n *Node) bool { return n.State == NodePending || n.State == NodePrepared }); len(leftovers) > 0 {
		*fx = append(*fx, Send{Phase: events.PhaseAbort, Digest: s.Digest, Targets: leftovers, Deadline: now})
	}
	s.finish(now, Completed, reason, fx)
}

func (s *State) abort(now time.Time, reason string, fx *[]Effect) {
	targets := s.ids(func(n *Node) bool {
		return n.State == NodePending || n.State == NodePrepared || n.State == NodeCommitting ||
			(n.State == NodeNoAck && n.Code != "not_live")
	})
	for _, id := range targets {
		if n := s.Nodes[id]; n.State != NodeNoAck {
			n.State = NodeAborted
		}
	}
	if len(targets) > 0 {
		*fx = append(*fx, Send{Phase: events.PhaseAbort, Digest: s.Digest, Targets: targets, Deadline: now})
	}
	s.finish(now, Aborted, reason, fx)
}

// rollback compensates: the desired digest goes back, and every node told
// to commit (whatever it answered) is told to go back to its previous digest.
func (s *State) rollback(now time.Time, reason string, fx *[]Effect) {
	s.Phase, s.Deadline, s.Reason = RollingBack, now.Add(s.Timeout), reason
	*fx = append(*fx, SetDesired{Digest: s.PreviousDesired, Expect: s.Digest})
	byPrev := map[string][]string{}
	for _, id := range s.ids(nil) {
		n := s.Nodes[id]
		switch {
		case n.Told:
			n.State = NodeRollingBack
			byPrev[n.Previous] = append(byPrev[n.Previous], id)
		case n.State == NodePrepared || n.State == NodePending:
			n.State = NodeAborted
			byPrev["\x00abort"] = append(byPrev["\x00abort"], id)
		}
	}
	prevs := make([]string, 0, len(byPrev))
	for p := range byPrev {
		prevs = append(prevs, p)
	}
	sort.Strings(prevs)
	for _, p := range prevs {
		if p == "\x00abort" {
			*fx = append(*fx, Send{Phase: events.PhaseAbort, Digest: s.Digest, Targets: byPrev[p], Deadline: now})
			continue
		}
		*fx = append(*fx, Send{Phase: events.PhaseRollback, Digest: p, Targets: byPrev[p], Deadline: s.Deadline})
	}
	*fx = append(*fx, SetTimer{At: s.Deadline}, Progress{Phase: string(RollingBack), Message: "rolling back: " + reason})
}

func (s *State) finish(now time.Time, phase Phase, reason string, fx *[]Effect) {
	s.Phase, s.FinishedAt, s.Reason = phase, now, reason
	*fx = append(*fx, Finish{Outcome: s.Outcome()})
}

// Outcome is the saga's outcome event payload.
func (s *State) Outcome() events.Outcome {
	o := events.Outcome{
		Saga: s.ID, Module: s.Module, Digest: s.Digest, PreviousDigest: s.PreviousDesired, Strategy: s.Strategy,
		Reason: s.Reason, StartedAt: s.StartedAt, FinishedAt: s.FinishedAt,
	}
	switch s.Phase {
	case Completed:
		o.Result = events.ResultCommitted
	case RolledBack:
		o.Result = events.ResultRolledBack
	case Failed:
		o.Result = events.ResultFailed
	default:
		o.Result = events.ResultAborted
	}
	for _, id := range s.ids(nil) {
		n := s.Nodes[id]
		o.Nodes = append(o.Nodes, events.NodeResult{Node: id, State: string(n.State), Stage: n.Stage, Code: n.Code, Message: n.Message})
	}
	return o
}

// expire marks nodes still in state `from` as having missed the deadline.
func (s *State) expire(from NodeState) {
	for _, n := range s.Nodes {
		if n.State == from {
			n.State = NodeNoAck
			if n.Message == "" {
				n.Message = "no ack before the deadline"
			}
		}
	}
}

func (s *State) count() map[NodeState]int {
	c := map[NodeState]int{}
	for _, n := range s.Nodes {
		c[n.State]++
	}
	return c
}

// failures describes the nodes that failed, for reasons.
func (s *State) failures() string {
	var parts []string
	for _, id := range s.ids(nil) {
		n := s.Nodes[id]
		switch n.State {
		case NodeRejected, NodeCommitFailed, NodeNoAck, NodeRollbackFailed:
			msg := string(n.State)
			if n.Code != "" {
				msg += " (" + n.Code + ")"
			}
			if n.Message != "" {
				msg += ": " + n.Message
			}
			parts = append(parts, id+" "+msg)
		}
	}
	if len(parts) == 0 {
		return "no failures recorded"
	}
	return strings.Join(parts, "; ")
}

// ids returns the sorted ids of nodes matching keep (all if nil).
func (s *State) ids(keep func(*Node) bool) []string {
	out := make([]string, 0, len(s.Nodes))
	for id, n := range s.Nodes {
		if keep == nil || keep(n) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// Resume returns the effects that bring the world in line with s after an
// orchestrator takes over a saga whose owner died: the current phase's
// commands again (nodes treat repeats as no-ops), the desired state the
// phase implies (compare-and-set, a no-op if already done), and the phase's
// timer. A terminal state returns its Finish again (the outcome event is
// deduplicated by JetStream).
func Resume(s *State) []Effect {
	if s.Phase.Terminal() {
		return []Effect{Finish{Outcome: s.Outcome()}}
	}
	var fx []Effect
	in := func(st NodeState) []string { return s.ids(func(n *Node) bool { return n.State == st }) }
	switch s.Phase {
	case Preparing, Local:
		if t := in(NodePending); len(t) > 0 {
			fx = append(fx, Send{Phase: events.PhasePrepare, Digest: s.Digest, Targets: t, Deadline: s.Deadline})
		}
		for _, id := range in(NodeCommitting) {
			fx = append(fx, SetPin{Node: id, Digest: s.Digest},
				Send{Phase: events.PhaseCommit, Digest: s.Digest, Targets: []string{id}, Deadline: s.Deadline})
		}
	case Committing:
		fx = append(fx, SetDesired{Digest: s.Digest, Expect: s.PreviousDesired})
		if t := in(NodeCommitting); len(t) > 0 {
			fx = append(fx, Send{Phase: events.PhaseCommit, Digest: s.Digest, Targets: t, Deadline: s.Deadline})
		}
	case RollingBack:
		fx = append(fx, SetDesired{Digest: s.PreviousDesired, Expect: s.Digest})
		byPrev := map[string][]string{}
		var prevs []string
		for _, id := range in(NodeRollingBack) {
			p := s.Nodes[id].Previous
			if _, ok := byPrev[p]; !ok {
				prevs = append(prevs, p)
			}
			byPrev[p] = append(byPrev[p], id)
		}
		sort.Strings(prevs)
		for _, p := range prevs {
			fx = append(fx, Send{Phase: events.PhaseRollback, Digest: p, Targets: byPrev[p], Deadline: s.Deadline})
		}
	}
	return append(fx, SetTimer{At: s.Deadline})
}

func (s *State) clone() *State {
	n := *s
	n.Nodes = make(map[string]*Node, len(s.Nodes))
	for id, nd := range s.Nodes {
		c := *nd
		n.Nodes[id] = &c
	}
	return &n
}
