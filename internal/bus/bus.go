// Package bus names and creates mcpreload's JetStream resources (streams,
// object store, key-value buckets) and wraps the few operations every
// participant needs: uploading and fetching module bytes, reading desired
// versions and node presence. docs/PROTOCOL.md describes the same resources
// for clients in other languages.
package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/mcpreload/mcpreload/events"
)

// Defaults of Options.
const (
	DefaultPresenceTTL = 10 * time.Second
	DefaultDuplicates  = 10 * time.Minute
	DefaultHistory     = 30 * 24 * time.Hour
	// ConsumerOrchestrators is the durable consumer all orchestrators share
	// on the request stream: JetStream hands each request to one of them.
	ConsumerOrchestrators = "orchestrators"
)

// maxMsgSize is the largest message the request and saga streams take: an
// event of events.MaxEventBytes plus the headers JetStream adds on publish.
const maxMsgSize = events.MaxEventBytes + 4096

// Options configures Open.
type Options struct {
	// Prefix is the subject prefix (default "mcpreload"); resource names
	// derive from it.
	Prefix string
	// Replicas of every stream and bucket (1, or 3 on a cluster).
	Replicas int
	// PresenceTTL is how long a node stays "live" after its last heartbeat;
	// it applies when Open creates the nodes bucket (an existing bucket keeps
	// its own, which Bus.PresenceTTL then reports).
	PresenceTTL time.Duration
}

// Bus is an open connection to mcpreload's resources. Its fields are
// read-only after Open; all are safe for concurrent use.
type Bus struct {
	NC       *nats.Conn
	JS       jetstream.JetStream
	Subjects events.Subjects
	Names    Names

	Requests jetstream.Stream
	Sagas    jetstream.Stream
	Modules  jetstream.ObjectStore
	Desired  jetstream.KeyValue // module -> Desired; "<module>.<node>" -> a node's pin (strategy local)
	Nodes    jetstream.KeyValue // node id -> Presence, expires PresenceTTL after the last heartbeat
	State    jetstream.KeyValue // saga id -> saga state (orchestrators only)
	Locks    jetstream.KeyValue // module -> id of the saga holding it

	PresenceTTL time.Duration
}

// Names are the resource names for a prefix.
type Names struct {
	RequestStream string // "MCPRELOAD_REQUESTS"
	SagaStream    string // "MCPRELOAD_SAGAS"
	ModulesBucket string // "mcpreload-modules"
	DesiredBucket string // "mcpreload-desired"
	NodesBucket   string // "mcpreload-nodes"
	StateBucket   string // "mcpreload-saga-state"
	LocksBucket   string // "mcpreload-locks"
}

// NamesFor returns the resource names for prefix ("" = default).
func NamesFor(prefix string) Names {
	if prefix == "" {
		prefix = events.DefaultPrefix
	}
	dash := strings.ReplaceAll(prefix, ".", "-")
	upper := strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(prefix))
	return Names{
		RequestStream: upper + "_REQUESTS",
		SagaStream:    upper + "_SAGAS",
		ModulesBucket: dash + "-modules",
		DesiredBucket: dash + "-desired",
		NodesBucket:   dash + "-nodes",
		StateBucket:   dash + "-saga-state",
		LocksBucket:   dash + "-locks",
	}
}

