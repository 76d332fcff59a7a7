package events

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error this package returns matches exactly one of
// them with errors.Is; its message says what was wrong, e.g.
// "events: ce-id: missing required attribute".
var (
	// ErrNotCloudEvent means a NATS message is neither a structured-mode
	// CloudEvent (Content-Type application/cloudevents...) nor a binary-mode
	// one (a ce-specversion header).
	ErrNotCloudEvent = errors.New("events: not a CloudEvent")

	// ErrMalformed means a CloudEvent is broken: bad header encoding, bad
	// JSON, a missing or invalid required attribute, an unsupported spec
	// version or event format, or an event id that cannot be a subject token.
	ErrMalformed = errors.New("events: malformed event")

	// ErrUnknownType means the event type is not one of the Type* constants,
	// or not the type a typed decoder expects.
	ErrUnknownType = errors.New("events: unknown event type")

	// ErrTooLarge means a message is, or would be, larger than MaxEventBytes.
	ErrTooLarge = errors.New("events: event too large")

	// ErrInvalidPayload means the event data decoded but breaks a payload
	// rule: a bad digest, module name, strategy, timeout, node id and so on.
	ErrInvalidPayload = errors.New("events: invalid payload")
)

// eventError reads "events: <detail>" and matches its kind (one of the
// sentinels) and its cause with errors.Is and errors.As.
type eventError struct {
	kind   error
	detail error
}

func (e *eventError) Error() string   { return "events: " + e.detail.Error() }
func (e *eventError) Unwrap() []error { return []error{e.kind, e.detail} }

// errorf returns an error of the given kind whose message is "events: " and
// the formatted detail. %w verbs in format keep their operands matchable.
func errorf(kind error, format string, args ...any) error {
	return &eventError{kind: kind, detail: fmt.Errorf(format, args...)}
}

// isKind reports whether err already carries one of the package sentinels,
// so it can be returned unchanged instead of being wrapped twice.
func isKind(err error) bool {
	for _, k := range []error{ErrNotCloudEvent, ErrMalformed, ErrUnknownType, ErrTooLarge, ErrInvalidPayload} {
		if errors.Is(err, k) {
			return true
		}
	}
	return false
}
