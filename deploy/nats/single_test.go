package nats_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/events"
	"github.com/mcpreload/mcpreload/internal/bus"
	"github.com/mcpreload/mcpreload/saga"
)

// startSingle renders single.conf and accounts.conf into a temp dir and
// starts the server on free loopback ports.
func startSingle(tb testing.TB) *server {
	tb.Helper()
	for range 3 {
		dir := tb.TempDir()
		p := freePorts(tb, 2)
		render(tb, dir, "single.conf",
			replacement{"listen: 0.0.0.0:4222", fmt.Sprintf("listen: 127.0.0.1:%d", p[0])},
			replacement{"http: 127.0.0.1:8222", fmt.Sprintf("http: 127.0.0.1:%d", p[1])},
			replacement{`store_dir: "/var/lib/nats/jetstream"`, fmt.Sprintf("store_dir: %q", filepath.Join(dir, "jetstream"))},
		)
		render(tb, dir, "accounts.conf")
		sp := spec{name: "single", dir: dir, conf: "single.conf", client: p[0], http: p[1]}
		if s, ok := startServers(tb, []spec{sp}, 20*time.Second); ok {
			return s[0]
		}
	}
	tb.Fatal("no free ports for nats-server after 3 attempts")
	return nil
}

// bind looks up every resource without creating or changing any, as the
// publisher and the nodes must (only the orchestrator may create them;
// internal/publisher.Open binds the same way). It needs only
// $JS.API.STREAM.INFO on the seven names.
func bind(tb testing.TB, c *conn) *bus.Bus {
	tb.Helper()
	ctx := ctxTimeout(tb, 5*time.Second)
	js, err := jetstream.New(c.Conn)
	require.NoError(tb, err)
	b := &bus.Bus{NC: c.Conn, JS: js, Names: bus.NamesFor(""), PresenceTTL: bus.DefaultPresenceTTL}
	b.Requests, err = js.Stream(ctx, b.Names.RequestStream)
	require.NoError(tb, err)
	b.Sagas, err = js.Stream(ctx, b.Names.SagaStream)
	require.NoError(tb, err)
	b.Modules, err = js.ObjectStore(ctx, b.Names.ModulesBucket)
	require.NoError(tb, err)
	for name, dst := range map[string]*jetstream.KeyValue{
		b.Names.DesiredBucket: &b.Desired, b.Names.NodesBucket: &b.Nodes,
		b.Names.StateBucket: &b.State, b.Names.LocksBucket: &b.Locks,
	} {
		*dst, err = js.KeyValue(ctx, name)
		require.NoError(tb, err, name)
	}
	return b
}

// jszInfo is the part of /jsz the tests read.
type jszInfo struct {
	Disabled bool `json:"disabled"`
	Config   struct {
		StoreDir string `json:"store_dir"`
	} `json:"config"`
	Meta *struct {
		Leader string `json:"leader"`
		Size   int    `json:"cluster_size"`
	} `json:"meta_cluster"`
}

