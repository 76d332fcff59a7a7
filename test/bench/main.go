// Command bench measures mcpreload: each figure as a median (and p99) over
// repeated runs, with a ratio to a floor measured in the same run, because
// shared machines are noisy and absolute times mean little across them.
//
//	go run ./test/bench                       # all suites, table on stdout
//	go run ./test/bench -out build/bench/latest.json
//	go run ./test/bench -compare old.json new.json
//	go run ./test/bench -suites fleet -fleet-sizes 100 -profile build/bench/prof
//
// make bench runs it with -out build/bench/latest.json.
//
// Suites:
//   - loader: prepare, commit, lookup and call in the loader alone.
//   - fleet: reload latency, publish -> outcome, for 10, 100 and 1,000
//     nodes (strategies all, quorum, local; tiny and Go-built modules) on an
//     embedded nats-server with JetStream, against a two-round-trip core NATS
//     fan-out to as many connections measured on the same server (reload.go).
//   - calls: MCP tool calls through one node over streamable HTTP, idle and
//     under continuous reload, against plain HTTP POSTs (calls.go).
//   - memory: memory per fleet node with 10 modules loaded (memory.go).
//
// Every node, the orchestrator, the server and the clients share this
// process and its cores: a figure at N nodes includes N nodes' CPU work on
// the machine's cores, which a real fleet spreads over N machines. The
// fleet figures say how much CPU each reload used, to tell waiting from
// computing.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/mcpreload/mcpreload/internal/wasmbuild"
)

// Report is the JSON document a run writes.
type Report struct {
	Machine Machine  `json:"machine"`
	Figures []Figure `json:"figures"`
}

// Machine describes where the figures come from.
type Machine struct {
	Date      string `json:"date"`
	CPU       string `json:"cpu"`
	Cores     int    `json:"cores"`
	GoVersion string `json:"go"`
	OS        string `json:"os"`
}

type env struct {
	root      string
	tmp       string
	goModules int
	quiet     bool

	fleetSizes   []int         // fleet suite: node counts
	goMaxN       int           // fleet suite: Go-built module cases up to this many nodes
	profileDir   string        // fleet suite: write pprof profiles of the all/tiny reloads here
	profileN     int           // ... at this fleet size
	callPhase    time.Duration // calls suite: length of each measured phase
	memGroups    int           // memory suite: groups of nodes
	memGroupSize int           // memory suite: nodes per group
}

func (e *env) tempDir(name string) string {
	d := filepath.Join(e.tmp, name)
	_ = os.MkdirAll(d, 0o755)
	return d
}

func (e *env) progress(format string, args ...any) {
	if !e.quiet {
		fmt.Fprintf(os.Stderr, "  "+format+"\n", args...)
	}
}

