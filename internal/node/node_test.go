package node

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/internal/testutil"
	"github.com/mcpreload/mcpreload/internal/wasmgen"
)

func testConfig(tb testing.TB, args ...string) Config {
	tb.Helper()
	dataDir := tb.TempDir()
	require.NoError(tb, os.MkdirAll(filepath.Join(dataDir, "cache"), 0o755))
	require.NoError(tb, os.Symlink(testutil.CacheDir(tb), filepath.Join(dataDir, "cache", "wazero")))
	cfg, err := ParseFlags(append([]string{"--mcp-listen", "127.0.0.1:0", "--data-dir", dataDir, "--id", "t"}, args...),
		func(string) string { return "" }, io.Discard)
	require.NoError(tb, err)
	return cfg
}

func TestReadyzIs503UntilModulesAreLoaded(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "calc.wasm"), testutil.Wasm(t, "calc"), 0o644))
	n, err := New(context.Background(), testConfig(t, "--watch", dir), zerolog.Nop())
	require.NoError(t, err)
	h := n.routes()

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, "not ready before the initial modules are loaded")
	require.Contains(t, rec.Body.String(), "loading initial modules")

	require.NoError(t, n.Open(context.Background()))
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, []string{"calc"}, n.Loader().Modules(), "ready means loaded")
	require.NoError(t, n.Close(context.Background()))
}

// TestCloseWaitsForCallsInFlight: shutdown refuses new calls but lets the
// ones in flight finish.
func TestCloseWaitsForCallsInFlight(t *testing.T) {
	n, err := New(context.Background(), testConfig(t), zerolog.Nop())
	require.NoError(t, err)
	require.NoError(t, n.Open(context.Background()))
	slow := wasmgen.Tiny(wasmgen.Spec{Version: "1", Stateless: true, Tools: []string{"slow"}, SpinIterations: 20_000_000})
	_, err = n.Reload(context.Background(), "slow", slow, "")
	require.NoError(t, err)

	cs := inMemoryClient(t, n)
	done := make(chan *mcp.CallToolResult, 1)
	errc := make(chan error, 1)
	go func() {
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "slow"})
		errc <- err
		done <- res
	}()
	require.Eventually(t, func() bool { return n.calls.inFlight() == 1 }, 10*time.Second, time.Millisecond)
	require.NoError(t, n.Close(context.Background()))
	require.NoError(t, <-errc)
	res := <-done
	require.False(t, res.IsError)
	require.Equal(t, "1", res.Content[0].(*mcp.TextContent).Text)
}

func inMemoryClient(tb testing.TB, n *Node) *mcp.ClientSession {
	tb.Helper()
	st, ct := mcp.NewInMemoryTransports()
	ctx := context.Background()
	ss, err := n.mcp.srv.Connect(ctx, st, nil)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = ss.Close() })
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "0"}, nil).Connect(ctx, ct, nil)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = cs.Close() })
	return cs
}

func TestParseFlags(t *testing.T) {
	env := map[string]string{"MCPRELOAD_ID": "from-env", "MCPRELOAD_CALL_TIMEOUT": "3s"}
	getenv := func(k string) string { return env[k] }
	cfg, err := ParseFlags([]string{"--call-timeout", "5s"}, getenv, io.Discard)
	require.NoError(t, err)
	require.Equal(t, "from-env", cfg.ID)
	require.Equal(t, 5*time.Second, cfg.CallTimeout, "a flag wins over the environment")
	require.Equal(t, "127.0.0.1:7801", cfg.MCPListen)

	for args, want := range map[string]string{
		"--call-timeout=-1s":    "timeouts must be positive",
		"--log-format=xml":      "--log-format",
		"--watch=/nonexistent":  "not a directory",
		"--id=a.b":              "--id",
		"--memory-limit-mib=0":  "--memory-limit-mib",
		"--no-such-flag":        "flag provided but not defined",
		"--call-timeout=banana": "invalid value",
		"stray":                 "unexpected argument",
	} {
		_, err := ParseFlags(strings.Fields(args), func(string) string { return "" }, io.Discard)
		require.ErrorContains(t, err, want, "args %s", args)
	}
	_, err = ParseFlags(nil, func(k string) string { return map[string]string{"MCPRELOAD_CALL_TIMEOUT": "x"}[k] }, io.Discard)
	require.ErrorContains(t, err, "MCPRELOAD_CALL_TIMEOUT")

	var help strings.Builder
	_, err = ParseFlags([]string{"--help"}, getenv, &help)
	require.ErrorIs(t, err, ErrHelp)
	require.Contains(t, help.String(), "Exit codes")
}

func TestMainExitCodes(t *testing.T) {
	var stderr strings.Builder
	code := Main(context.Background(), []string{"--bogus"}, func(string) string { return "" }, strings.NewReader(""), io.Discard, &stderr)
	require.Equal(t, ExitUsage, code)
	require.Contains(t, stderr.String(), "see mcpreload-node --help")
	require.Equal(t, ExitOK, Main(context.Background(), []string{"--help"}, func(string) string { return "" }, strings.NewReader(""), io.Discard, io.Discard))
}
