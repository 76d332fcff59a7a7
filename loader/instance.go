package loader

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// instance is one instantiated copy of a module version. It is not safe for
// concurrent use: executors hand it to one caller at a time.
type instance struct {
	mod                                          api.Module
	mem                                          api.Memory
	alloc, describe, call, stateSave, codeChange api.Function
}

// instantiate creates an instance of v and runs its _initialize under the
// call deadline. On error the instance is already closed.
func (l *Loader) instantiate(ctx context.Context, v *version) (*instance, error) {
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithStdout(l.cfg.Output(v.module, v.digest, "stdout")).
		WithStderr(l.cfg.Output(v.module, v.digest, "stderr")).
		WithSysWalltime().WithSysNanotime().WithSysNanosleep().
		WithRandSource(randReader{})
	// _initialize runs as an ordinary call rather than a start function, so
	// that a failure can be classified with the instance's memory in view.
	cfg = cfg.WithStartFunctions()
	cctx, cancel := context.WithTimeout(ctx, l.cfg.CallTimeout)
	defer cancel()
	mod, err := l.rt.InstantiateModule(cctx, v.compiled, cfg)
	if err != nil {
		if mod != nil {
			_ = mod.Close(context.Background())
		}
		if strings.Contains(err.Error(), "not instantiated") {
			// An import the runtime cannot satisfy (a table or global:
			// function and memory imports are refused before this).
			return nil, fmt.Errorf("%w: %v (only %s functions may be imported)", ErrForbiddenImport, err, WASIModule)
		}
		return nil, l.classify(cctx, nil, err, "instantiating")
	}
	in := &instance{
		mod:        mod,
		mem:        mod.Memory(),
		alloc:      mod.ExportedFunction(ExportAlloc),
		describe:   mod.ExportedFunction(ExportDescribe),
		call:       mod.ExportedFunction(ExportCall),
		stateSave:  mod.ExportedFunction(ExportStateSave),
		codeChange: mod.ExportedFunction(ExportCodeChange),
	}
	if in.mem == nil {
		in.close()
		return nil, fmt.Errorf("%w: the instance has no memory", ErrMissingExport)
	}
	if v.abi.initialize {
		if _, err := mod.ExportedFunction(ExportInitialize).Call(cctx); err != nil {
			err = l.classify(cctx, in, err, ExportInitialize)
			in.close()
			return nil, err
		}
	}
	return in, nil
}

func (in *instance) close() { _ = in.mod.Close(context.Background()) }

// invoke calls fn under the call deadline, with input (if non-nil) written to
// a buffer from mcpr_alloc, and returns a copy of the packed (ptr,len) output.
// Any error other than ErrBadOutput means the instance must be discarded.
func (l *Loader) invoke(ctx context.Context, in *instance, fn api.Function, name string, input []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.CallTimeout)
	defer cancel()
	var args []uint64
	if input != nil {
		if len(input) > l.cfg.MaxInputBytes {
			return nil, fmt.Errorf("%w: input of %d bytes exceeds the %d-byte cap", ErrTooLarge, len(input), l.cfg.MaxInputBytes)
		}
		res, err := in.alloc.Call(ctx, uint64(len(input)))
		if err != nil {
			return nil, l.classify(ctx, in, err, ExportAlloc)
		}
		ptr := uint32(res[0])
		if !in.mem.Write(ptr, input) {
			return nil, fmt.Errorf("%w: %s(%d) returned %#x, outside the %d-byte memory", ErrBadOutput, ExportAlloc, len(input), ptr, in.mem.Size())
		}
		args = []uint64{uint64(ptr), uint64(len(input))}
	}
	res, err := fn.Call(ctx, args...)
	if err != nil {
		return nil, l.classify(ctx, in, err, name)
	}
	ptr, n := uint32(res[0]>>32), uint32(res[0])
	if int64(n) > int64(l.cfg.MaxOutputBytes) {
		return nil, fmt.Errorf("%w: %s returned %d bytes, over the %d-byte cap", ErrTooLarge, name, n, l.cfg.MaxOutputBytes)
	}
	out, ok := in.mem.Read(ptr, n)
	if !ok {
		return nil, fmt.Errorf("%w: %s returned buffer %#x+%d outside the %d-byte memory", ErrBadOutput, name, ptr, n, in.mem.Size())
	}
	return append([]byte(nil), out...), nil
}

// classify turns an error from wazero into one of ErrTimeout,
// ErrMemoryLimit, ErrTrap (or the caller's context error).
func (l *Loader) classify(ctx context.Context, in *instance, err error, what string) error {
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case sys.ExitCodeDeadlineExceeded:
			return fmt.Errorf("%w: %s ran longer than %v and was stopped", ErrTimeout, what, l.cfg.CallTimeout)
		case sys.ExitCodeContextCanceled:
			return fmt.Errorf("%s: %w", what, context.Canceled)
		}
	}
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s ran longer than %v and was stopped", ErrTimeout, what, l.cfg.CallTimeout)
	}
	limit := uint64(l.cfg.MemoryLimitPages) * 65536
	if in != nil && uint64(in.mem.Size())+memoryHeadroom >= limit {
		return fmt.Errorf("%w: %s trapped with linear memory at %d MiB, the cap is %d MiB: %v",
			ErrMemoryLimit, what, in.mem.Size()>>20, limit>>20, err)
	}
	if in == nil && isMemoryLimitError(err) {
		return fmt.Errorf("%w: %s: %v (the cap is %d MiB)", ErrMemoryLimit, what, err, limit>>20)
	}
	if exit != nil {
		return fmt.Errorf("%w: %s exited with code %d", ErrTrap, what, exit.ExitCode())
	}
	return fmt.Errorf("%w: %s: %v", ErrTrap, what, err)
}

// memoryHeadroom is how close to the cap a trapping instance's memory must
// be for the trap to be reported as ErrMemoryLimit: guests grow memory in
// chunks, so the last failed grow leaves memory just under the cap.
const memoryHeadroom = 8 << 20

// isMemoryLimitError recognises wazero's rejection of a module whose declared
// memory exceeds the runtime's page limit (raised by compile or instantiate).
func isMemoryLimitError(err error) bool {
	return strings.Contains(err.Error(), "over limit of")
}
