// Package nats_test runs the shipped nats-server configurations (single.conf,
// cluster-N.conf, accounts.conf) with the real nats-server binary at the
// version go.mod pins, and checks that each mcpreload role can do what it
// needs and nothing it must not.
//
// The binary is built once from the module cache and kept under
// build/tools/nats-server-<version>, so later runs start in milliseconds.
// Configs are rendered into a temp dir by exact text substitution (ports,
// store dirs, the route password placeholder); a substitution that no longer
// matches the shipped file fails the test, so configs and test cannot drift
// apart silently.
package nats_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/internal/wasmbuild"
)

// Credentials the tests start the servers with. The server parses each
// environment value as a config value, so README.md says to wrap it in
// double quotes; the publisher's and the route's (bcrypt hashes, cost 10)
// and the node's (spaces and punctuation) prove that this works, the others
// that simple unquoted values do too.
const (
	publisherPassword     = "publisher-test-password"
	publisherPasswordHash = "$2a$10$IyuF6yQQDgCrdYxTIzXsHumQmZKMA7bOKg2aq/KBGN1u3i0cbxDfu"
	nodePassword          = "node test#password: 1/2"
	orchestratorPassword  = "orchestrator-test-password"
	systemPassword        = "sys-test-password"
	routePassword         = "route-test-password"
	routePasswordHash     = "$2a$10$KN0yrlmghWSQp5VfmzYAx.Qp8Q0.wyeI/2fL7CGxv013WsK7pmFgC"
)

// serverEnv is the environment every test server gets on top of ours.
func serverEnv() []string {
	return append(os.Environ(),
		"NATS_PUBLISHER_PASSWORD="+strconv.Quote(publisherPasswordHash),
		"NATS_NODE_PASSWORD="+strconv.Quote(nodePassword),
		"NATS_ORCHESTRATOR_PASSWORD="+orchestratorPassword,
		"NATS_SYSTEM_PASSWORD="+systemPassword,
		"NATS_ROUTE_PASSWORD="+strconv.Quote(routePasswordHash), // the plain one is in the route URLs
	)
}

// role is one of the users in accounts.conf.
type role struct{ user, password string }

var (
	publisherRole    = role{"publisher", publisherPassword}
	nodeRole         = role{"node", nodePassword}
	orchestratorRole = role{"orchestrator", orchestratorPassword}
)

// ---------------------------------------------------------------- binary

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// natsServerBinary returns the path of a nats-server binary built from the
// module version go.mod requires, building it on first use.
func natsServerBinary(tb testing.TB) string {
	tb.Helper()
	binOnce.Do(func() { binPath, binErr = buildNatsServer() })
	require.NoError(tb, binErr)
	return binPath
}

func buildNatsServer() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	root, err := wasmbuild.FindRoot(wd)
	if err != nil {
		return "", err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the go command is needed to build nats-server: %w", err)
	}
	out, err := goCmd(root, goBin, "list", "-m", "-f", "{{.Version}}", "github.com/nats-io/nats-server/v2")
	if err != nil {
		return "", err
	}
	version := strings.TrimSpace(out)
	dir := filepath.Join(root, "build", "tools")
	path := filepath.Join(dir, "nats-server-"+version)
	if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// Build next to the target and rename: concurrent test runs never see
	// a half-written binary.
	tmp, err := os.CreateTemp(dir, ".nats-server-*")
	if err != nil {
		return "", err
	}
	_ = tmp.Close()
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := goCmd(root, goBin, "build", "-o", tmp.Name(), "github.com/nats-io/nats-server/v2"); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	return path, nil
}

