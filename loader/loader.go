package loader

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/mcpreload/mcpreload/internal/names"
)

// Loader holds the loaded versions of every module and routes tool calls to
// them. All methods are safe for concurrent use. Lifecycle operations
// (Commit, Rollback, Purge, Unload) on the same module are serialized; calls
// never wait for them except while a stateful module's state is migrated.
type Loader struct {
	cfg   Config
	cache wazero.CompilationCache
	rt    wazero.Runtime
	wasi  map[string]signature

	// mu guards modules, tools and every module's current/old pointers and
	// every version's gate. Calls hold it shared for a few map lookups only.
	mu      sync.RWMutex
	modules map[string]*module
	tools   map[string]*module // tool name -> module whose current version declares it
	closed  bool

	compiles atomic.Int64 // modules compiled, for tests and metrics

	// background retirement of replaced versions.
	wg   sync.WaitGroup
	stop context.CancelFunc
	done context.Context
}

// module is the per-module slot: current and old versions.
type module struct {
	name string
	op   sync.Mutex // serializes Commit/Rollback/Purge/Unload of this module
	cur  *version   // guarded by Loader.mu
	old  *version   // guarded by Loader.mu
}

// New creates a Loader with its own wazero runtime. Close releases it.
func New(ctx context.Context, cfg Config) (*Loader, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	var cache wazero.CompilationCache
	if cfg.CacheDir != "" {
		if cache, err = wazero.NewCompilationCacheWithDir(cfg.CacheDir); err != nil {
			return nil, fmt.Errorf("loader: compilation cache %s: %w", cfg.CacheDir, err)
		}
	} else {
		cache = wazero.NewCompilationCache()
	}
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().
		WithCompilationCache(cache).
		WithCloseOnContextDone(true).
		WithMemoryLimitPages(cfg.MemoryLimitPages))
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		_ = rt.Close(ctx)
		_ = cache.Close(ctx)
		return nil, fmt.Errorf("loader: instantiating WASI: %w", err)
	}
	wasi := make(map[string]signature)
	for name, fd := range rt.Module(wasi_snapshot_preview1.ModuleName).ExportedFunctionDefinitions() {
		wasi[name] = signature{fd.ParamTypes(), fd.ResultTypes()}
	}
	done, stop := context.WithCancel(context.Background())
	return &Loader{
		cfg: cfg, cache: cache, rt: rt, wasi: wasi,
		modules: make(map[string]*module),
		tools:   make(map[string]*module),
		done:    done, stop: stop,
	}, nil
}

// Close unloads everything and releases the runtime. Calls in flight are
// stopped. Close is idempotent.
func (l *Loader) Close(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	var vs []*version
	for _, m := range l.modules {
		for _, v := range []*version{m.cur, m.old} {
			if v != nil {
				vs = append(vs, v)
			}
		}
	}
	l.modules, l.tools = map[string]*module{}, map[string]*module{}
	l.mu.Unlock()

	l.stop()
	l.wg.Wait()
	for _, v := range vs {
		v.close()
	}
	err := l.rt.Close(ctx)
	return errors.Join(err, l.cache.Close(ctx))
}

// ValidateModuleName reports whether name is a valid module name: 1 to 64
// characters of A-Z a-z 0-9 _ -.
func ValidateModuleName(name string) error {
	if !names.Module(name) {
		return &Error{Op: "validate", Module: fmt.Sprintf("%q", name), Stage: StageValidate, Kind: ErrInvalidModuleName,
			Detail: "use 1 to 64 characters of A-Z a-z 0-9 _ -"}
	}
	return nil
}

// Staged is a prepared version: compiled, validated and probed, not serving.
// Pass it to Commit or Abort exactly once.
type Staged struct {
	l    *Loader
	v    *version
	mu   sync.Mutex
	used bool
}

// Info describes the staged version.
func (s *Staged) Info() *VersionInfo { return s.v.info() }

// Module is the module the version was prepared for.
func (s *Staged) Module() string { return s.v.module }

// Digest is the staged version's digest.
func (s *Staged) Digest() string { return s.v.digest }

func (s *Staged) claim() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.used {
		return false
	}
	s.used = true
	return true
}

