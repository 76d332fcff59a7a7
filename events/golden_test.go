package events

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current encoder")

// goldenCase is an event whose encodings are pinned in testdata.
type goldenCase struct {
	subject string
	event   event.Event
}

// goldenEvents are the events whose encodings are pinned in testdata.
func goldenEvents(tb testing.TB) map[string]goldenCase {
	tb.Helper()
	s := Subjects{}

	// Attribute values that exercise percent-encoding: UTF-8, space, '"',
	// '%', and typed extensions.
	enc := event.New()
	enc.SetID(testID)
	enc.SetSource("urn:mcpreload:node/ä b")
	enc.SetType(TypeSagaProgress)
	enc.SetSubject(`Euro € 😀 "q" 100%`)
	enc.SetTime(testTime)
	enc.SetExtension("attempt", 3)
	enc.SetExtension("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	require.NoError(tb, enc.SetData(event.ApplicationJSON, testProgress()))

	return map[string]goldenCase{
		"reload_requested": {s.ReloadRequest("echo"), newEvent(tb, TypeReloadRequested, testRequest())},
		"saga_prepare":     {s.Saga(testID, LeafPrepare), newEvent(tb, TypePrepare, testCommand())},
		"saga_ack":         {s.Saga(testID, AckLeaf("node-2")), newEvent(tb, TypeAck, testAck())},
		"saga_completed":   {s.Saga(testID, LeafOutcome), newEvent(tb, TypeSagaCompleted, testOutcome())},
		"percent_encoding": {s.Saga(testID, LeafProgress), enc},
	}
}

func TestGolden(t *testing.T) {
	ctx := context.Background()
	for name, gc := range goldenEvents(t) {
		e := gc.event
		for _, mode := range []struct {
			name   string
			encode func(context.Context, string, event.Event) (*nats.Msg, error)
		}{{"binary", ToNATS}, {"structured", ToNATSStructured}} {
			t.Run(name+"/"+mode.name, func(t *testing.T) {
				m, err := mode.encode(ctx, gc.subject, e)
				require.NoError(t, err)
				got := dumpMsg(m)
				path := filepath.Join("testdata", name+"."+mode.name+".golden")
				if *update {
					require.NoError(t, os.MkdirAll("testdata", 0o755))
					require.NoError(t, os.WriteFile(path, got, 0o644))
				}
				want, err := os.ReadFile(path)
				require.NoError(t, err, "run go test ./events/ -run TestGolden -update to create it")
				require.Equal(t, string(want), string(got))

				back, err := FromNATS(ctx, m)
				require.NoError(t, err)
				require.Equal(t, canon(t, &e), canon(t, back))
				if name != "percent_encoding" {
					p, err := Decode(back)
					require.NoError(t, err)
					require.NotNil(t, p)
				}
			})
		}
	}
}
