package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/events"
	"github.com/mcpreload/mcpreload/internal/bus"
	"github.com/mcpreload/mcpreload/internal/testutil"
	"github.com/mcpreload/mcpreload/internal/wasmgen"
	"github.com/mcpreload/mcpreload/loader"
)

// Helpers of the fault-injection tests (faults_*_test.go): real node
// processes killed with SIGKILL, a TCP proxy that cuts a node off NATS, a
// 3-server JetStream cluster, and readers of the saga stream and of node
// logs. Names start with "fault" so they do not collide with other helpers
// of the package.

// faultBin is the node binary, built once per test binary run.
var faultBin struct {
	once sync.Once
	path string
	err  error
}

// faultNodeBinary builds ./cmd/node once per test binary run into a fresh
// temporary directory and returns the executable's path. Such directories
// left by runs more than an hour old are removed first (without a TestMain
// the package has no hook to remove its own at the end).
func faultNodeBinary(tb testing.TB) string {
	tb.Helper()
	root := testutil.RepoRoot(tb)
	faultBin.once.Do(func() {
		old, _ := filepath.Glob(filepath.Join(os.TempDir(), "mcpreload-faults-*"))
		for _, d := range old {
			if st, err := os.Stat(d); err == nil && time.Since(st.ModTime()) > time.Hour {
				_ = os.RemoveAll(d)
			}
		}
		dir, err := os.MkdirTemp("", "mcpreload-faults-")
		if err != nil {
			faultBin.err = err
			return
		}
		out := filepath.Join(dir, "mcpreload-node")
		cmd := exec.Command("go", "build", "-o", out, "./cmd/node")
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			faultBin.err = fmt.Errorf("go build ./cmd/node: %w\n%s", err, b)
			return
		}
		faultBin.path = out
	})
	if faultBin.err != nil {
		tb.Fatal(faultBin.err)
	}
	return faultBin.path
}

// faultDataDir returns a fresh node data dir whose compilation cache is
// the repository's (as startNode sets it up), so compiles take ms. Pass it
// with --data-dir to restart a node on the same module cache.
func faultDataDir(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	cache := filepath.Join(dir, "cache")
	require.NoError(tb, os.MkdirAll(cache, 0o755))
	require.NoError(tb, os.Symlink(testutil.CacheDir(tb), filepath.Join(cache, "wazero")))
	return dir
}

// faultProc is a node running as a real process of the node binary.
type faultProc struct {
	id     string
	url    string // http://127.0.0.1:port
	logs   *logSink
	cmd    *exec.Cmd
	exited chan struct{}
}

// startFaultProc runs the node binary with a loopback listener, JSON logs
// captured, data dir dataDir and the extra args, and waits until it is
// ready. It is killed when the test ends.
func startFaultProc(tb testing.TB, id, dataDir string, extra ...string) *faultProc {
	tb.Helper()
	bin := faultNodeBinary(tb)
	args := append([]string{"--id", id, "--mcp-listen", "127.0.0.1:0", "--data-dir", dataDir, "--log-format", "json",
		"--presence-ttl", "3s", "--lease", "2s"}, extra...)
	logs := newLogSink()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, logs
	// Only the flags configure the node: drop MCPRELOAD_* from the
	// environment the tests run in.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "MCPRELOAD_") })
	require.NoError(tb, cmd.Start())
	p := &faultProc{id: id, logs: logs, cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // returns once stderr is copied to the sink
		logs.Close()
		close(p.exited)
	}()
	tb.Cleanup(func() {
		p.kill()
		logs.Close()
		if tb.Failed() && os.Getenv("MCPRELOAD_TEST_LOGS") != "" {
			for _, l := range logs.Lines() {
				b, _ := json.Marshal(l)
				tb.Logf("process %s: %s", id, b)
			}
		}
	})
	_, line := logs.Wait(tb, 0, 60*time.Second, msg("serving MCP over streamable HTTP"))
	p.url = strings.TrimSuffix(line["addr"].(string), "/mcp")
	logs.Wait(tb, 0, 60*time.Second, msg("node ready"))
	return p
}

