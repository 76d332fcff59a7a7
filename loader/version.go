package loader

import (
	"context"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
)

// version is one loaded version of a module: compiled code, its description
// and the instances that run it.
type version struct {
	module   string
	digest   string
	md5      string
	wasm     []byte
	desc     description
	abi      abiExports
	compiled wazero.CompiledModule
	exec     *executor
	loadedAt time.Time

	// gate is replaced (under Loader.mu) each time the version becomes
	// current; calls that picked the version wait on it. See gate.
	gate *gate

	mu       sync.Mutex
	inflight int
	idle     chan struct{} // closed when inflight drops to zero; nil when no one waits
}

// gate holds calls that picked a version until it may serve them: a
// stateful version becomes current before its state is migrated, so calls
// routed to it wait for the migration. If the swap is undone, err is set
// and the callers route again.
type gate struct {
	ready chan struct{}
	err   error // set before ready is closed; non-nil means "route again"
}

var openGate = func() *gate { g := &gate{ready: make(chan struct{})}; close(g.ready); return g }()

func newGate() *gate { return &gate{ready: make(chan struct{})} }

func (g *gate) open()             { close(g.ready) }
func (g *gate) fail(e error)      { g.err = e; close(g.ready) }
func (v *version) acquire()       { v.mu.Lock(); v.inflight++; v.mu.Unlock() }
func (v *version) stateful() bool { return !v.desc.Stateless }

func (v *version) release() {
	v.mu.Lock()
	v.inflight--
	if v.inflight == 0 && v.idle != nil {
		close(v.idle)
		v.idle = nil
	}
	v.mu.Unlock()
}

// drain waits until no call is in flight on v. Callers must first make v
// unreachable for new calls (under Loader.mu).
func (v *version) drain(ctx context.Context) error {
	v.mu.Lock()
	if v.inflight == 0 {
		v.mu.Unlock()
		return nil
	}
	if v.idle == nil {
		v.idle = make(chan struct{})
	}
	idle := v.idle
	v.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (v *version) inFlight() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.inflight
}

// close releases the version's instances and compiled code.
func (v *version) close() {
	v.exec.close()
	_ = v.compiled.Close(context.Background())
}

// info returns the public description of v.
func (v *version) info() *VersionInfo {
	tools := make([]Tool, len(v.desc.Tools))
	copy(tools, v.desc.Tools)
	return &VersionInfo{
		Module:    v.module,
		Digest:    v.digest,
		MD5:       v.md5,
		Version:   v.desc.Version,
		Size:      len(v.wasm),
		Stateless: v.desc.Stateless,
		Tools:     tools,
		LoadedAt:  v.loadedAt,
	}
}

// VersionInfo describes a loaded or staged module version.
type VersionInfo struct {
	Module    string
	Digest    string // "sha256:<hex>", the version's identity
	MD5       string // hex MD5, for compatibility only
	Version   string // the module's own version string from mcpr_describe
	Size      int    // module size in bytes
	Stateless bool
	Tools     []Tool
	LoadedAt  time.Time // when Prepare compiled it
}
