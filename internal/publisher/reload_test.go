package publisher_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/events"
	"github.com/mcpreload/mcpreload/internal/publisher"
	"github.com/mcpreload/mcpreload/internal/testutil"
	"github.com/mcpreload/mcpreload/internal/wasmgen"
	"github.com/mcpreload/mcpreload/loader"
)

// TestFleetLifecycle drives a two-node fleet through the CLI: reload v1 and
// v2, status, nodes, rollback, history, --no-wait.
func TestFleetLifecycle(t *testing.T) {
	f := newFleet(t)
	f.node(t, "n1", "--orchestrator")
	f.node(t, "n2")
	f.waitLive(t, "n1", "n2")
	v1, v2 := testutil.Wasm(t, "counter-v1"), testutil.Wasm(t, "counter-v2")
	v1File, v2File := wasmFile(t, v1), wasmFile(t, v2)
	common := []string{"--nats-url", f.url(), "--cache-dir", testutil.CacheDir(t), "--timeout", "10s"}
	reload := func(extra ...string) result {
		return run(t, append(append([]string{"reload", "--module", "counter"}, common...), extra...)...)
	}
	var sagas []string

	t.Run("reload v1 with JSON output commits", func(t *testing.T) {
		r := reload("--wasm", v1File, "--output", "json")
		require.Equal(t, publisher.ExitOK, r.code, r.stderr)
		rep := jsonOut[reloadReport](t, r)
		require.Equal(t, events.ResultCommitted, rep.Result, rep.Reason)
		require.Equal(t, "counter", rep.Module)
		require.Equal(t, loader.DigestOf(v1), rep.Digest)
		require.Equal(t, "all", rep.Strategy)
		require.True(t, rep.Uploaded)
		require.NotEmpty(t, rep.Saga)
		require.NotEmpty(t, rep.Version)
		require.NotNil(t, rep.TookMS)
		require.False(t, rep.FinishedAt.Before(rep.StartedAt))
		require.Len(t, rep.Nodes, 2)
		for _, id := range []string{"n1", "n2"} {
			state, _, _, _ := rep.node(id)
			require.Equal(t, "committed", state, id)
		}
		require.Contains(t, r.stderr, "n1 prepared", "live lines go to stderr with --output json")
		sagas = append(sagas, rep.Saga)
	})

	t.Run("reload v2 in text mode follows the saga live", func(t *testing.T) {
		r := reload("--wasm", v2File)
		require.Equal(t, publisher.ExitOK, r.code, r.stdout+r.stderr)
		for _, want := range []string{
			"checked counter", "uploaded " + loader.DigestOf(v2), "published saga ",
			"[preparing]", "n1 prepared", "n2 prepared", "[committing]", "n1 committed", "n2 committed",
			"result: committed", "NODE", "committed on all 2 nodes",
		} {
			require.Contains(t, r.stdout, want)
		}
		d, _, err := f.b.GetDesired(t.Context(), "counter", "")
		require.NoError(t, err)
		require.Equal(t, loader.DigestOf(v2), d.Digest)
		sagas = append(sagas, d.Saga)
	})

	t.Run("status is consistent", func(t *testing.T) {
		var rep publisher.StatusReport
		require.Eventually(t, func() bool { // heartbeats follow the commit
			r := run(t, "status", "--nats-url", f.url(), "--output", "json")
			rep = jsonOut[publisher.StatusReport](t, r)
			return r.code == publisher.ExitOK
		}, 15*time.Second, 50*time.Millisecond)
		require.True(t, rep.Consistent)
		require.Equal(t, []string{"n1", "n2"}, rep.LiveNodes)
		require.Len(t, rep.Modules, 1)
		m := rep.Modules[0]
		require.Equal(t, "counter", m.Module)
		require.Equal(t, loader.DigestOf(v2), m.Desired)
		require.Len(t, m.Nodes, 2)
		for _, n := range m.Nodes {
			require.Equal(t, publisher.StateOK, n.State, n.Node)
			require.Equal(t, loader.DigestOf(v2), n.Serving)
			require.NotEmpty(t, n.Version)
		}
		r := run(t, "status", "--module", "counter", "--nats-url", f.url())
		require.Equal(t, publisher.ExitOK, r.code, r.stderr)
		require.Contains(t, r.stdout, "counter: desired "+publisher.ShortDigest(loader.DigestOf(v2)))
		require.Contains(t, r.stdout, "OK")
		require.Contains(t, r.stdout, "consistent: 1 module(s), 2 live node(s)")
	})

	t.Run("status of an unknown module is bad input", func(t *testing.T) {
		r := run(t, "status", "--module", "nope", "--nats-url", f.url())
		require.Equal(t, publisher.ExitUsage, r.code)
		require.Contains(t, r.stderr, "unknown module nope")
	})

	t.Run("nodes lists the live nodes and their modules", func(t *testing.T) {
		r := run(t, "nodes", "--nats-url", f.url(), "--output", "json")
		require.Equal(t, publisher.ExitOK, r.code, r.stderr)
		nodes := jsonOut[[]publisher.NodeInfo](t, r)
		require.Len(t, nodes, 2)
		for i, id := range []string{"n1", "n2"} {
			n := nodes[i]
			require.Equal(t, id, n.Node)
			require.Contains(t, n.MCP, "http://127.0.0.1:")
			require.Len(t, n.Modules, 1)
			require.Equal(t, "counter", n.Modules[0].Module)
			require.Equal(t, loader.DigestOf(v2), n.Modules[0].Digest)
			require.False(t, n.Heartbeat.IsZero())
		}
		r = run(t, "--nats-url", f.url(), "nodes") // global flags before the command
		require.Equal(t, publisher.ExitOK, r.code, r.stderr)
		require.Contains(t, r.stdout, "HEARTBEAT")
		require.Contains(t, r.stdout, "n2")
		require.Contains(t, r.stdout, "counter ")
	})

	t.Run("rollback goes back to the previous desired version", func(t *testing.T) {
		r := run(t, "rollback", "--module", "counter", "--nats-url", f.url(), "--timeout", "10s", "--output", "json")
		require.Equal(t, publisher.ExitOK, r.code, r.stdout+r.stderr)
		rep := jsonOut[reloadReport](t, r)
		require.Equal(t, events.ResultCommitted, rep.Result, rep.Reason)
		require.Equal(t, loader.DigestOf(v1), rep.Digest)
		require.Equal(t, loader.DigestOf(v2), rep.PreviousDigest)
		require.False(t, rep.Uploaded)
		require.Contains(t, r.stderr, "rolling back counter from "+publisher.ShortDigest(loader.DigestOf(v2)))
		d, _, err := f.b.GetDesired(t.Context(), "counter", "")
		require.NoError(t, err)
		require.Equal(t, loader.DigestOf(v1), d.Digest)
		sagas = append(sagas, rep.Saga)
	})

	t.Run("rollback to a digest that is not stored is bad input", func(t *testing.T) {
		r := run(t, "rollback", "--module", "counter", "--to", loader.DigestOf([]byte("never uploaded")), "--nats-url", f.url())
		require.Equal(t, publisher.ExitUsage, r.code, r.stdout+r.stderr)
		require.Contains(t, r.stderr, "not in the object store")
	})

	t.Run("history lists the sagas newest last", func(t *testing.T) {
		r := run(t, "history", "--nats-url", f.url(), "--output", "json")
		require.Equal(t, publisher.ExitOK, r.code, r.stderr)
		outs := jsonOut[[]events.Outcome](t, r)
		require.Len(t, outs, 3) // v1, v2, rollback
		for i, o := range outs {
			require.Equal(t, sagas[i], o.Saga)
		}
		for _, o := range outs {
			require.Equal(t, events.ResultCommitted, o.Result)
		}

		r = run(t, "history", "--module", "counter", "--limit", "2", "--nats-url", f.url(), "--output", "json")
		require.Equal(t, publisher.ExitOK, r.code, r.stderr)
		outs = jsonOut[[]events.Outcome](t, r)
		require.Len(t, outs, 2)
		require.Equal(t, sagas[2], outs[1].Saga, "newest last")

		r = run(t, "history", "--nats-url", f.url())
		require.Equal(t, publisher.ExitOK, r.code, r.stderr)
		require.Contains(t, r.stdout, "FINISHED")
		require.Contains(t, r.stdout, sagas[2])
		require.Contains(t, r.stdout, publisher.ShortDigest(loader.DigestOf(v1)))

		r = run(t, "history", "--module", "other", "--nats-url", f.url(), "--output", "json")
		require.Equal(t, publisher.ExitOK, r.code, r.stderr)
		require.Empty(t, jsonOut[[]events.Outcome](t, r))
	})

	t.Run("no-wait returns once published", func(t *testing.T) {
		tiny := wasmgen.Tiny(wasmgen.Spec{Tools: []string{"tiny_nowait"}})
		r := run(t, "reload", "--module", "tiny", "--wasm", wasmFile(t, tiny), "--no-wait", "--output", "json", "--nats-url", f.url())
		require.Equal(t, publisher.ExitOK, r.code, r.stdout+r.stderr)
		doc := jsonOut[reloadReport](t, r)
		require.True(t, doc.Published)
		require.True(t, doc.Uploaded)
		require.Equal(t, loader.DigestOf(tiny), doc.Digest)
		require.Empty(t, doc.Result)

		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		var acks int
		out, err := publisher.Follow(ctx, f.b, doc.Saga, func(e publisher.Event) {
			if e.Kind == publisher.EventAck {
				acks++
			}
		})
		require.NoError(t, err)
		require.Equal(t, events.ResultCommitted, out.Result, out.Reason)
		require.Equal(t, 4, acks, "prepare and commit acks of two nodes")
	})

	t.Run("rollback without an earlier version is bad input", func(t *testing.T) {
		r := run(t, "rollback", "--module", "tiny", "--nats-url", f.url())
		require.Equal(t, publisher.ExitUsage, r.code, r.stdout+r.stderr)
		require.Contains(t, r.stderr, "holds no version before")
		r = run(t, "rollback", "--module", "never", "--nats-url", f.url())
		require.Equal(t, publisher.ExitUsage, r.code, r.stdout+r.stderr)
		require.Contains(t, r.stderr, "no desired version yet")
	})
}
