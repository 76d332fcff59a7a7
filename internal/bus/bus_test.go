package bus_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/internal/bus"
	"github.com/mcpreload/mcpreload/internal/natstest"
	"github.com/mcpreload/mcpreload/loader"
)

func TestOpenIsIdempotentAndModulesRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := natstest.Run(t)
	nc := s.Connect(t)
	b, err := bus.Open(ctx, nc, bus.Options{})
	require.NoError(t, err)
	_, err = bus.Open(ctx, nc, bus.Options{})
	require.NoError(t, err, "a second participant opens the same resources")
	require.Equal(t, "mcpreload-modules", b.Names.ModulesBucket)
	require.Equal(t, "MCPRELOAD_REQUESTS", b.Names.RequestStream)

	wasm := []byte("\x00asm\x01\x00\x00\x00 module bytes")
	d, existed, err := b.PutModule(ctx, wasm)
	require.NoError(t, err)
	require.False(t, existed)
	require.Equal(t, loader.DigestOf(wasm), d)
	_, existed, err = b.PutModule(ctx, wasm)
	require.NoError(t, err)
	require.True(t, existed, "content-addressed: stored once")

	got, err := b.GetModule(ctx, d, 1<<20)
	require.NoError(t, err)
	require.Equal(t, wasm, got)
	_, err = b.GetModule(ctx, d, 4)
	require.ErrorIs(t, err, bus.ErrObjectTooLarge)
	_, err = b.GetModule(ctx, loader.DigestOf([]byte("other")), 1<<20)
	require.ErrorIs(t, err, bus.ErrNoObject)

	other, err := bus.Open(ctx, nc, bus.Options{Prefix: "team.a"})
	require.NoError(t, err)
	require.Equal(t, "team-a-modules", other.Names.ModulesBucket)
	require.Equal(t, "TEAM_A_SAGAS", other.Names.SagaStream)
}
