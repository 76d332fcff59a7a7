package events

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/stretchr/testify/require"
)

// rawEvent is an event of type typ carrying data verbatim.
func rawEvent(tb testing.TB, typ, data string) *event.Event {
	tb.Helper()
	e := event.New()
	e.SetID(testID)
	e.SetSource("urn:mcpreload:test")
	e.SetType(typ)
	e.SetDataContentType(event.ApplicationJSON)
	e.DataEncoded = []byte(data)
	return &e
}

func TestDecodeReloadRequest(t *testing.T) {
	t.Run("defaults and unknown fields", func(t *testing.T) {
		r, err := DecodeReloadRequest(rawEvent(t, TypeReloadRequested,
			`{"module":"echo","digest":"`+digestA+`","strategy":"quorum","future_field":{"x":1}}`))
		require.NoError(t, err)
		require.Equal(t, &ReloadRequest{Module: "echo", Digest: digestA, Strategy: StrategyQuorum, Timeout: Duration(DefaultTimeout)}, r)
	})

	t.Run("local with nodes", func(t *testing.T) {
		r, err := DecodeReloadRequest(rawEvent(t, TypeReloadRequested,
			`{"module":"echo","digest":"`+digestA+`","strategy":"local","timeout":"1m30s","nodes":["node-1","n_2"]}`))
		require.NoError(t, err)
		require.Equal(t, 90*time.Second, time.Duration(r.Timeout))
		require.Equal(t, []string{"node-1", "n_2"}, r.Nodes)
	})

	t.Run("round trip through New", func(t *testing.T) {
		e := newEvent(t, TypeReloadRequested, testRequest())
		r, err := DecodeReloadRequest(&e)
		require.NoError(t, err)
		want := testRequest()
		require.Equal(t, &want, r)
	})
}

