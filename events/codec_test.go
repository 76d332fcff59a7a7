package events

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

const progressJSON = `{"saga":"` + testID + `","module":"echo","phase":"prepare"}`

func TestFromNATSBinary(t *testing.T) {
	ctx := context.Background()
	base := without(binaryHeaders(TypeSagaProgress), "ce-datacontenttype")

	t.Run("mixed-case header names", func(t *testing.T) {
		m := msg(t, progressJSON,
			"CE-SPECVERSION: 1.0", "Ce-Id: "+testID, "ce-Source: urn:mcpreload:test",
			"CE-Type: "+TypeSagaProgress, "Ce-DataContentType: application/json", "CE-TraceParent: 00-abc-01")
		e, err := FromNATS(ctx, m)
		require.NoError(t, err)
		require.Equal(t, testID, e.ID())
		require.Equal(t, TypeSagaProgress, e.Type())
		require.Equal(t, "urn:mcpreload:test", e.Source())
		require.Equal(t, event.ApplicationJSON, e.DataContentType())
		require.Equal(t, map[string]any{"traceparent": "00-abc-01"}, e.Extensions())
		require.JSONEq(t, progressJSON, string(e.Data()))
	})

	for _, tc := range []struct {
		name, header, want string
	}{
		{"percent-encoded UTF-8", "Euro%20%E2%82%AC%20%F0%9F%98%80", "Euro € 😀"},
		{"lower-case hex", "Euro%20%e2%82%ac%20%f0%9f%98%80", "Euro € 😀"},
		{"quoted string", `"hello world"`, "hello world"},
		{"quoted string with escapes", `"say \"hi\" \\o/"`, `say "hi" \o/`},
		{"quoted then percent-decoded", `"Euro%20%E2%82%AC"`, "Euro €"},
		{"raw UTF-8 and spaces", "Euro € 😀", "Euro € 😀"},
		{"percent and quote encoded", "%22q%22%20100%25", `"q" 100%`},
	} {
		t.Run("value/"+tc.name, func(t *testing.T) {
			e, err := FromNATS(ctx, msg(t, progressJSON, append(base, "ce-subject: "+tc.header)...))
			require.NoError(t, err)
			require.Equal(t, tc.want, e.Subject())
		})
	}

	t.Run("Nats headers and unrelated headers are ignored", func(t *testing.T) {
		e, err := FromNATS(ctx, msg(t, progressJSON, append(base,
			"Nats-Msg-Id: x", "Nats-Expected-Last-Subject-Sequence: 4", "NATS-Marker-Reason: MaxAge",
			"X-Other: %zz")...))
		require.NoError(t, err)
		require.Empty(t, e.Extensions())
	})

	t.Run("empty payload has no data", func(t *testing.T) {
		e, err := FromNATS(ctx, msg(t, "", base...))
		require.NoError(t, err)
		require.Empty(t, e.Data())
	})

	t.Run("data is not shared with the message", func(t *testing.T) {
		m := msg(t, progressJSON, base...)
		e, err := FromNATS(ctx, m)
		require.NoError(t, err)
		m.Data[0] = 'X'
		require.JSONEq(t, progressJSON, string(e.Data()))
	})
}

