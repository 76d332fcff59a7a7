package publisher

import (
	"context"
	"fmt"

	"github.com/mcpreload/mcpreload/loader"
)

// CheckOptions configures CheckModule.
type CheckOptions struct {
	// MaxModuleBytes caps the module (default loader.DefaultMaxModuleBytes).
	MaxModuleBytes int
	// CacheDir is a wazero compilation cache directory to reuse; empty means
	// an in-memory cache that lives for this one check.
	CacheDir string
}

// CheckModule runs wasm through a throwaway loader the way a node's prepare
// does (size cap, compilation, ABI exports and imports, a probe instance,
// mcpr_describe) and discards it, so a module every node would refuse is
// refused before anything is uploaded. It returns the version's description.
//
// A module the loader refuses gives an error matching ErrInvalidModule
// whose chain holds the *loader.Error (loader.StageOf and loader.Code give
// its stage and code). Tool-name collisions with other modules cannot be
// seen locally; nodes still check them. A loader that cannot start (a bad
// CacheDir) is ErrInvalidRequest; a cancelled ctx returns ctx.Err().
func CheckModule(ctx context.Context, module string, wasm []byte, o CheckOptions) (*loader.VersionInfo, error) {
	l, err := loader.New(ctx, loader.Config{CacheDir: o.CacheDir, MaxModuleBytes: o.MaxModuleBytes})
	if err != nil {
		return nil, withKind(ErrInvalidRequest, fmt.Errorf("local check: %w (check --cache-dir)", err))
	}
	defer func() { _ = l.Close(context.Background()) }()
	staged, err := l.Prepare(ctx, module, wasm, loader.DigestOf(wasm))
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, withKind(ErrInvalidModule, fmt.Errorf("module %s refused by the local check (%s): %w; nothing was uploaded",
			module, StageCode(err), err))
	}
	info := staged.Info()
	l.Abort(staged)
	return info, nil
}

// StageCode formats a loader error's stage and code as "stage/code", e.g.
// "abi/missing_export", or just the code when the stage is unknown.
func StageCode(err error) string {
	if s := loader.StageOf(err); s != "" {
		return s + "/" + loader.Code(err)
	}
	return loader.Code(err)
}
