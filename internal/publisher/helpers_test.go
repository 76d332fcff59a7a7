package publisher_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/internal/bus"
	"github.com/mcpreload/mcpreload/internal/natstest"
	"github.com/mcpreload/mcpreload/internal/node"
	"github.com/mcpreload/mcpreload/internal/publisher"
	"github.com/mcpreload/mcpreload/internal/testutil"
)

// fleet is an embedded JetStream server, a bus client on it, and the
// nodes started on it.
type fleet struct {
	srv *natstest.Server
	nc  *nats.Conn
	b   *bus.Bus
}

// newFleet starts a server and creates the resources the way nodes do
// (presence TTL 3s, as the nodes below use).
func newFleet(tb testing.TB) *fleet {
	tb.Helper()
	s := natstest.Run(tb)
	nc, b := s.OpenBus(tb, 3*time.Second)
	return &fleet{srv: s, nc: nc, b: b}
}

func (f *fleet) url() string { return f.srv.ClientURL() }

// node starts a fleet node through node.Main and waits until it joined.
func (f *fleet) node(tb testing.TB, id string, extra ...string) *runningNode {
	tb.Helper()
	args := append([]string{"--id", id, "--nats-url", f.url(), "--presence-ttl", "3s", "--lease", "2s"}, extra...)
	n := startNode(tb, args...)
	n.logs.Wait(tb, 0, 30*time.Second, testutil.Msg("joined the fleet"))
	return n
}

// waitLive waits until exactly the given nodes are live.
func (f *fleet) waitLive(tb testing.TB, ids ...string) {
	tb.Helper()
	natstest.WaitLive(tb, f.b, ids...)
}

// runningNode is a node started through node.Main.
type runningNode struct {
	logs *testutil.LogSink
	stop func() int
}

// startNode runs node.Main with args plus a loopback listener and a data
// dir sharing the repository's compilation cache, and waits until it is
// ready. The node is stopped when the test ends.
func startNode(tb testing.TB, args ...string) *runningNode {
	tb.Helper()
	logs := testutil.NewLogSink()
	ctx, cancel := context.WithCancel(context.Background())
	dataDir := tb.TempDir()
	cache := filepath.Join(dataDir, "cache")
	require.NoError(tb, os.MkdirAll(cache, 0o755))
	require.NoError(tb, os.Symlink(testutil.CacheDir(tb), filepath.Join(cache, "wazero")))
	args = append([]string{"--mcp-listen", "127.0.0.1:0", "--data-dir", dataDir, "--log-format", "json"}, args...)
	exit := make(chan int, 1)
	go func() {
		exit <- node.Main(ctx, args, func(string) string { return "" }, strings.NewReader(""), io.Discard, logs)
	}()
	logs.Wait(tb, 0, 60*time.Second, testutil.Msg("node ready"))
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
	tb.Cleanup(func() { stop() })
	return &runningNode{logs: logs, stop: stop}
}

// result is one run of the CLI.
type result struct {
	code           int
	stdout, stderr string
}

// run runs publisher.Main with args and an empty environment.
func run(tb testing.TB, args ...string) result {
	tb.Helper()
	return runEnv(tb, nil, args...)
}

// runEnv runs publisher.Main with args and the environment env.
func runEnv(tb testing.TB, env map[string]string, args ...string) result {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := publisher.Main(ctx, args, func(k string) string { return env[k] }, &stdout, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// jsonOut decodes the run's stdout, which must be exactly one JSON
// document.
func jsonOut[T any](tb testing.TB, r result) T {
	tb.Helper()
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	var v T
	require.NoError(tb, dec.Decode(&v), "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	_, err := dec.Token()
	require.ErrorIs(tb, err, io.EOF, "stdout holds more than one JSON document: %s", r.stdout)
	return v
}

// wasmFile writes wasm to a temp file and returns its path.
func wasmFile(tb testing.TB, wasm []byte) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "module.wasm")
	require.NoError(tb, os.WriteFile(p, wasm, 0o644))
	return p
}

// closedURL returns a NATS URL on a loopback port nothing listens on.
func closedURL(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(tb, l.Close())
	return "nats://127.0.0.1:" + strconv.Itoa(port)
}

// reloadReport is the JSON document of reload and rollback.
type reloadReport struct {
	Saga           string `json:"saga"`
	Module         string `json:"module"`
	Digest         string `json:"digest"`
	PreviousDigest string `json:"previous_digest"`
	Version        string `json:"version"`
	Strategy       string `json:"strategy"`
	Result         string `json:"result"`
	Reason         string `json:"reason"`
	Nodes          []struct {
		Node    string `json:"node"`
		State   string `json:"state"`
		Stage   string `json:"stage"`
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"nodes"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	Uploaded   bool      `json:"uploaded"`
	TookMS     *int64    `json:"took_ms"`
	Published  bool      `json:"published"`
	Error      string    `json:"error"`
	ExitCode   int       `json:"exit_code"`
}

// nodeState returns the state of node in the report, or "".
func (r reloadReport) node(id string) (state, stage, code, msg string) {
	for _, n := range r.Nodes {
		if n.Node == id {
			return n.State, n.Stage, n.Code, n.Message
		}
	}
	return "", "", "", ""
}
