package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/mcpreload/mcpreload/internal/wasmgen"
	"github.com/mcpreload/mcpreload/loader"
)

// loaderSuite measures the code loader: prepare (tiny and Go-built modules,
// cold and warm compilation cache), commit, version lookup and call
// overhead, each against a floor measured here.
func loaderSuite(ctx context.Context, env *env) ([]Figure, error) {
	const suite = "loader"
	var figs []Figure
	add := func(f Figure) {
		figs = append(figs, f)
		env.progress("%s: %s = %s %s", suite, f.Name, fmtNum(f.Median), f.Unit)
	}

	// 1. Prepare of 100 distinct tiny modules; floor: raw wazero compile +
	// instantiate of the same bytes in a fresh runtime.
	tiny := make([][]byte, 100)
	for i := range tiny {
		tiny[i] = wasmgen.Tiny(wasmgen.Spec{Version: fmt.Sprintf("t%d", i), Stateless: true, Tools: []string{fmt.Sprintf("tool_%d", i)}})
	}
	l, err := loader.New(ctx, loader.Config{CacheDir: env.tempDir("tiny-cache")})
	if err != nil {
		return nil, err
	}
	defer func() { _ = l.Close(ctx) }()
	prep, err := timeN(len(tiny), func(i int) error {
		s, err := l.Prepare(ctx, fmt.Sprintf("m%d", i), tiny[i], "")
		if err == nil {
			l.Abort(s)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	floor, err := rawCompileInstantiate(ctx, tiny, "")
	if err != nil {
		return nil, err
	}
	add(durations(suite, "prepare tiny module (100 distinct, ≤1 KB)", prep, time.Microsecond).
		withFloor("wazero compile+instantiate", durations(suite, "", floor, time.Microsecond)))

	// 2. Prepare of distinct Go-built modules (counter-v1 plus a unique
	// custom section each), cold then warm compilation cache, each warm
	// pass in a new Loader so only the on-disk cache can help.
	base, err := os.ReadFile(filepath.Join(env.root, "build", "wasm", "counter-v1.wasm"))
	if err != nil {
		return nil, fmt.Errorf("counter-v1.wasm (run make wasm first): %w", err)
	}
	goMods := make([][]byte, env.goModules)
	for i := range goMods {
		goMods[i] = withNonce(base, i)
	}
	cacheDir := env.tempDir("go-cache")
	for _, pass := range []string{"cold", "warm"} {
		lg, err := loader.New(ctx, loader.Config{CacheDir: cacheDir})
		if err != nil {
			return nil, err
		}
		samples, err := timeN(len(goMods), func(i int) error {
			s, err := lg.Prepare(ctx, "counter", goMods[i], "")
			if err == nil {
				lg.Abort(s)
			}
			return err
		})
		_ = lg.Close(ctx)
		if err != nil {
			return nil, err
		}
		floorDir := ""
		if pass == "warm" {
			floorDir = cacheDir
		}
		fl, err := rawCompileInstantiate(ctx, goMods[:min(3, len(goMods))], floorDir)
		if err != nil {
			return nil, err
		}
		add(durations(suite, fmt.Sprintf("prepare Go module (%.1f MB), %s cache", float64(len(base))/1e6, pass), samples, time.Millisecond).
			withFloor("wazero compile+instantiate, "+pass, durations(suite, "", fl, time.Millisecond)))
	}

	// 3. Commit latency: stateless swap, and stateful swap with state
	// migration (counter v1 <-> v2, Go-built), prepare excluded.
	v1 := wasmgen.Tiny(wasmgen.Spec{Version: "1", Stateless: true, Tools: []string{"flip"}})
	v2 := wasmgen.Tiny(wasmgen.Spec{Version: "2", Stateless: true, Tools: []string{"flip"}})
	commits, err := commitLatency(ctx, l, "flip", [][]byte{v1, v2}, 200)
	if err != nil {
		return nil, err
	}
	add(durations(suite, "commit, stateless (swap only)", commits, time.Microsecond))
	c1, err := os.ReadFile(filepath.Join(env.root, "build", "wasm", "counter-v1.wasm"))
	if err != nil {
		return nil, err
	}
	c2, err := os.ReadFile(filepath.Join(env.root, "build", "wasm", "counter-v2.wasm"))
	if err != nil {
		return nil, err
	}
	lc, err := loader.New(ctx, loader.Config{CacheDir: cacheDir})
	if err != nil {
		return nil, err
	}
	defer func() { _ = lc.Close(ctx) }()
	commits, err = commitLatency(ctx, lc, "counter", [][]byte{c1, c2}, 40)
	if err != nil {
		return nil, err
	}
	add(durations(suite, "commit, stateful with state migration (counter)", commits, time.Microsecond))

	// 4. Version lookup across 100 loaded modules; floor: a map lookup
	// under a read lock.
	for i := range tiny {
		s, err := l.Prepare(ctx, fmt.Sprintf("m%d", i), tiny[i], "")
		if err != nil {
			return nil, err
		}
		if _, err := l.Commit(ctx, s); err != nil {
			return nil, err
		}
	}
	names := make([]string, len(tiny))
	plain := make(map[string]string, len(tiny))
	for i := range names {
		names[i] = fmt.Sprintf("m%d", i)
		plain[names[i]] = loader.DigestOf(tiny[i])
	}
	k := 0
	look, err := perOp(30, 10000, func() error { k++; _, err := l.Digest(names[k%len(names)]); return err })
	if err != nil {
		return nil, err
	}
	var mu sync.RWMutex
	var sink string
	lookFloor, _ := perOp(30, 10000, func() error {
		k++
		mu.RLock()
		sink = plain[names[k%len(names)]]
		mu.RUnlock()
		return nil
	})
	_ = sink
	add(durations(suite, "version lookup (100 modules loaded)", look, time.Nanosecond).
		withFloor("map lookup under RWMutex", durations(suite, "", lookFloor, time.Nanosecond)))

	// 5. Call overhead of a trivial tool; floors: the same export called
	// directly through wazero, and a plain Go function call.
	call, err := perOp(30, 2000, func() error { _, err := l.Call(ctx, "tool_7", nil); return err })
	if err != nil {
		return nil, err
	}
	raw, err := rawCall(ctx, tiny[7])
	if err != nil {
		return nil, err
	}
	add(durations(suite, "call, trivial tool through the loader", call, time.Nanosecond).
		withFloor("wazero api.Function.Call of mcpr_call, no deadline", durations(suite, "", raw, time.Nanosecond)))
	goCall, _ := perOp(30, 1_000_000, func() error { sink = trivial(sink); return nil })
	add(durations(suite, "call, trivial tool through the loader (vs Go call)", call, time.Nanosecond).
		withFloor("plain Go function call", durations(suite, "", goCall, time.Nanosecond)))
	return figs, nil
}

//go:noinline
func trivial(s string) string { return s }

// commitLatency alternates commits of versions, n times, timing Commit only.
func commitLatency(ctx context.Context, l *loader.Loader, module string, versions [][]byte, n int) ([]time.Duration, error) {
	var out []time.Duration
	for i := range n + 1 {
		s, err := l.Prepare(ctx, module, versions[i%len(versions)], "")
		if err != nil {
			return nil, err
		}
		start := time.Now()
		if _, err := l.Commit(ctx, s); err != nil {
			return nil, err
		}
		if i > 0 { // the first commit is a first load, not a swap
			out = append(out, time.Since(start))
		}
		// Keep the module warm the way a serving node is: one call.
		if module == "counter" {
			if _, err := l.Call(ctx, "counter_increment", nil); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// rawCompileInstantiate is the floor for Prepare: wazero alone compiling
// and instantiating each module in a fresh runtime (with the cache dir, if
// any).
func rawCompileInstantiate(ctx context.Context, mods [][]byte, cacheDir string) ([]time.Duration, error) {
	return timeN(len(mods), func(i int) error {
		// The loader's runtime settings, so the floor hits the same cache entries.
		cfg := wazero.NewRuntimeConfig().WithCloseOnContextDone(true).WithMemoryLimitPages(loader.DefaultMemoryLimitPages)
		if cacheDir != "" {
			c, err := wazero.NewCompilationCacheWithDir(cacheDir)
			if err != nil {
				return err
			}
			defer func() { _ = c.Close(ctx) }()
			cfg = cfg.WithCompilationCache(c)
		}
		rt := wazero.NewRuntimeWithConfig(ctx, cfg)
		defer func() { _ = rt.Close(ctx) }()
		wasi_snapshot_preview1.MustInstantiate(ctx, rt)
		cm, err := rt.CompileModule(ctx, mods[i])
		if err != nil {
			return err
		}
		mc := wazero.NewModuleConfig().WithStartFunctions()
		if _, ok := cm.ExportedFunctions()["_initialize"]; ok {
			mc = mc.WithStartFunctions("_initialize")
		}
		_, err = rt.InstantiateModule(ctx, cm, mc)
		return err
	})
}

// rawCall is the floor for Call: mcpr_call invoked through wazero directly
// with an input already in guest memory.
func rawCall(ctx context.Context, wasm []byte) ([]time.Duration, error) {
	rt := wazero.NewRuntime(ctx)
	defer func() { _ = rt.Close(ctx) }()
	mod, err := rt.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithStartFunctions())
	if err != nil {
		return nil, err
	}
	in := []byte(`{"name":"tool_7","arguments":{}}`)
	ptr, err := mod.ExportedFunction("mcpr_alloc").Call(ctx, uint64(len(in)))
	if err != nil {
		return nil, err
	}
	mod.Memory().Write(uint32(ptr[0]), in)
	call := mod.ExportedFunction("mcpr_call")
	return perOp(30, 2000, func() error {
		_, err := call.Call(ctx, ptr[0], uint64(len(in)))
		return err
	})
}

// withNonce returns wasm with a custom section holding i appended: a
// distinct module (distinct digest, distinct compilation) with the same code.
func withNonce(wasm []byte, i int) []byte {
	name := "mcpreload-bench-nonce"
	payload := binary.AppendUvarint(nil, uint64(len(name)))
	payload = append(payload, name...)
	payload = binary.BigEndian.AppendUint64(payload, uint64(i)^uint64(time.Now().UnixNano()))
	out := append([]byte(nil), wasm...)
	out = append(out, 0)
	out = binary.AppendUvarint(out, uint64(len(payload)))
	return append(out, payload...)
}