// TestDecodeRejects covers every rejection class of Decode with its message.
func TestDecodeRejects(t *testing.T) {
	req := func(fields string) string {
		return `{"module":"echo","digest":"` + digestA + `","strategy":"all"` + fields + `}`
	}
	idWithDot := rawEvent(t, TypeReloadRequested, req(""))
	idWithDot.SetID("a.b")
	textPlain := rawEvent(t, TypeReloadRequested, req(""))
	textPlain.SetDataContentType("text/plain")
	noSource := rawEvent(t, TypeReloadRequested, req(""))
	noSource.Context.(*event.EventContextV1).Source = types.URIRef{}

	for _, tc := range []struct {
		name    string
		event   *event.Event
		kind    error
		message string
	}{
		{"nil event", nil, ErrMalformed, "events: nil event"},
		{"unknown type", rawEvent(t, "com.example.other", `{}`), ErrUnknownType,
			`events: type "com.example.other": not an mcpreload event type`},
		{"invalid event", noSource, ErrMalformed, "events: source: missing required attribute"},
		{"bad JSON", rawEvent(t, TypeReloadRequested, `{"module":`), ErrMalformed,
			"events: data: bad JSON for ReloadRequest: unexpected end of JSON input"},
		{"wrong JSON type", rawEvent(t, TypeReloadRequested, `{"module":5}`), ErrMalformed,
			"events: data: bad JSON for ReloadRequest: json: cannot unmarshal number into Go struct field ReloadRequest.module of type string"},
		{"missing data", rawEvent(t, TypeReloadRequested, ``), ErrMalformed,
			"events: data: missing ReloadRequest payload"},
		{"wrong datacontenttype", textPlain, ErrMalformed,
			`events: datacontenttype "text/plain": want application/json`},
		{"id breaks the saga subject", idWithDot, ErrMalformed,
			`events: id "a.b": must not contain '.' (it would break the NATS subject)`},
		{"missing module", rawEvent(t, TypeReloadRequested, `{"digest":"`+digestA+`","strategy":"all"}`), ErrInvalidPayload,
			`events: reload request: module "": must not be empty`},
		{"bad module", rawEvent(t, TypeReloadRequested, `{"module":"a/b","digest":"`+digestA+`","strategy":"all"}`), ErrInvalidPayload,
			`events: reload request: module "a/b": byte '/' not allowed, want [A-Za-z0-9_-]`},
		{"bad digest", rawEvent(t, TypeReloadRequested, `{"module":"echo","digest":"sha256:ABC","strategy":"all"}`), ErrInvalidPayload,
			`events: reload request: digest "sha256:ABC": want sha256:<64 lowercase hex digits>`},
		{"missing digest", rawEvent(t, TypeReloadRequested, `{"module":"echo","strategy":"all"}`), ErrInvalidPayload,
			`events: reload request: digest: missing`},
		{"unknown strategy", rawEvent(t, TypeReloadRequested, `{"module":"echo","digest":"`+digestA+`","strategy":"most"}`), ErrInvalidPayload,
			`events: reload request: strategy "most": want all, quorum or local`},
		{"absurd timeout", rawEvent(t, TypeReloadRequested, req(`,"timeout":"9999h"`)), ErrInvalidPayload,
			"events: reload request: timeout 9999h0m0s: want more than 0 and at most 1h0m0s"},
		{"negative timeout", rawEvent(t, TypeReloadRequested, req(`,"timeout":"-1s"`)), ErrInvalidPayload,
			"events: reload request: timeout -1s: want more than 0 and at most 1h0m0s"},
		{"unparsable timeout", rawEvent(t, TypeReloadRequested, req(`,"timeout":"soon"`)), ErrInvalidPayload,
			`events: data: ReloadRequest: duration "soon": time: invalid duration "soon"`},
		{"numeric timeout", rawEvent(t, TypeReloadRequested, req(`,"timeout":30`)), ErrInvalidPayload,
			`events: data: ReloadRequest: duration 30: want a string such as "30s"`},
		{"local without nodes", rawEvent(t, TypeReloadRequested, `{"module":"echo","digest":"`+digestA+`","strategy":"local"}`), ErrInvalidPayload,
			"events: reload request: strategy local: nodes must list at least one node"},
		{"bad node id", rawEvent(t, TypeReloadRequested, req(`,"nodes":["a b"]`)), ErrInvalidPayload,
			`events: reload request: nodes: node "a b": byte ' ' not allowed, want [A-Za-z0-9_-]`},
		{"duplicate node", rawEvent(t, TypeReloadRequested, req(`,"nodes":["a","a"]`)), ErrInvalidPayload,
			`events: reload request: nodes: node "a" listed twice`},
		{"command without targets", rawEvent(t, TypePrepare, `{"saga":"s1","module":"echo","digest":"`+digestA+`","deadline":"2026-01-01T00:00:00Z"}`), ErrInvalidPayload,
			"events: command: targets: must list at least one node"},
		{"command with bad saga id", rawEvent(t, TypeCommit, `{"saga":"s.1","module":"echo","digest":"`+digestA+`","targets":["n"],"deadline":"2026-01-01T00:00:00Z"}`), ErrInvalidPayload,
			`events: command: saga "s.1": must not contain '.' (it would break the NATS subject)`},
		{"prepare without digest", rawEvent(t, TypePrepare, `{"saga":"s1","module":"echo","targets":["n"],"deadline":"2026-01-01T00:00:00Z"}`), ErrInvalidPayload,
			"events: command: digest: missing"},
		{"command without deadline", rawEvent(t, TypeAbort, `{"saga":"s1","module":"echo","digest":"`+digestA+`","targets":["n"]}`), ErrInvalidPayload,
			"events: command: deadline: missing"},
		{"ack with unknown phase", rawEvent(t, TypeAck, `{"saga":"s1","node":"n","module":"echo","phase":"ready","digest":"`+digestA+`"}`), ErrInvalidPayload,
			`events: ack: phase "ready": want prepare, commit, abort or rollback`},
		{"ack with bad previous digest", rawEvent(t, TypeAck, `{"saga":"s1","node":"n","module":"echo","phase":"commit","digest":"`+digestA+`","previous_digest":"md5:x"}`), ErrInvalidPayload,
			`events: ack: previous_digest "md5:x": want sha256:<64 lowercase hex digits>`},
		{"progress without phase", rawEvent(t, TypeSagaProgress, `{"saga":"s1","module":"echo"}`), ErrInvalidPayload,
			"events: progress: phase: missing"},
		{"completed saga that aborted", rawEvent(t, TypeSagaCompleted, outcomeJSON(t, ResultAborted)), ErrInvalidPayload,
			`events: outcome: result "aborted": a completed saga must be committed`},
		{"failed saga that committed", rawEvent(t, TypeSagaFailed, outcomeJSON(t, ResultCommitted)), ErrInvalidPayload,
			`events: outcome: result "committed": a failed saga must be aborted, rolled_back or failed`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Decode(tc.event)
			require.Nil(t, v)
			require.ErrorIs(t, err, tc.kind)
			require.Equal(t, tc.message, err.Error())
		})
	}
}

func outcomeJSON(tb testing.TB, result string) string {
	tb.Helper()
	o := testOutcome()
	o.Result = result
	b, err := json.Marshal(o)
	require.NoError(tb, err)
	return string(b)
}

