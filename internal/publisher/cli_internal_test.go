package publisher

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseGlobalFlagsBeforeAndAfterTheCommand(t *testing.T) {
	env := map[string]string{"MCPRELOAD_OUTPUT": "json", "MCPRELOAD_PREFIX": "team", "MCPRELOAD_TIMEOUT": "5s"}
	getenv := func(k string) string { return env[k] }
	for _, args := range [][]string{
		{"--nats-url", "nats://a:4222", "reload", "--module", "m", "--wasm", "f"},
		{"reload", "--nats-url", "nats://a:4222", "--module", "m", "--wasm", "f"},
		{"--nats-url", "nats://b:4222", "reload", "--nats-url", "nats://a:4222", "--module", "m", "--wasm", "f"},
	} {
		cmd, c, err := parse(args, getenv)
		require.NoError(t, err, args)
		require.Equal(t, "reload", cmd.name)
		require.Equal(t, "nats://a:4222", c.NATSURL, "the last flag wins, the environment gives defaults")
		require.Equal(t, "json", c.Output)
		require.Equal(t, "team", c.Prefix)
		require.Equal(t, 5*time.Second, c.Timeout)
		require.Equal(t, "m", c.Module)
	}
	_, c, err := parse([]string{"--output", "text", "status"}, getenv)
	require.NoError(t, err)
	require.Equal(t, "text", c.Output, "a flag wins over the environment")
}

func TestSplitNodes(t *testing.T) {
	require.Equal(t, []string{"a", "b"}, splitNodes(" a, ,b,"))
	require.Nil(t, splitNodes(""))
}

// FuzzParse: no command line makes the parser panic, and every failure is
// help or a usage error (exit 2), never anything else.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"reload --module m --wasm f", "--output json status", "help reload", "history --limit -3",
		"rollback --module m --to sha256:00", "nodes --nats-url", "reload --nodes a,,b --strategy local", "-h", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Fields(line)
		_, _, err := parse(args, func(string) string { return "" })
		if err == nil {
			return
		}
		var h *helpError
		var u *usageError
		if !errors.As(err, &h) && !errors.As(err, &u) {
			t.Fatalf("parse(%q): %T %v", args, err, err)
		}
	})
}
