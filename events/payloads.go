package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Strategy says which nodes must commit for a reload to succeed.
type Strategy string

// Reload strategies.
const (
	// StrategyAll commits only if every live node prepares.
	StrategyAll Strategy = "all"
	// StrategyQuorum commits if a majority of live nodes prepares.
	StrategyQuorum Strategy = "quorum"
	// StrategyLocal reloads only the nodes listed in ReloadRequest.Nodes.
	StrategyLocal Strategy = "local"
)

func (s Strategy) valid() bool {
	return s == StrategyAll || s == StrategyQuorum || s == StrategyLocal
}

// Saga phases, as in Ack.Phase and Progress.Phase. Each command type's phase
// is also its subject leaf (see PhaseOf and Subjects.Saga).
const (
	PhasePrepare  = "prepare"  // load and check the new version, keep serving the old
	PhaseCommit   = "commit"   // serve the prepared version
	PhaseAbort    = "abort"    // drop the prepared version
	PhaseRollback = "rollback" // go back to the previous version after a commit
)

// Saga results, as in Outcome.Result.
const (
	ResultCommitted  = "committed"   // the new version is served
	ResultAborted    = "aborted"     // nothing was committed; the old version stays
	ResultRolledBack = "rolled_back" // a partial commit was undone
	// ResultFailed ends a "local" saga in which some named node did not
	// commit (the others keep the new version: local nodes are independent).
	ResultFailed = "failed"
)

// Node states commonly reported in NodeResult.State and Progress.Nodes. The
// field is free-form; these are the values the orchestrator uses.
const (
	NodeCommitted  = "committed"   // serves the new version
	NodePrepared   = "prepared"    // prepared, not (yet) committed
	NodeRejected   = "rejected"    // answered with OK false
	NodeNoAck      = "no_ack"      // did not answer before the deadline
	NodeRolledBack = "rolled_back" // went back to the previous version
	NodeAborted    = "aborted"     // dropped the prepared version
)

// Timeout bounds of a ReloadRequest.
const (
	// DefaultTimeout replaces an absent or zero ReloadRequest.Timeout when
	// the request is decoded.
	DefaultTimeout = 30 * time.Second
	// MaxTimeout is the largest ReloadRequest.Timeout accepted.
	MaxTimeout = time.Hour
)

// Duration is a time.Duration that reads and writes a Go duration string
// in JSON, such as "30s" or "1m30s". JSON null leaves it unchanged.
type Duration time.Duration

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string; numbers and malformed strings are
// errors.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration %s: want a string such as \"30s\"", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// ReloadRequest asks the cluster to serve module at digest. It is the data
// of TypeReloadRequested; the event id becomes the saga id.
type ReloadRequest struct {
	// Module is the module name, [A-Za-z0-9_-]{1,64}. Required.
	Module string `json:"module"`
	// Digest is the version to serve, "sha256:" + 64 lowercase hex. Required.
	Digest string `json:"digest"`
	// Strategy is all, quorum or local. Required.
	Strategy Strategy `json:"strategy"`
	// Timeout bounds the whole saga: 0 < Timeout <= MaxTimeout. Zero or
	// absent means DefaultTimeout, which decoding fills in.
	Timeout Duration `json:"timeout,omitempty"`
	// Nodes lists node ids ([A-Za-z0-9_-]{1,128}, no duplicates). Required
	// (non-empty) for StrategyLocal; for the others it restricts the
	// participants when set.
	Nodes []string `json:"nodes,omitempty"`
	// Signature signs (module, digest, saga id) with Key (base64url ed25519,
	// see internal/signing); nodes started with --trusted-keys refuse unsigned
	// requests.
	Signature string `json:"signature,omitempty"`
	// Key is the nkeys public key Signature was made with.
	Key string `json:"key,omitempty"`
}

// Validate checks r; errors match ErrInvalidPayload.
func (r ReloadRequest) Validate() error {
	if err := r.check(); err != nil {
		return errorf(ErrInvalidPayload, "reload request: %w", err)
	}
	return nil
}

func (r ReloadRequest) check() error {
	if err := checkModule(r.Module); err != nil {
		return err
	}
	if err := checkDigest("digest", r.Digest); err != nil {
		return err
	}
	if !r.Strategy.valid() {
		return fmt.Errorf("strategy %q: want %s, %s or %s", r.Strategy, StrategyAll, StrategyQuorum, StrategyLocal)
	}
	if t := time.Duration(r.Timeout); t < 0 || t > MaxTimeout {
		return fmt.Errorf("timeout %s: want more than 0 and at most %s", t, MaxTimeout)
	}
	if r.Strategy == StrategyLocal && len(r.Nodes) == 0 {
		return fmt.Errorf("strategy %s: nodes must list at least one node", StrategyLocal)
	}
	return checkNodes("nodes", r.Nodes)
}

func (r ReloadRequest) validateFor(string) error { return r.Validate() }