func TestSingleServer(t *testing.T) {
	t.Parallel()
	s := startSingle(t)

	// The orchestrator provisions every stream and bucket; the other roles
	// only bind to them.
	orc := connect(t, s.client, orchestratorRole)
	ob, err := bus.Open(ctxTimeout(t, 10*time.Second), orc.Conn, bus.Options{})
	require.NoError(t, err)
	orc.requireNoViolations(t)

	t.Run("JetStream is enabled for the account", func(t *testing.T) {
		var jsz jszInfo
		s.monitorJSON(t, "/jsz", &jsz)
		require.False(t, jsz.Disabled)
		require.True(t, strings.HasPrefix(jsz.Config.StoreDir, filepath.Dir(s.logPath)), jsz.Config.StoreDir)

		info, err := ob.JS.AccountInfo(ctxTimeout(t, 5*time.Second))
		require.NoError(t, err)
		require.Equal(t, 7, info.Streams, "bus.Open created the 7 streams")
		require.Equal(t, 16, info.Limits.MaxStreams, "accounts.conf limits")
	})

	t.Run("anonymous and wrong credentials are refused", func(t *testing.T) {
		_, err := nats.Connect(s.client, nats.NoReconnect())
		require.ErrorIs(t, err, nats.ErrAuthorization, "no credentials")
		_, err = nats.Connect(s.client, nats.NoReconnect(), nats.UserInfo(publisherRole.user, "wrong"))
		require.ErrorIs(t, err, nats.ErrAuthorization, "wrong password")
		_, err = nats.Connect(s.client, nats.NoReconnect(), nats.UserInfo(publisherRole.user, publisherPasswordHash))
		require.ErrorIs(t, err, nats.ErrAuthorization, "the bcrypt hash is not the password")

		sys, err := nats.Connect(s.client, nats.UserInfo("sys", systemPassword))
		require.NoError(t, err)
		defer sys.Close()
		_, err = sys.Request("$SYS.REQ.SERVER.PING.VARZ", nil, 5*time.Second)
		require.NoError(t, err, "the system account answers server requests")
	})

	t.Run("orchestrator re-provisions idempotently and owns the request consumer", func(t *testing.T) {
		c := connect(t, s.client, orchestratorRole)
		b, err := bus.Open(ctxTimeout(t, 10*time.Second), c.Conn, bus.Options{})
		require.NoError(t, err)
		o := saga.NewOrchestrator(saga.Config{Bus: b})
		require.NoError(t, o.Start(ctxTimeout(t, 5*time.Second)))
		o.Close()
		ci, err := b.Requests.Consumer(ctxTimeout(t, 5*time.Second), bus.ConsumerOrchestrators)
		require.NoError(t, err)
		require.Equal(t, bus.ConsumerOrchestrators, ci.CachedInfo().Config.Durable)
		c.requireNoViolations(t)
	})

	t.Run("publisher binds, uploads and reads", func(t *testing.T) {
		// Credentials in the URL, as README.md tells the binaries.
		u := &url.URL{Scheme: "nats", User: url.UserPassword(publisherRole.user, publisherRole.password), Host: strings.TrimPrefix(s.client, "nats://")}
		rec := newErrRecorder()
		nc, err := nats.Connect(u.String(), nats.ErrorHandler(rec.handler))
		require.NoError(t, err)
		defer nc.Close()
		c := &conn{Conn: nc, role: publisherRole, errs: rec}
		ctx := ctxTimeout(t, 10*time.Second)
		b := bind(t, c)

		wasm := []byte("\x00asm\x01\x00\x00\x00 publisher upload")
		d, existed, err := b.PutModule(ctx, wasm)
		require.NoError(t, err)
		require.False(t, existed)
		got, err := b.GetModule(ctx, d, 1<<20)
		require.NoError(t, err)
		require.Equal(t, wasm, got)
		_, _, err = b.GetDesired(ctx, "counter", "")
		require.NoError(t, err)
		_, err = b.LiveNodes(ctx)
		require.NoError(t, err)
		_, err = b.Nodes.WatchAll(ctx)
		require.NoError(t, err)

		oc, err := b.JS.OrderedConsumer(ctx, b.Names.SagaStream, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{b.Subjects.Saga("*", events.LeafOutcome)},
		})
		require.NoError(t, err, "history: an ordered consumer on the saga stream")
		_, err = oc.Fetch(1, jetstream.FetchMaxWait(200*time.Millisecond))
		require.NoError(t, err)
		sub, err := c.SubscribeSync(b.Subjects.Saga("*", events.LeafProgress))
		require.NoError(t, err, "live progress: a core subscription")
		require.NoError(t, sub.Unsubscribe())
		c.requireNoViolations(t)
	})

	t.Run("publisher binds to the streams but cannot change them", func(t *testing.T) {
		c := connect(t, s.client, publisherRole)
		// bus.Open only looks existing resources up: it works for a role
		// that may not create or update streams.
		b, err := bus.Open(ctxTimeout(t, 2*time.Second), c.Conn, bus.Options{})
		require.NoError(t, err)
		_, err = b.JS.UpdateStream(ctxTimeout(t, 500*time.Millisecond), jetstream.StreamConfig{
			Name: b.Names.RequestStream, Subjects: []string{"mcpreload.reload.request.>"}, Retention: jetstream.WorkQueuePolicy,
		})
		require.Error(t, err)
		require.NotNil(t, c.errs.waitFor(`Permissions Violation for Publish to "$JS.API.STREAM.UPDATE.MCPRELOAD_REQUESTS"`, 2*time.Second))
	})

	t.Run("publisher cannot forge acks, commands or state", func(t *testing.T) {
		c := connect(t, s.client, publisherRole)
		js, err := jetstream.New(c.Conn)
		require.NoError(t, err)
		_, err = js.Publish(ctxTimeout(t, 500*time.Millisecond), "mcpreload.saga.x.ack.n1", []byte("{}"))
		require.Error(t, err, "a JetStream publish of a forged ack gets no PubAck")
		require.NotNil(t, c.errs.waitFor(`Permissions Violation for Publish to "mcpreload.saga.x.ack.n1"`, 2*time.Second))
		requireNotStored(t, ob.Sagas, "mcpreload.saga.x.ack.n1")

		for _, subj := range []string{
			"mcpreload.saga.x.ack.n1",
			"mcpreload.saga.x.prepare", "mcpreload.saga.x.commit", "mcpreload.saga.x.abort", "mcpreload.saga.x.rollback",
			"mcpreload.saga.x.progress", "mcpreload.saga.x.outcome",
			"$KV.mcpreload-desired.counter", "$KV.mcpreload-nodes.n1", "$KV.mcpreload-saga-state.x", "$KV.mcpreload-locks.counter",
			"$JS.API.STREAM.CREATE.MCPRELOAD_SAGAS", "$JS.API.STREAM.UPDATE.MCPRELOAD_SAGAS",
			"$JS.API.STREAM.DELETE.MCPRELOAD_REQUESTS", "$JS.API.STREAM.PURGE.MCPRELOAD_SAGAS",
			"$JS.API.CONSUMER.CREATE.MCPRELOAD_REQUESTS.thief.mcpreload.reload.request.*",
			"$JS.API.CONSUMER.MSG.NEXT.MCPRELOAD_REQUESTS.orchestrators",
			"$JS.API.CONSUMER.DELETE.MCPRELOAD_REQUESTS.orchestrators",
			"$JS.API.DIRECT.GET.KV_mcpreload-saga-state.$KV.mcpreload-saga-state.x",
			"_INBOX.someone-else",
		} {
			t.Run(subj, func(t *testing.T) { c.requireDenied(t, subj) })
		}
		c.requireSubDenied(t, "mcpreload.saga.>")
		c.requireSubDenied(t, "mcpreload.reload.request.>")
	})

	t.Run("node acks, heartbeats, downloads and watches", func(t *testing.T) {
		c := connect(t, s.client, nodeRole)
		b := bind(t, c)
		ctx := ctxTimeout(t, 10*time.Second)
		p, _ := json.Marshal(bus.Presence{Node: "n1", Started: time.Now(), Updated: time.Now()})
		_, err := b.Nodes.Put(ctx, "n1", p)
		require.NoError(t, err)
		_, err = b.Nodes.Get(ctx, "n1")
		require.NoError(t, err)
		for _, kv := range []jetstream.KeyValue{b.Desired, b.Locks} {
			w, err := kv.WatchAll(ctx)
			require.NoError(t, err)
			require.Nil(t, <-w.Updates(), "initial values done")
			require.NoError(t, w.Stop())
		}
		_, err = b.Locks.Get(ctx, "counter")
		require.ErrorIs(t, err, jetstream.ErrKeyNotFound)
		_, err = b.GetModule(ctx, "sha256:"+strings.Repeat("0", 64), 1<<20)
		require.ErrorIs(t, err, bus.ErrNoObject)
		sub, err := c.Subscribe("mcpreload.saga.*.*", func(*nats.Msg) {})
		require.NoError(t, err, "the command subscription mcpreload-node makes")
		_, err = b.JS.Publish(ctx, "mcpreload.saga.x.ack.n1", []byte("{}"))
		require.NoError(t, err, "acks are JetStream publishes")
		require.NoError(t, sub.Unsubscribe())
		require.NoError(t, b.Nodes.Delete(ctx, "n1"))
		c.requireNoViolations(t)
	})

	t.Run("node cannot request reloads, command, or write shared state", func(t *testing.T) {
		c := connect(t, s.client, nodeRole)
		js, err := jetstream.New(c.Conn)
		require.NoError(t, err)
		_, err = js.Publish(ctxTimeout(t, 500*time.Millisecond), "mcpreload.reload.request.forged", []byte("{}"))
		require.Error(t, err)
		require.NotNil(t, c.errs.waitFor(`Permissions Violation for Publish to "mcpreload.reload.request.forged"`, 2*time.Second))
		requireNotStored(t, ob.Requests, "mcpreload.reload.request.forged")

		for _, subj := range []string{
			"mcpreload.reload.request.counter",
			"mcpreload.saga.x.prepare", "mcpreload.saga.x.commit", "mcpreload.saga.x.abort", "mcpreload.saga.x.rollback",
			"mcpreload.saga.x.progress", "mcpreload.saga.x.outcome",
			"$KV.mcpreload-desired.counter", "$KV.mcpreload-saga-state.x", "$KV.mcpreload-locks.counter",
			"$O.mcpreload-modules.C.x", "$O.mcpreload-modules.M.x", "$JS.API.STREAM.PURGE.OBJ_mcpreload-modules",
			"$JS.API.STREAM.CREATE.MCPRELOAD_SAGAS", "$JS.API.STREAM.UPDATE.MCPRELOAD_SAGAS",
			"$JS.API.STREAM.DELETE.KV_mcpreload-nodes",
			"$JS.API.CONSUMER.CREATE.MCPRELOAD_REQUESTS.thief.mcpreload.reload.request.*",
			"$JS.API.CONSUMER.CREATE.MCPRELOAD_SAGAS.reader",
			"$JS.API.CONSUMER.MSG.NEXT.MCPRELOAD_REQUESTS.orchestrators",
		} {
			t.Run(subj, func(t *testing.T) { c.requireDenied(t, subj) })
		}
		c.requireSubDenied(t, "mcpreload.saga.>")
		c.requireSubDenied(t, "mcpreload.saga.*.ack.*")
	})

	t.Run("orchestrator cannot request reloads, upload or destroy", func(t *testing.T) {
		c := connect(t, s.client, orchestratorRole)
		for _, subj := range []string{
			"mcpreload.reload.request.counter",
			"$O.mcpreload-modules.C.x",
			"$JS.API.STREAM.CREATE.OTHER", "$JS.API.STREAM.UPDATE.OTHER",
			"$JS.API.STREAM.DELETE.MCPRELOAD_SAGAS", "$JS.API.STREAM.PURGE.MCPRELOAD_SAGAS",
			"$JS.API.CONSUMER.CREATE.MCPRELOAD_REQUESTS.thief",
			"$JS.API.CONSUMER.DELETE.MCPRELOAD_REQUESTS.orchestrators",
		} {
			t.Run(subj, func(t *testing.T) { c.requireDenied(t, subj) })
		}
	})

	t.Run("a reload saga runs under the three identities", func(t *testing.T) {
		runSaga(t, s)
	})
}

