package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/internal/testutil"
	"github.com/mcpreload/mcpreload/internal/wasmgen"
	"github.com/mcpreload/mcpreload/loader"
)

// TestNodeServesToolsOverStreamableHTTP: a node started through its Main
// serves counter and calc to the official MCP client.
func TestNodeServesToolsOverStreamableHTTP(t *testing.T) {
	dir := t.TempDir()
	place(t, dir, "counter.wasm", testutil.Wasm(t, "counter-v1"))
	place(t, dir, "calc.wasm", testutil.Wasm(t, "calc"))
	n := startNode(t, "--watch", dir)
	c := connect(t, n.url)

	require.Equal(t, []string{"calc_add", "calc_div", "calc_mul", "calc_sub", "counter_get", "counter_increment"}, c.toolNames(t))
	require.Equal(t, "1", c.callText(t, "counter_increment", nil))
	require.Equal(t, "3", c.callText(t, "counter_increment", map[string]any{"by": 2}))
	require.Equal(t, "6", c.callText(t, "calc_mul", map[string]any{"a": 2, "b": 3}))

	res, err := c.CallTool(context.Background(), &mcp.CallToolParams{Name: "calc_div", Arguments: map[string]any{"a": 1, "b": 0}})
	require.NoError(t, err)
	require.True(t, res.IsError, "a tool error is an isError result")

	_, err = c.CallTool(context.Background(), &mcp.CallToolParams{Name: "nope"})
	require.Error(t, err, "an unknown tool is a protocol error")
	require.Contains(t, err.Error(), "nope")

	code, body := httpGet(t, n.url+"/healthz")
	require.Equal(t, 200, code)
	require.Equal(t, "ok\n", body)
	require.Equal(t, 0, n.stop(), "SIGTERM-style shutdown exits 0")
}

// TestWatchReloads: the --watch loop hot reloads modules, keeps state,
// notifies clients exactly when the tool list changes, and keeps serving
// through a broken file.
func TestWatchReloads(t *testing.T) {
	dir := t.TempDir()
	place(t, dir, "counter.wasm", testutil.Wasm(t, "counter-v1"))
	n := startNode(t, "--watch", dir, "--watch-debounce", "20ms")
	c := connect(t, n.url)
	for range 5 {
		c.callText(t, "counter_increment", nil)
	}

	reloaded := func(from int, name string) int {
		i, _ := n.logs.Wait(t, from, 60*time.Second, msg("module reloaded", "module", "counter", "digest", loader.DigestOf(testutil.Wasm(t, name))))
		return i
	}

	// v2: same tool definitions, new state shape. State migrates; the tool
	// list is unchanged, so no notification.
	from := n.logs.Len()
	place(t, dir, "counter.wasm", testutil.Wasm(t, "counter-v2"))
	from = reloaded(from, "counter-v2")
	require.Equal(t, "6", c.callText(t, "counter_increment", nil))

	// v3 adds counter_reset: exactly one notification, and the next list
	// shows the new tool.
	place(t, dir, "counter.wasm", testutil.Wasm(t, "counter-v3"))
	from = reloaded(from, "counter-v3")
	require.Equal(t, 1, c.waitChanged(t, 1))
	require.Contains(t, c.toolNames(t), "counter_reset")
	require.Equal(t, "7", c.callText(t, "counter_increment", nil))

	// Garbage: rejected with the reason in the log; v3 keeps serving.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "counter.wasm"), []byte("garbage, not wasm"), 0o644))
	_, line := n.logs.Wait(t, from, 30*time.Second, msg("module rejected; the previous version keeps serving", "module", "counter"))
	require.Equal(t, "invalid_wasm", line["code"])
	require.Contains(t, line["error"], "invalid magic number")
	require.Equal(t, "8", c.callText(t, "counter_increment", nil))

	// Back to v2 removes counter_reset: a second notification. Counting
	// both here proves neither the v2 reload nor the garbage sent one
	// (notifications arrive in order).
	place(t, dir, "counter.wasm", testutil.Wasm(t, "counter-v2"))
	reloaded(from, "counter-v2")
	require.Equal(t, 2, c.waitChanged(t, 2))
	require.NotContains(t, c.toolNames(t), "counter_reset")
	require.Equal(t, "9", c.callText(t, "counter_increment", nil))

	m := scrape(t, n.url)
	require.Equal(t, 3.0, value(t, m, "mcpreload_tool_list_changes_total", nil), "the initial load, v3, back to v2")
}

