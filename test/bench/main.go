// Command bench measures mcpreload: each figure as a median (and p99) over
// repeated runs, with a ratio to a floor measured in the same run, because
// shared machines are noisy and absolute times mean little across them.
//
//	go run ./test/bench                       # all suites, table on stdout
//	go run ./test/bench -out build/bench/latest.json
//	go run ./test/bench -compare old.json new.json
//
// make bench runs it with -out build/bench/latest.json.
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
	"strings"
	"time"
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
	only := fs.String("suites", "loader", "comma-separated suites to run: loader")
	goModules := fs.Int("go-modules", 8, "distinct Go-built modules to prepare per cache pass (each ~0.5 s cold)")
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

	root, err := repoRoot()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "mcpreload-bench-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	e := &env{root: root, tmp: tmp, goModules: *goModules, quiet: *quiet}

	rep := Report{Machine: machine()}
	for _, name := range strings.Split(*only, ",") {
		suite, ok := suites[name]
		if !ok {
			return fmt.Errorf("unknown suite %q", name)
		}
		e.progress("suite %s", name)
		figs, err := suite(ctx, e)
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

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("run from inside the repository (no go.mod found)")
		}
		dir = parent
	}
}