// TestFromNATSSDKv3 decodes what sdk-go's protocol/nats_jetstream/v3 writes:
// ce-* headers without percent-encoding, datacontenttype possibly as
// content-type, time with a zone offset.
func TestFromNATSSDKv3(t *testing.T) {
	m := msg(t, progressJSON,
		"ce-specversion: 1.0",
		"ce-id: "+testID,
		"ce-source: https://example.com/publisher",
		"ce-type: "+TypeSagaProgress,
		"ce-subject: hello world ü",
		"ce-time: 2026-03-14T16:09:26.535897+01:00",
		"ce-traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"content-type: application/json",
	)
	e, err := FromNATS(context.Background(), m)
	require.NoError(t, err)
	require.Equal(t, "hello world ü", e.Subject())
	require.Equal(t, "https://example.com/publisher", e.Source())
	require.True(t, e.Time().Equal(testTime), "time %s", e.Time())
	require.Equal(t, event.ApplicationJSON, e.DataContentType())
	require.Equal(t, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", e.Extensions()["traceparent"])
	p, err := DecodeProgress(e)
	require.NoError(t, err)
	require.Equal(t, "echo", p.Module)

	t.Run("ce-datacontenttype wins over content-type", func(t *testing.T) {
		m := msg(t, progressJSON, append(binaryHeaders(TypeSagaProgress), "content-type: text/plain")...)
		e, err := FromNATS(context.Background(), m)
		require.NoError(t, err)
		require.Equal(t, event.ApplicationJSON, e.DataContentType())
	})
}

func TestFromNATSStructured(t *testing.T) {
	ctx := context.Background()
	body := `{"specversion":"1.0","id":"` + testID + `","source":"urn:mcpreload:test","type":"` + TypeSagaProgress +
		`","subject":"Euro € 😀","datacontenttype":"application/json","attempt":3,"data":` + progressJSON + `}`

	for _, ct := range []string{"application/cloudevents+json", "Application/CloudEvents+JSON", "application/cloudevents+json; charset=utf-8"} {
		for _, name := range []string{"Content-Type", "content-type", "CONTENT-TYPE"} {
			t.Run(name+": "+ct, func(t *testing.T) {
				e, err := FromNATS(ctx, msg(t, body, name+": "+ct, "Nats-Msg-Id: "+testID))
				require.NoError(t, err)
				require.Equal(t, "Euro € 😀", e.Subject())
				require.Equal(t, int32(3), e.Extensions()["attempt"])
				require.JSONEq(t, progressJSON, string(e.Data()))
			})
		}
	}

	t.Run("structured wins over ce headers", func(t *testing.T) {
		m := msg(t, body, append(binaryHeaders(TypeAck), "content-type: application/cloudevents+json")...)
		e, err := FromNATS(ctx, m)
		require.NoError(t, err)
		require.Equal(t, TypeSagaProgress, e.Type())
	})

	t.Run("data_base64", func(t *testing.T) {
		b := `{"specversion":"1.0","id":"x","source":"s","type":"t","datacontenttype":"application/octet-stream","data_base64":"AAEC"}`
		e, err := FromNATS(ctx, msg(t, b, "Content-Type: application/cloudevents+json"))
		require.NoError(t, err)
		require.Equal(t, []byte{0, 1, 2}, e.Data())
	})
}

// TestFromNATSRejects covers every rejection class of the codec with the
// message a user sees.
func TestFromNATSRejects(t *testing.T) {
	valid := binaryHeaders(TypeSagaProgress)
	structured := "Content-Type: application/cloudevents+json"
	for _, tc := range []struct {
		name    string
		msg     *nats.Msg
		kind    error
		message string
	}{
		{"nil message", nil, ErrNotCloudEvent, "events: nil message"},
		{"no headers", msg(t, progressJSON), ErrNotCloudEvent,
			"events: no Content-Type application/cloudevents* and no ce-specversion header"},
		{"plain JSON content type", msg(t, progressJSON, "Content-Type: application/json", "ce-id: x"), ErrNotCloudEvent,
			"events: no Content-Type application/cloudevents* and no ce-specversion header"},
		{"missing ce-id", msg(t, progressJSON, without(valid, "ce-id")...), ErrMalformed,
			"events: ce-id: missing required attribute"},
		{"empty ce-id", msg(t, progressJSON, append(without(valid, "ce-id"), "ce-id: ")...), ErrMalformed,
			"events: ce-id: missing required attribute"},
		{"missing ce-source and ce-type", msg(t, progressJSON, without(without(valid, "ce-source"), "ce-type")...), ErrMalformed,
			"events: ce-source: missing required attribute; ce-type: missing required attribute"},
		{"unsupported spec version", msg(t, progressJSON, append(without(valid, "ce-specversion"), "ce-specversion: 0.3")...), ErrMalformed,
			`events: ce-specversion "0.3": unsupported, want 1.0`},
		{"invalid UTF-8 (overlong)", msg(t, progressJSON, append(valid, "ce-subject: %C0%A0")...), ErrMalformed,
			"events: ce-subject: not valid UTF-8 after percent-decoding"},
		{"malformed escape", msg(t, progressJSON, append(valid, "ce-subject: 100%G1")...), ErrMalformed,
			`events: ce-subject: malformed percent-escape "%G1" at offset 3`},
		{"truncated escape", msg(t, progressJSON, append(valid, "ce-subject: 100%2")...), ErrMalformed,
			`events: ce-subject: malformed percent-escape "%2" at offset 3`},
		{"unterminated quoted string", msg(t, progressJSON, append(valid, `ce-subject: "abc`)...), ErrMalformed,
			"events: ce-subject: unterminated quoted string"},
		{"quote inside quoted string", msg(t, progressJSON, append(valid, `ce-subject: "a"b"`)...), ErrMalformed,
			`events: ce-subject: quoted string: unescaped '"' inside`},
		{"duplicate header in two spellings", msg(t, progressJSON, append(valid, "CE-ID: other")...), ErrMalformed,
			"events: header ce-id: appears more than once"},
		{"header with two values", msg(t, progressJSON, append(valid, "ce-id: other")...), ErrMalformed,
			"events: header ce-id: appears more than once"},
		{"bad extension name", msg(t, progressJSON, append(valid, "ce-my_ext: 1")...), ErrMalformed,
			`events: header ce-my_ext: extension name must be [a-z0-9]+ and not "data"`},
		{"extension named data", msg(t, progressJSON, append(valid, "ce-data: 1")...), ErrMalformed,
			`events: header ce-data: extension name must be [a-z0-9]+ and not "data"`},
		{"bad time", msg(t, progressJSON, append(valid, "ce-time: yesterday")...), ErrMalformed,
			`events: ce-time "yesterday": invalid value for time: "yesterday"`},
		{"whitespace around type", msg(t, progressJSON, append(without(valid, "ce-type"), "ce-type: %20x")...), ErrMalformed,
			`events: ce-type " x": leading or trailing whitespace`},
		{"bad datacontenttype", msg(t, progressJSON, append(without(valid, "ce-datacontenttype"), "ce-datacontenttype: not a type")...), ErrMalformed,
			"events: ce-datacontenttype: failed to parse RFC 2046 media type mime: expected slash after first token"},
		{"structured bad JSON", msg(t, `{"specversion":"1.0",`, structured), ErrMalformed,
			"events: bad JSON event: payload is not valid JSON"},
		{"structured trailing garbage", msg(t, `{"specversion":"1.0"} {}`, structured), ErrMalformed,
			"events: bad JSON event: payload is not valid JSON"},
		{"structured missing id", msg(t, `{"specversion":"1.0","source":"s","type":"t"}`, structured), ErrMalformed,
			"events: id: missing required attribute"},
		{"structured without specversion", msg(t, `{"id":"x","source":"s","type":"t"}`, structured), ErrMalformed,
			"events: bad JSON event: specversion: no specversion\n"},
		{"structured spec version 0.3", msg(t, `{"specversion":"0.3","id":"x","source":"s","type":"t"}`, structured), ErrMalformed,
			`events: specversion "0.3": unsupported, want 1.0`},
		{"structured whitespace in id", msg(t, `{"specversion":"1.0","id":" x","source":"s","type":"t"}`, structured), ErrMalformed,
			`events: id " x": leading or trailing whitespace`},
		{"structured batch", msg(t, `[]`, "Content-Type: application/cloudevents-batch+json"), ErrMalformed,
			`events: content-type "application/cloudevents-batch+json": unsupported event format, want application/cloudevents+json`},
		{"structured avro", msg(t, `x`, "Content-Type: application/cloudevents+avro"), ErrMalformed,
			`events: content-type "application/cloudevents+avro": unsupported event format, want application/cloudevents+json`},
		{"oversize payload", msg(t, strings.Repeat("x", MaxEventBytes), valid...), ErrTooLarge,
			"events: message is 65723 bytes, limit is 65536"},
		{"oversize headers", msg(t, "", append(valid, "ce-big: "+strings.Repeat("x", MaxEventBytes))...), ErrTooLarge,
			"events: message is 65733 bytes, limit is 65536"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := FromNATS(context.Background(), tc.msg)
			require.Nil(t, e)
			require.ErrorIs(t, err, tc.kind)
			require.Equal(t, tc.message, err.Error())
		})
	}
}