// TestConcurrentCallsDuringReloads: 200 concurrent MCP calls from several
// sessions while the module is reloaded 20 times: none fails, and every
// reply is one version's whole reply.
func TestConcurrentCallsDuringReloads(t *testing.T) {
	dir := t.TempDir()
	v1 := wasmgen.Tiny(wasmgen.Spec{Version: "1", Stateless: true, Tools: []string{"flip"}, Reply: "reply from version 1", SpinIterations: 50000})
	v2 := wasmgen.Tiny(wasmgen.Spec{Version: "2", Stateless: true, Tools: []string{"flip"}, Reply: "reply from version 2", SpinIterations: 50000})
	place(t, dir, "flip.wasm", v1)
	n := startNode(t, "--watch", dir, "--watch-debounce", "1ms")
	clients := make([]*client, 8)
	for i := range clients {
		clients[i] = connect(t, n.url)
	}

	// 200 callers, each calling in a loop until the reloads are done, so
	// that 200 calls are in flight at any moment of the 20 reloads.
	const calls = 200
	start, reloadsDone := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	var total atomic.Int64
	errs := make(chan error, calls)
	for i := range calls {
		wg.Go(func() {
			<-start
			for {
				res, err := clients[i%len(clients)].CallTool(context.Background(), &mcp.CallToolParams{Name: "flip"})
				total.Add(1)
				switch {
				case err != nil:
					errs <- err
					return
				case res.IsError:
					errs <- fmt.Errorf("caller %d: isError: %v", i, res.Content)
					return
				}
				text := res.Content[0].(*mcp.TextContent).Text
				if text != "reply from version 1" && text != "reply from version 2" {
					errs <- fmt.Errorf("caller %d: reply %q is no version's reply", i, text)
					return
				}
				select {
				case <-reloadsDone:
					return
				default:
				}
			}
		})
	}
	close(start)
	from := n.logs.Len()
	for i := range 20 {
		w, name := v2, "2"
		if i%2 == 1 {
			w, name = v1, "1"
		}
		place(t, dir, "flip.wasm", w)
		from, _ = n.logs.Wait(t, from, 30*time.Second, msg("module reloaded", "module", "flip", "to", name))
		from++
	}
	close(reloadsDone)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	m := scrape(t, n.url)
	require.Equal(t, 21.0, value(t, m, "mcpreload_reloads_total", map[string]string{"module": "flip", "outcome": "committed"}), "the initial load and 20 reloads")
	require.Greater(t, int(total.Load()), calls, "calls kept running across the reloads")
}

// TestMetricsAndReadiness: /metrics carries the node's metrics in the
// Prometheus text format.
func TestMetricsAndReadiness(t *testing.T) {
	dir := t.TempDir()
	place(t, dir, "calc.wasm", testutil.Wasm(t, "calc"))
	n := startNode(t, "--watch", dir)
	c := connect(t, n.url)
	c.callText(t, "calc_add", map[string]any{"a": 1, "b": 2})
	res, err := c.CallTool(context.Background(), &mcp.CallToolParams{Name: "calc_div", Arguments: map[string]any{"a": 1, "b": 0}})
	require.NoError(t, err)
	require.True(t, res.IsError)

	code, _ := httpGet(t, n.url+"/readyz")
	require.Equal(t, 200, code)
	m := scrape(t, n.url)
	require.Equal(t, 1.0, value(t, m, "mcpreload_tool_calls_total", map[string]string{"tool": "calc_add", "version": "1.0.0", "outcome": "ok"}))
	require.Equal(t, 1.0, value(t, m, "mcpreload_tool_calls_total", map[string]string{"tool": "calc_div", "outcome": "tool_error"}))
	require.Equal(t, 1.0, value(t, m, "mcpreload_reloads_total", map[string]string{"module": "calc", "outcome": "committed"}))
	require.Equal(t, 1.0, value(t, m, "mcpreload_module_info", map[string]string{"module": "calc", "digest": loader.DigestOf(testutil.Wasm(t, "calc")), "role": "current"}))
	require.GreaterOrEqual(t, value(t, m, "mcpreload_instances", map[string]string{"module": "calc"}), 1.0)
	require.Equal(t, 1.0, value(t, m, "mcpreload_ready", nil))
	fam := m["mcpreload_tool_call_duration_seconds"]
	require.NotNil(t, fam)
	require.Equal(t, uint64(1), fam.Metric[0].GetHistogram().GetSampleCount())
}

// TestNodeOverStdio: the same node answers a stdio MCP client (the SDK's
// command transport launching the real binary).
func TestNodeOverStdio(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "mcpreload-node")
	build := exec.Command("go", "build", "-o", bin, "./cmd/node")
	build.Dir = testutil.RepoRoot(t)
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	dir := t.TempDir()
	place(t, dir, "counter.wasm", testutil.Wasm(t, "counter-v1"))
	cmd := exec.Command(bin, "--stdio", "--watch", dir, "--data-dir", t.TempDir(), "--log-format", "json")
	cmd.Stderr = &strings.Builder{}
	mc := mcp.NewClient(&mcp.Implementation{Name: "desktop", Version: "0"}, nil)
	cs, err := mc.Connect(context.Background(), &mcp.CommandTransport{Command: cmd}, nil)
	require.NoError(t, err)
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "counter_increment", Arguments: map[string]any{"by": 41}})
	require.NoError(t, err)
	require.Equal(t, "41", res.Content[0].(*mcp.TextContent).Text)
	require.NoError(t, cs.Close())
	require.NotContains(t, cmd.Stderr.(*strings.Builder).String(), `"level":"error"`)
}

func scrape(tb testing.TB, url string) map[string]*dtoFamily {
	tb.Helper()
	code, body := httpGet(tb, url+"/metrics")
	require.Equal(tb, 200, code)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	require.NoError(tb, err)
	return fams
}

// value returns the value of the metric in family name whose labels
// include want (nil: the only metric).
func value(tb testing.TB, fams map[string]*dtoFamily, name string, want map[string]string) float64 {
	tb.Helper()
	fam, ok := fams[name]
	require.True(tb, ok, "metric %s missing", name)
next:
	for _, m := range fam.Metric {
		got := map[string]string{}
		for _, lp := range m.Label {
			got[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Untyped != nil:
			return m.Untyped.GetValue()
		}
	}
	tb.Fatalf("no %s metric with labels %v", name, want)
	return 0
}