// Command is a saga command from the orchestrator to nodes: the data of
// TypePrepare, TypeCommit, TypeAbort and TypeRollback.
type Command struct {
	// Saga is the saga id (the reload request's event id); see ValidateID.
	Saga string `json:"saga"`
	// Module is the module name.
	Module string `json:"module"`
	// Digest is the version to prepare, commit or abort; for a rollback, the
	// version to go back to. Required except for a rollback, where empty
	// means the node had no previous version and unloads the module.
	Digest string `json:"digest,omitempty"`
	// Targets lists the node ids this command is for (at least one, no
	// duplicates). Other nodes ignore it.
	Targets []string `json:"targets"`
	// Deadline is when the orchestrator stops waiting for acks. Required.
	Deadline time.Time `json:"deadline"`
	// Signature and Key carry the request's signature to the nodes
	// (prepare commands only).
	Signature string `json:"signature,omitempty"`
	Key       string `json:"key,omitempty"`
	// Inline carries the module bytes of a small module (at most
	// MaxInlineBytes) in a prepare command, so nodes need not fetch it from
	// the object store. Nodes check it against Digest like fetched bytes.
	Inline []byte `json:"inline,omitempty"`
}

// MaxInlineBytes is the largest module a prepare command carries inline
// (base64 in JSON: well under MaxEventBytes).
const MaxInlineBytes = 32 << 10

// Validate checks c as a prepare, commit or abort command (Digest
// required); errors match ErrInvalidPayload. Decode and New also accept an
// empty Digest for TypeRollback.
func (c Command) Validate() error { return c.validateFor("") }

func (c Command) validateFor(typ string) error {
	if err := c.check(typ == TypeRollback); err != nil {
		return errorf(ErrInvalidPayload, "command: %w", err)
	}
	return nil
}

func (c Command) check(rollback bool) error {
	if err := checkID(c.Saga); err != nil {
		return fmt.Errorf("saga %q: %w", c.Saga, err)
	}
	if err := checkModule(c.Module); err != nil {
		return err
	}
	if rollback {
		if err := checkOptionalDigest("digest", c.Digest); err != nil {
			return err
		}
	} else if err := checkDigest("digest", c.Digest); err != nil {
		return err
	}
	if len(c.Targets) == 0 {
		return errors.New("targets: must list at least one node")
	}
	if err := checkNodes("targets", c.Targets); err != nil {
		return err
	}
	if c.Deadline.IsZero() {
		return errors.New("deadline: missing")
	}
	return nil
}

// Ack is a node's answer to a Command: the data of TypeAck.
type Ack struct {
	// Saga is the saga id of the command.
	Saga string `json:"saga"`
	// Node is the answering node's id.
	Node string `json:"node"`
	// Module is the module name of the command.
	Module string `json:"module"`
	// Phase is the command's phase: prepare, commit, abort or rollback.
	Phase string `json:"phase"`
	// Digest echoes the command's digest. Required except for a rollback.
	Digest string `json:"digest,omitempty"`
	// OK reports success.
	OK bool `json:"ok"`
	// Stale reports a command for a saga the node does not know or has
	// already finished.
	Stale bool `json:"stale,omitempty"`
	// Stage is the loader stage that failed when not OK, e.g. "abi".
	Stage string `json:"stage,omitempty"`
	// Code is the machine-readable reason when not OK, e.g. "missing_export".
	Code string `json:"code,omitempty"`
	// Message is the human-readable reason when not OK.
	Message string `json:"message,omitempty"`
	// PreviousDigest is the digest the node served before; empty if none.
	PreviousDigest string `json:"previous_digest,omitempty"`
}

// Validate checks a; errors match ErrInvalidPayload.
func (a Ack) Validate() error {
	if err := a.check(); err != nil {
		return errorf(ErrInvalidPayload, "ack: %w", err)
	}
	return nil
}

func (a Ack) check() error {
	if err := checkID(a.Saga); err != nil {
		return fmt.Errorf("saga %q: %w", a.Saga, err)
	}
	if err := checkNode(a.Node); err != nil {
		return err
	}
	if err := checkModule(a.Module); err != nil {
		return err
	}
	switch a.Phase {
	case PhasePrepare, PhaseCommit, PhaseAbort:
		if err := checkDigest("digest", a.Digest); err != nil {
			return err
		}
	case PhaseRollback:
		if err := checkOptionalDigest("digest", a.Digest); err != nil {
			return err
		}
	default:
		return fmt.Errorf("phase %q: want %s, %s, %s or %s", a.Phase, PhasePrepare, PhaseCommit, PhaseAbort, PhaseRollback)
	}
	return checkOptionalDigest("previous_digest", a.PreviousDigest)
}

func (a Ack) validateFor(string) error { return a.Validate() }

// Progress is an informational saga update from the orchestrator: the data
// of TypeSagaProgress.
type Progress struct {
	// Saga is the saga id.
	Saga string `json:"saga"`
	// Module is the module name.
	Module string `json:"module"`
	// Phase is the saga's current phase. Required.
	Phase string `json:"phase"`
	// Message describes the update.
	Message string `json:"message,omitempty"`
	// Nodes maps node id to its state (see the Node* constants).
	Nodes map[string]string `json:"nodes,omitempty"`
}

