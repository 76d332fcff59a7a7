package test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/internal/node"
	"github.com/mcpreload/mcpreload/internal/testutil"
)

// logSink collects a node's JSON log lines (see testutil.LogSink).
type logSink = testutil.LogSink

func newLogSink() *logSink { return testutil.NewLogSink() }

// msg matches log lines by message and fields.
var msg = testutil.Msg

// runningNode is a node started through node.Main.
type runningNode struct {
	url  string // http://127.0.0.1:port
	logs *logSink
	stop func() int
}

// startNode runs node.Main with args plus a loopback listener and a data
// dir sharing the repository's compilation cache, and waits until it
// serves. stop cancels it and returns the exit code.
func startNode(tb testing.TB, args ...string) *runningNode {
	tb.Helper()
	logs := newLogSink()
	ctx, cancel := context.WithCancel(context.Background())
	dataDir := tb.TempDir()
	// Share the repository's on-disk compilation cache: compiles are ms.
	cache := filepath.Join(dataDir, "cache")
	require.NoError(tb, os.MkdirAll(cache, 0o755))
	require.NoError(tb, os.Symlink(testutil.CacheDir(tb), filepath.Join(cache, "wazero")))
	args = append([]string{"--mcp-listen", "127.0.0.1:0", "--data-dir", dataDir, "--log-format", "json", "--id", "n1"}, args...)
	exit := make(chan int, 1)
	go func() {
		exit <- node.Main(ctx, args, func(string) string { return "" }, strings.NewReader(""), io.Discard, logs)
	}()
	_, line := logs.Wait(tb, 0, 60*time.Second, msg("serving MCP over streamable HTTP"))
	url := strings.TrimSuffix(line["addr"].(string), "/mcp")
	logs.Wait(tb, 0, 60*time.Second, msg("node ready"))
	var once sync.Once
	code := -1
	stop := func() int {
		once.Do(func() {
			cancel()
			code = <-exit
			logs.Close()
		})
		return code
	}
	tb.Cleanup(func() {
		stop()
		if tb.Failed() && os.Getenv("MCPRELOAD_TEST_LOGS") != "" {
			for _, l := range logs.Lines() {
				b, _ := json.Marshal(l)
				tb.Logf("%s: %s", args, b)
			}
		}
	})
	return &runningNode{url: url, logs: logs, stop: stop}
}

// client is an MCP client session counting list_changed notifications.
type client struct {
	*mcp.ClientSession
	mu      sync.Mutex
	changed int
	wake    chan struct{}
}

func connect(tb testing.TB, url string) *client {
	tb.Helper()
	c := &client{wake: make(chan struct{})}
	mc := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "0"}, &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
			c.mu.Lock()
			c.changed++
			close(c.wake)
			c.wake = make(chan struct{})
			c.mu.Unlock()
		},
	})
	cs, err := mc.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: url + "/mcp"}, nil)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = cs.Close() })
	c.ClientSession = cs
	return c
}

// waitChanged waits until the client has seen at least n notifications and
// returns the count.
func (c *client) waitChanged(tb testing.TB, n int) int {
	tb.Helper()
	deadline := time.After(30 * time.Second)
	for {
		c.mu.Lock()
		got, wake := c.changed, c.wake
		c.mu.Unlock()
		if got >= n {
			return got
		}
		select {
		case <-wake:
		case <-deadline:
			tb.Fatalf("saw %d tools/list_changed notifications, want %d", got, n)
		}
	}
}

func (c *client) toolNames(tb testing.TB) []string {
	tb.Helper()
	res, err := c.ListTools(context.Background(), nil)
	require.NoError(tb, err)
	var names []string
	for _, t := range res.Tools {
		names = append(names, t.Name)
	}
	return names
}

// callText calls a tool and returns its text, failing on any error.
func (c *client) callText(tb testing.TB, tool string, args map[string]any) string {
	tb.Helper()
	res, err := c.CallTool(context.Background(), &mcp.CallToolParams{Name: tool, Arguments: args})
	require.NoError(tb, err)
	require.NotEmpty(tb, res.Content)
	text := res.Content[0].(*mcp.TextContent).Text
	require.False(tb, res.IsError, "tool %s: %s", tool, text)
	return text
}

// place atomically installs wasm as dir/name (write to a temp file, rename),
// the way deployments replace files.
func place(tb testing.TB, dir, name string, wasm []byte) {
	tb.Helper()
	tmp := filepath.Join(dir, "."+name+".tmp")
	require.NoError(tb, os.WriteFile(tmp, wasm, 0o644))
	require.NoError(tb, os.Rename(tmp, filepath.Join(dir, name)))
}

func httpGet(tb testing.TB, url string) (int, string) {
	tb.Helper()
	resp, err := http.Get(url)
	require.NoError(tb, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(tb, err)
	return resp.StatusCode, string(b)
}

// hasSaga reports whether a "saga started" line for id was logged.
func hasSaga(s *logSink, id string) bool {
	for _, l := range s.Lines() {
		if l["message"] == "saga started" && l["saga"] == id {
			return true
		}
	}
	return false
}