// Open binds to every stream and bucket, creating those that do not exist
// yet, and returns the bus. Existing resources are used as they are, never
// updated, so participants with different settings do not fight over them
// and a role without the right to create streams (see deploy/nats) can open
// the bus once an orchestrator created it. It needs JetStream; on a server
// without it, the error says so.
func Open(ctx context.Context, nc *nats.Conn, o Options) (*Bus, error) {
	subj := events.Subjects{Prefix: o.Prefix}
	if err := subj.Validate(); err != nil {
		return nil, err
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.PresenceTTL == 0 {
		o.PresenceTTL = DefaultPresenceTTL
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	b := &Bus{NC: nc, JS: js, Subjects: subj, Names: NamesFor(o.Prefix), PresenceTTL: o.PresenceTTL}
	n := b.Names
	prefix := subj.Prefix
	if prefix == "" {
		prefix = events.DefaultPrefix
	}
	step := func(what string, err error) error {
		if err == nil {
			return nil
		}
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return fmt.Errorf("%s: JetStream is not enabled on this server or account (start nats-server with -js, or see deploy/nats)", what)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	if b.Requests, err = ensureStream(ctx, js, jetstream.StreamConfig{
		Name: n.RequestStream, Subjects: []string{prefix + ".reload.request.>"},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage, Replicas: o.Replicas,
		Duplicates: DefaultDuplicates, MaxAge: 7 * 24 * time.Hour, MaxMsgSize: maxMsgSize,
		Description: "mcpreload reload requests, one consumer per orchestrator group",
	}); err != nil {
		return nil, step("stream "+n.RequestStream, err)
	}
	if b.Sagas, err = ensureStream(ctx, js, jetstream.StreamConfig{
		Name: n.SagaStream, Subjects: []string{prefix + ".saga.>"},
		Storage: jetstream.FileStorage, Replicas: o.Replicas,
		Duplicates: DefaultDuplicates, MaxAge: DefaultHistory, MaxMsgSize: maxMsgSize,
		Description: "mcpreload saga commands, acks, progress and outcomes (the audit history)",
	}); err != nil {
		return nil, step("stream "+n.SagaStream, err)
	}
	if b.Modules, err = ensureObjectStore(ctx, js, jetstream.ObjectStoreConfig{
		Bucket: n.ModulesBucket, Storage: jetstream.FileStorage, Replicas: o.Replicas, Compression: true,
		Description: "mcpreload module bytes, named sha256:<hex> of their content",
	}); err != nil {
		return nil, step("object store "+n.ModulesBucket, err)
	}
	kv := func(cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
		cfg.Storage, cfg.Replicas = jetstream.FileStorage, o.Replicas
		k, err := ensureKeyValue(ctx, js, cfg)
		return k, step("bucket "+cfg.Bucket, err)
	}
	if b.Desired, err = kv(jetstream.KeyValueConfig{Bucket: n.DesiredBucket, History: 16,
		Description: "desired module digest per module (and per node pins)"}); err != nil {
		return nil, err
	}
	if b.Nodes, err = kv(jetstream.KeyValueConfig{Bucket: n.NodesBucket, History: 1, TTL: o.PresenceTTL,
		Description: "live nodes and the digests they serve"}); err != nil {
		return nil, err
	}
	// The bucket that exists decides (it may predate these options).
	if st, err := b.Nodes.Status(ctx); err == nil && st.TTL() > 0 {
		b.PresenceTTL = st.TTL()
	}
	if b.State, err = kv(jetstream.KeyValueConfig{Bucket: n.StateBucket, History: 1, TTL: DefaultHistory,
		Description: "saga state, compare-and-set by the owning orchestrator"}); err != nil {
		return nil, err
	}
	if b.Locks, err = kv(jetstream.KeyValueConfig{Bucket: n.LocksBucket, History: 1,
		Description: "one saga per module: module -> saga id"}); err != nil {
		return nil, err
	}
	return b, nil
}

// Desired is the value of a module's key in the desired bucket.
type Desired struct {
	Digest  string    `json:"digest"`
	Saga    string    `json:"saga,omitempty"`
	Updated time.Time `json:"updated"`
	// Compensation is set when a saga's rollback wrote this value back:
	// the digest written just before it (the saga's own) was undone.
	Compensation bool `json:"compensation,omitempty"`
}

// Presence is the value of a node's key in the nodes bucket.
type Presence struct {
	Node     string            `json:"node"`
	Modules  map[string]string `json:"modules"`            // module -> current digest
	Versions map[string]string `json:"versions,omitempty"` // module -> version string
	MCP      string            `json:"mcp,omitempty"`      // the node's MCP endpoint
	Started  time.Time         `json:"started"`
	Updated  time.Time         `json:"updated"`
}

// PinKey is the desired-bucket key pinning module on node (strategy local).
func PinKey(module, node string) string { return module + "." + node }

// GetDesired returns the desired digest of module for node (its pin if
// any, else the fleet's), or "" if none.
func (b *Bus) GetDesired(ctx context.Context, module, node string) (Desired, uint64, error) {
	if node != "" {
		if d, rev, err := b.getDesired(ctx, PinKey(module, node)); err != nil || d.Digest != "" {
			return d, rev, err
		}
	}
	return b.getDesired(ctx, module)
}

func (b *Bus) getDesired(ctx context.Context, key string) (Desired, uint64, error) {
	e, err := b.Desired.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Desired{}, 0, nil
	}
	if err != nil {
		return Desired{}, 0, err
	}
	var d Desired
	if err := json.Unmarshal(e.Value(), &d); err != nil {
		return Desired{}, e.Revision(), fmt.Errorf("desired %s: %w", key, err)
	}
	return d, e.Revision(), nil
}

// LiveNodes returns every node with a current heartbeat. The keys come
// from one server-side snapshot of the bucket's stream (a KV watcher's
// end-of-initial-values marker can come early while heartbeats rewrite
// keys, and would drop live nodes), then the values are read concurrently.
func (b *Bus) LiveNodes(ctx context.Context) (map[string]Presence, error) {
	st, err := b.JS.Stream(ctx, "KV_"+b.Names.NodesBucket)
	if err != nil {
		return nil, err
	}
	prefix := "$KV." + b.Names.NodesBucket + "."
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(prefix+">"))
	if err != nil {
		return nil, err
	}
	var (
		mu  sync.Mutex
		out = make(map[string]Presence, len(info.State.Subjects))
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for subject := range info.State.Subjects {
		key := strings.TrimPrefix(subject, prefix)
		g.Go(func() error {
			e, err := b.Nodes.Get(gctx, key)
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				return nil // expired or left
			}
			if err != nil {
				return err
			}
			var p Presence
			if json.Unmarshal(e.Value(), &p) == nil {
				mu.Lock()
				out[key] = p
				mu.Unlock()
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// NamedNodes returns the presence of the given nodes that are live: for a
// saga on named nodes, without reading the whole fleet's presence.
func (b *Bus) NamedNodes(ctx context.Context, ids []string) (map[string]Presence, error) {
	out := make(map[string]Presence, len(ids))
	for _, id := range ids {
		e, err := b.Nodes.Get(ctx, id)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var p Presence
		if json.Unmarshal(e.Value(), &p) == nil {
			out[id] = p
		}
	}
	return out, nil
}

// ensureStream looks the stream up and creates it if it does not exist.
func ensureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	st, err := js.Stream(ctx, cfg.Name)
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return st, err
	}
	st, err = js.CreateStream(ctx, cfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return js.Stream(ctx, cfg.Name) // created concurrently
	}
	return st, missing(err)
}

func ensureObjectStore(ctx context.Context, js jetstream.JetStream, cfg jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	os, err := js.ObjectStore(ctx, cfg.Bucket)
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return os, err
	}
	os, err = js.CreateObjectStore(ctx, cfg)
	if errors.Is(err, jetstream.ErrBucketExists) || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return js.ObjectStore(ctx, cfg.Bucket)
	}
	return os, missing(err)
}

func ensureKeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return kv, err
	}
	kv, err = js.CreateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrBucketExists) || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return js.KeyValue(ctx, cfg.Bucket)
	}
	return kv, missing(err)
}

// missing explains a failed create: with least-privilege credentials only
// the orchestrator role may create the resources.
func missing(err error) error {
	if err == nil {
		return nil
	}
	var api *jetstream.APIError
	if errors.As(err, &api) && api.Code == 403 || strings.Contains(err.Error(), "Permissions Violation") || errors.Is(err, nats.ErrPermissionViolation) {
		return fmt.Errorf("it does not exist and these credentials may not create it (start an orchestrator, which creates every resource, first): %w", err)
	}
	return err
}
