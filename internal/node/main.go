package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Exit codes of mcpreload-node.
const (
	ExitOK    = 0 // clean shutdown
	ExitError = 1 // runtime failure
	ExitUsage = 2 // bad flags or environment
)

// Main runs a node until ctx is cancelled (SIGTERM/SIGINT in cmd/node) and
// returns the process exit code. stdin and stdout carry MCP with --stdio.
func Main(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	cfg, err := ParseFlags(args, getenv, stderr)
	if errors.Is(err, ErrHelp) {
		return ExitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "mcpreload-node: %v\n(see mcpreload-node --help)\n", err)
		return ExitUsage
	}
	log, _ := newLogger(cfg, stderr)
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		log.Error().Err(err).Str("data_dir", cfg.DataDir).Msg("cannot create the data directory; set --data-dir")
		return ExitError
	}
	n, err := New(ctx, cfg, log)
	if err != nil {
		log.Error().Err(err).Msg("cannot start the node")
		return ExitError
	}
	if err := n.Open(ctx); err != nil {
		log.Error().Err(err).Msg("cannot start the node")
		_ = n.Close(context.Background())
		return ExitError
	}
	code := ExitOK
	if cfg.Stdio {
		t := &mcp.IOTransport{Reader: io.NopCloser(stdin), Writer: nopWriteCloser{stdout}}
		if err := n.ServeStdio(ctx, t); err != nil && ctx.Err() == nil {
			log.Error().Err(err).Msg("stdio session ended with an error")
			code = ExitError
		}
	} else {
		<-ctx.Done()
	}
	log.Info().Msg("shutting down: no new calls, waiting for calls in flight")
	if err := n.Close(context.Background()); err != nil {
		log.Error().Err(err).Msg("shutdown")
		return ExitError
	}
	log.Info().Msg("stopped")
	return code
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
