package test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/internal/testutil"
)

// TestProtocolRaw is the acceptance test of docs/PROTOCOL.md: a client that
// knows only that page (no mcpreload package: plain nats.go and jetstream,
// crypto/sha256, encoding/json) uploads a module, publishes a reload request
// with hand-written CloudEvents headers or a hand-written structured event,
// waits for the outcome the way the page says, and the fleet reloads.
//
// The fleet helpers (an embedded nats-server, two nodes, one of them an
// orchestrator) and the MCP client are setup and verification only.
func TestProtocolRaw(t *testing.T) {
	t.Run("binary mode, strategy all, outcome awaited by a subscription made before publishing", func(t *testing.T) {
		f := newFleet(t)
		nodes := []*runningNode{f.node(t, "n1", "--orchestrator"), f.node(t, "n2")}
		f.waitLive(t, "n1", "n2")
		ctx := t.Context()
		nc, js := rawConnect(t, f.srv.ClientURL())

		// 1. Upload the module bytes under their digest.
		wasm := testutil.Wasm(t, "counter-v1")
		digest := rawUpload(t, js, wasm)

		// 2. Subscribe to the outcome subject before publishing.
		id := rawEventID(t)
		outcomeSubject := "mcpreload.saga." + id + ".outcome"
		sub, err := nc.SubscribeSync(outcomeSubject)
		require.NoError(t, err)
		defer func() { _ = sub.Unsubscribe() }()
		require.NoError(t, nc.Flush())

		// 3. A binary-mode request: ce-* headers (percent-encoded values),
		// the JSON request as the payload, Nats-Msg-Id = the event id.
		data, err := json.Marshal(map[string]any{"module": "counter", "digest": digest, "strategy": "all"})
		require.NoError(t, err)
		m := nats.NewMsg("mcpreload.reload.request.counter")
		m.Header.Set("ce-specversion", "1.0")
		m.Header.Set("ce-id", id)
		m.Header.Set("ce-source", "urn:example:ci:my%20pipeline:42") // "urn:example:ci:my pipeline:42"
		m.Header.Set("ce-type", "io.mcpreload.reload.requested.v1")
		m.Header.Set("ce-datacontenttype", "application/json")
		m.Header.Set("ce-subject", "counter")
		m.Header.Set("ce-time", time.Now().UTC().Format(time.RFC3339Nano))
		m.Header.Set("Nats-Msg-Id", id)
		m.Data = data
		ack, err := js.PublishMsg(ctx, m)
		require.NoError(t, err)
		require.Equal(t, "MCPRELOAD_REQUESTS", ack.Stream)
		require.False(t, ack.Duplicate)

		// Publishing the same event id again is deduplicated: same saga.
		ack, err = js.PublishMsg(ctx, m)
		require.NoError(t, err)
		require.True(t, ack.Duplicate, "a resent event id must be dropped by JetStream")

		// 4. The outcome arrives on the subscription.
		live, err := sub.NextMsg(60 * time.Second)
		require.NoError(t, err, "no outcome for saga %s", id)
		typ, out := rawOutcomeOf(t, live.Header, live.Data)
		require.Equal(t, "io.mcpreload.saga.completed.v1", typ)
		require.Equal(t, "committed", out.Result, out.Reason)
		require.Equal(t, id, out.Saga)
		require.Equal(t, "counter", out.Module)
		require.Equal(t, digest, out.Digest)
		require.Equal(t, "all", out.Strategy)
		require.Empty(t, out.PreviousDigest, "first load: no previous version")
		require.Equal(t, map[string]string{"n1": "committed", "n2": "committed"}, out.states())
		require.False(t, out.FinishedAt.Before(out.StartedAt))
		require.Equal(t, outcomeID(id), rawHeader(t, live.Header, "ce-id"))
		require.Equal(t, outcomeID(id), live.Header.Get("Nats-Msg-Id"))

		// The same outcome is in the saga stream after the fact: an ordered
		// consumer with DeliverAll, made now, finds it.
		kept := rawNextOutcome(t, js, id)
		require.JSONEq(t, string(live.Data), string(kept.Data()))

		// The desired state names the new digest; each node's presence says
		// it serves it.
		desired, err := js.KeyValue(ctx, "mcpreload-desired")
		require.NoError(t, err)
		e, err := desired.Get(ctx, "counter")
		require.NoError(t, err)
		var d struct {
			Digest string `json:"digest"`
			Saga   string `json:"saga"`
		}
		require.NoError(t, json.Unmarshal(e.Value(), &d))
		require.Equal(t, digest, d.Digest)
		require.Equal(t, id, d.Saga)
		presence, err := js.KeyValue(ctx, "mcpreload-nodes")
		require.NoError(t, err)
		for _, node := range []string{"n1", "n2"} {
			require.Eventually(t, func() bool {
				e, err := presence.Get(ctx, node)
				if err != nil {
					return false
				}
				var p struct {
					Node    string            `json:"node"`
					Modules map[string]string `json:"modules"`
				}
				return json.Unmarshal(e.Value(), &p) == nil && p.Node == node && p.Modules["counter"] == digest
			}, 10*time.Second, 20*time.Millisecond, "presence of %s", node)
		}

		// The saga's history: prepare and commit commands, one ack per node
		// and phase, progress, then the outcome.
		history := rawHistory(t, js, id)
		for _, leaf := range []string{"prepare", "commit", "ack.n1", "ack.n2", "progress", "outcome"} {
			require.Contains(t, history, leaf)
		}
		for _, a := range history["ack.n1"] {
			var ack struct {
				Saga  string `json:"saga"`
				Node  string `json:"node"`
				Phase string `json:"phase"`
				OK    bool   `json:"ok"`
			}
			require.NoError(t, json.Unmarshal(a, &ack))
			require.Equal(t, id, ack.Saga)
			require.Equal(t, "n1", ack.Node)
			require.True(t, ack.OK, "%s ack: %s", ack.Phase, a)
		}

		// The fleet serves the tool.
		for _, n := range nodes {
			c := connect(t, n.url)
			rawWaitTool(t, c, "counter_increment")
			require.Equal(t, "5", c.callText(t, "counter_increment", map[string]any{"by": 5}))
		}
	})

	t.Run("structured mode, strategy quorum with timeout and nodes, outcome read after the fact", func(t *testing.T) {
		f := newFleet(t)
		nodes := []*runningNode{f.node(t, "n1", "--orchestrator"), f.node(t, "n2")}
		f.waitLive(t, "n1", "n2")
		nc, js := rawConnect(t, f.srv.ClientURL())

		digest := rawUpload(t, js, testutil.Wasm(t, "calc"))
		id := rawEventID(t)
		event := map[string]any{
			"specversion":     "1.0",
			"id":              id,
			"source":          "urn:example:ci:raw test",
			"type":            "io.mcpreload.reload.requested.v1",
			"subject":         "calc",
			"time":            time.Now().UTC().Format(time.RFC3339Nano),
			"datacontenttype": "application/json",
			"data": map[string]any{
				"module": "calc", "digest": digest, "strategy": "quorum",
				"timeout": "20s", "nodes": []string{"n1", "n2"},
			},
		}
		body, err := json.Marshal(event)
		require.NoError(t, err)
		m := nats.NewMsg("mcpreload.reload.request.calc")
		m.Header.Set("Content-Type", "application/cloudevents+json")
		m.Header.Set("Nats-Msg-Id", id)
		m.Data = body
		// A JetStream publish is a request on the stream's subject; the
		// reply is the PubAck (or a JetStream API error).
		reply, err := nc.RequestMsg(m, 10*time.Second)
		require.NoError(t, err)
		var ack struct {
			Stream    string `json:"stream"`
			Seq       uint64 `json:"seq"`
			Duplicate bool   `json:"duplicate"`
			Error     *struct {
				Code        int    `json:"code"`
				ErrCode     int    `json:"err_code"`
				Description string `json:"description"`
			} `json:"error"`
		}
		require.NoError(t, json.Unmarshal(reply.Data, &ack), "%s", reply.Data)
		require.Nil(t, ack.Error, "%s", reply.Data)
		require.Equal(t, "MCPRELOAD_REQUESTS", ack.Stream)
		require.False(t, ack.Duplicate)

		// Wait with an ordered consumer on the saga stream (DeliverAll):
		// it works whether the outcome is already there or not.
		msg := rawNextOutcome(t, js, id)
		typ, out := rawOutcomeOf(t, msg.Headers(), msg.Data())
		require.Equal(t, "io.mcpreload.saga.completed.v1", typ)
		require.Equal(t, "committed", out.Result, out.Reason)
		require.Equal(t, "quorum", out.Strategy)
		require.Equal(t, digest, out.Digest)
		require.Contains(t, []string{"committed", "committing"}, out.states()["n1"])
		require.Contains(t, []string{"committed", "committing"}, out.states()["n2"])

		// A client without a JetStream API can read the same outcome with
		// one request: STREAM.MSG.GET, last message on the outcome subject.
		hdrs, data := rawLastMsg(t, nc, "MCPRELOAD_SAGAS", "mcpreload.saga."+id+".outcome")
		require.JSONEq(t, string(msg.Data()), string(data))
		require.Equal(t, "io.mcpreload.saga.completed.v1", rawHeader(t, hdrs, "ce-type"))
		require.Equal(t, outcomeID(id), rawHeader(t, hdrs, "ce-id"))
		// Before any outcome the same request answers 404 / 10037.
		_, missing := rawLastMsgErr(t, nc, "MCPRELOAD_SAGAS", "mcpreload.saga."+rawEventID(t)+".outcome")
		require.Equal(t, 10037, missing)

		for _, n := range nodes {
			c := connect(t, n.url)
			rawWaitTool(t, c, "calc_add")
			require.Equal(t, "5", c.callText(t, "calc_add", map[string]any{"a": 2, "b": 3}))
		}
	})
}

