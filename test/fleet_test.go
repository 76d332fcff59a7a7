package test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/events"
	"github.com/mcpreload/mcpreload/internal/publisher"
	"github.com/mcpreload/mcpreload/internal/testutil"
	"github.com/mcpreload/mcpreload/internal/wasmgen"
	"github.com/mcpreload/mcpreload/loader"
)

// TestFleetAllCommits: 3 nodes, strategy all, v1 -> v2 everywhere, with
// state migrated on each node.
func TestFleetAllCommits(t *testing.T) {
	f := newFleet(t)
	nodes := []*runningNode{f.node(t, "n1", "--orchestrator"), f.node(t, "n2"), f.node(t, "n3")}
	f.waitLive(t, "n1", "n2", "n3")

	o := f.outcome(t, f.reload(t, "counter", testutil.Wasm(t, "counter-v1"), events.StrategyAll))
	require.Equal(t, events.ResultCommitted, o.Result, o.Reason)
	clients := make([]*client, len(nodes))
	for i, n := range nodes {
		clients[i] = connect(t, n.url)
		require.Equal(t, "5", clients[i].callText(t, "counter_increment", map[string]any{"by": 5}))
	}

	v2 := testutil.Wasm(t, "counter-v2")
	o = f.outcome(t, f.reload(t, "counter", v2, events.StrategyAll))
	require.Equal(t, events.ResultCommitted, o.Result, o.Reason)
	require.Len(t, o.Nodes, 3)
	for _, nr := range o.Nodes {
		require.Equal(t, "committed", nr.State)
	}
	for _, c := range clients {
		require.Equal(t, "6", c.callText(t, "counter_increment", nil), "v2 migrated v1's count on every node")
	}
	d, _, err := f.b.GetDesired(t.Context(), "counter", "")
	require.NoError(t, err)
	require.Equal(t, loader.DigestOf(v2), d.Digest)
	f.waitServing(t, "counter", loader.DigestOf(v2), "n1", "n2", "n3")
	f.requireConsistent(t, "counter")
}

// TestFleetQuorumWithStoppedNodes: 10 nodes, 3 stopped: quorum commits on
// the 7; the 3 converge when they come back.
func TestFleetQuorumWithStoppedNodes(t *testing.T) {
	f := newFleet(t)
	ids := []string{"n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9"}
	nodes := map[string]*runningNode{}
	for i, id := range ids {
		if i == 0 {
			nodes[id] = f.node(t, id, "--orchestrator")
		} else {
			nodes[id] = f.node(t, id)
		}
	}
	f.waitLive(t, ids...)
	v1, v2 := testutil.Wasm(t, "counter-v1"), testutil.Wasm(t, "counter-v2")
	require.Equal(t, events.ResultCommitted, f.outcome(t, f.reload(t, "counter", v1, events.StrategyAll)).Result)

	for _, id := range ids[7:] {
		require.Equal(t, 0, nodes[id].stop())
	}
	f.waitLive(t, ids[:7]...)
	o := f.outcome(t, f.reload(t, "counter", v2, events.StrategyQuorum))
	require.Equal(t, events.ResultCommitted, o.Result, o.Reason)
	require.Len(t, o.Nodes, 7)
	f.waitServing(t, "counter", loader.DigestOf(v2), ids[:7]...)

	for _, id := range ids[7:] {
		f.node(t, id)
	}
	f.waitLive(t, ids...)
	f.waitServing(t, "counter", loader.DigestOf(v2), ids...)
	f.requireConsistent(t, "counter")
}

// TestFleetAllAbortsWhenANodeRejects: one node cannot prepare (its size
// cap refuses the module): nobody changes version, the outcome names it.
func TestFleetAllAbortsWhenANodeRejects(t *testing.T) {
	f := newFleet(t)
	f.node(t, "n1", "--orchestrator")
	f.node(t, "n2")
	f.node(t, "small", "--max-module-bytes", "100000")
	f.waitLive(t, "n1", "n2", "small")
	calc := testutil.Wasm(t, "calc")
	require.Equal(t, events.ResultCommitted, f.outcome(t, f.reload(t, "tool", wasmgen.Tiny(wasmgen.Spec{Version: "1", Stateless: true}), events.StrategyAll)).Result)
	before := f.serving(t, "tool")

	o := f.outcome(t, f.reload(t, "tool", calc, events.StrategyAll))
	require.Equal(t, events.ResultAborted, o.Result)
	require.Contains(t, o.Reason, "small rejected (too_large)")
	for _, nr := range o.Nodes {
		if nr.Node == "small" {
			require.Equal(t, "rejected", nr.State)
			require.Equal(t, "too_large", nr.Code)
		} else {
			require.Equal(t, "aborted", nr.State)
		}
	}
	require.Equal(t, before, f.serving(t, "tool"), "no node changed version")
}

