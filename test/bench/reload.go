package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/mcpreload/mcpreload/events"
	"github.com/mcpreload/mcpreload/internal/wasmgen"
	"github.com/mcpreload/mcpreload/loader"
)

// reloadCase is one row of the reload matrix at one fleet size.
type reloadCase struct {
	name     string
	module   string
	strategy events.Strategy
	local    bool // strategy local on one node
	reps     int
	warmups  int
	gen      func(i int) []byte // the bytes of repetition i (warm-ups: negative i)
	follow   bool               // wait with publisher.Follow, as the CLI does
}

// plan is how many repetitions each case gets at one fleet size: enough
// for a stable median on 2 cores, few enough to keep make bench short.
type plan struct{ floor, all, follow, quorum, local int }

func planFor(n int) plan {
	switch {
	case n <= 10:
		return plan{floor: 50, all: 30, follow: 20, quorum: 30, local: 30}
	case n <= 100:
		return plan{floor: 30, all: 15, follow: 10, quorum: 10, local: 20}
	default:
		return plan{floor: 20, all: 3, follow: 1, quorum: 1, local: 10}
	}
}

// fleetSuite measures fleet-wide reload latency (publish the request ->
// outcome received) for each fleet size, strategy and module size, against
// the two-round-trip core NATS fan-out floor measured on the same server
// in the same run.
//
// Decisions:
//   - The request is published with publisher.Publish (the CLI's code) and
//     the module is already in the object store. Latency ends when the
//     outcome event reaches a core subscription the publisher's connection
//     opened before; one case also waits with publisher.Follow, as the CLI
//     does, which adds the follower's own cost.
//   - Nodes are real (node.New and Open, fleet mode, one NATS connection
//     each, HTTP listener on 127.0.0.1:0, logs encoded and dropped), the
//     first one runs the orchestrator, as with mcpreload-node
//     --orchestrator. All share one on-disk compilation cache.
//   - Between repetitions the run waits, untimed, until every target serves
//     the new digest, the module's lock is released and the process is
//     quiet again (see fleet.settle), so no repetition pays for the
//     previous one's aftermath (reconciles after the lock is released,
//     quorum's leftovers converging).
//   - Warm-ups load each module first: a first load is not a change.
//   - Go-built cases run at fleet sizes up to -go-max-n (default 10), the
//     cold one on one node: a cold compile costs each node ~1.5 s of CPU,
//     and N nodes compiling on this machine's cores is no fleet's figure.
//   - Repetitions shrink with N (see planFor) to keep make bench short;
//     quorum at 1,000 nodes runs once (it takes ~30 s).
func fleetSuite(ctx context.Context, env *env) ([]Figure, error) {
	var figs []Figure
	for _, n := range env.fleetSizes {
		f, err := fleetSize(ctx, env, n)
		figs = append(figs, f...)
		if err != nil {
			return figs, fmt.Errorf("fleet of %d nodes: %w", n, err)
		}
	}
	return figs, nil
}