// kill sends SIGKILL (no shutdown of any kind: presence stays until its
// TTL, sagas lose the node mid-step) and waits for the process to exit.
func (p *faultProc) kill() {
	select {
	case <-p.exited:
		p.logs.Close()
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	p.logs.Close() // every line it wrote is parsed
}

// faultProcNode starts a fleet node process on f's server.
func (f *fleet) faultProcNode(tb testing.TB, id, dataDir string, extra ...string) *faultProc {
	tb.Helper()
	p := startFaultProc(tb, id, dataDir, append([]string{"--nats-url", f.srv.ClientURL()}, extra...)...)
	p.logs.Wait(tb, 0, 30*time.Second, msg("joined the fleet"))
	return p
}

// faultGhost registers a fake node (see fleet.fakeNode: the test answers
// for it) and keeps its presence alive, as a node's heartbeat would, so it
// is live whenever a saga starts however slow the machine is. stop (also
// run when the test ends) removes it like a clean shutdown.
func (f *fleet) faultGhost(tb testing.TB, id string) (stop func()) {
	tb.Helper()
	f.fakeNode(tb, id)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				b, _ := json.Marshal(bus.Presence{Node: id, Modules: map[string]string{}, Updated: time.Now()})
				_, _ = f.b.Nodes.Put(ctx, id, b) // a miss is retried on the next tick
			}
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = f.b.Nodes.Delete(ctx, id)
		})
	}
	tb.Cleanup(stop)
	return stop
}

// faultTiny returns a stateless tiny module with the given version string
// and tool name.
func faultTiny(version, tool string) ([]byte, string) {
	wasm := wasmgen.Tiny(wasmgen.Spec{Version: version, Stateless: true, Tools: []string{tool}})
	return wasm, loader.DigestOf(wasm)
}

// faultRequest uploads wasm and publishes a reload request with the given
// strategy, phase timeout and (optional) targets; it returns the saga id.
func (f *fleet) faultRequest(tb testing.TB, module string, wasm []byte, strategy events.Strategy, timeout time.Duration, nodes ...string) string {
	tb.Helper()
	digest, _, err := f.b.PutModule(context.Background(), wasm)
	require.NoError(tb, err)
	return f.request(tb, events.ReloadRequest{Module: module, Digest: digest, Strategy: strategy, Nodes: nodes, Timeout: events.Duration(timeout)})
}

// faultWaitAck waits until node's ack of phase for saga id is in the saga
// stream (the orchestrator reads it from there too) and returns it.
func (f *fleet) faultWaitAck(tb testing.TB, id, node, phase string) events.Ack {
	tb.Helper()
	var out events.Ack
	f.faultNext(tb, f.b.Subjects.Saga(id, events.AckLeaf(node)), func(e *event.Event) bool {
		a, err := events.DecodeAck(e)
		require.NoError(tb, err)
		out = *a
		return a.Phase == phase
	})
	return out
}

// faultWaitCommand waits for saga id's first command of phase, like
// fleet.waitCommand, but rides out a cluster electing leaders.
func (f *fleet) faultWaitCommand(tb testing.TB, id, phase string) *events.Command {
	tb.Helper()
	e := f.faultNext(tb, f.b.Subjects.Saga(id, phase), func(*event.Event) bool { return true })
	cmd, err := events.DecodeCommand(e)
	require.NoError(tb, err)
	return cmd
}

// faultOutcome waits for saga id's outcome, like fleet.outcome, but rides
// out a cluster electing leaders.
func (f *fleet) faultOutcome(tb testing.TB, id string) *events.Outcome {
	tb.Helper()
	e := f.faultNext(tb, f.b.Subjects.Saga(id, events.LeafOutcome), func(*event.Event) bool { return true })
	o, err := events.DecodeOutcome(e)
	require.NoError(tb, err)
	return o
}

