package test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/events"
	"github.com/mcpreload/mcpreload/internal/testutil"
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
}
