package testutil_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/internal/testutil"
)

func TestRepoRoot(t *testing.T) {
	root := testutil.RepoRoot(t)
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	require.NoError(t, err)
	require.Contains(t, string(data), "module github.com/mcpreload/mcpreload\n")
	require.DirExists(t, filepath.Join(root, "internal", "testutil"))
}

func TestWasm(t *testing.T) {
	path := testutil.WasmPath(t, "calc")
	require.Equal(t, filepath.Join(testutil.RepoRoot(t), "build", "wasm", "calc.wasm"), path)

	data := testutil.Wasm(t, "calc")
	require.True(t, bytes.HasPrefix(data, []byte("\x00asm")), "calc.wasm is not a wasm module")
}

func TestWasmParallel(t *testing.T) {
	for range 4 {
		t.Run("", func(t *testing.T) {
			t.Parallel()
			require.True(t, bytes.HasPrefix(testutil.Wasm(t, "counter-v1"), []byte("\x00asm")))
		})
	}
}

func TestCacheDir(t *testing.T) {
	dir := testutil.CacheDir(t)
	require.Equal(t, filepath.Join(testutil.RepoRoot(t), "build", "cache", "wazero"), dir)
	require.DirExists(t, dir)
}
