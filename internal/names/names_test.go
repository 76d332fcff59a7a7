package names

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNames(t *testing.T) {
	require.True(t, Module("counter_v-2"))
	for _, bad := range []string{"", "a.b", "a b", "x>", "*", strings.Repeat("m", 65), "é"} {
		require.False(t, Module(bad), bad)
	}
	require.True(t, Node(strings.Repeat("n", 128)))
	require.False(t, Node(strings.Repeat("n", 129)))
	require.True(t, Tool("calc.add-v2_x"))
	require.False(t, Tool("a b"))
	require.True(t, Digest("sha256:"+strings.Repeat("0a", 32)))
	for _, bad := range []string{"", "sha256:", "md5:" + strings.Repeat("0", 64), "sha256:" + strings.Repeat("A", 64), "sha256:" + strings.Repeat("0", 63)} {
		require.False(t, Digest(bad), bad)
	}
}

func FuzzNames(f *testing.F) {
	f.Add("counter")
	f.Add("sha256:" + strings.Repeat("f", 64))
	f.Fuzz(func(t *testing.T, s string) {
		if Module(s) {
			require.True(t, Node(s), "every module name is a valid node id")
			require.True(t, Tool(s), "and a valid tool name")
			require.False(t, strings.ContainsAny(s, ".*> \t"), "a subject token")
		}
		if Digest(s) {
			require.Len(t, s, len(DigestPrefix)+64)
		}
	})
}