func TestDecodeEveryType(t *testing.T) {
	rollback := testCommand()
	rollback.Digest = ""
	failed := testOutcome()
	failed.Result = ResultRolledBack
	failed.Reason = "node-2 failed to commit"
	rollbackAck := testAck()
	rollbackAck.Phase, rollbackAck.Digest, rollbackAck.OK = PhaseRollback, "", true

	for _, tc := range []struct {
		typ  string
		data any
	}{
		{TypeReloadRequested, testRequest()},
		{TypePrepare, testCommand()},
		{TypeCommit, testCommand()},
		{TypeAbort, testCommand()},
		{TypeRollback, rollback},
		{TypeAck, testAck()},
		{TypeAck, rollbackAck},
		{TypeSagaProgress, testProgress()},
		{TypeSagaCompleted, testOutcome()},
		{TypeSagaFailed, failed},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			e := newEvent(t, tc.typ, tc.data)
			v, err := Decode(&e)
			require.NoError(t, err)
			switch p := v.(type) {
			case *ReloadRequest:
				require.Equal(t, tc.data, *p)
			case *Command:
				require.True(t, p.Deadline.Equal(tc.data.(Command).Deadline))
				p.Deadline = tc.data.(Command).Deadline
				require.Equal(t, tc.data, *p)
				c, err := DecodeCommand(&e)
				require.NoError(t, err)
				require.Equal(t, p, c)
			case *Ack:
				require.Equal(t, tc.data, *p)
			case *Progress:
				require.Equal(t, tc.data, *p)
			case *Outcome:
				require.True(t, p.StartedAt.Equal(tc.data.(Outcome).StartedAt))
				p.StartedAt, p.FinishedAt = tc.data.(Outcome).StartedAt, tc.data.(Outcome).FinishedAt
				require.Equal(t, tc.data, *p)
			default:
				t.Fatalf("unexpected %T", v)
			}
		})
	}
}

func TestTypedDecodersRejectOtherTypes(t *testing.T) {
	e := newEvent(t, TypeAck, testAck())
	_, err := DecodeReloadRequest(&e)
	require.ErrorIs(t, err, ErrUnknownType)
	require.EqualError(t, err, `events: type "io.mcpreload.saga.ack.v1": not a reload request (want io.mcpreload.reload.requested.v1)`)
	_, err = DecodeCommand(&e)
	require.ErrorIs(t, err, ErrUnknownType)
	_, err = DecodeProgress(&e)
	require.ErrorIs(t, err, ErrUnknownType)
	_, err = DecodeOutcome(&e)
	require.ErrorIs(t, err, ErrUnknownType)
	p := newEvent(t, TypeSagaProgress, testProgress())
	_, err = DecodeAck(&p)
	require.ErrorIs(t, err, ErrUnknownType)
	_, err = DecodeAck(nil)
	require.ErrorIs(t, err, ErrMalformed)
}

func TestNew(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		before := time.Now()
		e, err := New(TypeAck, "urn:mcpreload:node/node-2", "", testAck())
		require.NoError(t, err)
		require.NoError(t, ValidateID(e.ID()))
		require.Len(t, e.ID(), 36)
		require.False(t, e.Time().Before(before))
		require.Empty(t, e.Subject())
		require.Equal(t, event.ApplicationJSON, e.DataContentType())
		other, err := New(TypeAck, "urn:mcpreload:node/node-2", "", testAck())
		require.NoError(t, err)
		require.NotEqual(t, e.ID(), other.ID())
	})

	t.Run("zero time omits it", func(t *testing.T) {
		e, err := New(TypeAck, "s", "", testAck(), WithTime(time.Time{}))
		require.NoError(t, err)
		require.True(t, e.Time().IsZero())
	})

	for _, tc := range []struct {
		name    string
		typ     string
		payload any
		opts    []Option
		kind    error
		message string
	}{
		{"unknown type", "com.example.x", testAck(), nil, ErrUnknownType, `events: type "com.example.x": not an mcpreload event type`},
		{"wrong payload", TypeAck, testCommand(), nil, ErrInvalidPayload,
			"events: type io.mcpreload.saga.ack.v1 wants events.Ack data, got events.Command"},
		{"nil payload", TypeAck, nil, nil, ErrInvalidPayload, "events: type io.mcpreload.saga.ack.v1 wants events.Ack data, got <nil>"},
		{"nil pointer payload", TypeAck, (*Ack)(nil), nil, ErrInvalidPayload, "events: type io.mcpreload.saga.ack.v1 wants events.Ack data, got *events.Ack"},
		{"invalid payload", TypeReloadRequested, ReloadRequest{Module: "echo", Digest: digestA, Strategy: "x"}, nil, ErrInvalidPayload,
			`events: reload request: strategy "x": want all, quorum or local`},
		{"bad id", TypeAck, testAck(), []Option{WithID("a b")}, ErrMalformed,
			`events: id "a b": must not contain whitespace or control character U+0020`},
		{"empty outcome", TypeSagaCompleted, Outcome{}, nil, ErrInvalidPayload, `events: outcome: saga "": must not be empty`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.typ, "urn:mcpreload:test", "", tc.payload, tc.opts...)
			require.ErrorIs(t, err, tc.kind)
			require.Equal(t, tc.message, err.Error())
		})
	}

	t.Run("bad source", func(t *testing.T) {
		_, err := New(TypeAck, "%zz", "", testAck())
		require.ErrorIs(t, err, ErrMalformed)
		require.EqualError(t, err, `events: source: parse "%zz": invalid URL escape "%zz"`)
	})

	t.Run("missing source", func(t *testing.T) {
		_, err := New(TypeAck, "", "", testAck())
		require.ErrorIs(t, err, ErrMalformed)
		require.EqualError(t, err, "events: source: missing required attribute")
	})
}

