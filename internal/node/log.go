package node

import (
	"io"
	"os"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
)

// newLogger returns the node's logger: console output on a terminal, JSON
// otherwise (or as --log-format says).
func newLogger(c Config, w io.Writer) (zerolog.Logger, error) {
	level, err := zerolog.ParseLevel(c.LogLevel)
	if err != nil || level == zerolog.NoLevel {
		level = zerolog.InfoLevel
	}
	console := c.LogFormat == "console"
	if c.LogFormat == "auto" {
		if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			console = true
		}
	}
	if console {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(w).With().Timestamp().Str("node", c.ID).Logger().Level(level), nil
}

// guestOutput returns a writer that logs each line a tool writes to stdout
// or stderr.
func guestOutput(log zerolog.Logger) func(module, digest, stream string) io.Writer {
	return func(module, digest, stream string) io.Writer {
		return &lineLogger{log: log.With().Str("module", module).Str("digest", digest).Str("stream", stream).Logger()}
	}
}

// lineLogger logs what is written to it, one event per write (guests write
// whole lines through WASI fd_write).
type lineLogger struct{ log zerolog.Logger }

func (l *lineLogger) Write(p []byte) (int, error) {
	const max = 4096
	msg := p
	if len(msg) > max {
		msg = msg[:max]
	}
	l.log.Info().Bytes("output", trimNewline(msg)).Msg("tool output")
	return len(p), nil
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
