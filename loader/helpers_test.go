package loader_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/internal/testutil"
	"github.com/mcpreload/mcpreload/loader"
)

// newLoader returns a Loader sharing the repository's on-disk compilation
// cache, closed at the end of the test. mod adjusts the config.
func newLoader(tb testing.TB, mod func(*loader.Config)) *loader.Loader {
	tb.Helper()
	cfg := loader.Config{CacheDir: testutil.CacheDir(tb), CallTimeout: 5 * time.Second, DrainTimeout: 5 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	l, err := loader.New(context.Background(), cfg)
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, l.Close(context.Background())) })
	return l
}

// load prepares and commits wasm as module.
func load(tb testing.TB, l *loader.Loader, module string, wasm []byte) *loader.CommitResult {
	tb.Helper()
	s, err := l.Prepare(context.Background(), module, wasm, loader.DigestOf(wasm))
	require.NoError(tb, err)
	res, err := l.Commit(context.Background(), s)
	require.NoError(tb, err)
	return res
}

// callText calls tool and returns the text of its first content item.
func callText(tb testing.TB, l *loader.Loader, tool string, args string) string {
	tb.Helper()
	res, err := l.Call(context.Background(), tool, json.RawMessage(args))
	require.NoError(tb, err)
	require.False(tb, res.IsError, "tool %s reported an error: %s", tool, res.Output)
	return textOf(tb, res.Output)
}

func textOf(tb testing.TB, out json.RawMessage) string {
	tb.Helper()
	var r struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	}
	require.NoError(tb, json.Unmarshal(out, &r))
	require.NotEmpty(tb, r.Content, "result %s has no content", out)
	return r.Content[0].Text
}

// increment calls counter_increment n times and returns the last count.
func increment(tb testing.TB, l *loader.Loader, n int) string {
	tb.Helper()
	var last string
	for range n {
		last = callText(tb, l, "counter_increment", `{}`)
	}
	return last
}
