package events

import (
	"fmt"
	"strings"
)

// DefaultPrefix is the subject prefix when Subjects.Prefix is empty.
const DefaultPrefix = "mcpreload"

// Saga subject leaves: the last part of "<prefix>.saga.<id>.<leaf>". Command
// leaves equal their phase names; acks use AckLeaf.
const (
	LeafPrepare  = PhasePrepare  // TypePrepare commands
	LeafCommit   = PhaseCommit   // TypeCommit commands
	LeafAbort    = PhaseAbort    // TypeAbort commands
	LeafRollback = PhaseRollback // TypeRollback commands
	LeafProgress = "progress"    // TypeSagaProgress events
	LeafOutcome  = "outcome"     // TypeSagaCompleted and TypeSagaFailed events
	// leafAck starts the ack leaf "ack.<node>".
	leafAck = "ack"
)

// AckLeaf returns the leaf a node's acks are published under: "ack.<node>".
func AckLeaf(node string) string { return leafAck + "." + node }

// Subjects names the NATS subjects of mcpreload. The zero value uses
// DefaultPrefix. Methods do not validate their arguments: pass module names,
// saga ids and node ids that passed payload validation and ValidateID.
// Subjects is a value type, safe for concurrent use.
type Subjects struct {
	// Prefix is one or more tokens of [A-Za-z0-9_-]+ separated by dots;
	// empty means DefaultPrefix.
	Prefix string
}

func (s Subjects) prefix() string {
	if s.Prefix == "" {
		return DefaultPrefix
	}
	return s.Prefix
}

// Validate checks Prefix.
func (s Subjects) Validate() error {
	for _, tok := range strings.Split(s.prefix(), ".") {
		if err := checkToken(tok, 255); err != nil {
			return fmt.Errorf("events: subject prefix %q: token %q: %w", s.Prefix, tok, err)
		}
	}
	return nil
}

// ReloadRequest returns "<prefix>.reload.request.<module>".
func (s Subjects) ReloadRequest(module string) string {
	return s.prefix() + ".reload.request." + module
}

// ReloadRequestAll returns "<prefix>.reload.request.*", matching every
// module's reload requests.
func (s Subjects) ReloadRequestAll() string { return s.ReloadRequest("*") }

// Saga returns "<prefix>.saga.<id>.<leaf>". leaf is one of the Leaf*
// constants or AckLeaf(node).
func (s Subjects) Saga(id, leaf string) string {
	return s.prefix() + ".saga." + id + "." + leaf
}

// SagaAll returns "<prefix>.saga.<id>.>", matching every subject of a saga.
func (s Subjects) SagaAll(id string) string { return s.Saga(id, ">") }

// SagaWildcard returns "<prefix>.saga.>", matching every saga subject.
func (s Subjects) SagaWildcard() string { return s.prefix() + ".saga.>" }

// ParseSaga splits a saga subject into its saga id and leaf. ok is false
// unless the subject has this prefix, the id passes ValidateID and the leaf
// is a Leaf* constant or "ack.<node>" with a valid node id.
func (s Subjects) ParseSaga(subject string) (id, leaf string, ok bool) {
	rest, found := strings.CutPrefix(subject, s.prefix()+".saga.")
	if !found {
		return "", "", false
	}
	id, leaf, found = strings.Cut(rest, ".")
	if !found || checkID(id) != nil {
		return "", "", false
	}
	switch leaf {
	case LeafPrepare, LeafCommit, LeafAbort, LeafRollback, LeafProgress, LeafOutcome:
		return id, leaf, true
	}
	if node, isAck := strings.CutPrefix(leaf, leafAck+"."); isAck && checkNode(node) == nil {
		return id, leaf, true
	}
	return "", "", false
}