func TestValidate(t *testing.T) {
	require.NoError(t, testRequest().Validate())
	require.NoError(t, testCommand().Validate())
	require.NoError(t, testAck().Validate())
	require.NoError(t, testProgress().Validate())
	require.NoError(t, testOutcome().Validate())

	rollback := testCommand()
	rollback.Digest = ""
	require.ErrorIs(t, rollback.Validate(), ErrInvalidPayload, "Validate alone requires a digest")

	o := testOutcome()
	o.FinishedAt = o.StartedAt.Add(-time.Second)
	require.ErrorContains(t, o.Validate(), "is before started_at")
	o = testOutcome()
	o.Nodes = append(o.Nodes, NodeResult{Node: "node-1", State: NodeCommitted})
	require.EqualError(t, o.Validate(), `events: outcome: nodes: node "node-1" listed twice`)
	o = testOutcome()
	o.Nodes[0].State = ""
	require.EqualError(t, o.Validate(), `events: outcome: nodes: node "node-1": state missing`)

	p := testProgress()
	p.Nodes["bad node"] = NodeNoAck
	require.ErrorIs(t, p.Validate(), ErrInvalidPayload)

	r := testRequest()
	r.Module = strings.Repeat("m", MaxModuleNameLen+1)
	require.EqualError(t, r.Validate(), `events: reload request: module "`+r.Module+`": longer than 64 bytes`)
	r = testRequest()
	r.Timeout = Duration(MaxTimeout)
	require.NoError(t, r.Validate())
}

func TestDuration(t *testing.T) {
	b, err := json.Marshal(struct {
		D Duration `json:"d"`
	}{Duration(90 * time.Second)})
	require.NoError(t, err)
	require.JSONEq(t, `{"d":"1m30s"}`, string(b))

	var d Duration
	require.NoError(t, json.Unmarshal([]byte(`"250ms"`), &d))
	require.Equal(t, Duration(250*time.Millisecond), d)
	require.NoError(t, json.Unmarshal([]byte(`null`), &d))
	require.Equal(t, Duration(250*time.Millisecond), d, "null leaves it unchanged")
	require.Error(t, json.Unmarshal([]byte(`"9999999999999h"`), &d))
	require.Equal(t, "250ms", d.String())
}

func TestValidDigest(t *testing.T) {
	require.True(t, validDigest(digestA))
	require.True(t, validDigest(digestB))
	for _, bad := range []string{"", "sha256:", digestA[:len(digestA)-1], digestA + "a", strings.ToUpper(digestA),
		"sha512:" + digestA[7:], "sha256:" + strings.Repeat("g", 64), "SHA256:" + digestA[7:]} {
		require.False(t, validDigest(bad), bad)
	}
}

func TestValidateID(t *testing.T) {
	for _, ok := range []string{testID, "a", "saga_1-2", "ü", strings.Repeat("x", MaxIDLen)} {
		require.NoError(t, ValidateID(ok), ok)
	}
	for _, bad := range []string{"", "a.b", "a*", ">", "a b", "a\tb", "a\x00", "\xff", strings.Repeat("x", MaxIDLen+1), "a\u00a0b"} {
		err := ValidateID(bad)
		require.ErrorIs(t, err, ErrMalformed, "%q", bad)
	}
}

func TestPhaseOf(t *testing.T) {
	for typ, phase := range map[string]string{TypePrepare: PhasePrepare, TypeCommit: PhaseCommit, TypeAbort: PhaseAbort, TypeRollback: PhaseRollback} {
		got, ok := PhaseOf(typ)
		require.True(t, ok)
		require.Equal(t, phase, got)
	}
	_, ok := PhaseOf(TypeAck)
	require.False(t, ok)
}
