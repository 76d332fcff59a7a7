package test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/events"
	"github.com/mcpreload/mcpreload/loader"
)

// TestFaultCorruptModuleCache: node "c" serves two modules from the fleet,
// "good" and "bad", then stops; its module cache (<data-dir>/modules) is
// damaged before each restart:
//   - bad's <hex>.wasm holds other bytes (a valid module of another version,
//     then garbage), or
//   - current.json (the index) is garbage.
//
// With NATS unreachable the node starts anyway, logs what is wrong, serves
// nothing for what it cannot trust (bad; everything if the index is lost)
// and keeps serving the rest (good), and shuts down cleanly. With NATS
// reachable it refetches and converges to the desired versions, rewriting
// the cache.
//
// Never served: the node never loads bytes that do not hash to the digest
// they are filed under: no "module reloaded" of bad but its own digest.
func TestFaultCorruptModuleCache(t *testing.T) {
	f := newFleet(t)
	f.node(t, "o", "--orchestrator")
	dir := faultDataDir(t)
	c := f.node(t, "c", "--data-dir", dir)
	f.waitLive(t, "o", "c")
	good, dGood := faultTiny("1", "good_tool")
	bad, dBad := faultTiny("1", "bad_tool")
	other, _ := faultTiny("2", "bad_tool")
	require.Equal(t, events.ResultCommitted, f.outcome(t, f.reload(t, "good", good, events.StrategyAll)).Result)
	require.Equal(t, events.ResultCommitted, f.outcome(t, f.reload(t, "bad", bad, events.StrategyAll)).Result)
	f.waitServing(t, "good", dGood, "o", "c")
	f.waitServing(t, "bad", dBad, "o", "c")
	require.Equal(t, 0, c.stop())

	modules := filepath.Join(dir, "modules")
	badFile := filepath.Join(modules, strings.TrimPrefix(dBad, loader.DigestPrefix)+".wasm")
	index := filepath.Join(modules, "current.json")
	require.FileExists(t, badFile)
	require.FileExists(t, index)
	closed := faultClosedURL(t)
	// offline starts c with NATS unreachable.
	offline := func(t *testing.T) (*runningNode, *client) {
		n := startNode(t, "--id", "c", "--data-dir", dir, "--nats-url", closed, "--presence-ttl", "3s")
		return n, connect(t, n.url)
	}
	// online starts c on the fleet and waits until it converged.
	online := func(t *testing.T) *runningNode {
		n := f.node(t, "c", "--data-dir", dir)
		f.waitServing(t, "good", dGood, "c")
		f.waitServing(t, "bad", dBad, "c")
		b, err := os.ReadFile(badFile)
		require.NoError(t, err)
		require.Equal(t, dBad, loader.DigestOf(b), "the cache holds bad's bytes again")
		var cur map[string]string
		b, err = os.ReadFile(index)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, &cur))
		require.Equal(t, map[string]string{"good": dGood, "bad": dBad}, cur)
		return n
	}
	served := func(n *runningNode) []string {
		return append(faultServed(n.logs, "bad", nil), faultServed(n.logs, "good", nil)...)
	}

	t.Run("module file holds another module, NATS unreachable", func(t *testing.T) {
		require.NoError(t, os.WriteFile(badFile, other, 0o644))
		n, cl := offline(t)
		_, line := n.logs.Wait(t, 0, 10*time.Second, msg("cached module missing or corrupt; will fetch it from NATS", "module", "bad", "digest", dBad))
		require.Contains(t, line["error"], "is corrupt")
		n.logs.Wait(t, 0, 10*time.Second, msg("serving cached module", "module", "good", "digest", dGood))
		require.Equal(t, []string{"good_tool"}, cl.toolNames(t))
		require.Equal(t, []string{dGood}, served(n))
		code, _ := httpGet(t, n.url+"/healthz")
		require.Equal(t, 200, code)
		require.Equal(t, 0, n.stop(), "clean shutdown")
	})
	t.Run("module file is garbage, NATS reachable", func(t *testing.T) {
		require.NoError(t, os.WriteFile(badFile, []byte("garbage, not wasm"), 0o644))
		n := online(t)
		n.logs.Wait(t, 0, 10*time.Second, msg("cached module missing or corrupt; will fetch it from NATS", "module", "bad", "digest", dBad))
		require.ElementsMatch(t, []string{dGood, dBad}, served(n))
		require.Equal(t, 0, n.stop())
	})
	t.Run("index is garbage, NATS unreachable", func(t *testing.T) {
		require.NoError(t, os.WriteFile(index, []byte("{not json"), 0o644))
		n, cl := offline(t)
		n.logs.Wait(t, 0, 10*time.Second, msg("module cache index unreadable; starting empty, will converge from NATS"))
		require.Empty(t, cl.toolNames(t))
		require.Empty(t, served(n))
		require.Equal(t, 0, n.stop(), "clean shutdown")
	})
	t.Run("index is garbage, NATS reachable", func(t *testing.T) {
		n := online(t)
		n.logs.Wait(t, 0, 10*time.Second, msg("module cache index unreadable; starting empty, will converge from NATS"))
		require.ElementsMatch(t, []string{dGood, dBad}, served(n))
		require.Equal(t, 0, n.stop())
	})
}