// Validate checks p; errors match ErrInvalidPayload.
func (p Progress) Validate() error {
	if err := p.check(); err != nil {
		return errorf(ErrInvalidPayload, "progress: %w", err)
	}
	return nil
}

func (p Progress) check() error {
	if err := checkID(p.Saga); err != nil {
		return fmt.Errorf("saga %q: %w", p.Saga, err)
	}
	if err := checkModule(p.Module); err != nil {
		return err
	}
	if p.Phase == "" {
		return errors.New("phase: missing")
	}
	for n := range p.Nodes {
		if err := checkNode(n); err != nil {
			return fmt.Errorf("nodes: %w", err)
		}
	}
	return nil
}

func (p Progress) validateFor(string) error { return p.Validate() }

// NodeResult is one node's final state in an Outcome.
type NodeResult struct {
	// Node is the node id.
	Node string `json:"node"`
	// State is the node's final state (see the Node* constants). Required.
	State string `json:"state"`
	// Stage is the loader stage that failed, if any.
	Stage string `json:"stage,omitempty"`
	// Code is the machine-readable failure reason, if any.
	Code string `json:"code,omitempty"`
	// Message is the human-readable failure reason, if any.
	Message string `json:"message,omitempty"`
}

// Outcome ends a saga: the data of TypeSagaCompleted (Result committed) and
// TypeSagaFailed (Result aborted or rolled_back).
type Outcome struct {
	// Saga is the saga id.
	Saga string `json:"saga"`
	// Module is the module name.
	Module string `json:"module"`
	// Digest is the version the saga tried to install.
	Digest string `json:"digest"`
	// PreviousDigest is the version served before; empty if none.
	PreviousDigest string `json:"previous_digest,omitempty"`
	// Strategy is the request's strategy.
	Strategy Strategy `json:"strategy"`
	// Result is committed, aborted or rolled_back.
	Result string `json:"result"`
	// Reason explains a failure.
	Reason string `json:"reason,omitempty"`
	// Nodes lists each participant's final state (node ids unique).
	Nodes []NodeResult `json:"nodes,omitempty"`
	// StartedAt is when the saga started. Required.
	StartedAt time.Time `json:"started_at"`
	// FinishedAt is when it ended, not before StartedAt. Required.
	FinishedAt time.Time `json:"finished_at"`
}

// Validate checks o; errors match ErrInvalidPayload. Decode and New also
// require Result committed for TypeSagaCompleted and another result for
// TypeSagaFailed.
func (o Outcome) Validate() error { return o.validateFor("") }

func (o Outcome) validateFor(typ string) error {
	if err := o.check(typ); err != nil {
		return errorf(ErrInvalidPayload, "outcome: %w", err)
	}
	return nil
}

func (o Outcome) check(typ string) error {
	if err := checkID(o.Saga); err != nil {
		return fmt.Errorf("saga %q: %w", o.Saga, err)
	}
	if err := checkModule(o.Module); err != nil {
		return err
	}
	// A request refused before it became a saga may have no usable digest.
	if err := checkDigest("digest", o.Digest); err != nil && (o.Digest != "" || o.Result != ResultAborted) {
		return err
	}
	if err := checkOptionalDigest("previous_digest", o.PreviousDigest); err != nil {
		return err
	}
	if !o.Strategy.valid() {
		return fmt.Errorf("strategy %q: want %s, %s or %s", o.Strategy, StrategyAll, StrategyQuorum, StrategyLocal)
	}
	switch o.Result {
	case ResultCommitted, ResultAborted, ResultRolledBack, ResultFailed:
	default:
		return fmt.Errorf("result %q: want %s, %s, %s or %s", o.Result, ResultCommitted, ResultAborted, ResultRolledBack, ResultFailed)
	}
	if typ == TypeSagaCompleted && o.Result != ResultCommitted {
		return fmt.Errorf("result %q: a completed saga must be %s", o.Result, ResultCommitted)
	}
	if typ == TypeSagaFailed && o.Result == ResultCommitted {
		return fmt.Errorf("result %q: a failed saga must be %s, %s or %s", o.Result, ResultAborted, ResultRolledBack, ResultFailed)
	}
	seen := make(map[string]bool, len(o.Nodes))
	for _, n := range o.Nodes {
		if err := checkNode(n.Node); err != nil {
			return fmt.Errorf("nodes: %w", err)
		}
		if seen[n.Node] {
			return fmt.Errorf("nodes: node %q listed twice", n.Node)
		}
		seen[n.Node] = true
		if n.State == "" {
			return fmt.Errorf("nodes: node %q: state missing", n.Node)
		}
	}
	if o.StartedAt.IsZero() || o.FinishedAt.IsZero() {
		return errors.New("started_at and finished_at: required")
	}
	if o.FinishedAt.Before(o.StartedAt) {
		return fmt.Errorf("finished_at %s is before started_at %s", o.FinishedAt.Format(time.RFC3339Nano), o.StartedAt.Format(time.RFC3339Nano))
	}
	return nil
}
