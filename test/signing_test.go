package test

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/events"
	"github.com/mcpreload/mcpreload/internal/publisher"
	"github.com/mcpreload/mcpreload/internal/signing"
	"github.com/mcpreload/mcpreload/internal/wasmgen"
)

// TestSignedReloads: a node with --trusted-keys refuses, in prepare, a
// reload that is unsigned or signed by an unknown key, and accepts one
// signed by a trusted key.
func TestSignedReloads(t *testing.T) {
	dir := t.TempDir()
	// The CI key comes from the publisher's keygen.
	var out strings.Builder
	code := publisher.Main(context.Background(), []string{"keygen", "--out", filepath.Join(dir, "ci.seed"), "--output", "json"},
		func(string) string { return "" }, &out, io.Discard)
	require.Equal(t, publisher.ExitOK, code)
	var kg struct {
		PublicKey string `json:"public_key"`
	}
	require.NoError(t, json.Unmarshal([]byte(out.String()), &kg))
	pub := kg.PublicKey
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

	// The CLI signs with --sign-key.
	wasmFile := filepath.Join(dir, "v2.wasm")
	require.NoError(t, os.WriteFile(wasmFile, wasmgen.Tiny(wasmgen.Spec{Version: "2", Stateless: true}), 0o644))
	args := []string{"reload", "--module", "tiny", "--wasm", wasmFile, "--nats-url", f.srv.ClientURL(), "--timeout", "10s"}
	require.Equal(t, publisher.ExitFailed, publisher.Main(ctx, args, func(string) string { return "" }, io.Discard, io.Discard), "unsigned")
	require.Equal(t, publisher.ExitOK, publisher.Main(ctx, append(args, "--sign-key", filepath.Join(dir, "ci.seed")),
		func(string) string { return "" }, io.Discard, io.Discard))
}