func goCmd(dir, goBin string, args ...string) (string, error) {
	cmd := exec.Command(goBin, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// ------------------------------------------------------------- rendering

// replacement is an exact text substitution that must match exactly once.
type replacement struct{ old, new string }

// render copies the shipped config name into dir with the replacements
// applied.
func render(tb testing.TB, dir, name string, repl ...replacement) {
	tb.Helper()
	b, err := os.ReadFile(name)
	require.NoError(tb, err)
	s := string(b)
	for _, r := range repl {
		require.Equalf(tb, 1, strings.Count(s, r.old),
			"%s: expected exactly one %q to rewrite; update the test with the config", name, r.old)
		s = strings.Replace(s, r.old, r.new, 1)
	}
	require.NoError(tb, os.WriteFile(filepath.Join(dir, name), []byte(s), 0o600))
}

// freePorts reserves n distinct loopback ports and releases them. A server
// could lose one to another process before it binds; startServers retries.
func freePorts(tb testing.TB, n int) []int {
	tb.Helper()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(tb, err)
		defer func() { _ = l.Close() }()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// --------------------------------------------------------------- process

// server is a nats-server subprocess.
type server struct {
	name    string
	client  string // nats://127.0.0.1:port
	monitor string // http://127.0.0.1:port
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
}

// spec is what startServers needs to launch one server.
type spec struct {
	name   string
	dir    string // rendered configs
	conf   string // file name in dir
	client int
	http   int
}

// startServers launches every spec, waits until each answers /healthz with
// 200 (JetStream up and, in a cluster, current with a meta leader) and stops
// them when the test ends. It returns false, after stopping them, if a
// server exited early because a port was taken, so the caller can retry
// with other ports.
func startServers(tb testing.TB, specs []spec, timeout time.Duration) ([]*server, bool) {
	tb.Helper()
	bin := natsServerBinary(tb)
	servers := make([]*server, 0, len(specs))
	for _, sp := range specs {
		logPath := filepath.Join(sp.dir, "server.log")
		logFile, err := os.Create(logPath)
		require.NoError(tb, err)
		cmd := exec.Command(bin, "-c", filepath.Join(sp.dir, sp.conf))
		cmd.Dir = sp.dir
		cmd.Env = serverEnv()
		cmd.Stdout, cmd.Stderr = logFile, logFile
		require.NoError(tb, cmd.Start())
		_ = logFile.Close()
		s := &server{
			name: sp.name, logPath: logPath, cmd: cmd, exited: make(chan struct{}),
			client:  fmt.Sprintf("nats://127.0.0.1:%d", sp.client),
			monitor: fmt.Sprintf("http://127.0.0.1:%d", sp.http),
		}
		go func() { _ = cmd.Wait(); close(s.exited) }()
		tb.Cleanup(s.stop)
		servers = append(servers, s)
	}
	deadline := time.Now().Add(timeout)
	for _, s := range servers {
		if err := s.waitHealthy(deadline); err != nil {
			log := s.log()
			for _, o := range servers {
				o.stop()
			}
			if strings.Contains(log, "address already in use") {
				return nil, false
			}
			require.NoErrorf(tb, err, "%s did not become healthy; its log:\n%s", s.name, log)
		}
	}
	return servers, true
}

// waitHealthy polls /healthz until 200, the process exits or the deadline.
func (s *server) waitHealthy(deadline time.Time) error {
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		if resp, err := client.Get(s.monitor + "/healthz"); err == nil {
			body := new(bytes.Buffer)
			_, _ = body.ReadFrom(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(body.String()))
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("/healthz not ready: %s", last)
		}
		select {
		case <-s.exited:
			return errors.New("nats-server exited")
		case <-tick.C:
		}
	}
}

// stop interrupts the server (it shuts down cleanly) and kills it if it has
// not exited within 5 s. It is idempotent.
func (s *server) stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

func (s *server) log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// monitorJSON decodes a monitoring endpoint such as "/jsz" into v.
func (s *server) monitorJSON(tb testing.TB, path string, v any) {
	tb.Helper()
	resp, err := http.Get(s.monitor + path)
	require.NoError(tb, err)
	defer func() { _ = resp.Body.Close() }()
	require.Equal(tb, http.StatusOK, resp.StatusCode, path)
	require.NoError(tb, json.NewDecoder(resp.Body).Decode(v))
}

// ---------------------------------------------------------------- clients

// errRecorder keeps a connection's asynchronous errors (permission
// violations arrive this way) so a test can wait for a specific one.
type errRecorder struct {
	mu     sync.Mutex
	errs   []error
	notify chan struct{}
}

func newErrRecorder() *errRecorder { return &errRecorder{notify: make(chan struct{}, 1)} }

func (r *errRecorder) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// mark returns a position in the recorded errors for waitFrom.
func (r *errRecorder) mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.errs)
}

