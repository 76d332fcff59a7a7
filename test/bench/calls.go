package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/rs/zerolog"

	"github.com/mcpreload/mcpreload/internal/node"
	"github.com/mcpreload/mcpreload/internal/wasmgen"
)

// callsSuite measures MCP tool calls through one node over streamable HTTP
// (the official go-sdk client, one session per worker, 2 workers per
// core): latency and throughput with no reload, then while the tool's
// module is reloaded back to back (node.Reload in a loop, every reload a
// new version), counting failed calls. The floor is the same number of
// workers doing plain HTTP POSTs to a trivial handler on loopback.
func callsSuite(ctx context.Context, env *env) ([]Figure, error) {
	const (
		suite  = "calls"
		module = "calls"
		tool   = "bench_calls"
		window = 250 * time.Millisecond
	)
	phase := env.callPhase
	var figs []Figure
	add := func(f Figure) {
		figs = append(figs, f)
		env.progress("%s: %s = %s %s (p99 %s, n=%d)", suite, f.Name, fmtNum(f.Median), f.Unit, fmtNum(f.P99), f.N)
	}
	version := func(i int) []byte {
		return wasmgen.Tiny(wasmgen.Spec{Version: fmt.Sprint(i), Stateless: true, Tools: []string{tool}})
	}
	dir := env.tempDir("calls")
	cfg, err := node.ParseFlags([]string{"--id", "calls", "--data-dir", dir, "--mcp-listen", "127.0.0.1:0", "--log-format", "json"},
		func(string) string { return "" }, io.Discard)
	if err != nil {
		return nil, err
	}
	logs := &logCounter{}
	n, err := node.New(ctx, cfg, zerolog.New(logs).With().Timestamp().Str("node", "calls").Logger().Level(zerolog.InfoLevel))
	if err != nil {
		return nil, err
	}
	if err := n.Open(ctx); err != nil {
		_ = n.Close(context.Background())
		return nil, err
	}
	defer func() { _ = n.Close(context.Background()) }()
	if _, err := n.Reload(ctx, module, version(0), ""); err != nil {
		return nil, err
	}

	workers := 2 * runtime.NumCPU()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}}
	defer hc.CloseIdleConnections()
	client := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "0"}, nil)
	sessions := make([]*mcp.ClientSession, workers)
	for i := range sessions {
		cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: "http://" + n.Addr() + "/mcp", HTTPClient: hc}, nil)
		if err != nil {
			return nil, err
		}
		defer func() { _ = cs.Close() }()
		sessions[i] = cs
	}
	call := func(w int) error {
		res, err := sessions[w].CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: map[string]any{}})
		if err != nil {
			return err
		}
		if res.IsError {
			return errors.New("tool result is an error")
		}
		return nil
	}
	// Warm up every session (and the instance pool).
	if _, err := drive(ctx, workers, time.Second, window, call); err != nil {
		return nil, err
	}

	var stopProfiles func() error
	if env.profileDir != "" {
		if stopProfiles, err = startProfiles(env.profileDir, "calls-"); err != nil {
			return nil, err
		}
	}
	idle, err := drive(ctx, workers, phase, window, call)
	if stopProfiles != nil {
		if perr := stopProfiles(); perr != nil {
			env.progress("profile: %v", perr)
		} else {
			env.progress("profiles of the no-reload calls written to %s (calls-*.pprof)", env.profileDir)
		}
	}
	if err != nil {
		return nil, err
	}

	// Under reload: node.Reload back to back, each a new version (a new
	// digest and a real compile), for as long as the calls run.
	rctx, stop := context.WithCancel(ctx)
	var reloads, reloadErrs atomic.Int64
	var rwg sync.WaitGroup
	rwg.Go(func() {
		for i := 1; rctx.Err() == nil; i++ {
			if _, err := n.Reload(rctx, module, version(i), ""); err != nil && rctx.Err() == nil {
				reloadErrs.Add(1)
			}
			reloads.Add(1)
		}
	})
	busy, err := drive(ctx, workers, phase, window, call)
	stop()
	rwg.Wait()
	if err != nil {
		return nil, err
	}
	if reloadErrs.Load() > 0 {
		return nil, fmt.Errorf("%d of %d reloads failed (node warnings: %s)", reloadErrs.Load(), reloads.Load(), logs.summary())
	}

	// Floor: plain HTTP POST round trips, same workers, same client setup.
	floor, err := httpFloor(ctx, hc, workers, phase, window)
	if err != nil {
		return nil, err
	}

	floorLat := durations(suite, "", floor.latency, time.Microsecond)
	floorTput := values(suite, "", "calls/s", floor.throughput)
	desc := fmt.Sprintf("%d sessions", workers)
	add(durations(suite, fmt.Sprintf("tool call latency, no reload (%s)", desc), idle.latency, time.Microsecond).
		withFloor("plain HTTP POST round trip", floorLat))
	add(values(suite, fmt.Sprintf("tool call throughput, no reload (%s)", desc), "calls/s", idle.throughput).
		withFloor("plain HTTP POST round trips/s", floorTput))
	rate := float64(reloads.Load()) / phase.Seconds()
	under := durations(suite, fmt.Sprintf("tool call latency under continuous reload (%.0f reloads/s)", rate), busy.latency, time.Microsecond).
		withFloor("plain HTTP POST round trip", floorLat)
	add(under)
	add(values(suite, fmt.Sprintf("tool call throughput under continuous reload (%.0f reloads/s)", rate), "calls/s", busy.throughput).
		withFloor("plain HTTP POST round trips/s", floorTput))
	failed := Figure{Suite: suite, Name: fmt.Sprintf("failed tool calls under reload (of %d calls, %d reloads)", busy.calls, reloads.Load()),
		Unit: "calls", N: 1, Median: float64(busy.failed + idle.failed), P99: float64(busy.failed + idle.failed),
		Note: "calls that returned an error or an error result; must be 0"}
	if busy.lastErr != nil {
		failed.Note += "; last error: " + busy.lastErr.Error()
	}
	add(failed)
	return figs, nil
}

