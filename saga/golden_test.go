package saga

// Data-driven golden tests in the style of etcd raft's interaction tests.
// Each testdata/<name>.txt is a script with one command a line; the harness
// feeds it to Step and writes, indented under every command, the effects in
// order and a summary of the new state ("(no change)" when the machine
// returned its input and no effects). The result must equal
// testdata/<name>.golden; `go test ./saga -rewrite` regenerates the goldens.
//
//	start id=ID module=M digest=D desired=D strategy=all|quorum|local timeout=30s nodes=n1,n2 live=n1:D1,n2:D1,n3:
//	ack NODE prepare|commit|rollback|abort ok|fail [stale] [prev=D] [stage=S] [code=C] [msg="M"] [saga=ID] [digest=D]
//	tick
//	conflict found=D
//	resume    print Resume(state), the effects a new owner replays
//	reset     forget the saga and the time: the next start begins a new one
//
// Every command takes t=DURATION, the time as an offset from a fixed base
// (default: the previous command's time). Digests written as labels (D1,
// D2) expand to "sha256:" + 64 hex digits derived from the label and are
// shortened back in the output; "" is no digest. Lines starting with # and
// blank lines are copied as they are. In state summaries a node reads
// id:state(code)@previous.

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/events"
)

var rewrite = flag.Bool("rewrite", false, "rewrite saga/testdata/*.golden from the machine's output")

var base = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// knownBugs maps a scenario to the machine bug it shows. Its golden file is
// what the design expects, written by hand; the scenario is skipped (and
// never rewritten) until the bug is fixed.
var knownBugs = map[string]string{}

func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".txt")
		t.Run(name, func(t *testing.T) {
			if bug, ok := knownBugs[name]; ok {
				t.Skip("known machine bug: " + bug)
			}
			script, err := os.ReadFile(file)
			require.NoError(t, err)
			got := runScript(t, string(script))
			golden := strings.TrimSuffix(file, ".txt") + ".golden"
			if *rewrite {
				require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "run go test ./saga -rewrite to create it")
			require.Equal(t, string(want), got)
		})
	}
}

// interp runs one script.
type interp struct {
	s      *State
	now    time.Time
	labels map[string]string // full digest -> label
}

func runScript(tb testing.TB, script string) string {
	tb.Helper()
	in := &interp{now: base, labels: map[string]string{}}
	var out strings.Builder
	for i, line := range strings.Split(strings.TrimRight(script, "\n"), "\n") {
		out.WriteString(line + "\n")
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		lines, err := in.exec(line)
		require.NoError(tb, err, "line %d: %s", i+1, line)
		for _, l := range lines {
			out.WriteString("  " + in.short(l) + "\n")
		}
	}
	return out.String()
}

// exec runs one command and returns its output lines.
func (in *interp) exec(line string) ([]string, error) {
	pos, kv, err := parseArgs(line)
	if err != nil {
		return nil, err
	}
	if len(pos) == 0 {
		return nil, fmt.Errorf("no command")
	}
	if t, ok := kv["t"]; ok {
		d, err := time.ParseDuration(t)
		if err != nil {
			return nil, err
		}
		in.now = base.Add(d)
	}
	var ev Event
	switch cmd := pos[0]; {
	case cmd == "reset" || cmd == "resume":
		if in.s == nil || cmd == "reset" {
			in.s, in.now = nil, base
			return nil, nil
		}
		return in.effects(Resume(in.s)), nil
	case cmd == "tick":
		ev = Tick{Now: in.now}
	case cmd == "conflict":
		ev = DesiredConflict{Now: in.now, Found: in.digest(kv["found"])}
	case cmd == "start":
		live := map[string]string{}
		for _, nd := range splitList(kv["live"]) {
			id, d, _ := strings.Cut(nd, ":")
			live[id] = in.digest(d)
		}
		timeout, err := time.ParseDuration(cmp.Or(kv["timeout"], "0s"))
		if err != nil {
			return nil, err
		}
		ev = Start{Now: in.now, ID: kv["id"], Live: live, Desired: in.digest(kv["desired"]), Request: events.ReloadRequest{
			Module: kv["module"], Digest: in.digest(kv["digest"]), Strategy: events.Strategy(kv["strategy"]),
			Timeout: events.Duration(timeout), Nodes: splitList(kv["nodes"]),
		}}
	case cmd == "ack" && len(pos) >= 4 && (pos[3] == "ok" || pos[3] == "fail") && in.s != nil:
		a := events.Ack{Saga: in.s.ID, Node: pos[1], Module: in.s.Module, Phase: pos[2], Digest: in.s.Digest,
			OK: pos[3] == "ok", Stale: len(pos) > 4 && pos[4] == "stale", Stage: kv["stage"], Code: kv["code"],
			Message: kv["msg"], PreviousDigest: in.digest(kv["prev"])}
		if n := in.s.Nodes[a.Node]; n != nil && a.Phase == events.PhaseRollback {
			a.Digest = n.Previous
		}
		if v, ok := kv["saga"]; ok {
			a.Saga = v
		}
		if v, ok := kv["digest"]; ok {
			a.Digest = in.digest(v)
		}
		ev = AckReceived{Now: in.now, Ack: a}
	default:
		return nil, fmt.Errorf("unknown command or missing arguments (before start?)")
	}
	next, fx := Step(in.s, ev)
	if len(fx) == 0 && reflect.DeepEqual(next, in.s) {
		return []string{"(no change)"}, nil
	}
	in.s = next
	return append(in.effects(fx), in.summary()), nil
}