var suites = map[string]func(context.Context, *env) ([]Figure, error){
	"loader": loaderSuite,
	"fleet":  fleetSuite,
	"calls":  callsSuite,
	"memory": memorySuite,
}

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	out := fs.String("out", "", "write the JSON report to this file")
	only := fs.String("suites", "loader,fleet,calls,memory", "comma-separated suites to run: loader, fleet, calls, memory")
	goModules := fs.Int("go-modules", 8, "distinct Go-built modules to prepare per cache pass (each ~0.5 s cold)")
	sizes := fs.String("fleet-sizes", "10,100,1000", "fleet suite: comma-separated node counts")
	goMaxN := fs.Int("go-max-n", 10, "fleet suite: run the Go-built module cases at fleet sizes up to this")
	profileDir := fs.String("profile", "", "fleet suite: write CPU, mutex and block profiles of the all-strategy tiny reloads to this directory")
	profileN := fs.Int("profile-n", 100, "fleet suite: the fleet size -profile profiles")
	callPhase := fs.Duration("call-phase", 4*time.Second, "calls suite: length of each measured phase")
	memGroups := fs.Int("mem-groups", 4, "memory suite: groups of nodes started one after the other")
	memGroupSize := fs.Int("mem-group-size", 25, "memory suite: nodes per group")
	compare := fs.Bool("compare", false, "compare two JSON reports: bench -compare OLD.json NEW.json")
	quiet := fs.Bool("q", false, "no progress on stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *compare {
		if fs.NArg() != 2 {
			return fmt.Errorf("-compare needs two report files")
		}
		return compareReports(stdout, fs.Arg(0), fs.Arg(1))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	root, err := wasmbuild.FindRoot(wd)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "mcpreload-bench-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	e := &env{root: root, tmp: tmp, goModules: *goModules, quiet: *quiet, goMaxN: *goMaxN,
		profileDir: *profileDir, profileN: *profileN, callPhase: *callPhase, memGroups: *memGroups, memGroupSize: *memGroupSize}
	for _, v := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 1 {
			return fmt.Errorf("-fleet-sizes %q: want positive integers", *sizes)
		}
		e.fleetSizes = append(e.fleetSizes, n)
	}

	rep := Report{Machine: machine()}
	for _, name := range strings.Split(*only, ",") {
		suite, ok := suites[name]
		if !ok {
			return fmt.Errorf("unknown suite %q", name)
		}
		e.progress("suite %s", name)
		start := time.Now()
		figs, err := suite(ctx, e)
		e.progress("suite %s took %s", name, time.Since(start).Round(time.Second/10))
		if err != nil {
			return fmt.Errorf("suite %s: %w", name, err)
		}
		rep.Figures = append(rep.Figures, figs...)
	}
	printTable(stdout, rep)
	if *out != "" {
		if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
			return err
		}
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nJSON report: %s (compare runs: go run ./test/bench -compare OLD.json %s)\n", *out, *out)
	}
	return nil
}

func printTable(w io.Writer, rep Report) {
	m := rep.Machine
	fmt.Fprintf(w, "# mcpreload benchmarks\n\n%s · %s · %d cores · %s · %s\n\n", m.Date, m.CPU, m.Cores, m.GoVersion, m.OS)
	fmt.Fprintln(w, "| suite | figure | median | p99 | n | floor (same run) | floor median | ratio |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	for _, f := range rep.Figures {
		floor, fm, ratio := "—", "—", "—"
		if f.Floor != "" {
			floor, fm, ratio = f.Floor, fmtNum(f.FloorMd)+" "+f.Unit, fmtNum(f.Ratio)+"×"
		}
		fmt.Fprintf(w, "| %s | %s | %s %s | %s %s | %d | %s | %s | %s |\n",
			f.Suite, f.Name, fmtNum(f.Median), f.Unit, fmtNum(f.P99), f.Unit, f.N, floor, fm, ratio)
	}
}

func compareReports(w io.Writer, oldPath, newPath string) error {
	var a, b Report
	for _, p := range []struct {
		path string
		rep  *Report
	}{{oldPath, &a}, {newPath, &b}} {
		raw, err := os.ReadFile(p.path)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(raw, p.rep); err != nil {
			return fmt.Errorf("%s: %w", p.path, err)
		}
	}
	old := map[string]Figure{}
	for _, f := range a.Figures {
		old[f.Suite+"/"+f.Name] = f
	}
	fmt.Fprintf(w, "old: %s (%s)\nnew: %s (%s)\n\n", oldPath, a.Machine.Date, newPath, b.Machine.Date)
	fmt.Fprintln(w, "| figure | old median | new median | new/old | old ratio to floor | new ratio to floor |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, f := range b.Figures {
		o, ok := old[f.Suite+"/"+f.Name]
		if !ok || o.Median == 0 {
			continue
		}
		fmt.Fprintf(w, "| %s/%s | %s %s | %s %s | %s× | %s | %s |\n", f.Suite, f.Name,
			fmtNum(o.Median), o.Unit, fmtNum(f.Median), f.Unit, fmtNum(f.Median/o.Median), fmtNum(o.Ratio), fmtNum(f.Ratio))
	}
	return nil
}

func machine() Machine {
	m := Machine{Date: time.Now().UTC().Format(time.RFC3339), Cores: runtime.NumCPU(), GoVersion: runtime.Version(),
		OS: runtime.GOOS + "/" + runtime.GOARCH, CPU: "unknown CPU"}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer func() { _ = f.Close() }()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}