// Prepare compiles and validates wasm as a new version of module and returns
// it staged; nothing serving changes. If want is not empty, the bytes must
// hash to it. Prepare checks, in order: the module name, the size cap, the
// digest, compilation (through the compilation cache), the ABI exports and
// imports, a probe instance (running _initialize), mcpr_describe, and that no
// tool name is owned by another module. A failure is an *Error naming the
// module, the stage and the reason.
func (l *Loader) Prepare(ctx context.Context, module string, wasm []byte, want string) (*Staged, error) {
	if err := ValidateModuleName(module); err != nil {
		return nil, err
	}
	fail := func(stage string, err error) (*Staged, error) {
		return nil, wrap("prepare", module, stage, err)
	}
	if len(wasm) > l.cfg.MaxModuleBytes {
		return fail(StageValidate, fmt.Errorf("%w: module is %d bytes, the cap is %d", ErrTooLarge, len(wasm), l.cfg.MaxModuleBytes))
	}
	digest := DigestOf(wasm)
	if want != "" {
		if err := ValidateDigest(want); err != nil {
			return fail(StageValidate, fmt.Errorf("%w: %v", ErrDigestMismatch, err))
		}
		if want != digest {
			return fail(StageValidate, fmt.Errorf("%w: expected %s, the bytes hash to %s (corrupted or wrong upload)", ErrDigestMismatch, want, digest))
		}
	}
	if l.isClosed() {
		return fail(StageValidate, ErrClosed)
	}

	l.compiles.Add(1)
	cm, err := l.rt.CompileModule(ctx, wasm)
	if err != nil {
		if isMemoryLimitError(err) {
			return fail(StageCompile, fmt.Errorf("%w: %v", ErrMemoryLimit, err))
		}
		return fail(StageCompile, fmt.Errorf("%w: %v", ErrInvalidWasm, err))
	}
	abi, stage, err := checkABI(cm, l.wasi)
	if err != nil {
		_ = cm.Close(ctx)
		return fail(stage, err)
	}
	v := &version{
		module: module, digest: digest, md5: MD5Of(wasm), wasm: wasm,
		abi: abi, compiled: cm, loadedAt: time.Now(), gate: openGate,
	}
	probe, err := l.instantiate(ctx, v)
	if err != nil {
		_ = cm.Close(ctx)
		return fail(StageInstantiate, err)
	}
	out, err := l.invoke(ctx, probe, probe.describe, ExportDescribe, nil)
	if err == nil {
		v.desc, err = parseDescribe(out)
		if err != nil {
			err = fmt.Errorf("%w: %v", ErrBadDescribe, err)
		}
	}
	if err != nil {
		probe.close()
		_ = cm.Close(ctx)
		return fail(StageDescribe, err)
	}
	if err := l.checkCollisions(v); err != nil {
		probe.close()
		_ = cm.Close(ctx)
		return fail(StageCollision, err)
	}
	size := l.cfg.PoolSize
	if v.stateful() {
		size = 1
	}
	v.exec = newExecutor(l, v, size, probe)
	return &Staged{l: l, v: v}, nil
}

// checkCollisions fails if another module's current version declares one
// of v's tools.
func (l *Loader) checkCollisions(v *version) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	for _, t := range v.desc.Tools {
		if owner, ok := l.tools[t.Name]; ok && owner.name != v.module {
			return fmt.Errorf("%w: tool %q is already served by module %q (rename the tool or unload %q)",
				ErrToolCollision, t.Name, owner.name, owner.name)
		}
	}
	return nil
}

func (l *Loader) isClosed() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.closed
}

// wrap makes err an *Error, keeping its sentinel kind.
func wrap(op, module, stage string, err error) error {
	var le *Error
	if errors.As(err, &le) {
		return err
	}
	kind := error(nil)
	for _, c := range codes {
		if errors.Is(err, c.err) {
			kind = c.err
			break
		}
	}
	if kind == nil {
		return fmt.Errorf("%s %s: %w", op, module, err)
	}
	return &Error{Op: op, Module: module, Stage: stage, Kind: kind, Detail: detail(err, kind), Err: causeOf(err)}
}

