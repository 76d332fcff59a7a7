package signing

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSignVerify(t *testing.T) {
	dir := t.TempDir()
	seed, pub, err := Keygen()
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ci.seed"), seed, 0o600))
	_, other, err := Keygen()
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "trusted"), []byte("# CI key\n"+pub+"\n\n"), 0o644))

	s, err := LoadSigner(filepath.Join(dir, "ci.seed"))
	require.NoError(t, err)
	trusted, err := LoadTrusted(filepath.Join(dir, "trusted"))
	require.NoError(t, err)

	const d = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	sig, key, err := s.Sign("counter", d, "saga-1")
	require.NoError(t, err)
	require.Equal(t, pub, key)
	require.NoError(t, trusted.Verify("counter", d, "saga-1", sig, key))

	for name, c := range map[string]struct {
		module, saga, sig, key string
		want                   error
	}{
		"unsigned":      {"counter", "saga-1", "", "", ErrUnsigned},
		"unknown key":   {"counter", "saga-1", sig, other, ErrUntrustedKey},
		"other module":  {"calc", "saga-1", sig, key, ErrBadSignature},
		"replayed saga": {"counter", "saga-2", sig, key, ErrBadSignature},
		"garbage":       {"counter", "saga-1", "!!", key, ErrBadSignature},
	} {
		err := trusted.Verify(c.module, d, c.saga, c.sig, c.key)
		require.ErrorIs(t, err, c.want, name)
	}
	require.Equal(t, "untrusted_key", Code(trusted.Verify("counter", d, "saga-1", sig, other)))

	require.NoError(t, os.WriteFile(filepath.Join(dir, "bad"), []byte("not-a-key\n"), 0o644))
	_, err = LoadTrusted(filepath.Join(dir, "bad"))
	require.ErrorContains(t, err, "not an nkeys public key")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "empty"), []byte("# nothing\n"), 0o644))
	_, err = LoadTrusted(filepath.Join(dir, "empty"))
	require.ErrorContains(t, err, "no keys")
}