// requireNotStored checks that the stream holds no message on subject.
func requireNotStored(tb testing.TB, st jetstream.Stream, subject string) {
	tb.Helper()
	info, err := st.Info(ctxTimeout(tb, 5*time.Second), jetstream.WithSubjectFilter(subject))
	require.NoError(tb, err)
	require.Zerof(tb, info.State.Subjects[subject], "%s stored a message on %s", info.Config.Name, subject)
}

// runSaga drives a real reload end to end, each participant under its own
// user: the orchestrator (saga.Orchestrator, provisioning with bus.Open),
// a node that answers commands the way mcpreload-node does, and the
// publisher, which uploads, requests, follows the outcome and reads the
// history. None of them may meet a permissions violation.
func runSaga(t *testing.T, s *server) {
	ctx := ctxTimeout(t, 30*time.Second)
	const module, nodeID = "counter", "n1"

	// Orchestrator.
	oc := connect(t, s.client, orchestratorRole)
	ob, err := bus.Open(ctx, oc.Conn, bus.Options{})
	require.NoError(t, err)
	var hookErrs []string
	var mu sync.Mutex
	orch := saga.NewOrchestrator(saga.Config{Bus: ob, Hooks: saga.Hooks{Error: func(id string, err error) {
		mu.Lock()
		hookErrs = append(hookErrs, id+": "+err.Error())
		mu.Unlock()
	}}})
	require.NoError(t, orch.Start(ctx))
	defer orch.Close()

	// Node: presence, then answer every command addressed to it.
	nc := connect(t, s.client, nodeRole)
	nb := bind(t, nc)
	p, _ := json.Marshal(bus.Presence{Node: nodeID, Modules: map[string]string{}, Started: time.Now(), Updated: time.Now()})
	_, err = nb.Nodes.Put(ctx, nodeID, p)
	require.NoError(t, err)
	nodeErrs := make(chan error, 16)
	sub, err := nc.Subscribe("mcpreload.saga.*.*", func(m *nats.Msg) {
		if err := answer(ctx, nb, nodeID, m); err != nil {
			select {
			case nodeErrs <- err:
			default:
			}
		}
	})
	require.NoError(t, err)
	defer func() { _ = sub.Unsubscribe() }()
	require.NoError(t, nc.Flush())

	// Publisher: upload, subscribe to the outcome, request.
	pc := connect(t, s.client, publisherRole)
	pb := bind(t, pc)
	digest, _, err := pb.PutModule(ctx, []byte("\x00asm\x01\x00\x00\x00 counter v2"))
	require.NoError(t, err)
	req, err := events.New(events.TypeReloadRequested, "urn:mcpreload:publisher:test", module,
		events.ReloadRequest{Module: module, Digest: digest, Strategy: events.StrategyAll, Timeout: events.Duration(20 * time.Second)})
	require.NoError(t, err)
	outcomes, err := pc.SubscribeSync(pb.Subjects.Saga(req.ID(), events.LeafOutcome))
	require.NoError(t, err)
	msg, err := events.ToNATS(ctx, pb.Subjects.ReloadRequest(module), req)
	require.NoError(t, err)
	require.Equal(t, "mcpreload.reload.request.counter", msg.Subject)
	_, err = pb.JS.PublishMsg(ctx, msg)
	require.NoError(t, err)

	m, err := outcomes.NextMsg(20 * time.Second)
	mu.Lock()
	require.NoErrorf(t, err, "no outcome; orchestrator errors: %v", hookErrs)
	mu.Unlock()
	e, err := events.FromNATS(ctx, m)
	require.NoError(t, err)
	out, err := events.DecodeOutcome(e)
	require.NoError(t, err)
	require.Equal(t, events.ResultCommitted, out.Result, out.Reason)
	select {
	case err := <-nodeErrs:
		require.NoError(t, err)
	default:
	}

	// The publisher reads the result back: desired state and the history.
	d, _, err := pb.GetDesired(ctx, module, "")
	require.NoError(t, err)
	require.Equal(t, digest, d.Digest)
	hist, err := pb.JS.OrderedConsumer(ctx, pb.Names.SagaStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{pb.Subjects.SagaAll(req.ID())},
	})
	require.NoError(t, err)
	var leaves []string
	for len(leaves) == 0 || leaves[len(leaves)-1] != events.LeafOutcome {
		hm, err := hist.Next(jetstream.FetchMaxWait(5 * time.Second))
		require.NoError(t, err, "history so far: %v", leaves)
		_, leaf, ok := pb.Subjects.ParseSaga(hm.Subject())
		require.True(t, ok, hm.Subject())
		if leaf != events.LeafProgress {
			leaves = append(leaves, leaf)
		}
	}
	require.Equal(t, []string{"prepare", "ack.n1", "commit", "ack.n1", "outcome"}, leaves)

	// docs/PROTOCOL.md §7.3: a client without a consumer API reads the
	// outcome with a raw direct-get request.
	body, _ := json.Marshal(map[string]string{"last_by_subj": pb.Subjects.Saga(req.ID(), events.LeafOutcome)})
	raw, err := pc.Request("$JS.API.STREAM.MSG.GET."+pb.Names.SagaStream, body, 5*time.Second)
	require.NoError(t, err)
	var got struct {
		Message *struct {
			Subject string `json:"subject"`
		} `json:"message"`
	}
	require.NoError(t, json.Unmarshal(raw.Data, &got), string(raw.Data))
	require.NotNil(t, got.Message, string(raw.Data))
	require.Equal(t, pb.Subjects.Saga(req.ID(), events.LeafOutcome), got.Message.Subject)

	for _, c := range []*conn{oc, nc, pc} {
		c.requireNoViolations(t)
	}
}

