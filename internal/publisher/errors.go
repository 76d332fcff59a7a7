package publisher

import (
	"context"
	"errors"

	"github.com/mcpreload/mcpreload/events"
	"github.com/mcpreload/mcpreload/internal/bus"
)

// Sentinel errors. The CLI turns them into exit codes (see ExitCode); API
// callers branch on them with errors.Is.
var (
	// ErrInvalidModule: the module failed the local check (Check), so
	// nothing was uploaded. The error also wraps the *loader.Error with the
	// stage and code.
	ErrInvalidModule = errors.New("invalid module")
	// ErrInvalidRequest: the reload request breaks a payload rule (module
	// name, digest, strategy, timeout, nodes) or the options contradict
	// each other.
	ErrInvalidRequest = errors.New("invalid reload request")
	// ErrNoPrevious: a rollback without a target found no earlier desired
	// digest in the module's desired-state history.
	ErrNoPrevious = errors.New("no previous version")
	// ErrUnknownModule: Status was asked about a module that has no desired
	// version and that no live node serves.
	ErrUnknownModule = errors.New("unknown module")
	// ErrNoOutcome: the saga's outcome did not arrive before the wait ran
	// out. The saga may still finish; History shows it when it does.
	ErrNoOutcome = errors.New("no saga outcome in time")
	// ErrNATS: NATS could not be reached, or JetStream refused or failed a
	// request (JetStream disabled, permissions, timeouts).
	ErrNATS = errors.New("NATS")
)

// Exit codes of mcpreload-publisher.
const (
	ExitOK          = 0   // committed; status consistent; history and nodes done
	ExitFailed      = 1   // the saga did not commit (aborted, rolled_back, failed); status drift
	ExitUsage       = 2   // bad flags or input; the module failed the local check; unknown digest
	ExitTimeout     = 3   // no outcome in time
	ExitNATS        = 4   // NATS unreachable or a JetStream error
	ExitInterrupted = 130 // SIGINT/SIGTERM while waiting; a published saga goes on
)

// ExitCode maps an error returned by this package's API to the CLI's exit
// code: nil is ExitOK. Errors that match no sentinel are treated as NATS
// errors, since talking to NATS is the only other thing the API does.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrInvalidModule), errors.Is(err, ErrInvalidRequest),
		errors.Is(err, ErrNoPrevious), errors.Is(err, ErrUnknownModule), errors.Is(err, bus.ErrNoObject):
		return ExitUsage
	case errors.Is(err, ErrNoOutcome):
		return ExitTimeout
	case errors.Is(err, context.Canceled):
		return ExitInterrupted
	}
	return ExitNATS
}

// ResultExitCode maps a saga result (events.Result*) to an exit code:
// ExitOK for committed, ExitFailed for anything else.
func ResultExitCode(result string) int {
	if result == events.ResultCommitted {
		return ExitOK
	}
	return ExitFailed
}

// natsErr marks err as a NATS/JetStream failure while keeping its chain.
func natsErr(err error) error {
	if err == nil || errors.Is(err, ErrNATS) {
		return err
	}
	return &kindError{kind: ErrNATS, err: err}
}

// kindError adds a sentinel to an error without changing its message.
type kindError struct {
	kind error
	err  error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

// withKind returns err matching kind as well, with its message unchanged.
func withKind(kind, err error) error { return &kindError{kind: kind, err: err} }