func fleetSize(ctx context.Context, env *env, n int) ([]Figure, error) {
	const suite = "fleet"
	var figs []Figure
	add := func(f Figure) {
		figs = append(figs, f)
		env.progress("%s: %s = %s %s (p99 %s, n=%d)", suite, f.Name, fmtNum(f.Median), f.Unit, fmtNum(f.P99), f.N)
	}
	f, err := startFleet(ctx, env, fmt.Sprintf("fleet-%d", n))
	if err != nil {
		return nil, err
	}
	defer f.close()
	t0 := time.Now()
	if err := f.addNodes(ctx, n); err != nil {
		return nil, err
	}
	env.progress("%s: %d nodes live in %s", suite, n, time.Since(t0).Round(time.Millisecond))

	reps := planFor(n)
	url := f.srv.ClientURL()
	floorN, err := fanoutFloor(ctx, url, n, reps.floor)
	if err != nil {
		return nil, err
	}
	floor1, err := fanoutFloor(ctx, url, 1, reps.floor)
	if err != nil {
		return nil, err
	}
	floorName := fmt.Sprintf("2-RTT core NATS fan-out to %d conns", n)
	floorFig := durations(suite, fmt.Sprintf("floor: 2-round-trip core NATS fan-out, N=%d", n), floorN, time.Millisecond)
	floor1Fig := durations(suite, "", floor1, time.Millisecond)
	add(floorFig)

	// Tiny modules: a new version (new bytes, new digest) every time.
	tiny := func(module, tag string) func(int) []byte {
		return func(i int) []byte {
			return wasmgen.Tiny(wasmgen.Spec{Version: tag + fmt.Sprint(i), Stateless: true, Tools: []string{"bench_" + module}})
		}
	}
	cases := []reloadCase{
		{name: "all, tiny", module: "tiny", strategy: events.StrategyAll, reps: reps.all, warmups: 1, gen: tiny("tiny", "a")},
		{name: "all, tiny, waited with publisher.Follow (the CLI's path)", module: "tiny", strategy: events.StrategyAll, reps: reps.follow, follow: true, gen: tiny("tiny", "f")},
		{name: "local (1 node), tiny", module: "tinyl", strategy: events.StrategyLocal, local: true, reps: reps.local, warmups: 1, gen: tiny("tinyl", "")},
		// Quorum reuses "tiny", which the cases above loaded everywhere.
		{name: "quorum, tiny", module: "tiny", strategy: events.StrategyQuorum, reps: reps.quorum, gen: tiny("tiny", "q")},
	}
	if n <= env.goMaxN {
		base, err := os.ReadFile(filepath.Join(env.root, "build", "wasm", "counter-v1.wasm"))
		if err != nil {
			return figs, fmt.Errorf("counter-v1.wasm (run make wasm first): %w", err)
		}
		mb := float64(len(base)) / 1e6
		// Warm: two variants compiled once into the shared cache, loaded
		// by the warm-up reloads, then alternated, so each reload is a
		// real change whose compilation is in the cache. Cold: new bytes
		// every time (no warm-up needed: the module is loaded already), on
		// one node: with all, every node here would compile on the same 2
		// cores (~N x 1.5 s), which says nothing about a real fleet.
		variants := [2][]byte{withNonce(base, 1<<40), withNonce(base, 1<<40+1)}
		if err := precompile(ctx, f.cache, variants[:]); err != nil {
			return figs, err
		}
		cases = append(cases,
			reloadCase{name: fmt.Sprintf("all, Go %.1f MB, warm cache", mb), module: "counter", strategy: events.StrategyAll,
				reps: 10, warmups: 2, gen: func(i int) []byte { return variants[(i+2)%2] }},
			reloadCase{name: fmt.Sprintf("local (1 node), Go %.1f MB, cold cache", mb), module: "counter", strategy: events.StrategyLocal,
				local: true, reps: 3, gen: func(i int) []byte { return withNonce(base, i+1<<20) }},
		)
	}
	for ci, c := range cases {
		targets := f.ids(n)
		var nodes []string
		floor := floorFig
		fname := floorName
		if c.local {
			targets = targets[n-1:]
			nodes = targets
			floor, fname = floor1Fig, "2-RTT core NATS fan-out to 1 conn"
		}
		caseStart := time.Now()
		profile := env.profileDir != "" && n == env.profileN && c.strategy == events.StrategyAll && c.module == "tiny" && !c.follow
		samples, phases, err := runCase(ctx, env, f, c, targets, nodes, profile, ci == len(cases)-1)
		if err != nil {
			return figs, fmt.Errorf("%s: %w", c.name, err)
		}
		fig := durations(suite, fmt.Sprintf("reload N=%d, %s", n, c.name), samples, time.Millisecond).withFloor(fname, floor)
		fig.Note = phases
		add(fig)
		env.progress("%s:   (case took %s)", suite, time.Since(caseStart).Round(time.Millisecond))
		env.progress("%s:   medians (ms): %s", suite, phases)
	}
	if w := f.logs.warn.Load(); w > 0 {
		env.progress("%s: N=%d: nodes logged %s", suite, n, f.logs.summary())
	}
	return figs, nil
}