// TestFleetCommitFailureRollsBack: one node's commit fails (its state
// cannot be migrated): the nodes that committed go back, the desired
// version is restored, the outcome is rolled_back.
func TestFleetCommitFailureRollsBack(t *testing.T) {
	f := newFleet(t)
	nodes := []*runningNode{f.node(t, "n1", "--orchestrator"), f.node(t, "n2"), f.node(t, "n3")}
	f.waitLive(t, "n1", "n2", "n3")
	v1 := testutil.Wasm(t, "counter-v1")
	require.Equal(t, events.ResultCommitted, f.outcome(t, f.reload(t, "counter", v1, events.StrategyAll)).Result)
	// n3 runs a local build whose state v2 cannot read.
	odd := wasmgen.Tiny(wasmgen.Spec{Version: "odd", Tools: []string{"counter_increment", "counter_get"}, CodeChange: "ok", StateSave: "not a count"})
	require.Equal(t, events.ResultCommitted, f.outcome(t, f.reload(t, "counter", odd, events.StrategyLocal, "n3")).Result)
	f.waitServing(t, "counter", loader.DigestOf(odd), "n3")
	c1 := connect(t, nodes[0].url)
	require.Equal(t, "7", c1.callText(t, "counter_increment", map[string]any{"by": 7}))

	v2 := testutil.Wasm(t, "counter-v2")
	o := f.outcome(t, f.reload(t, "counter", v2, events.StrategyAll))
	require.Equal(t, events.ResultRolledBack, o.Result, o.Reason)
	require.Contains(t, o.Reason, "n3 commit_failed (code_change_failed)")

	f.waitServing(t, "counter", loader.DigestOf(v1), "n1", "n2")
	f.waitServing(t, "counter", loader.DigestOf(odd), "n3")
	require.Equal(t, "8", c1.callText(t, "counter_increment", nil), "v1 is back with its state (migrated down)")
	d, _, err := f.b.GetDesired(t.Context(), "counter", "")
	require.NoError(t, err)
	require.Equal(t, loader.DigestOf(v1), d.Digest, "desired state restored")
	// A later `mcpreload-publisher rollback` must not pick the undone v2.
	_, _, err = publisher.RollbackTarget(t.Context(), f.b, "counter")
	require.ErrorIs(t, err, publisher.ErrNoPrevious)
}

// TestFleetLocalReloadsOneNode: strategy local changes the named node only
// and pins it there.
func TestFleetLocalReloadsOneNode(t *testing.T) {
	f := newFleet(t)
	f.node(t, "n1", "--orchestrator")
	f.node(t, "n2")
	f.waitLive(t, "n1", "n2")
	v1, v2 := wasmgen.Tiny(wasmgen.Spec{Version: "1", Stateless: true}), wasmgen.Tiny(wasmgen.Spec{Version: "2", Stateless: true})
	require.Equal(t, events.ResultCommitted, f.outcome(t, f.reload(t, "tiny", v1, events.StrategyAll)).Result)
	o := f.outcome(t, f.reload(t, "tiny", v2, events.StrategyLocal, "n2"))
	require.Equal(t, events.ResultCommitted, o.Result, o.Reason)
	require.Len(t, o.Nodes, 1)
	f.waitServing(t, "tiny", loader.DigestOf(v2), "n2")
	require.Equal(t, map[string]string{"n1": loader.DigestOf(v1), "n2": loader.DigestOf(v2)}, f.serving(t, "tiny"))
	pin, _, err := f.b.GetDesired(t.Context(), "tiny", "n2")
	require.NoError(t, err)
	require.Equal(t, loader.DigestOf(v2), pin.Digest)
}
