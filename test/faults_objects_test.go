package test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/events"
	"github.com/mcpreload/mcpreload/internal/bus"
	"github.com/mcpreload/mcpreload/internal/publisher"
)

// TestFaultObjectGoneBeforeLateNodeReconciles: a quorum saga commits v2
// while node "late" is stopped; then v2's object in the object store is
// deleted, or replaced by other bytes (a valid module, v3) under the same
// name. When late starts again on its data dir it serves its cached v1,
// refuses v2 (object_missing, then object_corrupt: the bytes do not hash
// to their name), says why in its log, and keeps serving v1; a node with
// no cache serves nothing. The fleet status reports late as drift (serving
// v1, desired v2) and the new node as missing, never as serving v2 or v3.
// Once the right bytes are back, both converge on their next start.
//
// Never served: late and the new node never serve v2 or v3 while the
// object is gone or wrong.
func TestFaultObjectGoneBeforeLateNodeReconciles(t *testing.T) {
	ctx := context.Background()
	f := newFleet(t)
	f.node(t, "o", "--orchestrator")
	f.node(t, "n2")
	lateDir := faultDataDir(t)
	late := f.node(t, "late", "--data-dir", lateDir)
	f.waitLive(t, "o", "n2", "late")
	v1, d1 := faultTiny("1", "tiny")
	v2, d2 := faultTiny("2", "tiny")
	v3, d3 := faultTiny("3", "tiny")
	versions := map[string]string{"1": d1, "2": d2, "3": d3}
	require.Equal(t, events.ResultCommitted, f.outcome(t, f.reload(t, "tiny", v1, events.StrategyAll)).Result)
	f.waitServing(t, "tiny", d1, "o", "n2", "late")

	require.Equal(t, 0, late.stop())
	f.waitLive(t, "o", "n2")
	out := f.outcome(t, f.reload(t, "tiny", v2, events.StrategyQuorum))
	require.Equal(t, events.ResultCommitted, out.Result, out.Reason)
	f.waitServing(t, "tiny", d2, "o", "n2")

	// status returns the fleet status of tiny per node.
	status := func(t *testing.T) map[string]publisher.NodeStatus {
		rep, err := publisher.Status(ctx, f.b, "tiny")
		require.NoError(t, err)
		require.Len(t, rep.Modules, 1)
		out := map[string]publisher.NodeStatus{}
		for _, n := range rep.Modules[0].Nodes {
			out[n.Node] = n
		}
		return out
	}
	// refuses starts late (and, if fresh, a node with no cache) and checks
	// that it refuses v2 with reason and keeps serving v1 (or nothing).
	refuses := func(t *testing.T, reason error, fresh bool) {
		late = f.node(t, "late", "--data-dir", lateDir)
		nodes := []*runningNode{late}
		if fresh {
			nodes = append(nodes, f.node(t, "fresh"))
		}
		for _, n := range nodes {
			_, line := n.logs.Wait(t, 0, 30*time.Second, msg("reconcile: cannot fetch the desired version; still serving the current one", "module", "tiny", "digest", d2))
			require.Contains(t, line["error"], reason.Error())
		}
		if fresh {
			f.waitLive(t, "o", "n2", "late", "fresh")
		} else {
			f.waitLive(t, "o", "n2", "late")
		}
		f.waitServing(t, "tiny", d1, "late")
		require.Equal(t, []string{d1}, faultServed(late.logs, "tiny", versions), "late serves its cached v1 only")
		st := status(t)
		require.Equal(t, publisher.NodeStatus{Node: "late", Serving: d1, Version: "1", Desired: d2, State: publisher.StateDrift}, st["late"])
		if fresh {
			require.Empty(t, faultServed(nodes[1].logs, "tiny", versions), "a node without cache serves nothing")
			require.Equal(t, publisher.NodeStatus{Node: "fresh", Desired: d2, State: publisher.StateMissing}, st["fresh"])
			require.Equal(t, 0, nodes[1].stop())
		}
		require.Equal(t, 0, late.stop())
	}

	t.Run("object deleted", func(t *testing.T) {
		require.NoError(t, f.b.Modules.Delete(ctx, d2))
		refuses(t, bus.ErrNoObject, false)
	})
	t.Run("object replaced by other bytes", func(t *testing.T) {
		_, err := f.b.Modules.Put(ctx, jetstream.ObjectMeta{Name: d2}, bytes.NewReader(v3))
		require.NoError(t, err)
		refuses(t, bus.ErrObjectCorrupt, true)
	})
	t.Run("object restored", func(t *testing.T) {
		_, err := f.b.Modules.Put(ctx, jetstream.ObjectMeta{Name: d2}, bytes.NewReader(v2))
		require.NoError(t, err)
		late = f.node(t, "late", "--data-dir", lateDir)
		f.node(t, "fresh")
		f.waitLive(t, "o", "n2", "late", "fresh")
		f.faultConsistent(t, "tiny", d2, "o", "n2", "late", "fresh")
		require.Equal(t, []string{d1, d2}, faultServed(late.logs, "tiny", versions))
		rep, err := publisher.Status(ctx, f.b, "tiny")
		require.NoError(t, err)
		require.True(t, rep.Consistent, "%+v", rep)
	})
}
