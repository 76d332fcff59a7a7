package loader

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
)

// Result is the outcome of a tool call that reached the guest and returned.
type Result struct {
	Module  string
	Version string // the module's version string
	Digest  string // the digest of the version that ran the call
	// Output is the MCP CallToolResult JSON the tool returned, validated.
	Output json.RawMessage
	// IsError mirrors Output's isError: the tool reported a failure.
	IsError bool
}

// Call runs tool with args (a JSON object; nil means {}) on the current
// version of the module that declares it, under Config.CallTimeout.
//
// A tool that reports failure returns a Result with IsError set and a nil
// error. An error means the call produced no result: ErrUnknownTool,
// ErrBadInput, ErrTimeout, ErrTrap, ErrMemoryLimit, ErrBadOutput,
// ErrTooLarge, or the caller's context error. After ErrTimeout, ErrTrap or
// ErrMemoryLimit the instance was discarded; the next call gets a fresh one.
func (l *Loader) Call(ctx context.Context, tool string, args json.RawMessage) (*Result, error) {
	args = bytes.TrimSpace(args)
	if len(args) == 0 || bytes.Equal(args, []byte("null")) {
		args = []byte("{}")
	}
	for {
		l.mu.RLock()
		m, ok := l.tools[tool]
		if !ok {
			l.mu.RUnlock()
			return nil, &Error{Op: "call", Module: "", Stage: StageCall, Kind: ErrUnknownTool, Detail: fmt.Sprintf("no loaded module declares tool %q", tool)}
		}
		v, g := m.cur, m.cur.gate
		v.acquire()
		l.mu.RUnlock()

		select {
		case <-g.ready:
		case <-ctx.Done():
			v.release()
			return nil, wrap("call", v.module, StageCall, fmt.Errorf("%s: waiting for the version swap: %w", tool, ctx.Err()))
		}
		if g.err != nil {
			v.release()
			continue
		}
		res, err := l.callVersion(ctx, v, tool, args)
		v.release()
		return res, err
	}
}

func (l *Loader) callVersion(ctx context.Context, v *version, tool string, args json.RawMessage) (*Result, error) {
	if args[0] != '{' || !json.Valid(args) {
		return nil, wrap("call", v.module, StageCall, fmt.Errorf("%w: arguments of %s must be a JSON object", ErrBadInput, tool))
	}
	input := make([]byte, 0, len(tool)+len(args)+24)
	input = append(input, `{"name":`...)
	input = strconv.AppendQuote(input, tool)
	input = append(input, `,"arguments":`...)
	input = append(input, args...)
	input = append(input, '}')

	var out []byte
	err := v.exec.with(ctx, func(in *instance) error {
		var err error
		out, err = l.invoke(ctx, in, in.call, tool, input)
		return err
	})
	if err != nil {
		return nil, wrap("call", v.module, StageCall, err)
	}
	isErr, err := parseCallResult(out)
	if err != nil {
		return nil, wrap("call", v.module, StageCall, fmt.Errorf("%w: %v", ErrBadOutput, err))
	}
	return &Result{Module: v.module, Version: v.desc.Version, Digest: v.digest, Output: out, IsError: isErr}, nil
}