// rawConnect opens a plain client connection and its JetStream context.
func rawConnect(tb testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	nc, err := nats.Connect(url, nats.Name("raw protocol client"))
	require.NoError(tb, err)
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(tb, err)
	return nc, js
}

// rawUpload stores wasm in the modules object store under its digest and
// returns the digest.
func rawUpload(tb testing.TB, js jetstream.JetStream, wasm []byte) string {
	tb.Helper()
	sum := sha256.Sum256(wasm)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	obs, err := js.ObjectStore(tb.Context(), "mcpreload-modules")
	require.NoError(tb, err)
	_, err = obs.PutBytes(tb.Context(), digest, wasm)
	require.NoError(tb, err)
	return digest
}

// rawEventID returns a random UUIDv4 string.
func rawEventID(tb testing.TB) string {
	tb.Helper()
	var b [16]byte
	_, err := rand.Read(b[:])
	require.NoError(tb, err)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// rawHeader returns a ce-* header value, matched case-insensitively and
// percent-decoded.
func rawHeader(tb testing.TB, h nats.Header, name string) string {
	tb.Helper()
	for k, vs := range h {
		if strings.EqualFold(k, name) && len(vs) > 0 {
			v, err := url.PathUnescape(vs[0])
			require.NoError(tb, err, "header %s", k)
			return v
		}
	}
	return ""
}

// rawOutcome is the outcome payload as docs/PROTOCOL.md describes it.
type rawOutcome struct {
	Saga           string    `json:"saga"`
	Module         string    `json:"module"`
	Digest         string    `json:"digest"`
	PreviousDigest string    `json:"previous_digest"`
	Strategy       string    `json:"strategy"`
	Result         string    `json:"result"`
	Reason         string    `json:"reason"`
	StartedAt      time.Time `json:"started_at"`
	FinishedAt     time.Time `json:"finished_at"`
	Nodes          []struct {
		Node    string `json:"node"`
		State   string `json:"state"`
		Stage   string `json:"stage"`
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"nodes"`
}

func (o rawOutcome) states() map[string]string {
	m := map[string]string{}
	for _, n := range o.Nodes {
		m[n.Node] = n.State
	}
	return m
}

// rawOutcomeOf decodes an outcome message in either content mode and
// returns its event type and payload.
func rawOutcomeOf(tb testing.TB, h nats.Header, body []byte) (string, rawOutcome) {
	tb.Helper()
	var out rawOutcome
	if strings.HasPrefix(strings.ToLower(h.Get("Content-Type")), "application/cloudevents") {
		var ev struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		}
		require.NoError(tb, json.Unmarshal(body, &ev))
		require.NoError(tb, json.Unmarshal(ev.Data, &out))
		return ev.Type, out
	}
	require.Equal(tb, "1.0", rawHeader(tb, h, "ce-specversion"))
	require.NoError(tb, json.Unmarshal(body, &out), "outcome payload: %s", body)
	return rawHeader(tb, h, "ce-type"), out
}

// rawNextOutcome reads the saga's outcome from the saga stream with an
// ordered consumer delivering everything on the outcome subject.
func rawNextOutcome(tb testing.TB, js jetstream.JetStream, id string) jetstream.Msg {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), 60*time.Second)
	defer cancel()
	oc, err := js.OrderedConsumer(ctx, "MCPRELOAD_SAGAS", jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"mcpreload.saga." + id + ".outcome"},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	require.NoError(tb, err)
	m, err := oc.Next(jetstream.FetchContext(ctx))
	require.NoError(tb, err, "no outcome for saga %s", id)
	return m
}

// rawLastMsg reads the last message stored on subject in stream through
// the JetStream API subject $JS.API.STREAM.MSG.GET.<stream>, with a plain
// request, and returns its headers and payload.
func rawLastMsg(tb testing.TB, nc *nats.Conn, stream, subject string) (nats.Header, []byte) {
	tb.Helper()
	m, errCode := rawLastMsgErr(tb, nc, stream, subject)
	require.Zero(tb, errCode, "no message on %s", subject)
	h := nats.Header{}
	// hdrs is the NATS header block: "NATS/1.0\r\n", "Name: value\r\n"..., "\r\n".
	lines := strings.Split(string(m.Hdrs), "\r\n")
	require.True(tb, strings.HasPrefix(lines[0], "NATS/1.0"), "%q", m.Hdrs)
	for _, l := range lines[1:] {
		if k, v, ok := strings.Cut(l, ":"); ok {
			h.Add(k, strings.TrimSpace(v))
		}
	}
	return h, m.Data
}

type rawStoredMsg struct {
	Subject string `json:"subject"`
	Seq     uint64 `json:"seq"`
	Hdrs    []byte `json:"hdrs"` // base64 in JSON
	Data    []byte `json:"data"` // base64 in JSON
}

// rawLastMsgErr is rawLastMsg returning the JetStream error code (0 if
// none) instead of failing.
func rawLastMsgErr(tb testing.TB, nc *nats.Conn, stream, subject string) (rawStoredMsg, int) {
	tb.Helper()
	req, err := json.Marshal(map[string]string{"last_by_subj": subject})
	require.NoError(tb, err)
	reply, err := nc.Request("$JS.API.STREAM.MSG.GET."+stream, req, 10*time.Second)
	require.NoError(tb, err)
	var resp struct {
		Message *rawStoredMsg `json:"message"`
		Error   *struct {
			Code    int `json:"code"`
			ErrCode int `json:"err_code"`
		} `json:"error"`
	}
	require.NoError(tb, json.Unmarshal(reply.Data, &resp), "%s", reply.Data)
	if resp.Error != nil {
		return rawStoredMsg{}, resp.Error.ErrCode
	}
	require.NotNil(tb, resp.Message, "%s", reply.Data)
	require.Equal(tb, subject, resp.Message.Subject)
	return *resp.Message, 0
}

// rawHistory returns the payloads of every message of the saga up to and
// including its outcome, by subject leaf ("prepare", "ack.n1", ...).
func rawHistory(tb testing.TB, js jetstream.JetStream, id string) map[string][][]byte {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), 30*time.Second)
	defer cancel()
	prefix := "mcpreload.saga." + id + "."
	oc, err := js.OrderedConsumer(ctx, "MCPRELOAD_SAGAS", jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{prefix + ">"},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	require.NoError(tb, err)
	out := map[string][][]byte{}
	for {
		m, err := oc.Next(jetstream.FetchContext(ctx))
		require.NoError(tb, err, "reading the history of saga %s (got %v)", id, rawKeys(out))
		leaf := strings.TrimPrefix(m.Subject(), prefix)
		out[leaf] = append(out[leaf], m.Data())
		if leaf == "outcome" {
			return out
		}
	}
}

func rawKeys(m map[string][][]byte) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// rawWaitTool waits until the MCP client lists tool (the node's tool list
// follows its registry asynchronously).
func rawWaitTool(tb testing.TB, c *client, tool string) {
	tb.Helper()
	require.Eventually(tb, func() bool {
		res, err := c.ListTools(context.Background(), &mcp.ListToolsParams{})
		if err != nil {
			return false
		}
		return slices.ContainsFunc(res.Tools, func(t *mcp.Tool) bool { return t.Name == tool })
	}, 10*time.Second, 20*time.Millisecond, fmt.Sprintf("tool %s not listed", tool))
}

// outcomeID is the outcome event id docs/PROTOCOL.md §5.5 specifies.
func outcomeID(saga string) string {
	sum := sha256.Sum256([]byte(saga))
	return "outcome-" + hex.EncodeToString(sum[:16])
}
