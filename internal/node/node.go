// Package node is the mcpreload node worker: a loader of tool modules, the
// tool registry, an MCP server (streamable HTTP or stdio) whose tools update
// live, health and metrics endpoints, and the --watch developer loop.
// cmd/node's main is a thin wrapper around Main, which tests start too.
package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/mcpreload/mcpreload/loader"
	"github.com/mcpreload/mcpreload/registry"
)

// Version is the node's version, reported to MCP clients.
var Version = "dev"

// Node is one running node. Open starts it, Close stops it; a Node is not
// reusable after Close.
type Node struct {
	cfg     Config
	log     zerolog.Logger
	loader  *loader.Loader
	reg     *registry.Registry
	metrics *metrics
	mcp     *mcpServer
	calls   callGate

	ready atomic.Bool
	// reloadMu serializes reloads per module (watch events and, later,
	// saga commands), so prepare+commit+registry update is one step.
	reloadMu sync.Map // module -> *sync.Mutex

	httpSrv  *http.Server
	listener net.Listener
	watcher  *watcher

	agent      *agent
	natsServer *server.Server

	// onChange, when set (by the NATS agent), runs after a module's
	// current version changed or it was unloaded, under the module's lock.
	onChange func(module string)

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New creates a node from a validated Config.
func New(ctx context.Context, cfg Config, log zerolog.Logger) (*Node, error) {
	lcfg := cfg.loaderConfig()
	lcfg.Output = guestOutput(log.With().Str("component", "tool").Logger())
	l, err := loader.New(ctx, lcfg)
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: log, loader: l, reg: registry.New()}
	n.metrics = newMetrics(l, n.ready.Load)
	n.mcp = newMCPServer(cfg.ID, l, n.reg, n.metrics, &n.calls, log)
	return n, nil
}

// Loader returns the node's loader.
func (n *Node) Loader() *loader.Loader { return n.loader }

// Registry returns the node's tool registry.
func (n *Node) Registry() *registry.Registry { return n.reg }

// Addr returns the address the HTTP server listens on ("" with --stdio).
func (n *Node) Addr() string {
	if n.listener == nil {
		return ""
	}
	return n.listener.Addr().String()
}

// Open starts the node: the registry follower, the HTTP server (unless
// stdio), and the watch loop, which loads the initial modules before the
// node reports ready.
func (n *Node) Open(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	sub := n.reg.Subscribe()
	n.wg.Go(func() {
		defer sub.Close()
		n.mcp.follow(runCtx, sub)
	})
	if !n.cfg.Stdio {
		ln, err := net.Listen("tcp", n.cfg.MCPListen)
		if err != nil {
			return fmt.Errorf("--mcp-listen %s: %w", n.cfg.MCPListen, err)
		}
		n.listener = ln
		n.httpSrv = &http.Server{Handler: n.routes(), ReadHeaderTimeout: 10 * time.Second}
		n.wg.Go(func() {
			if err := n.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				n.log.Error().Err(err).Msg("HTTP server stopped")
			}
		})
		n.log.Info().Str("addr", "http://"+ln.Addr().String()+"/mcp").Msg("serving MCP over streamable HTTP")
	}
	if n.cfg.Fleet() {
		if err := n.openFleet(ctx); err != nil {
			return err
		}
	}
	if n.cfg.Watch != "" {
		w, err := newWatcher(n, n.cfg.Watch, n.cfg.WatchDebounce)
		if err != nil {
			return err
		}
		n.watcher = w
		w.loadAll(ctx)
		n.wg.Go(func() { w.run(runCtx) })
	}
	n.ready.Store(true)
	n.log.Info().Strs("modules", n.loader.Modules()).Msg("node ready")
	return nil
}

func (n *Node) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/mcp", mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return n.mcp.srv }, nil))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !n.ready.Load() {
			http.Error(w, "not ready: loading initial modules", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("/metrics", promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{}))
	return mux
}

// ServeStdio serves one MCP session on the given transport until the
// client disconnects or ctx ends.
func (n *Node) ServeStdio(ctx context.Context, t mcp.Transport) error {
	n.log.Info().Msg("serving MCP over stdio")
	return n.mcp.srv.Run(ctx, t)
}

// Close stops the node gracefully: it stops taking new calls, waits (up to
// --shutdown-timeout) for calls in flight, then closes everything.
func (n *Node) Close(ctx context.Context) error {
	n.ready.Store(false)
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ShutdownTimeout)
	defer cancel()
	if n.httpSrv != nil {
		// Shutdown closes the listener at once; SSE streams never go idle,
		// so it is not waited for here.
		go func() { _ = n.httpSrv.Shutdown(ctx) }()
	}
	inflight, err := n.calls.close(ctx)
	if err != nil {
		n.log.Warn().Int("calls", inflight).Dur("waited", n.cfg.ShutdownTimeout).Msg("shutdown deadline passed with calls still running; they are cut off")
	} else if inflight > 0 {
		n.log.Info().Int("calls", inflight).Msg("calls in flight finished")
	}
	if n.httpSrv != nil {
		_ = n.httpSrv.Close()
	}
	if n.cancel != nil {
		n.cancel()
	}
	if n.watcher != nil {
		n.watcher.close()
	}
	n.closeFleet()
	n.wg.Wait()
	return n.loader.Close(context.Background())
}

