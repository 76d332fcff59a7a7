package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/rs/zerolog"

	"github.com/mcpreload/mcpreload/loader"
	"github.com/mcpreload/mcpreload/registry"
)

// mcpServer exposes the registry's tools through the official MCP SDK. It
// follows the registry as a subscriber and touches the SDK's tool list only
// for tools whose definition changed, so a reload that changes only code
// sends no notifications/tools/list_changed, and one that changes
// definitions sends one (the SDK debounces a burst of changes).
type mcpServer struct {
	srv     *mcp.Server
	loader  *loader.Loader
	reg     *registry.Registry
	metrics *metrics
	log     zerolog.Logger
	calls   *callGate

	mu    sync.Mutex
	known map[string]string // tool -> definition digest the SDK has
}

func newMCPServer(id string, l *loader.Loader, reg *registry.Registry, m *metrics, calls *callGate, log zerolog.Logger) *mcpServer {
	s := &mcpServer{loader: l, reg: reg, metrics: m, log: log, calls: calls, known: map[string]string{}}
	s.srv = mcp.NewServer(&mcp.Implementation{Name: "mcpreload-node", Title: "mcpreload node " + id, Version: Version}, &mcp.ServerOptions{
		// Advertise listChanged even with zero tools, or clients that
		// connect to an empty node never learn about tools loaded later.
		Capabilities: &mcp.ServerCapabilities{Tools: &mcp.ToolCapabilities{ListChanged: true}},
		Logger:       slog.New(zerolog.NewSlogHandler(log.With().Str("component", "mcp").Logger().Level(zerolog.WarnLevel))),
	})
	return s
}

// follow keeps the SDK's tool list in step with the registry until ctx ends.
func (s *mcpServer) follow(ctx context.Context, sub *registry.Subscription) {
	s.sync()
	_ = sub.Run(ctx, func(_ context.Context, u registry.Update) error {
		if u.DefinitionsChanged {
			s.sync()
		}
		return nil
	})
}

// sync applies the difference between the registry and the SDK's list.
func (s *mcpServer) sync() {
	s.mu.Lock()
	defer s.mu.Unlock()
	entries := s.reg.List()
	want := make(map[string]registry.Entry, len(entries))
	for _, e := range entries {
		want[e.Tool] = e
	}
	var removed []string
	for name := range s.known {
		if _, ok := want[name]; !ok {
			removed = append(removed, name)
			delete(s.known, name)
		}
	}
	changed := len(removed) > 0
	if changed {
		s.srv.RemoveTools(removed...)
	}
	for name, e := range want {
		if s.known[name] == e.DefinitionDigest {
			continue
		}
		if err := s.addTool(e); err != nil {
			s.log.Error().Err(err).Str("tool", name).Str("module", e.Module).Msg("tool definition refused by the MCP server; the tool is not listed")
			continue
		}
		s.known[name] = e.DefinitionDigest
		changed = true
	}
	if changed {
		s.metrics.listChanged.Inc()
		s.log.Info().Int("tools", len(s.known)).Msg("tool list changed; MCP clients notified")
	}
}

func (s *mcpServer) addTool(e registry.Entry) (err error) {
	var t mcp.Tool
	if err := json.Unmarshal(e.Definition, &t); err != nil {
		return fmt.Errorf("definition: %w", err)
	}
	defer func() { // the SDK panics on schemas it cannot use
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	s.srv.AddTool(&t, s.handler(e.Tool))
	return nil
}

// handler returns the MCP handler of one tool: it runs the call on
// whatever version of the module is current when the call starts.
func (s *mcpServer) handler(tool string) mcp.ToolHandler {
	return func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		if !s.calls.enter() {
			return nil, errors.New("node is shutting down; retry on another node")
		}
		defer s.calls.leave()
		var args json.RawMessage
		if req.Params != nil {
			args = req.Params.Arguments
		}
		start := time.Now()
		res, err := s.loader.Call(ctx, tool, args)
		took := time.Since(start)
		if err != nil {
			if errors.Is(err, loader.ErrUnknownTool) {
				s.metrics.call(tool, "", "unknown", took)
				return nil, fmt.Errorf("unknown tool %q", tool)
			}
			outcome := loader.Code(err)
			if errors.Is(err, context.Canceled) {
				outcome = "canceled"
			}
			s.metrics.call(tool, "", outcome, took)
			s.log.Warn().Err(err).Str("tool", tool).Str("code", outcome).Msg("tool call failed")
			return errorResult(fmt.Sprintf("tool %s failed (%s): %v", tool, outcome, err)), nil
		}
		var out mcp.CallToolResult
		if err := json.Unmarshal(res.Output, &out); err != nil {
			s.metrics.call(tool, res.Version, "bad_output", took)
			return errorResult(fmt.Sprintf("tool %s returned a result the MCP server cannot forward: %v", tool, err)), nil
		}
		outcome := "ok"
		if res.IsError {
			outcome = "tool_error"
		}
		s.metrics.call(tool, res.Version, outcome, took)
		return &out, nil
	}
}

func errorResult(msg string) *mcp.CallToolResult {
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: msg}}}
}

// callGate counts tool calls in flight and refuses new ones once closed,
// so shutdown can wait for the calls it let in.
type callGate struct {
	mu     sync.Mutex
	n      int
	closed bool
	idle   chan struct{}
}

func (g *callGate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.n++
	return true
}

func (g *callGate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n--
	if g.n == 0 && g.idle != nil {
		close(g.idle)
		g.idle = nil
	}
}

// close refuses new calls and waits for those in flight (or ctx).
func (g *callGate) close(ctx context.Context) (int, error) {
	g.mu.Lock()
	g.closed = true
	if g.n == 0 {
		g.mu.Unlock()
		return 0, nil
	}
	if g.idle == nil {
		g.idle = make(chan struct{})
	}
	idle, n := g.idle, g.n
	g.mu.Unlock()
	select {
	case <-idle:
		return n, nil
	case <-ctx.Done():
		return n, ctx.Err()
	}
}

func (g *callGate) inFlight() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}
