package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/mcpreload/mcpreload/events"
	"github.com/mcpreload/mcpreload/internal/wasmgen"
)

// memorySuite measures what one fleet node costs in memory with 10 tiny
// modules loaded: groups of nodes are started one after the other in this
// process, and each group's growth of the process (resident set from
// /proc/self/status, and Go heap+stacks from runtime.MemStats, both after
// a forced GC that returns freed memory to the OS) is divided by the
// group's size. The first group loads the modules through 10 sagas
// (strategy all); later groups converge to the desired versions on their
// own at start, as a node joining a fleet does. The embedded nats-server
// runs in the same process, so its per-connection and per-consumer state
// for each node is included.
func memorySuite(ctx context.Context, env *env) ([]Figure, error) {
	const (
		suite   = "memory"
		modules = 10
	)
	groups, k := env.memGroups, env.memGroupSize
	f, err := startFleet(ctx, env, "memory")
	if err != nil {
		return nil, err
	}
	defer f.close()
	var rss, heap []float64
	for g := range groups {
		before := snapshot()
		if err := f.addNodes(ctx, k); err != nil {
			return nil, err
		}
		if g == 0 {
			for m := range modules {
				module := fmt.Sprintf("mem%d", m)
				wasm := wasmgen.Tiny(wasmgen.Spec{Version: "1", Stateless: true, Tools: []string{"bench_" + module}})
				digest, err := f.put(ctx, wasm)
				if err != nil {
					return nil, err
				}
				if _, err := f.reload(ctx, module, digest, events.StrategyAll, nil, false); err != nil {
					return nil, err
				}
			}
		}
		deadline := time.Now().Add(2 * time.Minute)
		for _, fn := range f.nodes[g*k:] {
			for len(fn.n.Loader().Modules()) < modules {
				if time.Now().After(deadline) {
					return nil, fmt.Errorf("node %s loaded %d of %d modules (node warnings: %s)", fn.id, len(fn.n.Loader().Modules()), modules, f.logs.summary())
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		after := snapshot()
		rss = append(rss, float64(after.rss-before.rss)/float64(k)/(1<<20))
		heap = append(heap, float64(after.heap-before.heap)/float64(k)/(1<<20))
		env.progress("%s: group %d: %d nodes, +%.1f MiB RSS, +%.1f MiB Go heap+stacks", suite, g+1, k,
			float64(after.rss-before.rss)/(1<<20), float64(after.heap-before.heap)/(1<<20))
	}
	note := fmt.Sprintf("%d groups of %d nodes, each sample = growth of the process / nodes added; includes the embedded nats-server's per-connection state", groups, k)
	figs := []Figure{
		values(suite, fmt.Sprintf("resident memory per node, %d tiny modules (process RSS delta / nodes)", modules), "MiB", rss),
		values(suite, fmt.Sprintf("Go heap+stacks per node, %d tiny modules (MemStats delta / nodes)", modules), "MiB", heap),
	}
	for i := range figs {
		figs[i].Note = note
		env.progress("%s: %s = %s %s", suite, figs[i].Name, fmtNum(figs[i].Median), figs[i].Unit)
	}
	return figs, nil
}

type mem struct{ rss, heap int64 }

// snapshot collects garbage, returns what it can to the OS, and reads the
// process's resident set and the Go heap and stacks in use.
func snapshot() mem {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return mem{rss: rssBytes(), heap: int64(ms.HeapInuse + ms.StackInuse)}
}

// rssBytes is VmRSS from /proc/self/status (0 where there is none).
func rssBytes() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