func (in *interp) effects(fx []Effect) []string {
	var out []string
	for _, e := range fx {
		switch e := e.(type) {
		case Send:
			line := fmt.Sprintf("send %s %s -> %s deadline=%s", e.Phase, q(e.Digest), strings.Join(e.Targets, ","), in.at(e.Deadline))
			c := events.Command{Saga: in.s.ID, Module: in.s.Module, Digest: e.Digest, Targets: e.Targets, Deadline: e.Deadline}
			if c.Digest == "" && e.Phase == events.PhaseRollback {
				c.Digest = in.digest("unload") // Validate requires one; rollback allows ""
			}
			if err := c.Validate(); err != nil {
				line += " INVALID: " + err.Error()
			}
			out = append(out, line)
		case SetDesired:
			out = append(out, fmt.Sprintf("set-desired %s expect %s", q(e.Digest), q(e.Expect)))
		case SetPin:
			out = append(out, fmt.Sprintf("pin %s %s", e.Node, q(e.Digest)))
		case SetTimer:
			out = append(out, "timer "+in.at(e.At))
		case Progress:
			out = append(out, fmt.Sprintf("progress %s %q", e.Phase, in.short(e.Message)))
		case Finish:
			o := e.Outcome
			var nodes []string
			for _, n := range o.Nodes {
				nodes = append(nodes, n.Node+":"+n.State+paren(n.Code))
			}
			line := fmt.Sprintf("finish %s at=%s reason=%q nodes=[%s]", o.Result, in.at(o.FinishedAt), in.short(o.Reason), strings.Join(nodes, " "))
			if err := o.Validate(); err != nil {
				line += " INVALID: " + err.Error()
			}
			out = append(out, line)
		default:
			out = append(out, fmt.Sprintf("%T %+v", e, e))
		}
	}
	return out
}

// summary is the one-line state: phase, deadline or end, nodes.
func (in *interp) summary() string {
	s := in.s
	var nodes []string
	for _, id := range s.ids(nil) {
		n := s.Nodes[id]
		nodes = append(nodes, id+":"+string(n.State)+paren(n.Code)+"@"+q(n.Previous))
	}
	when := "deadline=" + in.at(s.Deadline)
	if s.Phase.Terminal() {
		when = "finished=" + in.at(s.FinishedAt)
	}
	return fmt.Sprintf("state %s %s nodes=[%s]", s.Phase, when, strings.Join(nodes, " "))
}

// digest expands a label such as D1 to a full digest and remembers it.
func (in *interp) digest(label string) string {
	if label == "" || strings.HasPrefix(label, "sha256:") {
		return label
	}
	sum := sha256.Sum256([]byte(label))
	d := "sha256:" + hex.EncodeToString(sum[:])
	in.labels[d] = label
	return d
}

// short replaces full digests by their labels.
func (in *interp) short(s string) string {
	for d, label := range in.labels {
		s = strings.ReplaceAll(s, d, label)
	}
	return s
}

func (in *interp) at(t time.Time) string { return "+" + t.Sub(base).String() }

func q(digest string) string {
	if digest == "" {
		return `""`
	}
	return digest
}

func paren(code string) string {
	if code == "" {
		return ""
	}
	return "(" + code + ")"
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// parseArgs splits a command line into positional words and key=value
// pairs; a value may be a Go quoted string (msg="a b").
func parseArgs(line string) (pos []string, kv map[string]string, err error) {
	kv = map[string]string{}
	for line = strings.TrimSpace(line); line != ""; line = strings.TrimSpace(line) {
		word, rest, _ := strings.Cut(line, " ")
		key, val, isKV := strings.Cut(word, "=")
		if isKV && strings.HasPrefix(val, `"`) {
			quoted, err := strconv.QuotedPrefix(line[len(key)+1:])
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", key, err)
			}
			val, _ = strconv.Unquote(quoted)
			rest = line[len(key)+1+len(quoted):]
		}
		if isKV && !strings.Contains(" t id module digest desired strategy timeout nodes live prev stage code msg saga found ", " "+key+" ") {
			return nil, nil, fmt.Errorf("unknown key %q", key)
		}
		if isKV {
			kv[key] = val
		} else {
			pos = append(pos, word)
		}
		line = rest
	}
	return pos, kv, nil
}