func TestToNATS(t *testing.T) {
	ctx := context.Background()

	t.Run("header names are lower-case and values percent-encoded", func(t *testing.T) {
		e := newEvent(t, TypeSagaProgress, testProgress())
		e.SetSubject("a b\r\nInjected: yes")
		m, err := ToNATS(ctx, "s", e)
		require.NoError(t, err)
		require.Equal(t, []string{"a%20b%0D%0AInjected:%20yes"}, m.Header["ce-subject"])
		require.Equal(t, []string{testID}, m.Header[nats.MsgIdHdr])
		_, hasContentType := m.Header["Content-Type"]
		require.False(t, hasContentType, "binary mode carries datacontenttype as ce-datacontenttype")
	})

	t.Run("invalid event", func(t *testing.T) {
		e := event.New()
		e.SetType(TypeAck)
		for _, encode := range []func(context.Context, string, event.Event) (*nats.Msg, error){ToNATS, ToNATSStructured} {
			_, err := encode(ctx, "s", e)
			require.ErrorIs(t, err, ErrMalformed)
			require.EqualError(t, err, "events: id: missing required attribute; source: missing required attribute")
		}
	})

	t.Run("too large", func(t *testing.T) {
		e := newEvent(t, TypeSagaProgress, testProgress())
		require.NoError(t, e.SetData(event.TextPlain, strings.Repeat("€", MaxEventBytes/3)))
		_, err := ToNATS(ctx, "s", e)
		require.ErrorIs(t, err, ErrTooLarge)
		require.ErrorContains(t, err, "limit is 65536")
	})

	t.Run("structured refuses non-JSON data typed as JSON", func(t *testing.T) {
		e := newEvent(t, TypeSagaProgress, testProgress())
		e.DataEncoded = []byte("not json")
		_, err := ToNATSStructured(ctx, "s", e)
		require.ErrorIs(t, err, ErrMalformed)
		require.EqualError(t, err, `events: data: not valid UTF-8 JSON although datacontenttype is "application/json"`)
		_, err = ToNATS(ctx, "s", e)
		require.NoError(t, err, "binary mode carries any bytes")
	})

	t.Run("bad extension value type", func(t *testing.T) {
		e := newEvent(t, TypeSagaProgress, testProgress())
		e.Context.(*event.EventContextV1).Extensions = map[string]any{"x": struct{}{}}
		_, err := ToNATS(ctx, "s", e)
		require.ErrorIs(t, err, ErrMalformed)
	})

	t.Run("round trip keeps every attribute", func(t *testing.T) {
		e := event.New()
		e.SetID("id-1")
		e.SetSource("https://example.com/a?b=c#d")
		e.SetType("com.example.other")
		e.SetSubject("tab\there & ümlaut")
		e.SetTime(time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600)))
		e.SetDataSchema("https://example.com/schema.json")
		e.SetExtension("flag", true)
		e.SetExtension("n", 42)
		require.NoError(t, e.SetData("text/plain; charset=utf-8", "hello\x00world"))
		for _, encode := range []func(context.Context, string, event.Event) (*nats.Msg, error){ToNATS, ToNATSStructured} {
			m, err := encode(ctx, "s", e)
			require.NoError(t, err)
			back, err := FromNATS(ctx, m)
			require.NoError(t, err)
			require.Equal(t, canon(t, &e), canon(t, back))
		}
	})
}

