package loader

import (
	"fmt"
	"io"
	"runtime"
	"time"
)

// Defaults for Config fields left zero.
const (
	DefaultMaxModuleBytes   = 16 << 20 // 16 MiB
	DefaultMemoryLimitPages = 2048     // 128 MiB of linear memory per instance
	DefaultCallTimeout      = 10 * time.Second
	DefaultDrainTimeout     = 30 * time.Second
	DefaultMaxInputBytes    = 4 << 20 // 4 MiB
	DefaultMaxOutputBytes   = 4 << 20 // 4 MiB
)

// Config configures a Loader. Zero fields take the defaults above; a Config
// is read once by New and not retained.
type Config struct {
	// CacheDir is the directory of wazero's on-disk compilation cache. A
	// module compiled once is loaded from it in milliseconds by any process
	// sharing the directory. Empty means an in-memory cache for this Loader.
	CacheDir string

	// MaxModuleBytes caps the size of a module accepted by Prepare.
	MaxModuleBytes int

	// MemoryLimitPages caps every instance's linear memory, in 64 KiB pages.
	// A module declaring more, or growing past it, is stopped with ErrMemoryLimit.
	MemoryLimitPages uint32

	// CallTimeout bounds every guest call: tool calls, describe, state_save,
	// code_change and _initialize. An instance that overruns it is discarded.
	CallTimeout time.Duration

	// DrainTimeout bounds how long Commit and Rollback of a stateful module
	// wait for calls in flight on the version being replaced.
	DrainTimeout time.Duration

	// MaxInputBytes and MaxOutputBytes cap what crosses the guest boundary in
	// one call (the call's input JSON and any buffer a guest returns).
	MaxInputBytes  int
	MaxOutputBytes int

	// PoolSize bounds the number of instances of a stateless module (calls
	// beyond it wait). Default: GOMAXPROCS.
	PoolSize int

	// Output returns where a guest instance's stdout or stderr ("stdout",
	// "stderr") goes. Nil discards guest output. It is called once per
	// instance; the writer must be safe for concurrent use.
	Output func(module, digest, stream string) io.Writer
}

func (c Config) withDefaults() (Config, error) {
	if c.MaxModuleBytes == 0 {
		c.MaxModuleBytes = DefaultMaxModuleBytes
	}
	if c.MemoryLimitPages == 0 {
		c.MemoryLimitPages = DefaultMemoryLimitPages
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = DefaultCallTimeout
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.MaxInputBytes == 0 {
		c.MaxInputBytes = DefaultMaxInputBytes
	}
	if c.MaxOutputBytes == 0 {
		c.MaxOutputBytes = DefaultMaxOutputBytes
	}
	if c.PoolSize == 0 {
		c.PoolSize = runtime.GOMAXPROCS(0)
	}
	if c.Output == nil {
		c.Output = func(string, string, string) io.Writer { return io.Discard }
	}
	switch {
	case c.MaxModuleBytes < 0, c.MaxInputBytes < 0, c.MaxOutputBytes < 0, c.PoolSize < 0:
		return c, fmt.Errorf("loader config: sizes must not be negative")
	case c.CallTimeout < 0, c.DrainTimeout < 0:
		return c, fmt.Errorf("loader config: timeouts must not be negative")
	case c.MemoryLimitPages > 65536:
		return c, fmt.Errorf("loader config: MemoryLimitPages %d exceeds the wasm32 maximum of 65536", c.MemoryLimitPages)
	}
	return c, nil
}