// load is what drive measured.
type load struct {
	latency    []time.Duration
	throughput []float64 // completed calls per second, per window
	calls      int64
	failed     int64
	lastErr    error
}

// drive runs workers goroutines calling f back to back for d, and records
// every call's latency and the completions in each window.
func drive(ctx context.Context, workers int, d, window time.Duration, f func(w int) error) (load, error) {
	var out load
	var done, failed atomic.Int64
	var mu sync.Mutex
	lat := make([][]time.Duration, workers)
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				start := time.Now()
				err := f(w)
				lat[w] = append(lat[w], time.Since(start))
				done.Add(1)
				if err != nil {
					failed.Add(1)
					mu.Lock()
					out.lastErr = err
					mu.Unlock()
				}
			}
		})
	}
	t := time.NewTicker(window)
	prev, last := int64(0), time.Now()
	for time.Now().Before(deadline) {
		<-t.C
		now, c := time.Now(), done.Load()
		out.throughput = append(out.throughput, float64(c-prev)/now.Sub(last).Seconds())
		prev, last = c, now
	}
	t.Stop()
	wg.Wait()
	for _, l := range lat {
		out.latency = append(out.latency, l...)
	}
	out.calls, out.failed = done.Load(), failed.Load()
	return out, ctx.Err()
}

// httpFloor serves a trivial handler on loopback and drives plain HTTP
// POSTs of a tools/call-sized body at it.
func httpFloor(ctx context.Context, hc *http.Client, workers int, d, window time.Duration) (load, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return load{}, err
	}
	reply := []byte(`{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"1"}]}}`)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(reply)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer func() { _ = srv.Close() }()
	url := "http://" + ln.Addr().String() + "/"
	body := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"bench_calls","arguments":{}}}`)
	post := func(int) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	if _, err := drive(ctx, workers, time.Second/2, window, post); err != nil {
		return load{}, err
	}
	return drive(ctx, workers, d, window, post)
}

// values summarises samples that are not durations (rates, sizes).
func values(suite, name, unit string, samples []float64) Figure {
	f := Figure{Suite: suite, Name: name, Unit: unit, N: len(samples)}
	if len(samples) == 0 {
		return f
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	f.Median = s[len(s)/2]
	f.P99 = s[min(len(s)-1, int(math.Ceil(float64(len(s))*0.99))-1)]
	return f
}