// TestMsgSize pins MaxEventBytes to the size nats.go puts on the wire.
func TestMsgSize(t *testing.T) {
	e := newEvent(t, TypeAck, testAck())
	m, err := ToNATS(context.Background(), "mcpreload.saga.x.ack.n", e)
	require.NoError(t, err)
	require.Equal(t, m.Size()-len(m.Subject), msgSize(m))
	require.Equal(t, 3, msgSize(&nats.Msg{Data: []byte("abc")}))
}

func TestHeaderValueEncoding(t *testing.T) {
	for in, want := range map[string]string{
		"":                 "",
		"plain-ASCII_1.0~": "plain-ASCII_1.0~",
		"Euro € 😀":         "Euro%20%E2%82%AC%20%F0%9F%98%80",
		`"%`:               "%22%25",
		"\x00\x1f\x7f\xff": "%00%1F%7F%FF",
		"a:b/c?d=e&f":      "a:b/c?d=e&f",
	} {
		require.Equal(t, want, encodeHeaderValue(in), "encode %q", in)
		got, err := decodeHeaderValue(want)
		if in == "\x00\x1f\x7f\xff" {
			require.Error(t, err, "0xFF is not UTF-8")
			continue
		}
		require.NoError(t, err)
		require.Equal(t, in, got)
	}
}
