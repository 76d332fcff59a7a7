// Package wasmbuild builds the example tool modules under examples/ into
// wasm files. It is the single definition of how tool modules are built,
// shared by the buildwasm command (which the Makefile runs) and by tests,
// which get modules through internal/testutil.
package wasmbuild

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ModulePath is the module path of the repository whose examples this
// package builds.
const ModulePath = "github.com/mcpreload/mcpreload"

// guestDir is the guest SDK directory, relative to the repository root.
// Every target links it, so a change to it invalidates every output.
const guestDir = "guest"

// Targets lists every example: name (e.g. "counter-v1") -> package dir
// relative to repo root ("examples/counter/v1"). Target name is built into
// name.wasm.
var Targets = map[string]string{
	"calc":       "examples/calc",
	"counter-v1": "examples/counter/v1",
	"counter-v2": "examples/counter/v2",
	"counter-v3": "examples/counter/v3",
}

// Outcome reports what [BuildReport] did with one target.
type Outcome struct {
	// Name is the target name.
	Name string
	// Path is the output file.
	Path string
	// Built is true if the target was built, false if its output was up to
	// date.
	Built bool
	// Duration is how long building or checking the target took.
	Duration time.Duration
}

// OutDir returns the conventional output directory of the repository at
// root: root/build/wasm.
func OutDir(root string) string {
	return filepath.Join(root, "build", "wasm")
}

// OutputPath returns the file the named target is built into in outDir.
func OutputPath(outDir, name string) string {
	return filepath.Join(outDir, name+".wasm")
}

// Build builds the named targets (all if none) into outDir (e.g.
// <root>/build/wasm), skipping a target whose output is newer than every .go
// file under its package dir and under guest/ (and than those directories,
// so deleting a file counts as a change).
//
// Builds run `go build` (the go command found in PATH) in root with
// GOOS=wasip1 GOARCH=wasm, -buildmode=c-shared and -trimpath. Each output is
// written to a temporary file in outDir and renamed into place, so
// concurrent builds of the same target, such as test packages running in
// parallel, are safe. Errors include the go build output.
func Build(ctx context.Context, root, outDir string, names ...string) error {
	return BuildReport(ctx, root, outDir, nil, names...)
}

// BuildReport is [Build] that also calls report, if not nil, after each
// target is built or found up to date. Targets are processed one at a time
// in name order, stopping at the first failure.
func BuildReport(ctx context.Context, root, outDir string, report func(Outcome), names ...string) error {
	if len(names) == 0 {
		for name := range Targets {
			names = append(names, name)
		}
	}
	names = slices.Clone(names)
	slices.Sort(names)
	names = slices.Compact(names)
	for _, name := range names {
		if _, ok := Targets[name]; !ok {
			return fmt.Errorf("wasmbuild: unknown target %q (known: %s)", name, strings.Join(targetNames(), ", "))
		}
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fmt.Errorf("wasmbuild: %w", err)
	}
	for _, name := range names {
		start := time.Now()
		built, err := buildTarget(ctx, root, outDir, name)
		if err != nil {
			return fmt.Errorf("wasmbuild: %s: %w", name, err)
		}
		if report != nil {
			report(Outcome{Name: name, Path: OutputPath(outDir, name), Built: built, Duration: time.Since(start)})
		}
	}
	return nil
}

// targetNames returns the sorted names of all targets.
func targetNames() []string {
	names := make([]string, 0, len(Targets))
	for name := range Targets {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// buildTarget builds the named target unless its output is up to date, and
// reports whether it built.
func buildTarget(ctx context.Context, root, outDir, name string) (bool, error) {
	pkgDir := Targets[name]
	out := OutputPath(outDir, name)
	fresh, err := upToDate(out,
		filepath.Join(root, filepath.FromSlash(pkgDir)),
		filepath.Join(root, guestDir))
	if err != nil || fresh {
		return false, err
	}

	tmpDir, err := os.MkdirTemp(outDir, ".build-"+name+"-")
	if err != nil {
		return false, err
	}
	defer func() { _ = os.RemoveAll(tmpDir) }()
	tmp := filepath.Join(tmpDir, filepath.Base(out))

	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-buildmode=c-shared", "-trimpath", "-o", tmp, "./"+pkgDir)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if output, err := cmd.CombinedOutput(); err != nil {
		return false, fmt.Errorf("GOOS=wasip1 GOARCH=wasm go build ./%s: %w\n%s", pkgDir, err, bytes.TrimSpace(output))
	}
	// Date the output to the start of the build: a source file changed
	// while go build ran is then newer than the output, which is rebuilt
	// next time.
	if err := os.Chtimes(tmp, start, start); err != nil {
		return false, err
	}
	if err := os.Rename(tmp, out); err != nil {
		return false, err
	}
	return true, nil
}

// upToDate reports whether out exists and is newer than every directory and
// non-test .go file under dirs.
func upToDate(out string, dirs ...string) (bool, error) {
	info, err := os.Stat(out)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	built := info.ModTime()
	errStale := errors.New("stale")
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && (!strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go")) {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			if !built.After(info.ModTime()) {
				return errStale
			}
			return nil
		})
		if errors.Is(err, errStale) {
			return false, nil
		} else if err != nil {
			return false, err
		}
	}
	return true, nil
}

// FindRoot returns the root of the repository containing dir: the nearest
// directory at or above dir whose go.mod declares module [ModulePath].
func FindRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; {
		data, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && modulePath(data) == ModulePath {
			return d, nil
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("wasmbuild: no go.mod of module %s at or above %s", ModulePath, dir)
		}
		d = parent
	}
}

// modulePath returns the module path declared in the go.mod contents data,
// or "" if there is none.
func modulePath(data []byte) string {
	for line := range strings.Lines(string(data)) {
		line, _, _ = strings.Cut(line, "//")
		fields := strings.Fields(line)
		if len(fields) != 2 || fields[0] != "module" {
			continue
		}
		if path, err := strconv.Unquote(fields[1]); err == nil {
			return path
		}
		return fields[1]
	}
	return ""
}