// faultNext reads subject in the saga stream from the start until match
// accepts an event, and returns it. Errors of JetStream (no responders, a
// consumer lost with its server) are retried with a fresh consumer, from
// the start, until a minute has passed.
func (f *fleet) faultNext(tb testing.TB, subject string, match func(*event.Event) bool) *event.Event {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var last error
	for ctx.Err() == nil {
		oc, err := f.b.JS.OrderedConsumer(ctx, f.b.Names.SagaStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
		for err == nil {
			var m jetstream.Msg
			if m, err = oc.Next(jetstream.FetchContext(ctx)); err == nil {
				if e := faultEvent(tb, m); match(e) {
					return e
				}
			}
		}
		last = err
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	tb.Fatalf("nothing matching on %s within a minute (last error: %v)", subject, last)
	return nil
}

// faultStored returns every event stored on the saga's subject leaf so far.
func (f *fleet) faultStored(tb testing.TB, id, leaf string) []*event.Event {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	subj := f.b.Subjects.Saga(id, leaf)
	info, err := f.b.Sagas.Info(ctx, jetstream.WithSubjectFilter(subj))
	require.NoError(tb, err)
	n := info.State.Subjects[subj]
	if n == 0 {
		return nil
	}
	oc, err := f.b.JS.OrderedConsumer(ctx, f.b.Names.SagaStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj}})
	require.NoError(tb, err)
	var out []*event.Event
	for range n {
		m, err := oc.Next(jetstream.FetchContext(ctx))
		require.NoError(tb, err)
		out = append(out, faultEvent(tb, m))
	}
	return out
}

// faultAcks returns node's acks of saga id stored so far.
func (f *fleet) faultAcks(tb testing.TB, id, node string) []events.Ack {
	tb.Helper()
	var out []events.Ack
	for _, e := range f.faultStored(tb, id, events.AckLeaf(node)) {
		a, err := events.DecodeAck(e)
		require.NoError(tb, err)
		out = append(out, *a)
	}
	return out
}

// faultCommandTargets returns the nodes any command of phase in saga id
// was sent to.
func (f *fleet) faultCommandTargets(tb testing.TB, id, phase string) map[string]bool {
	tb.Helper()
	out := map[string]bool{}
	for _, e := range f.faultStored(tb, id, phase) {
		c, err := events.DecodeCommand(e)
		require.NoError(tb, err)
		for _, n := range c.Targets {
			out[n] = true
		}
	}
	return out
}

func faultEvent(tb testing.TB, m jetstream.Msg) *event.Event {
	tb.Helper()
	e, err := events.FromNATS(context.Background(), &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
	require.NoError(tb, err)
	return e
}

// faultStates maps each node of an outcome to its state.
func faultStates(o *events.Outcome) map[string]string {
	out := map[string]string{}
	for _, n := range o.Nodes {
		out[n.Node] = n.State
	}
	return out
}

// faultDesired returns module's fleet-wide desired digest.
func (f *fleet) faultDesired(tb testing.TB, module string) string {
	tb.Helper()
	d, _, err := f.b.GetDesired(context.Background(), module, "")
	require.NoError(tb, err)
	return d.Digest
}

// faultConsistent asserts the end state of a fault scenario: module's
// desired digest is digest and every node in ids serves it.
func (f *fleet) faultConsistent(tb testing.TB, module, digest string, ids ...string) {
	tb.Helper()
	require.Equal(tb, digest, f.faultDesired(tb, module), "desired digest of %s", module)
	f.waitServing(tb, module, digest, ids...)
}

// faultSettled waits until the saga is entirely over: its module lock is
// released and its request acknowledged (gone from the work queue), so no
// orchestrator will touch it again. Only then is counting outcomes final.
func (f *fleet) faultSettled(tb testing.TB, module string) {
	tb.Helper()
	require.Eventually(tb, func() bool {
		ctx := context.Background()
		if _, err := f.b.Locks.Get(ctx, module); !errors.Is(err, jetstream.ErrKeyNotFound) {
			return false
		}
		info, err := f.b.Requests.Info(ctx)
		return err == nil && info.State.Msgs == 0
	}, 30*time.Second, 10*time.Millisecond, "the saga on %s should release its lock and acknowledge its request", module)
}

// faultServed lists, in order, the digests of module a node switched to,
// as its log says: "module reloaded" (every commit: saga, reconcile, cache
// load), "rolled back" (the loader's instant rollback, logged with the
// version string, mapped to a digest by versions), "module unloaded" ("").
// This is what "served" means in the fault tests: a digest a node never
// logged switching to is a digest no MCP client of that node was served.
func faultServed(s *logSink, module string, versions map[string]string) []string {
	var out []string
	for _, l := range s.Lines() {
		if l["module"] != module {
			continue
		}
		switch l["message"] {
		case "module reloaded":
			out = append(out, fmt.Sprint(l["digest"]))
		case "rolled back", "module rolled back":
			d, ok := versions[fmt.Sprint(l["to"])]
			if !ok {
				d = "version " + fmt.Sprint(l["to"])
			}
			out = append(out, d)
		case "module unloaded":
			out = append(out, "")
		}
	}
	return out
}

// faultProxy is a TCP proxy on loopback in front of a NATS server: cut
// closes every connection through it and refuses new ones until restore.
type faultProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu      sync.Mutex
	cut     bool
	conns   map[net.Conn]struct{}
	trip    []byte // see tripOn
	forward bool   // see tripOnForward
	tripped chan struct{}
	frozen  bool          // server-to-client bytes are held (tripOnForward fired)
	closed  chan struct{} // closed by close: held bytes are dropped
}

