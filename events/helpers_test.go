package events

import (
	"bytes"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

const (
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	testID  = "6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"
)

var testTime = time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC)

// canonical is an event flattened to strings, so events from binary mode
// (string extensions) and structured mode (typed extensions) compare equal.
type canonical struct {
	Attrs map[string]string
	Exts  map[string]string
	Data  string
}

func canon(tb testing.TB, e *event.Event) canonical {
	tb.Helper()
	c := canonical{Attrs: map[string]string{
		"specversion":     e.SpecVersion(),
		"id":              e.ID(),
		"source":          e.Source(),
		"type":            e.Type(),
		"subject":         e.Subject(),
		"datacontenttype": e.DataContentType(),
		"dataschema":      e.DataSchema(),
	}, Exts: map[string]string{}, Data: string(e.Data())}
	if !e.Time().IsZero() {
		c.Attrs["time"] = types.FormatTime(e.Time())
	}
	for k, v := range e.Extensions() {
		s, err := types.Format(v)
		require.NoError(tb, err)
		c.Exts[k] = s
	}
	return c
}

// dumpMsg renders a message for golden files: subject, sorted headers,
// payload.
func dumpMsg(m *nats.Msg) []byte {
	var b bytes.Buffer
	b.WriteString("subject: " + m.Subject + "\n")
	keys := make([]string, 0, len(m.Header))
	for k := range m.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range m.Header[k] {
			b.WriteString("header " + k + ": " + v + "\n")
		}
	}
	b.WriteString("payload:\n")
	b.Write(m.Data)
	b.WriteString("\n")
	return b.Bytes()
}

// msg builds a NATS message from "Name: value" header lines.
func msg(tb testing.TB, data string, headers ...string) *nats.Msg {
	tb.Helper()
	m := nats.NewMsg("test")
	for _, h := range headers {
		k, v, ok := strings.Cut(h, ": ")
		require.True(tb, ok, "header %q", h)
		m.Header[k] = append(m.Header[k], v)
	}
	m.Data = []byte(data)
	return m
}

// binaryHeaders are the headers of a minimal valid binary event of type typ.
func binaryHeaders(typ string) []string {
	return []string{
		"ce-specversion: 1.0",
		"ce-id: " + testID,
		"ce-source: urn:mcpreload:test",
		"ce-type: " + typ,
		"ce-datacontenttype: application/json",
	}
}

// without returns headers minus those whose name is name.
func without(headers []string, name string) []string {
	var out []string
	for _, h := range headers {
		if !strings.HasPrefix(h, name+": ") {
			out = append(out, h)
		}
	}
	return out
}

func testRequest() ReloadRequest {
	return ReloadRequest{Module: "echo", Digest: digestA, Strategy: StrategyAll, Timeout: Duration(45 * time.Second)}
}

func testCommand() Command {
	return Command{Saga: testID, Module: "echo", Digest: digestA, Targets: []string{"node-1", "node-2"}, Deadline: testTime.Add(30 * time.Second)}
}

func testAck() Ack {
	return Ack{Saga: testID, Node: "node-2", Module: "echo", Phase: PhasePrepare, Digest: digestA,
		Stage: "abi", Code: "missing_export", Message: "module does not export mcp_tools", PreviousDigest: digestB}
}

func testProgress() Progress {
	return Progress{Saga: testID, Module: "echo", Phase: PhasePrepare, Message: "1/2 prepared",
		Nodes: map[string]string{"node-1": NodePrepared, "node-2": NodeNoAck}}
}

func testOutcome() Outcome {
	return Outcome{Saga: testID, Module: "echo", Digest: digestA, PreviousDigest: digestB, Strategy: StrategyAll,
		Result: ResultCommitted, Nodes: []NodeResult{{Node: "node-1", State: NodeCommitted}, {Node: "node-2", State: NodeCommitted}},
		StartedAt: testTime, FinishedAt: testTime.Add(1200 * time.Millisecond)}
}

// newEvent is New with the fixed test id and time.
func newEvent(tb testing.TB, typ string, p any) event.Event {
	tb.Helper()
	e, err := New(typ, "urn:mcpreload:test", "echo", p, WithID(testID), WithTime(testTime))
	require.NoError(tb, err)
	return e
}
