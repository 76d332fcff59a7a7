package events

import (
	"context"
	"errors"
	"sort"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

// headerLines renders headers as "name: value" lines, the fuzz input form.
func headerLines(h nats.Header) string {
	var lines []string
	for k, vs := range h {
		for _, v := range vs {
			lines = append(lines, k+": "+v)
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// parseHeaderLines is the inverse of headerLines; lines without ": " are
// headers with an empty value.
func parseHeaderLines(s string) nats.Header {
	h := nats.Header{}
	for _, line := range strings.Split(s, "\n") {
		if line == "" {
			continue
		}
		k, v, _ := strings.Cut(line, ": ")
		h[k] = append(h[k], v)
	}
	return h
}

// FuzzFromNATS checks that FromNATS never panics, that every error carries a
// package sentinel, and that whatever decodes re-encodes (binary and
// structured) and decodes to the same event.
func FuzzFromNATS(f *testing.F) {
	ctx := context.Background()
	for _, gc := range goldenEvents(f) {
		for _, encode := range []func(context.Context, string, event.Event) (*nats.Msg, error){ToNATS, ToNATSStructured} {
			m, err := encode(ctx, gc.subject, gc.event)
			require.NoError(f, err)
			f.Add(headerLines(m.Header), m.Data)
		}
	}
	f.Add(strings.Join(binaryHeaders(TypeSagaProgress), "\n")+"\nce-subject: Euro%20%e2%82%ac\nCE-X: \"q%20\\\"\"", []byte(progressJSON))
	f.Add("ce-specversion: 1.0\nce-id: a\nce-source: https://x/y?z#w\nce-type: t\nce-time: 2026-03-14T16:09:26+01:00\ncontent-type: text/plain", []byte("hi"))
	f.Add("Content-Type: application/cloudevents+json", []byte(`{"specversion":"1.0","id":"x","source":"s","type":"t","datacontenttype":"text/plain","data":"a\u0000b","n":1.5,"b":true}`))
	f.Add("content-type: APPLICATION/CLOUDEVENTS+JSON", []byte(`{"specversion":"1.0","id":"x","source":"s","type":"t","data_base64":"AAEC"}`))

	f.Fuzz(func(t *testing.T, headers string, payload []byte) {
		m := nats.NewMsg("fuzz")
		m.Header = parseHeaderLines(headers)
		m.Data = payload
		e, err := FromNATS(ctx, m)
		if err != nil {
			require.True(t, isKind(err), "error without sentinel: %v", err)
			return
		}
		_, _ = Decode(e) // must not panic
		want := canon(t, e)

		for name, encode := range map[string]func(context.Context, string, event.Event) (*nats.Msg, error){
			"binary": ToNATS, "structured": ToNATSStructured,
		} {
			m2, err := encode(ctx, "fuzz", *e)
			if errors.Is(err, ErrTooLarge) {
				continue
			}
			if name == "structured" && err != nil {
				// Data typed as JSON that is not JSON has no structured form.
				require.ErrorIs(t, err, ErrMalformed)
				continue
			}
			require.NoError(t, err, name)
			e2, err := FromNATS(ctx, m2)
			require.NoError(t, err, "%s re-encoding does not decode:\n%s", name, dumpMsg(m2))
			got := canon(t, e2)
			if name == "structured" && jsonMediaType(e.DataMediaType()) {
				// The JSON event format keeps JSON data byte for byte except
				// for whitespace around the value.
				w := want
				w.Data = strings.Trim(w.Data, " \t\r\n")
				require.Equal(t, w, got, name)
				continue
			}
			require.Equal(t, want, got, name)
		}
	})
}

// FuzzDecodeReloadRequest checks that decoding reload request data never
// panics, reports sentinel errors, and that an accepted request is valid and
// survives New and decoding again unchanged.
func FuzzDecodeReloadRequest(f *testing.F) {
	for _, seed := range []string{
		`{"module":"echo","digest":"` + digestA + `","strategy":"all"}`,
		`{"module":"echo","digest":"` + digestA + `","strategy":"local","timeout":"1m","nodes":["a","b"]}`,
		`{"module":"echo","digest":"` + digestA + `","strategy":"quorum","timeout":"9999h"}`,
		`{"module":"e","digest":"` + digestB + `","strategy":"all","timeout":null,"nodes":null,"extra":[1,2]}`,
		`{"module":"echo","digest":"` + digestA + `","strategy":"all","signature":"c2ln","key":"k1"}`,
		`{"module":"echo","digest":"` + digestA + `","strategy":"all","nodes":[],"timeout":"0s"}`,
		`null`, `{}`, `[]`, `{"timeout":1}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeReloadRequest(rawEvent(t, TypeReloadRequested, string(data)))
		if err != nil {
			require.True(t, isKind(err), "error without sentinel: %v", err)
			return
		}
		require.NoError(t, r.Validate())
		require.NotZero(t, r.Timeout)
		e, err := New(TypeReloadRequested, "urn:mcpreload:test", "", r, WithID(testID))
		require.NoError(t, err)
		r2, err := DecodeReloadRequest(&e)
		require.NoError(t, err)
		require.Equal(t, r, r2)
	})
}