func newFaultProxy(tb testing.TB, target string) *faultProxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	p := &faultProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}, closed: make(chan struct{})}
	p.wg.Go(p.serve)
	tb.Cleanup(p.close)
	return p
}

// url is the NATS URL of the proxy.
func (p *faultProxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *faultProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		cut := p.cut
		p.mu.Unlock()
		if cut {
			_ = c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			_ = c.Close()
			_ = s.Close()
			continue
		}
		p.conns[c], p.conns[s] = struct{}{}, struct{}{}
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			if src == c {
				p.copyWatching(dst, src)
			} else {
				p.copyGated(dst, src)
			}
			_ = dst.Close()
			_ = src.Close()
			p.mu.Lock()
			delete(p.conns, dst)
			delete(p.conns, src)
			p.mu.Unlock()
		}
		p.wg.Go(func() { pipe(s, c) })
		p.wg.Go(func() { pipe(c, s) })
	}
}

// tripOn arms a one-shot fault: the first connection whose client sends
// pattern (e.g. a JetStream API subject) is closed before the bytes
// carrying it are forwarded; the client may reconnect at once. It returns
// a channel closed when the fault fired.
func (p *faultProxy) tripOn(pattern string) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.trip, p.forward = []byte(pattern), false
	p.tripped = make(chan struct{})
	return p.tripped
}

// tripOnForward arms the other one-shot fault: the bytes carrying pattern
// do reach the server, but from then on nothing the server sends reaches
// the client (a reply to that publish, say), as if the node froze right
// after sending it. The returned channel is closed when it fired.
func (p *faultProxy) tripOnForward(pattern string) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.trip, p.forward = []byte(pattern), true
	p.tripped = make(chan struct{})
	return p.tripped
}

// copyGated copies server bytes to the client like io.Copy while the proxy
// is not frozen; once frozen it holds them until the proxy closes.
func (p *faultProxy) copyGated(dst, src net.Conn) {
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			frozen := p.frozen
			p.mu.Unlock()
			if frozen {
				<-p.closed
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// copyWatching copies client bytes to the server like io.Copy, unless the
// armed pattern appears (also across reads): then it stops, forwarding
// nothing of that read.
func (p *faultProxy) copyWatching(dst, src net.Conn) {
	buf := make([]byte, 32*1024)
	var tail []byte
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			pat := p.trip
			if len(pat) > 0 && bytes.Contains(append(tail, buf[:n]...), pat) {
				p.trip = nil
				if !p.forward {
					close(p.tripped)
					p.mu.Unlock()
					return
				}
				p.frozen = true // before the server can answer
				p.mu.Unlock()
				_, _ = dst.Write(buf[:n])
				close(p.tripped)
				continue
			}
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			tail = append(tail, buf[:n]...)
			if keep := max(len(pat)-1, 0); len(tail) > keep {
				tail = tail[len(tail)-keep:]
			}
		}
		if err != nil {
			return
		}
	}
}

// cutAll closes every connection through the proxy and refuses new ones.
func (p *faultProxy) cutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		_ = c.Close()
	}
}

