package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/mcpreload/mcpreload/loader"
)

// moduleCache keeps the bytes of the modules a node serves, and which
// version of each it serves, in its data dir, so that after a restart the
// node serves its last-known versions even while NATS is unreachable.
//
// Layout: <dir>/<hex>.wasm for each digest, <dir>/current.json mapping
// module -> digest. Files are written to a temp name and renamed; a file
// whose bytes do not hash to its name is ignored and removed.
type moduleCache struct {
	dir string
	mu  sync.Mutex
	cur map[string]string // the index, once read
}

func newModuleCache(dir string) (*moduleCache, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("module cache %s: %w", dir, err)
	}
	return &moduleCache{dir: dir}, nil
}

func (c *moduleCache) path(digest string) string {
	return filepath.Join(c.dir, strings.TrimPrefix(digest, loader.DigestPrefix)+".wasm")
}

// get returns the cached bytes of digest, verified; ok is false if absent
// or corrupt (a corrupt file is removed).
func (c *moduleCache) get(digest string) ([]byte, bool, error) {
	if err := loader.ValidateDigest(digest); err != nil {
		return nil, false, err
	}
	b, err := os.ReadFile(c.path(digest))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if loader.DigestOf(b) != digest {
		_ = os.Remove(c.path(digest))
		return nil, false, fmt.Errorf("cached module %s is corrupt (hashes to %s); removed it", digest, loader.DigestOf(b))
	}
	return b, true, nil
}

// put stores wasm under its digest.
func (c *moduleCache) put(wasm []byte) error {
	p := c.path(loader.DigestOf(wasm))
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	return writeAtomic(p, wasm)
}

// current returns the module -> digest map of the last-known versions.
func (c *moduleCache) current() (map[string]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil {
		m, err := c.readCurrent()
		if err != nil {
			return m, err
		}
		c.cur = m
	}
	return maps.Clone(c.cur), nil
}

func (c *moduleCache) readCurrent() (map[string]string, error) {
	m := map[string]string{}
	b, err := os.ReadFile(filepath.Join(c.dir, "current.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return map[string]string{}, fmt.Errorf("module cache index is corrupt: %w", err)
	}
	return m, nil
}

// setCurrent records module's current digest ("" removes the module).
func (c *moduleCache) setCurrent(module, digest string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil {
		c.cur, _ = c.readCurrent()
	}
	if c.cur[module] == digest {
		return nil
	}
	if digest == "" {
		delete(c.cur, module)
	} else {
		c.cur[module] = digest
	}
	b, _ := json.MarshalIndent(c.cur, "", "  ")
	return writeAtomic(filepath.Join(c.dir, "current.json"), b)
}

func writeAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
