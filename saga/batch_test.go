package saga

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/events"
)

// TestStepBatchMatchesStepForAll: with strategy all, applying the acks of a
// phase in batches (as the runner drains them) ends the saga exactly as
// applying them one by one does.
func TestStepBatchMatchesStepForAll(t *testing.T) {
	checked := 0
	for seed := range uint64(3000) {
		steps := walk(seed)
		first, ok := steps[0].ev.(Start)
		if !ok || first.Request.Strategy != events.StrategyAll {
			continue
		}
		want := steps[len(steps)-1].next
		r := rand.New(rand.NewPCG(seed, 7))
		var s *State
		var batch []Event
		flush := func() {
			if len(batch) > 0 {
				s, _ = StepBatch(s, batch)
				batch = nil
			}
		}
		for i, st := range steps {
			a, isAck := st.ev.(AckReceived)
			if isAck && len(batch) > 0 {
				if prev, ok := batch[len(batch)-1].(AckReceived); !ok || prev.Ack.Phase != a.Ack.Phase || r.IntN(3) == 0 {
					flush()
				}
			} else if !isAck {
				flush()
			}
			batch = append(batch, st.ev)
			if i == len(steps)-1 {
				flush()
			}
		}
		require.Equal(t, phaseOf(want), phaseOf(s), "seed %d", seed)
		if want != nil && want.Phase.Terminal() {
			require.Equal(t, want.Outcome().Result, s.Outcome().Result, "seed %d", seed)
		}
		checked++
	}
	require.Greater(t, checked, 500)
}

func TestCoalesceMergesCommandsAfterTheirPins(t *testing.T) {
	dl := time.Unix(100, 0)
	fx := coalesce([]Effect{
		SetPin{Node: "a", Digest: "d"},
		Send{Phase: events.PhaseCommit, Digest: "d", Targets: []string{"a"}, Deadline: dl},
		SetPin{Node: "b", Digest: "d"},
		Send{Phase: events.PhaseCommit, Digest: "d", Targets: []string{"b"}, Deadline: dl},
		Send{Phase: events.PhaseAbort, Digest: "d", Targets: []string{"c"}, Deadline: dl},
	})
	require.Equal(t, []Effect{
		SetPin{Node: "a", Digest: "d"},
		SetPin{Node: "b", Digest: "d"},
		Send{Phase: events.PhaseCommit, Digest: "d", Targets: []string{"a", "b"}, Deadline: dl},
		Send{Phase: events.PhaseAbort, Digest: "d", Targets: []string{"c"}, Deadline: dl},
	}, fx)
}