func (n *Node) moduleLock(module string) *sync.Mutex {
	mu, _ := n.reloadMu.LoadOrStore(module, &sync.Mutex{})
	return mu.(*sync.Mutex)
}

// Reload prepares and commits wasm as module, then publishes the new tool
// definitions. digest may be empty (no check). On any error the serving
// version is unchanged.
func (n *Node) Reload(ctx context.Context, module string, wasm []byte, digest string) (*loader.CommitResult, error) {
	mu := n.moduleLock(module)
	mu.Lock()
	defer mu.Unlock()
	staged, err := n.prepare(ctx, module, wasm, digest)
	if err != nil {
		return nil, err
	}
	return n.commit(ctx, staged)
}

// prepare stages a version, logging and counting a rejection.
func (n *Node) prepare(ctx context.Context, module string, wasm []byte, digest string) (*loader.Staged, error) {
	staged, err := n.loader.Prepare(ctx, module, wasm, digest)
	if err != nil {
		n.metrics.reloads.WithLabelValues(module, "rejected").Inc()
		n.log.Error().Str("module", module).Str("digest", loader.DigestOf(wasm)).
			Str("stage", loader.StageOf(err)).Str("code", loader.Code(err)).Err(err).
			Msg("module rejected; the previous version keeps serving")
		return nil, err
	}
	return staged, nil
}

// commit commits a staged version, then publishes its tools and records it
// in the module cache. Callers hold the module's lock.
func (n *Node) commit(ctx context.Context, staged *loader.Staged) (*loader.CommitResult, error) {
	module := staged.Module()
	log := n.log.With().Str("module", module).Str("digest", staged.Digest()).Logger()
	res, err := n.loader.Commit(ctx, staged)
	if err != nil {
		n.metrics.reloads.WithLabelValues(module, "failed").Inc()
		log.Error().Str("stage", loader.StageOf(err)).Str("code", loader.Code(err)).Err(err).
			Msg("commit failed; the previous version keeps serving with its state")
		return nil, err
	}
	if res.Unchanged {
		n.metrics.reloads.WithLabelValues(module, "unchanged").Inc()
		log.Debug().Msg("module unchanged")
		return res, nil
	}
	if err := n.publish(module); err != nil {
		return res, err
	}
	n.metrics.reloads.WithLabelValues(module, "committed").Inc()
	from := ""
	if res.From != nil {
		from = res.From.Version
	}
	log.Info().Str("from", from).Str("to", res.To.Version).Bool("migrated", res.Migrated).
		Dur("took", res.Took).Msg("module reloaded")
	return res, nil
}

// rollback returns module to its old version (the loader's instant
// rollback) and publishes its tools. Callers hold the module's lock.
func (n *Node) rollback(ctx context.Context, module string) (*loader.RollbackResult, error) {
	res, err := n.loader.Rollback(ctx, module)
	if err != nil {
		return nil, err
	}
	n.metrics.reloads.WithLabelValues(module, "rolled_back").Inc()
	n.log.Info().Str("module", module).Str("digest", res.To.Digest).Str("from_digest", res.From.Digest).
		Str("from", res.From.Version).Str("to", res.To.Version).
		Bool("migrated", res.Migrated).Str("restore_reason", res.RestoreReason).Msg("module rolled back")
	return res, n.publish(module)
}

// Unload removes module and its tools.
func (n *Node) Unload(ctx context.Context, module string) error {
	mu := n.moduleLock(module)
	mu.Lock()
	defer mu.Unlock()
	return n.unload(ctx, module)
}

// unload is Unload for callers that hold the module's lock.
func (n *Node) unload(ctx context.Context, module string) error {
	from, _ := n.loader.Digest(module)
	n.reg.RemoveModule(module)
	if err := n.loader.Unload(ctx, module); err != nil {
		return err
	}
	if n.onChange != nil {
		n.onChange(module)
	}
	n.metrics.reloads.WithLabelValues(module, "unloaded").Inc()
	n.log.Info().Str("module", module).Str("from_digest", from).Msg("module unloaded")
	return nil
}

// publish writes module's current tools to the registry and tells the
// agent (module cache, presence) when one runs.
func (n *Node) publish(module string) error {
	cur, _, err := n.loader.Versions(module)
	if err != nil {
		return err
	}
	if n.onChange != nil {
		n.onChange(module)
	}
	defs := make([]json.RawMessage, len(cur.Tools))
	for i, t := range cur.Tools {
		defs[i] = t.Definition
	}
	if _, err := n.reg.SetModule(module, cur.Version, cur.Digest, defs); err != nil {
		// The loader refuses colliding tool names before this point, so
		// this means the registry and the loader disagree: say so loudly.
		n.log.Error().Err(err).Str("module", module).Msg("registry refused the module's tools")
		return err
	}
	return nil
}
