package test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/events"
	"github.com/mcpreload/mcpreload/internal/signing"
	"github.com/mcpreload/mcpreload/internal/wasmgen"
)

// TestSignedReloads: a node with --trusted-keys refuses, in prepare, a
// reload that is unsigned or signed by an unknown key, and accepts one
// signed by a trusted key.
func TestSignedReloads(t *testing.T) {
	dir := t.TempDir()
	seed, pub, err := signing.Keygen()
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ci.seed"), seed, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "trusted"), []byte(pub+"\n"), 0o644))
	rogue, _, err := signing.Keygen()
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "rogue.seed"), rogue, 0o600))

	f := newFleet(t)
	f.node(t, "secure", "--orchestrator", "--trusted-keys", filepath.Join(dir, "trusted"))
	f.waitLive(t, "secure")
	ctx := context.Background()
	wasm := wasmgen.Tiny(wasmgen.Spec{Version: "1", Stateless: true})
	digest, _, err := f.b.PutModule(ctx, wasm)
	require.NoError(t, err)

	signed := func(seedFile string) string {
		id := uuid.NewString()
		req := events.ReloadRequest{Module: "tiny", Digest: digest, Strategy: events.StrategyAll, Timeout: events.Duration(10 * time.Second)}
		if seedFile != "" {
			s, err := signing.LoadSigner(filepath.Join(dir, seedFile))
			require.NoError(t, err)
			req.Signature, req.Key, err = s.Sign("tiny", digest, id)
			require.NoError(t, err)
		}
		e, err := events.New(events.TypeReloadRequested, "urn:test", "tiny", req, events.WithID(id))
		require.NoError(t, err)
		m, err := events.ToNATS(ctx, f.b.Subjects.ReloadRequest("tiny"), e)
		require.NoError(t, err)
		_, err = f.b.JS.PublishMsg(ctx, m)
		require.NoError(t, err)
		return id
	}

	for seedFile, code := range map[string]string{"": "unsigned", "rogue.seed": "untrusted_key"} {
		o := f.outcome(t, signed(seedFile))
		require.Equal(t, events.ResultAborted, o.Result)
		require.Equal(t, code, o.Nodes[0].Code)
		require.Equal(t, "verify", o.Nodes[0].Stage)
	}
	require.Empty(t, f.serving(t, "tiny")["secure"], "nothing was loaded")

	o := f.outcome(t, signed("ci.seed"))
	require.Equal(t, events.ResultCommitted, o.Result, o.Reason)
}
