package test

import (
	"bufio"
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

// logSink collects a node's JSON log lines and lets tests wait for one.
type logSink struct {
	mu    sync.Mutex
	lines []map[string]any
	wake  chan struct{}
	pw    *io.PipeWriter
	done  chan struct{}
}

func newLogSink() *logSink {
	pr, pw := io.Pipe()
	s := &logSink{wake: make(chan struct{}), pw: pw, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				m = map[string]any{"message": sc.Text()}
			}
			s.mu.Lock()
			s.lines = append(s.lines, m)
			close(s.wake)
			s.wake = make(chan struct{})
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *logSink) Write(p []byte) (int, error) { return s.pw.Write(p) }

// wait returns the first log line (from index `from` on) for which match
// is true, failing the test after timeout. It returns the line's index.
func (s *logSink) wait(tb testing.TB, from int, timeout time.Duration, match func(map[string]any) bool) (int, map[string]any) {
	tb.Helper()
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		for i := from; i < len(s.lines); i++ {
			if match(s.lines[i]) {
				l := s.lines[i]
				s.mu.Unlock()
				return i, l
			}
		}
		from = len(s.lines)
		wake := s.wake
		s.mu.Unlock()
		select {
		case <-wake:
		case <-deadline:
			tb.Fatalf("no matching log line within %v", timeout)
		}
	}
}

func (s *logSink) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lines)
}

// msg matches log lines by message and fields.
func msg(text string, fields ...string) func(map[string]any) bool {
	return func(m map[string]any) bool {
		if m["message"] != text {
			return false
		}
		for i := 0; i+1 < len(fields); i += 2 {
			if m[fields[i]] != fields[i+1] {
				return false
			}
		}
		return true
	}
}

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
	_, line := logs.wait(tb, 0, 60*time.Second, msg("serving MCP over streamable HTTP"))
	url := strings.TrimSuffix(line["addr"].(string), "/mcp")
	logs.wait(tb, 0, 60*time.Second, msg("node ready"))
	var once sync.Once
	code := -1
	stop := func() int {
		once.Do(func() {
			cancel()
			code = <-exit
			_ = logs.pw.Close()
			<-logs.done
		})
		return code
	}
	tb.Cleanup(func() {
		stop()
		if tb.Failed() && os.Getenv("MCPRELOAD_TEST_LOGS") != "" {
			logs.mu.Lock()
			for _, l := range logs.lines {
				b, _ := json.Marshal(l)
				tb.Logf("%s: %s", args, b)
			}
			logs.mu.Unlock()
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
func (s *logSink) hasSaga(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines {
		if l["message"] == "saga started" && l["saga"] == id {
			return true
		}
	}
	return false
}
