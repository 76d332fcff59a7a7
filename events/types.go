package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
)

// Event types. The data of each is the Go struct named in its comment,
// encoded as application/json.
const (
	// TypeReloadRequested asks for a reload: ReloadRequest.
	TypeReloadRequested = "io.mcpreload.reload.requested.v1"
	// TypePrepare tells nodes to load and check a version: Command.
	TypePrepare = "io.mcpreload.saga.prepare.v1"
	// TypeCommit tells nodes to serve the prepared version: Command.
	TypeCommit = "io.mcpreload.saga.commit.v1"
	// TypeAbort tells nodes to drop the prepared version: Command.
	TypeAbort = "io.mcpreload.saga.abort.v1"
	// TypeRollback tells nodes to go back to a previous version: Command.
	TypeRollback = "io.mcpreload.saga.rollback.v1"
	// TypeAck answers a command: Ack.
	TypeAck = "io.mcpreload.saga.ack.v1"
	// TypeSagaProgress reports saga progress: Progress.
	TypeSagaProgress = "io.mcpreload.saga.progress.v1"
	// TypeSagaCompleted ends a committed saga: Outcome.
	TypeSagaCompleted = "io.mcpreload.saga.completed.v1"
	// TypeSagaFailed ends an aborted or rolled back saga: Outcome.
	TypeSagaFailed = "io.mcpreload.saga.failed.v1"
)

// payload is implemented by every data struct.
type payload interface {
	Validate() error
	validateFor(typ string) error
}

// payloadTypes maps each event type to its data struct.
var payloadTypes = map[string]reflect.Type{
	TypeReloadRequested: reflect.TypeFor[ReloadRequest](),
	TypePrepare:         reflect.TypeFor[Command](),
	TypeCommit:          reflect.TypeFor[Command](),
	TypeAbort:           reflect.TypeFor[Command](),
	TypeRollback:        reflect.TypeFor[Command](),
	TypeAck:             reflect.TypeFor[Ack](),
	TypeSagaProgress:    reflect.TypeFor[Progress](),
	TypeSagaCompleted:   reflect.TypeFor[Outcome](),
	TypeSagaFailed:      reflect.TypeFor[Outcome](),
}

// PhaseOf returns the saga phase of a command type (TypePrepare gives
// PhasePrepare, and so on) and false for any other type.
func PhaseOf(typ string) (string, bool) {
	switch typ {
	case TypePrepare:
		return PhasePrepare, true
	case TypeCommit:
		return PhaseCommit, true
	case TypeAbort:
		return PhaseAbort, true
	case TypeRollback:
		return PhaseRollback, true
	}
	return "", false
}

// Option adjusts an event built by New.
type Option func(*options)

type options struct {
	id string
	t  time.Time
}

// WithID sets the event id instead of a fresh UUIDv4. It must pass
// ValidateID.
func WithID(id string) Option { return func(o *options) { o.id = id } }

// WithTime sets the event time instead of time.Now(). A zero t omits it.
func WithTime(t time.Time) Option { return func(o *options) { o.t = t } }

// New builds a CloudEvents 1.0 event of type typ from source with optional
// subject (empty means none). payload must be the struct (or pointer to it)
// the type documents; it is validated and becomes JSON data with
// datacontenttype application/json. The id is a UUIDv4 and the time is now,
// unless WithID or WithTime say otherwise.
//
// Errors: ErrUnknownType for a type outside the Type* constants,
// ErrInvalidPayload for a wrong or invalid payload, ErrMalformed for an id
// that fails ValidateID or a missing source.
func New(typ, source, subject string, payload any, opts ...Option) (event.Event, error) {
	o := options{t: time.Now()}
	for _, opt := range opts {
		opt(&o)
	}
	if o.id == "" {
		o.id = uuid.NewString()
	}
	p, err := asPayload(typ, payload)
	if err != nil {
		return event.Event{}, err
	}
	if err := p.validateFor(typ); err != nil {
		return event.Event{}, err
	}
	if err := ValidateID(o.id); err != nil {
		return event.Event{}, err
	}
	e := event.New()
	e.SetID(o.id)
	e.SetType(typ)
	e.SetSource(source)
	if subject != "" {
		e.SetSubject(subject)
	}
	if !o.t.IsZero() {
		e.SetTime(o.t)
	}
	if err := e.SetData(event.ApplicationJSON, p); err != nil {
		return event.Event{}, errorf(ErrInvalidPayload, "encode %T: %w", p, err)
	}
	if err := validateEvent(&e, ""); err != nil {
		return event.Event{}, err
	}
	return e, nil
}

