package testutil

import (
	"bufio"
	"encoding/json"
	"io"
	"sync"
	"testing"
	"time"
)

// LogSink collects a process's JSON log lines (one object per line, as the
// node writes with --log-format json) and lets tests wait for one. It is an
// io.Writer; Close ends it and waits until every written line is parsed.
type LogSink struct {
	mu    sync.Mutex
	lines []map[string]any
	wake  chan struct{} // closed and replaced on every new line
	pw    *io.PipeWriter
	once  sync.Once
	done  chan struct{}
}

// NewLogSink returns a sink parsing what is written to it.
func NewLogSink() *LogSink {
	pr, pw := io.Pipe()
	s := &LogSink{wake: make(chan struct{}), pw: pw, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				m = map[string]any{"message": sc.Text()}
			}
			s.mu.Lock()
			s.lines = append(s.lines, m)
			close(s.wake)
			s.wake = make(chan struct{})
			s.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	return s
}

// Write implements io.Writer.
func (s *LogSink) Write(p []byte) (int, error) { return s.pw.Write(p) }

// Close stops the sink and waits until every line written is parsed. It is
// idempotent and safe to call from several goroutines.
func (s *LogSink) Close() {
	s.once.Do(func() { _ = s.pw.Close() })
	<-s.done
}

// Wait returns the first line (from index from on) for which match is
// true, and its index, failing the test after timeout.
func (s *LogSink) Wait(tb testing.TB, from int, timeout time.Duration, match func(map[string]any) bool) (int, map[string]any) {
	tb.Helper()
	deadline := time.After(timeout)
	ended := false
	for {
		s.mu.Lock()
		for i := from; i < len(s.lines); i++ {
			if match(s.lines[i]) {
				l := s.lines[i]
				s.mu.Unlock()
				return i, l
			}
		}
		from = len(s.lines)
		wake := s.wake
		s.mu.Unlock()
		if ended {
			tb.Fatalf("the log ended without a matching line")
		}
		select {
		case <-wake:
		case <-s.done:
			ended = true // look at the last lines once more
		case <-deadline:
			tb.Fatalf("no matching log line within %v", timeout)
		}
	}
}

// Len returns how many lines were parsed so far.
func (s *LogSink) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lines)
}

// Lines returns the lines parsed so far.
func (s *LogSink) Lines() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]map[string]any, len(s.lines))
	copy(out, s.lines)
	return out
}

// Msg matches log lines by message and by field values given as pairs:
// Msg("module reloaded", "module", "counter").
func Msg(text string, fields ...string) func(map[string]any) bool {
	return func(m map[string]any) bool {
		if m["message"] != text {
			return false
		}
		for i := 0; i+1 < len(fields); i += 2 {
			if m[fields[i]] != fields[i+1] {
				return false
			}
		}
		return true
	}
}