// detail strips the sentinel's own text from err's message.
func detail(err, kind error) string {
	msg, prefix := err.Error(), kind.Error()+": "
	if len(msg) > len(prefix) && msg[:len(prefix)] == prefix {
		return msg[len(prefix):]
	}
	if msg == kind.Error() {
		return ""
	}
	return msg
}

// causeOf returns a context error wrapped in err, so errors.Is(err,
// context.Canceled) keeps working through *Error.
func causeOf(err error) error {
	for _, c := range []error{context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, c) {
			return c
		}
	}
	return nil
}

// Abort discards a staged version. It is idempotent and a no-op for a
// version already committed.
func (l *Loader) Abort(s *Staged) {
	if s.claim() {
		s.v.close()
	}
}

// Versions returns the current and old versions of module.
func (l *Loader) Versions(module string) (current, old *VersionInfo, err error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	m, ok := l.modules[module]
	if !ok || m.cur == nil {
		return nil, nil, &Error{Op: "versions", Module: module, Kind: ErrUnknownModule}
	}
	current = m.cur.info()
	if m.old != nil {
		old = m.old.info()
	}
	return current, old, nil
}

// Digest returns the digest of module's current version.
func (l *Loader) Digest(module string) (string, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	m, ok := l.modules[module]
	if !ok || m.cur == nil {
		return "", &Error{Op: "digest", Module: module, Kind: ErrUnknownModule}
	}
	return m.cur.digest, nil
}

// Object returns the bytes of module's current or old version with the
// given digest (empty digest: the current version). The slice must not be
// modified.
func (l *Loader) Object(module, digest string) ([]byte, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	m, ok := l.modules[module]
	if !ok || m.cur == nil {
		return nil, &Error{Op: "object", Module: module, Kind: ErrUnknownModule}
	}
	for _, v := range []*version{m.cur, m.old} {
		if v != nil && (digest == "" || v.digest == digest) {
			return v.wasm, nil
		}
	}
	return nil, &Error{Op: "object", Module: module, Kind: ErrUnknownModule, Detail: "no loaded version has digest " + digest}
}

// Modules returns the names of all loaded modules, sorted.
func (l *Loader) Modules() []string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	names := make([]string, 0, len(l.modules))
	for n, m := range l.modules {
		if m.cur != nil {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// ToolInfo is a tool together with the version currently serving it.
type ToolInfo struct {
	Tool
	Module  string
	Version string
	Digest  string
}

// Tools returns every tool served by a current version, sorted by name.
func (l *Loader) Tools() []ToolInfo {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var out []ToolInfo
	for _, m := range l.modules {
		if m.cur == nil {
			continue
		}
		for _, t := range m.cur.desc.Tools {
			out = append(out, ToolInfo{Tool: t, Module: m.name, Version: m.cur.desc.Version, Digest: m.cur.digest})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Compiles returns how many modules the loader has compiled (a rollback
// compiles nothing; a prepare compiles once, from the cache when warm).
func (l *Loader) Compiles() int64 { return l.compiles.Load() }

// ModuleStats is a point-in-time view of one module, for metrics.
type ModuleStats struct {
	Module     string
	Digest     string // current version
	Version    string
	OldDigest  string // "" when no old version is loaded
	Instances  int    // live instances of the current and old versions
	InFlight   int    // calls running or waiting on the current and old versions
	Stateless  bool
	ToolsCount int
}

// Stats returns a view of every loaded module, sorted by name.
func (l *Loader) Stats() []ModuleStats {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]ModuleStats, 0, len(l.modules))
	for _, m := range l.modules {
		if m.cur == nil {
			continue
		}
		st := ModuleStats{Module: m.name, Digest: m.cur.digest, Version: m.cur.desc.Version,
			Stateless: m.cur.desc.Stateless, ToolsCount: len(m.cur.desc.Tools)}
		for _, v := range []*version{m.cur, m.old} {
			if v != nil {
				st.Instances += int(v.exec.live.Load())
				st.InFlight += v.inFlight()
			}
		}
		if m.old != nil {
			st.OldDigest = m.old.digest
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Module < out[j].Module })
	return out
}