// runCase runs c's warm-ups and timed reloads and returns the timed
// latencies and, for strategies all and local, the median of each saga
// step as the observing subscription saw it.
// The last case of a fleet size skips the wait for quiet after its last
// reload: the fleet is torn down next.
func runCase(ctx context.Context, env *env, f *fleet, c reloadCase, targets, nodes []string, profile, last bool) ([]time.Duration, string, error) {
	one := func(i int) (*sagaTiming, error) {
		wasm := c.gen(i)
		digest, err := f.put(ctx, wasm)
		if err != nil {
			return nil, err
		}
		strategy, follow := c.strategy, c.follow
		if i < 0 {
			follow = false
		}
		t, err := f.reload(ctx, c.module, digest, strategy, nodes, follow)
		if err != nil {
			return nil, err
		}
		if last && i == c.reps-1 {
			return t, nil
		}
		return t, f.settle(ctx, c.module, digest, targets)
	}
	for i := c.warmups; i >= 1; i-- { // ..., -2, -1: then 0, 1, ... alternate on from there
		if _, err := one(-i); err != nil {
			return nil, "", fmt.Errorf("warm-up: %w", err)
		}
	}
	if profile {
		stop, err := startProfiles(env.profileDir, "")
		if err != nil {
			return nil, "", err
		}
		defer func() {
			if err := stop(); err != nil {
				env.progress("profile: %v", err)
			} else {
				env.progress("profiles of the N=%d all/tiny reloads written to %s (cpu.pprof, mutex.pprof, block.pprof)", env.profileN, env.profileDir)
			}
		}()
	}
	var samples, cpu []time.Duration
	var steps [6][]time.Duration
	for i := range c.reps {
		t, err := one(i)
		if err != nil {
			return samples, "", err
		}
		samples = append(samples, t.total())
		cpu = append(cpu, t.cpu)
		if d, ok := t.steps(); ok && c.strategy != events.StrategyQuorum && !t.follow() {
			for k := range d {
				steps[k] = append(steps[k], d[k])
			}
		}
	}
	note := fmt.Sprintf("process CPU per reload %s ms (all nodes, orchestrator, server; %d cores)", medMS(cpu), runtime.NumCPU())
	if len(steps[0]) > 0 {
		note += fmt.Sprintf("; steps (event creation times): publish->prepare cmd %s, ->last prepare ack %s, ->commit cmd %s, ->last commit ack %s, ->outcome made %s, ->outcome received %s",
			medMS(steps[0]), medMS(steps[1]), medMS(steps[2]), medMS(steps[3]), medMS(steps[4]), medMS(steps[5]))
	}
	return samples, note, nil
}

// precompile compiles each module once into the shared on-disk
// compilation cache, so that nodes find it warm.
func precompile(ctx context.Context, cacheDir string, mods [][]byte) error {
	l, err := loader.New(ctx, loader.Config{CacheDir: cacheDir})
	if err != nil {
		return err
	}
	defer func() { _ = l.Close(ctx) }()
	for _, m := range mods {
		s, err := l.Prepare(ctx, "precompile", m, "")
		if err != nil {
			return err
		}
		l.Abort(s)
	}
	return nil
}

func medMS(d []time.Duration) string {
	s := slices.Clone(d)
	slices.Sort(s)
	return fmt.Sprintf("%.2f", float64(s[len(s)/2])/float64(time.Millisecond))
}

// startProfiles starts a CPU profile and mutex and block sampling; the
// returned function stops them and writes <prefix>cpu.pprof,
// <prefix>mutex.pprof and <prefix>block.pprof to dir.
func startProfiles(dir, prefix string) (func() error, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cpu, err := os.Create(filepath.Join(dir, prefix+"cpu.pprof"))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		_ = cpu.Close()
		return nil, err
	}
	runtime.SetMutexProfileFraction(10)
	runtime.SetBlockProfileRate(int((100 * time.Microsecond).Nanoseconds()))
	return func() error {
		pprof.StopCPUProfile()
		err := cpu.Close()
		for _, name := range []string{"mutex", "block"} {
			out, cerr := os.Create(filepath.Join(dir, prefix+name+".pprof"))
			if cerr != nil {
				err = cerr
				continue
			}
			if werr := pprof.Lookup(name).WriteTo(out, 0); werr != nil {
				err = werr
			}
			_ = out.Close()
		}
		runtime.SetMutexProfileFraction(0)
		runtime.SetBlockProfileRate(0)
		return err
	}, nil
}
