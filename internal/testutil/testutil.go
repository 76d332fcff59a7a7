// Package testutil provides helpers for tests across the repository: the
// repository root, example tool modules built on demand, and the shared
// wazero compilation cache.
package testutil

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mcpreload/mcpreload/internal/wasmbuild"
)

// RepoRoot returns the repository root: the nearest directory at or above
// the working directory whose go.mod declares module
// github.com/mcpreload/mcpreload.
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	wd, err := os.Getwd()
	if err != nil {
		tb.Fatalf("testutil: %v", err)
	}
	root, err := wasmbuild.FindRoot(wd)
	if err != nil {
		tb.Fatalf("testutil: %v", err)
	}
	return root
}

// buildLocks serializes builds of one target within the test binary, so
// parallel tests asking for the same module build it once. Builds in
// different test binaries are safe too (see wasmbuild.Build), merely
// duplicated.
var buildLocks sync.Map // target name -> *sync.Mutex

// WasmPath returns the path of the example tool module name (a key of
// wasmbuild.Targets, such as "counter-v1"), <root>/build/wasm/<name>.wasm,
// building it first if it is missing or stale. It fails tb, with the build
// output, if the build fails.
func WasmPath(tb testing.TB, name string) string {
	tb.Helper()
	root := RepoRoot(tb)
	outDir := wasmbuild.OutDir(root)
	mu, _ := buildLocks.LoadOrStore(name, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	if err := wasmbuild.Build(tb.Context(), root, outDir, name); err != nil {
		tb.Fatalf("testutil: building %s: %v", name, err)
	}
	return wasmbuild.OutputPath(outDir, name)
}

// Wasm returns the contents of the example tool module name, building it as
// [WasmPath] does.
func Wasm(tb testing.TB, name string) []byte {
	tb.Helper()
	data, err := os.ReadFile(WasmPath(tb, name))
	if err != nil {
		tb.Fatalf("testutil: %v", err)
	}
	return data
}

// CacheDir returns <root>/build/cache/wazero, creating it if needed. Tests
// pass it to wazero.NewCompilationCacheWithDir so that every test package
// shares compiled modules instead of compiling each one again.
func CacheDir(tb testing.TB) string {
	tb.Helper()
	dir := filepath.Join(RepoRoot(tb), "build", "cache", "wazero")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatalf("testutil: %v", err)
	}
	return dir
}
