package loader_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/internal/wasmgen"
	"github.com/mcpreload/mcpreload/loader"
)

// faulty is a stateful module whose tool "x_bad" misbehaves as b while
// its tool "ok" replies normally.
func faulty(b wasmgen.Misbehaviour) []byte {
	return wasmgen.Tiny(wasmgen.Spec{Version: "f", Tools: []string{"ok", "x_bad"}, Misbehave: b, MisbehavePrefix: 'x'})
}

func TestInfiniteLoopIsStoppedAtTheDeadline(t *testing.T) {
	const timeout = 200 * time.Millisecond
	l := newLoader(t, func(c *loader.Config) { c.CallTimeout = timeout })
	ctx := context.Background()
	load(t, l, "faulty", faulty(wasmgen.LoopInCall))
	require.Equal(t, "f", callText(t, l, "ok", `{}`))

	start := time.Now()
	_, err := l.Call(ctx, "x_bad", nil)
	took := time.Since(start)
	require.ErrorIs(t, err, loader.ErrTimeout)
	require.Equal(t, "timeout", loader.Code(err))
	require.Contains(t, err.Error(), "call faulty: deadline exceeded: x_bad ran longer than 200ms and was stopped")
	require.Less(t, took, timeout+100*time.Millisecond)
	require.Equal(t, "f", callText(t, l, "ok", `{}`), "the next call runs on a fresh instance")
}

func TestMemoryBombIsStoppedAtTheCap(t *testing.T) {
	l := newLoader(t, func(c *loader.Config) { c.MemoryLimitPages = 256 })
	load(t, l, "faulty", faulty(wasmgen.MemoryBombInCall))
	_, err := l.Call(context.Background(), "x_bad", nil)
	require.ErrorIs(t, err, loader.ErrMemoryLimit)
	require.Contains(t, err.Error(), "the cap is 16 MiB")
	require.Equal(t, "f", callText(t, l, "ok", `{}`))
}

func TestTrapDiscardsTheInstance(t *testing.T) {
	l := newLoader(t, nil)
	load(t, l, "faulty", faulty(wasmgen.TrapInCall))
	for range 3 {
		_, err := l.Call(context.Background(), "x_bad", nil)
		require.ErrorIs(t, err, loader.ErrTrap)
		require.Contains(t, err.Error(), "unreachable")
		require.Equal(t, "f", callText(t, l, "ok", `{}`))
	}
}

func TestCallInputChecks(t *testing.T) {
	l := newLoader(t, func(c *loader.Config) { c.MaxInputBytes = 1024 })
	ctx := context.Background()
	load(t, l, "tiny", wasmgen.Tiny(wasmgen.Spec{Stateless: true}))

	_, err := l.Call(ctx, "nope", nil)
	require.ErrorIs(t, err, loader.ErrUnknownTool)
	require.Contains(t, err.Error(), `no loaded module declares tool "nope"`)

	for _, bad := range []string{`[1]`, `{"a":`, `"s"`, `42`} {
		_, err = l.Call(ctx, "tiny", json.RawMessage(bad))
		require.ErrorIs(t, err, loader.ErrBadInput, "args %s", bad)
	}
	_, err = l.Call(ctx, "tiny", json.RawMessage(`{"s":"`+strings.Repeat("a", 2048)+`"}`))
	require.ErrorIs(t, err, loader.ErrTooLarge)
	require.Contains(t, err.Error(), "exceeds the 1024-byte cap")

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = l.Call(cctx, "tiny", nil)
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, "1.0.0", callText(t, l, "tiny", `{"k":"v"}`))
}
