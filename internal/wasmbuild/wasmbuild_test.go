package wasmbuild

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// wasmMagic starts every wasm binary module.
var wasmMagic = []byte("\x00asm")

func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	require.NoError(t, err)
	root, err := FindRoot(wd)
	require.NoError(t, err)
	return root
}

func TestTargetsArePackages(t *testing.T) {
	root := repoRoot(t)
	require.NotEmpty(t, Targets)
	for name, dir := range Targets {
		require.NotContains(t, name, "/", "target %s", name)
		require.False(t, filepath.IsAbs(dir), "target %s: dir must be relative", name)
		matches, err := filepath.Glob(filepath.Join(root, filepath.FromSlash(dir), "*.go"))
		require.NoError(t, err)
		require.NotEmpty(t, matches, "target %s: no Go files in %s", name, dir)
	}
}

func TestFindRoot(t *testing.T) {
	root := repoRoot(t)
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	require.NoError(t, err)
	require.Equal(t, ModulePath, modulePath(data))

	got, err := FindRoot(filepath.Join(root, "internal", "wasmbuild"))
	require.NoError(t, err)
	require.Equal(t, root, got)

	// A go.mod of another module does not end the search, and none at all
	// is an error.
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "go.mod"), "module example.com/other\n")
	_, err = FindRoot(dir)
	require.ErrorContains(t, err, "no go.mod of module "+ModulePath)

	writeFile(t, filepath.Join(dir, "go.mod"), "module example.com/outer\n")
	writeFile(t, filepath.Join(dir, "inner", "go.mod"), "module example.com/inner\n")
	writeFile(t, filepath.Join(dir, "inner", "sub", "x.go"), "package sub\n")
	_, err = FindRoot(filepath.Join(dir, "inner", "sub"))
	require.Error(t, err)
}

func TestModulePath(t *testing.T) {
	tests := map[string]string{
		"module example.com/a\n\ngo 1.26\n":          "example.com/a",
		"// comment\nmodule \"example.com/q\"\n":     "example.com/q",
		"module example.com/c // trailing comment\n": "example.com/c",
		"go 1.26\n": "",
		"":          "",
	}
	for data, want := range tests {
		require.Equal(t, want, modulePath([]byte(data)), "go.mod %q", data)
	}
}

func TestUpToDate(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeFile(t, filepath.Join(src, "a.go"), "package a\n")
	writeFile(t, filepath.Join(src, "sub", "b.go"), "package sub\n")
	writeFile(t, filepath.Join(src, "a_test.go"), "package a\n")
	writeFile(t, filepath.Join(src, "README"), "")
	out := filepath.Join(dir, "out.wasm")

	fresh, err := upToDate(out, src)
	require.NoError(t, err)
	require.False(t, fresh, "missing output")

	past := time.Now().Add(-time.Hour)
	setTimes(t, past, src, filepath.Join(src, "sub"), filepath.Join(src, "a.go"), filepath.Join(src, "sub", "b.go"))
	writeFile(t, out, "")
	fresh, err = upToDate(out, src)
	require.NoError(t, err)
	require.True(t, fresh)

	// Test files and non-Go files do not matter.
	future := time.Now().Add(time.Hour)
	setTimes(t, future, filepath.Join(src, "a_test.go"), filepath.Join(src, "README"))
	setTimes(t, past, src)
	fresh, err = upToDate(out, src)
	require.NoError(t, err)
	require.True(t, fresh)

	// A changed source file or directory does.
	for _, changed := range []string{filepath.Join(src, "sub", "b.go"), filepath.Join(src, "sub")} {
		setTimes(t, future, changed)
		fresh, err = upToDate(out, src)
		require.NoError(t, err)
		require.False(t, fresh, "%s changed", changed)
		setTimes(t, past, changed)
	}

	_, err = upToDate(out, filepath.Join(dir, "missing"))
	require.Error(t, err)
}

func TestBuild(t *testing.T) {
	root := repoRoot(t)
	outDir := filepath.Join(t.TempDir(), "wasm")
	require.NoError(t, Build(t.Context(), root, outDir, "calc"))
	data, err := os.ReadFile(OutputPath(outDir, "calc"))
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(data, wasmMagic), "calc.wasm is not a wasm module")

	entries, err := os.ReadDir(outDir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "temporary files left in %s", outDir)
}

// TestBuildReport builds in a minimal copy of the repository, so it can
// change sources without touching the real ones.
func TestBuildReport(t *testing.T) {
	root := fakeRepo(t)
	outDir := OutDir(root)
	var outcomes []Outcome
	report := func(o Outcome) { outcomes = append(outcomes, o) }
	build := func() []Outcome {
		t.Helper()
		outcomes = nil
		require.NoError(t, BuildReport(t.Context(), root, outDir, report, "calc"))
		require.Len(t, outcomes, 1)
		require.Equal(t, "calc", outcomes[0].Name)
		require.Equal(t, filepath.Join(outDir, "calc.wasm"), outcomes[0].Path)
		return outcomes
	}

	require.True(t, build()[0].Built, "first build")
	require.False(t, build()[0].Built, "unchanged sources")

	// Touching the guest SDK invalidates the output.
	setTimes(t, time.Now(), filepath.Join(root, "guest", "guest.go"))
	require.True(t, build()[0].Built, "guest changed")
	require.False(t, build()[0].Built, "unchanged sources")

	// A failed build reports the compiler output and keeps the old output.
	before, err := os.ReadFile(OutputPath(outDir, "calc"))
	require.NoError(t, err)
	writeFile(t, filepath.Join(root, "examples", "calc", "broken.go"), "package main\n\nvar x int = \"not an int\"\n")
	err = Build(t.Context(), root, outDir, "calc")
	require.ErrorContains(t, err, "wasmbuild: calc: GOOS=wasip1 GOARCH=wasm go build ./examples/calc")
	require.ErrorContains(t, err, "broken.go:3")
	after, err := os.ReadFile(OutputPath(outDir, "calc"))
	require.NoError(t, err)
	require.Equal(t, before, after)
}

func TestBuildUnknownTarget(t *testing.T) {
	err := Build(t.Context(), t.TempDir(), t.TempDir(), "calc", "nope")
	require.ErrorContains(t, err, `unknown target "nope" (known: calc, counter-v1`)
}

// fakeRepo returns a temporary repository with the go.mod, the guest SDK
// and the calc example of the real one.
func fakeRepo(t *testing.T) string {
	t.Helper()
	real := repoRoot(t)
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "go.mod"), "module "+ModulePath+"\n\ngo 1.26\n")
	for _, dir := range []string{"guest", Targets["calc"]} {
		files, err := filepath.Glob(filepath.Join(real, filepath.FromSlash(dir), "*.go"))
		require.NoError(t, err)
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			data, err := os.ReadFile(file)
			require.NoError(t, err)
			writeFile(t, filepath.Join(root, filepath.FromSlash(dir), filepath.Base(file)), string(data))
		}
	}
	// Date the sources in the past so a build started now is newer.
	past := time.Now().Add(-time.Minute)
	require.NoError(t, filepath.WalkDir(root, func(path string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(path, past, past)
	}))
	return root
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(data), 0o644))
}

func setTimes(t *testing.T, mtime time.Time, paths ...string) {
	t.Helper()
	for _, path := range paths {
		require.NoError(t, os.Chtimes(path, mtime, mtime))
	}
}