// restore lets connections through again.
func (p *faultProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

func (p *faultProxy) close() {
	_ = p.ln.Close()
	close(p.closed)
	p.cutAll()
	p.wg.Wait()
}

// faultClosedURL returns a NATS URL on a loopback port nothing listens on.
func faultClosedURL(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	addr := ln.Addr().String()
	require.NoError(tb, ln.Close())
	return "nats://" + addr
}

// faultCluster is an in-process 3-server JetStream cluster with TCP routes
// on loopback (API-NOTES 1.2).
type faultCluster struct {
	servers []*server.Server
	urls    string // the client URLs, comma-separated
}

func newFaultCluster(tb testing.TB) *faultCluster {
	tb.Helper()
	const n = 3
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(tb, err)
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		require.NoError(tb, ln.Close())
	}
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	c := &faultCluster{}
	tb.Cleanup(c.stop)
	base := tb.TempDir()
	for i := range n {
		name := fmt.Sprintf("S-%d", i+1)
		s, err := server.NewServer(&server.Options{
			ServerName: name, Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
			JetStream: true, StoreDir: filepath.Join(base, name),
			Cluster: server.ClusterOpts{Name: "FAULTS", Host: "127.0.0.1", Port: ports[i]},
			Routes:  server.RoutesFromStr(strings.Join(routes, ",")),
		})
		require.NoError(tb, err)
		go s.Start()
		c.servers = append(c.servers, s)
	}
	var urls []string
	for _, s := range c.servers {
		require.True(tb, s.ReadyForConnections(10*time.Second), "cluster server %s did not start", s.Name())
		urls = append(urls, s.ClientURL())
	}
	c.urls = strings.Join(urls, ",")
	require.Eventually(tb, func() bool {
		for _, s := range c.servers {
			if s.JetStreamIsLeader() {
				return true
			}
		}
		return false
	}, 30*time.Second, 10*time.Millisecond, "no JetStream meta leader")
	return c
}

// server returns the running server named name.
func (c *faultCluster) server(tb testing.TB, name string) *server.Server {
	tb.Helper()
	for _, s := range c.servers {
		if s.Name() == name {
			return s
		}
	}
	tb.Fatalf("no cluster server %q", name)
	return nil
}

func (c *faultCluster) stop() {
	for _, s := range c.servers {
		if s.Running() {
			s.Shutdown()
		}
		s.WaitForShutdown()
	}
}

// fleet returns a bus client on the cluster with every stream and bucket
// created with 3 replicas (retrying until JetStream answers).
func (c *faultCluster) fleet(tb testing.TB) *fleet {
	tb.Helper()
	nc, err := nats.Connect(c.urls, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	require.NoError(tb, err)
	tb.Cleanup(nc.Close)
	var b *bus.Bus
	require.Eventually(tb, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b, err = bus.Open(ctx, nc, bus.Options{Replicas: 3, PresenceTTL: 3 * time.Second})
		return err == nil
	}, 60*time.Second, 100*time.Millisecond, "bus on the cluster")
	return &fleet{nc: nc, b: b}
}

// urlsExcept returns the client URLs of every server but the named one.
func (c *faultCluster) urlsExcept(name string) string {
	var urls []string
	for _, s := range c.servers {
		if s.Name() != name {
			urls = append(urls, s.ClientURL())
		}
	}
	return strings.Join(urls, ",")
}

// node starts an in-process node (node.Main) connecting to urls (some or
// all of the cluster's client URLs).
func (c *faultCluster) node(tb testing.TB, id, urls string, extra ...string) *runningNode {
	tb.Helper()
	args := append([]string{"--id", id, "--nats-url", urls, "--replicas", "3", "--presence-ttl", "3s", "--lease", "2s"}, extra...)
	n := startNode(tb, args...)
	n.logs.Wait(tb, 0, 60*time.Second, msg("joined the fleet"))
	return n
}

// faultAckRetry publishes an ack as the fake node, retrying (the same
// event, so JetStream deduplicates) while the cluster elects leaders.
func (f *fleet) faultAckRetry(tb testing.TB, a events.Ack) {
	tb.Helper()
	e, err := events.New(events.TypeAck, "urn:test:"+a.Node, a.Module, a, events.WithID(uuid.NewString()))
	require.NoError(tb, err)
	require.Eventually(tb, func() bool {
		m, err := events.ToNATS(context.Background(), f.b.Subjects.Saga(a.Saga, events.AckLeaf(a.Node)), e)
		if err != nil {
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err = f.b.JS.PublishMsg(ctx, m)
		return err == nil
	}, 30*time.Second, 50*time.Millisecond, "publish the %s ack of %s", a.Phase, a.Node)
}