// asPayload checks that v is the data struct of typ (or a non-nil pointer to
// it).
func asPayload(typ string, v any) (payload, error) {
	want, ok := payloadTypes[typ]
	if !ok {
		return nil, errorf(ErrUnknownType, "type %q: not an mcpreload event type", typ)
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer && !rv.IsNil() {
		rv = rv.Elem()
	}
	if !rv.IsValid() || rv.Type() != want {
		return nil, errorf(ErrInvalidPayload, "type %s wants events.%s data, got %T", typ, want.Name(), v)
	}
	return rv.Interface().(payload), nil
}

// Decode returns the data of e as a pointer to the struct its type documents
// (*ReloadRequest, *Command, *Ack, *Progress or *Outcome), validated.
// Unknown JSON fields are ignored so newer producers can add fields; a
// missing required field fails validation. A ReloadRequest gets
// DefaultTimeout when its timeout is absent, and its event id must pass
// ValidateID because it becomes the saga id.
//
// Errors: ErrUnknownType for a type outside the Type* constants;
// ErrMalformed for an invalid event, a datacontenttype other than
// application/json, missing data or data that is not JSON of the right
// shape; ErrInvalidPayload when the data breaks a payload rule.
func Decode(e *event.Event) (any, error) {
	if e == nil {
		return nil, errorf(ErrMalformed, "nil event")
	}
	want, ok := payloadTypes[e.Type()]
	if !ok {
		return nil, errorf(ErrUnknownType, "type %q: not an mcpreload event type", e.Type())
	}
	if err := validateEvent(e, ""); err != nil {
		return nil, err
	}
	if mt := e.DataMediaType(); mt != "" && !strings.EqualFold(mt, event.ApplicationJSON) {
		return nil, errorf(ErrMalformed, "datacontenttype %q: want %s", e.DataContentType(), event.ApplicationJSON)
	}
	if len(e.Data()) == 0 {
		return nil, errorf(ErrMalformed, "data: missing %s payload", want.Name())
	}
	ptr := reflect.New(want)
	if err := json.Unmarshal(e.Data(), ptr.Interface()); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		if errors.As(err, &syn) || errors.As(err, &typ) {
			return nil, errorf(ErrMalformed, "data: bad JSON for %s: %w", want.Name(), err)
		}
		return nil, errorf(ErrInvalidPayload, "data: %s: %w", want.Name(), err)
	}
	if r, ok := ptr.Interface().(*ReloadRequest); ok {
		if err := ValidateID(e.ID()); err != nil {
			return nil, err
		}
		if r.Timeout == 0 {
			r.Timeout = Duration(DefaultTimeout)
		}
		if len(r.Nodes) == 0 {
			r.Nodes = nil // "nodes":[] means the same as no nodes
		}
	}
	if err := ptr.Elem().Interface().(payload).validateFor(e.Type()); err != nil {
		return nil, err
	}
	return ptr.Interface(), nil
}

// decodeAs decodes e, whose type must be one of types, into *T.
func decodeAs[T any](e *event.Event, what string, types ...string) (*T, error) {
	if e == nil {
		return nil, errorf(ErrMalformed, "nil event")
	}
	found := false
	for _, t := range types {
		found = found || e.Type() == t
	}
	if !found {
		return nil, errorf(ErrUnknownType, "type %q: not %s (want %s)", e.Type(), what, strings.Join(types, " or "))
	}
	v, err := Decode(e)
	if err != nil {
		return nil, err
	}
	p, ok := v.(*T)
	if !ok {
		return nil, fmt.Errorf("events: internal error: %s decoded as %T", e.Type(), v)
	}
	return p, nil
}

// DecodeReloadRequest decodes a TypeReloadRequested event like Decode; any
// other type is ErrUnknownType.
func DecodeReloadRequest(e *event.Event) (*ReloadRequest, error) {
	return decodeAs[ReloadRequest](e, "a reload request", TypeReloadRequested)
}

// DecodeCommand decodes a TypePrepare, TypeCommit, TypeAbort or
// TypeRollback event like Decode; any other type is ErrUnknownType. PhaseOf
// gives the command's phase from e.Type().
func DecodeCommand(e *event.Event) (*Command, error) {
	return decodeAs[Command](e, "a saga command", TypePrepare, TypeCommit, TypeAbort, TypeRollback)
}

// DecodeAck decodes a TypeAck event like Decode; any other type is
// ErrUnknownType.
func DecodeAck(e *event.Event) (*Ack, error) {
	return decodeAs[Ack](e, "an ack", TypeAck)
}

// DecodeProgress decodes a TypeSagaProgress event like Decode; any other
// type is ErrUnknownType.
func DecodeProgress(e *event.Event) (*Progress, error) {
	return decodeAs[Progress](e, "a saga progress event", TypeSagaProgress)
}

// DecodeOutcome decodes a TypeSagaCompleted or TypeSagaFailed event like
// Decode; any other type is ErrUnknownType.
func DecodeOutcome(e *event.Event) (*Outcome, error) {
	return decodeAs[Outcome](e, "a saga outcome", TypeSagaCompleted, TypeSagaFailed)
}
