package saga

// Property tests for the machine: random walks of events over a few nodes,
// seeded (the failing seed is in the message), checked step by step.

import (
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/events"
)

const (
	walks       = 2000
	walkEvents  = 40
	walkTimeout = 10 * time.Second
)

var (
	dNew, dOld, dOther = testDigest("new"), testDigest("old"), testDigest("other")
	walkNodes          = []string{"n1", "n2", "n3", "n4"}
)

func testDigest(label string) string {
	sum := sha256.Sum256([]byte(label))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func pick[T any](r *rand.Rand, xs ...T) T { return xs[r.IntN(len(xs))] }

// step is one transition of a walk; before is a deep copy of prev taken
// before Step ran.
type step struct {
	before, prev, next *State
	ev                 Event
	fx                 []Effect
}

// walk drives one saga: a start, walkEvents random events (acks that apply
// or not, ticks, conflicts, starts), then ticks past any deadline until the
// saga must have ended. It returns every step.
func walk(seed uint64) []step {
	r := rand.New(rand.NewPCG(seed, 0))
	now := base
	var s *State
	var steps []step
	ev := Event(randomStart(r, now))
	pace := pick(r, 200, 500, 2000) // max ms between events: deadlines hit late, midway or early
	for i := 0; i <= walkEvents+3; i++ {
		before := deepCopy(s)
		next, fx := Step(s, ev)
		steps = append(steps, step{before, s, next, ev, fx})
		s = next
		if i < walkEvents {
			now = now.Add(time.Duration(r.IntN(pace)) * time.Millisecond)
			ev = randomEvent(r, s, now)
		} else {
			now = now.Add(walkTimeout)
			ev = Tick{Now: now}
		}
	}
	return steps
}

func randomStart(r *rand.Rand, now time.Time) Start {
	live := map[string]string{}
	for _, n := range walkNodes {
		if r.IntN(5) > 0 {
			live[n] = pick(r, "", dOld, dOther)
		}
	}
	strategy := pick(r, events.StrategyAll, events.StrategyQuorum, events.StrategyLocal)
	var named []string
	if strategy == events.StrategyLocal || r.IntN(4) == 0 {
		for _, n := range append(walkNodes, "n5") {
			if r.IntN(2) == 0 {
				named = append(named, n)
			}
		}
	}
	return Start{Now: now, ID: "s1", Live: live, Desired: pick(r, "", dOld), Request: events.ReloadRequest{
		Module: "counter", Digest: dNew, Strategy: strategy, Timeout: events.Duration(walkTimeout), Nodes: named,
	}}
}

// randomEvent returns an event that may or may not apply to s; acks are
// biased towards the phase the node is awaited in.
func randomEvent(r *rand.Rand, s *State, now time.Time) Event {
	switch r.IntN(30) {
	case 0, 1, 2:
		return Tick{Now: now}
	case 3:
		return DesiredConflict{Now: now, Found: dOther}
	case 4:
		return randomStart(r, now)
	}
	node := pick(r, append(walkNodes, "n9")...)
	phase := pick(r, events.PhasePrepare, events.PhaseCommit, events.PhaseAbort, events.PhaseRollback)
	if n := s.Nodes[node]; n != nil && r.IntN(5) > 0 {
		switch n.State {
		case NodePending:
			phase = events.PhasePrepare
		case NodeCommitting:
			phase = events.PhaseCommit
		case NodeRollingBack:
			phase = events.PhaseRollback
		}
	}
	return AckReceived{Now: now, Ack: events.Ack{
		Saga: pick(r, "s1", "s1", "s1", "s0"), Node: node, Module: "counter", Phase: phase, Digest: dNew,
		OK: r.IntN(10) > 0, Code: "boom", Message: "it failed", PreviousDigest: pick(r, "", dOld, dOther),
	}}
}

func deepCopy(s *State) *State {
	if s == nil {
		return nil
	}
	c := *s
	c.Nodes = make(map[string]*Node, len(s.Nodes))
	for id, n := range s.Nodes {
		nc := *n
		c.Nodes[id] = &nc
	}
	return &c
}

func TestStepDoesNotModifyItsInput(t *testing.T) {
	for seed := range uint64(walks) {
		for _, st := range walk(seed) {
			require.Equal(t, st.before, st.prev, "seed %d: Step modified its input on %#v", seed, st.ev)
			if st.prev == nil || st.next == st.prev {
				continue
			}
			// A new state shares nothing with the old one.
			require.NotSame(t, st.prev, st.next, "seed %d", seed)
			for id, n := range st.next.Nodes {
				require.NotSame(t, st.prev.Nodes[id], n, "seed %d: node %s shared", seed, id)
			}
		}
	}
}

func TestExactlyOneFinish(t *testing.T) {
	for seed := range uint64(walks) {
		steps := walk(seed)
		finishes := 0
		for _, st := range steps {
			var n int
			for i, e := range st.fx {
				if f, ok := e.(Finish); ok {
					n++
					require.Equal(t, len(st.fx)-1, i, "seed %d: Finish is not the last effect", seed)
					require.Equal(t, st.next.Outcome(), f.Outcome, "seed %d", seed)
					require.NoError(t, f.Outcome.Validate(), "seed %d", seed)
				}
			}
			wasTerminal := st.prev != nil && st.prev.Phase.Terminal()
			require.Equal(t, st.next.Phase.Terminal() && !wasTerminal, n == 1, "seed %d: %d Finish moving %v -> %s", seed, n, phaseOf(st.prev), st.next.Phase)
			require.LessOrEqual(t, n, 1, "seed %d", seed)
			finishes += n
		}
		// Ticks past every deadline end any saga.
		last := steps[len(steps)-1].next
		require.True(t, last.Phase.Terminal(), "seed %d: still %s after its deadlines", seed, last.Phase)
		require.Equal(t, 1, finishes, "seed %d", seed)
	}
}

func TestPhaseTransitionsFollowTheDesign(t *testing.T) {
	allowed := map[Phase][]Phase{
		"":          {Preparing, Local, Aborted},
		Preparing:   {Committing, Aborted},
		Committing:  {Completed, RollingBack, Aborted},
		RollingBack: {RolledBack},
		Local:       {Completed, Failed},
	}
	for seed := range uint64(walks) {
		for _, st := range walk(seed) {
			from, to := phaseOf(st.prev), st.next.Phase
			if from != to {
				require.Contains(t, allowed[from], to, "seed %d: %q -> %q", seed, from, to)
			}
		}
	}
}

// TestDesiredBeforeCommands checks the order the design requires: the
// desired digest is set before any commit command goes out and restored
// before any rollback command; in strategy local, a node is pinned before its
// commit and the desired digest is never touched.
func TestDesiredBeforeCommands(t *testing.T) {
	for seed := range uint64(walks) {
		var desiredSet, desiredRestored bool
		pinned := map[string]bool{}
		for _, st := range walk(seed) {
			s := st.next
			for _, e := range st.fx {
				switch e := e.(type) {
				case SetDesired:
					require.NotEqual(t, events.StrategyLocal, s.Strategy, "seed %d: local sets desired", seed)
					switch e {
					case SetDesired{Digest: s.Digest, Expect: s.PreviousDesired}:
						desiredSet = true
					case SetDesired{Digest: s.PreviousDesired, Expect: s.Digest}:
						require.True(t, desiredSet, "seed %d: desired restored but never set", seed)
						desiredRestored = true
					default:
						require.Fail(t, "unexpected SetDesired", "seed %d: %+v", seed, e)
					}
				case SetPin:
					pinned[e.Node] = true
				case Send:
					switch {
					case e.Phase == events.PhaseCommit && s.Strategy == events.StrategyLocal:
						for _, id := range e.Targets {
							require.True(t, pinned[id], "seed %d: commit to %s before its pin", seed, id)
						}
					case e.Phase == events.PhaseCommit:
						require.True(t, desiredSet, "seed %d: commit sent before set-desired", seed)
					case e.Phase == events.PhaseRollback:
						require.True(t, desiredRestored, "seed %d: rollback sent before desired restored", seed)
					}
				}
			}
		}
	}
}

// TestRollbackOnlyToNodesToldToCommit: a rollback goes to nodes that were
// sent a commit, each to the digest it served before.
func TestRollbackOnlyToNodesToldToCommit(t *testing.T) {
	for seed := range uint64(walks) {
		told := map[string]bool{}
		for _, st := range walk(seed) {
			for _, e := range st.fx {
				if e, ok := e.(Send); ok {
					for _, id := range e.Targets {
						switch e.Phase {
						case events.PhaseCommit:
							told[id] = true
						case events.PhaseRollback:
							require.True(t, told[id], "seed %d: rollback to %s, never told to commit", seed, id)
							require.Equal(t, st.next.Nodes[id].Previous, e.Digest, "seed %d: %s", seed, id)
						}
					}
				}
			}
		}
	}
}

func TestTerminalStatesIgnoreEverything(t *testing.T) {
	for seed := range uint64(walks / 10) {
		steps := walk(seed)
		end := steps[len(steps)-1].next
		require.True(t, end.Phase.Terminal(), "seed %d", seed)
		snapshot := deepCopy(end)
		r := rand.New(rand.NewPCG(seed, 1))
		now := end.FinishedAt
		for range 200 {
			now = now.Add(time.Duration(r.IntN(int(walkTimeout))))
			ev := randomEvent(r, end, now)
			if r.IntN(4) == 0 { // an ack for each node's every phase, too
				ev = AckReceived{Now: now, Ack: events.Ack{Saga: end.ID, Node: pick(r, walkNodes...), Phase: pick(r,
					events.PhasePrepare, events.PhaseCommit, events.PhaseRollback), OK: r.IntN(2) == 0}}
			}
			next, fx := Step(end, ev)
			require.Same(t, end, next, "seed %d: %#v", seed, ev)
			require.Empty(t, fx, "seed %d: %#v", seed, ev)
		}
		require.Equal(t, snapshot, end, "seed %d", seed)
		// A new owner of a finished saga only publishes its outcome again.
		require.Equal(t, []Effect{Finish{Outcome: end.Outcome()}}, Resume(end))
	}
}

func TestStepBeforeStartIgnoresEverything(t *testing.T) {
	for _, ev := range []Event{
		Tick{Now: base},
		DesiredConflict{Now: base, Found: dOther},
		AckReceived{Now: base, Ack: events.Ack{Saga: "s1", Node: "n1", Phase: events.PhasePrepare, OK: true}},
	} {
		s, fx := Step(nil, ev)
		require.Nil(t, s)
		require.Empty(t, fx)
	}
}

func phaseOf(s *State) Phase {
	if s == nil {
		return ""
	}
	return s.Phase
}