// answer is the node side of a command: it checks the subject (a message
// pushed by a consumer carries its stream's subject and is ignored),
// downloads the module on prepare, and acks with a JetStream publish.
func answer(ctx context.Context, b *bus.Bus, nodeID string, m *nats.Msg) error {
	id, leaf, ok := b.Subjects.ParseSaga(m.Subject)
	if !ok || !slices.Contains([]string{events.PhasePrepare, events.PhaseCommit, events.PhaseAbort, events.PhaseRollback}, leaf) {
		return nil
	}
	e, err := events.FromNATS(ctx, m)
	if err != nil {
		return err
	}
	cmd, err := events.DecodeCommand(e)
	if err != nil {
		return err
	}
	if cmd.Saga != id || !slices.Contains(cmd.Targets, nodeID) {
		return nil
	}
	if leaf == events.PhasePrepare {
		if _, err := b.GetModule(ctx, cmd.Digest, 1<<20); err != nil {
			return err
		}
	}
	ack := events.Ack{Saga: id, Node: nodeID, Module: cmd.Module, Phase: leaf, Digest: cmd.Digest, OK: true}
	ae, err := events.New(events.TypeAck, "urn:mcpreload:node:"+nodeID, cmd.Module, ack)
	if err != nil {
		return err
	}
	am, err := events.ToNATS(ctx, b.Subjects.Saga(id, events.AckLeaf(nodeID)), ae)
	if err != nil {
		return err
	}
	if _, err := b.JS.PublishMsg(ctx, am); err != nil {
		return errors.Join(fmt.Errorf("ack %s %s", id, leaf), err)
	}
	return nil
}