// waitFor returns the first recorded error whose text contains want, or
// nil at the deadline.
func (r *errRecorder) waitFor(want string, timeout time.Duration) error {
	return r.waitFrom(0, want, timeout)
}

// waitFrom is waitFor among the errors recorded since mark returned from.
func (r *errRecorder) waitFrom(from int, want string, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		for _, err := range r.errs[from:] {
			if strings.Contains(err.Error(), want) {
				r.mu.Unlock()
				return err
			}
		}
		r.mu.Unlock()
		select {
		case <-r.notify:
		case <-deadline.C:
			return nil
		}
	}
}

// conn is a client connection as one role, with its async errors.
type conn struct {
	*nats.Conn
	role role
	errs *errRecorder
}

// connect logs in as r to urls (comma separated) and closes the
// connection when the test ends.
func connect(tb testing.TB, urls string, r role) *conn {
	tb.Helper()
	rec := newErrRecorder()
	nc, err := nats.Connect(urls, nats.UserInfo(r.user, r.password), nats.Name("deploy-test-"+r.user),
		nats.ErrorHandler(rec.handler), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	require.NoErrorf(tb, err, "connect as %s", r.user)
	tb.Cleanup(nc.Close)
	return &conn{Conn: nc, role: r, errs: rec}
}

// requireDenied publishes an empty message on subject and requires the
// server to answer with a publish permissions violation for it.
func (c *conn) requireDenied(tb testing.TB, subject string) {
	tb.Helper()
	from := c.errs.mark()
	require.NoError(tb, c.Publish(subject, nil))
	require.NoError(tb, c.Flush())
	want := fmt.Sprintf("Permissions Violation for Publish to %q", subject)
	err := c.errs.waitFrom(from, want, 2*time.Second)
	require.NotNilf(tb, err, "%s may publish on %s; it must not", c.role.user, subject)
	require.ErrorIs(tb, err, nats.ErrPermissionViolation)
}

// requireSubDenied subscribes to subject and requires a subscription
// permissions violation.
func (c *conn) requireSubDenied(tb testing.TB, subject string) {
	tb.Helper()
	from := c.errs.mark()
	sub, err := c.SubscribeSync(subject)
	require.NoError(tb, err)
	defer func() { _ = sub.Unsubscribe() }()
	require.NoError(tb, c.Flush())
	want := fmt.Sprintf("Permissions Violation for Subscription to %q", subject)
	require.NotNilf(tb, c.errs.waitFrom(from, want, 2*time.Second), "%s may subscribe to %s; it must not", c.role.user, subject)
}

// requireNoViolations fails if the connection saw any permissions
// violation: an operation that succeeded may still have been denied a side
// request (a consumer delete, a flow-control reply).
func (c *conn) requireNoViolations(tb testing.TB) {
	tb.Helper()
	require.NoError(tb, c.Flush())
	c.errs.mu.Lock()
	defer c.errs.mu.Unlock()
	for _, err := range c.errs.errs {
		require.NotErrorIsf(tb, err, nats.ErrPermissionViolation, "%s", c.role.user)
	}
}

// ctxTimeout is a context that ends after d or with the test.
func ctxTimeout(tb testing.TB, d time.Duration) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), d)
	tb.Cleanup(cancel)
	return ctx
}
