package publisher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mcpreload/mcpreload/events"
	"github.com/mcpreload/mcpreload/internal/bus"
	"github.com/mcpreload/mcpreload/internal/signing"
	"github.com/mcpreload/mcpreload/loader"
)

// DefaultSource is the CloudEvents source of the requests the publisher
// publishes.
const DefaultSource = "urn:mcpreload:publisher"

// WaitFor is how long Reload waits for the outcome of a saga with the given
// per-phase timeout: the prepare, commit and rollback phases may each take
// the full timeout, plus 10s for the orchestrator to pick the request up
// and publish the outcome.
func WaitFor(timeout time.Duration) time.Duration { return 3*timeout + 10*time.Second }

// ReloadOptions describes one reload. The zero values of optional fields
// take the defaults named on them.
type ReloadOptions struct {
	// Module is the module name, [A-Za-z0-9_-]{1,64}. Required.
	Module string
	// Wasm is the module's bytes: they are checked (unless SkipCheck),
	// uploaded unless already stored, and reloaded. Nil reloads Digest,
	// which must already be in the object store.
	Wasm []byte
	// Digest is, without Wasm, the stored version to reload (required);
	// with Wasm, if set, what the bytes must hash to.
	Digest string
	// Strategy is all (default), quorum or local.
	Strategy events.Strategy
	// Nodes restricts the participants (required for local).
	Nodes []string
	// Timeout bounds each saga phase (default events.DefaultTimeout, at
	// most events.MaxTimeout).
	Timeout time.Duration
	// Wait bounds the wait for the outcome (default WaitFor(Timeout)).
	Wait time.Duration
	// NoWait returns once the request is published.
	NoWait bool
	// ID is the saga id (default a fresh UUID); it must pass
	// events.ValidateID. Publishing the same id twice within the request
	// stream's duplicate window starts one saga.
	ID string
	// Source is the CloudEvents source (default DefaultSource).
	Source string
	// Signer, if set, signs the request (module, digest, saga id) for
	// nodes started with --trusted-keys.
	Signer *signing.Signer
	// Check configures the local check of Wasm.
	Check CheckOptions
	// SkipCheck skips the local check, for callers that ran Check already.
	SkipCheck bool
}

func (o ReloadOptions) withDefaults() ReloadOptions {
	if o.Strategy == "" {
		o.Strategy = events.StrategyAll
	}
	if o.Timeout == 0 {
		o.Timeout = events.DefaultTimeout
	}
	if o.Wait <= 0 {
		o.Wait = WaitFor(o.Timeout)
	}
	if o.Source == "" {
		o.Source = DefaultSource
	}
	if o.Wasm != nil && o.Digest == "" {
		o.Digest = loader.DigestOf(o.Wasm)
	}
	return o
}

// Request returns the reload request o describes, validated; errors match
// ErrInvalidRequest.
func (o ReloadOptions) Request() (events.ReloadRequest, error) {
	o = o.withDefaults()
	if o.Wasm != nil {
		if got := loader.DigestOf(o.Wasm); got != o.Digest {
			return events.ReloadRequest{}, withKind(ErrInvalidRequest,
				fmt.Errorf("the module bytes hash to %s, not to the digest given (%s)", got, o.Digest))
		}
	}
	r := events.ReloadRequest{Module: o.Module, Digest: o.Digest, Strategy: o.Strategy,
		Timeout: events.Duration(o.Timeout), Nodes: o.Nodes}
	if len(r.Nodes) == 0 {
		r.Nodes = nil
	}
	if err := r.Validate(); err != nil {
		return r, withKind(ErrInvalidRequest, err)
	}
	if o.ID != "" {
		if err := events.ValidateID(o.ID); err != nil {
			return r, withKind(ErrInvalidRequest, err)
		}
	}
	return r, nil
}

// Check validates o without touching NATS: the request (see Request) and,
// with Wasm, the module itself (see CheckModule). It returns the module's
// description, or nil without Wasm.
func Check(ctx context.Context, o ReloadOptions) (*loader.VersionInfo, error) {
	if _, err := o.Request(); err != nil {
		return nil, err
	}
	if o.Wasm == nil {
		return nil, nil
	}
	return CheckModule(ctx, o.Module, o.Wasm, o.Check)
}

// ReloadResult is what Reload did.
type ReloadResult struct {
	Saga     string
	Module   string
	Digest   string
	Strategy events.Strategy
	// Uploaded reports that the bytes were sent to the object store (false:
	// already stored, or a reload of a stored digest).
	Uploaded bool
	// Published reports that the request is on the request stream.
	Published bool
	// Info describes the module, from the local check (nil if skipped).
	Info *loader.VersionInfo
	// Outcome is the saga's outcome; nil with NoWait or on error.
	Outcome *events.Outcome
}

// Reload checks, uploads and reloads a module fleet-wide, and follows the
// saga until its outcome: the Go form of `mcpreload-publisher reload`.
// progress, if not nil, is called with each step as it happens (see
// Event), on the calling goroutine.
//
// A non-committed outcome is not an error: inspect Outcome.Result (or
// ResultExitCode). Errors: ErrInvalidRequest, ErrInvalidModule (nothing was
// uploaded), bus.ErrNoObject (Digest not stored), ErrNoOutcome (the wait ran
// out; the saga may still finish), ErrNATS, or ctx's error. The result is
// never nil: on error it holds what was done, e.g. the saga id once
// published.
func Reload(ctx context.Context, b *bus.Bus, o ReloadOptions, progress func(Event)) (*ReloadResult, error) {
	o = o.withDefaults()
	if progress == nil {
		progress = func(Event) {}
	}
	res := &ReloadResult{Module: o.Module, Digest: o.Digest, Strategy: o.Strategy}
	req, err := o.Request()
	if err != nil {
		return res, err
	}
	if o.Wasm != nil && !o.SkipCheck {
		if res.Info, err = CheckModule(ctx, o.Module, o.Wasm, o.Check); err != nil {
			return res, err
		}
		progress(Event{Kind: EventChecked, Time: time.Now(), Module: o.Module, Digest: o.Digest, Info: res.Info})
	}
	if o.Wasm != nil {
		_, existed, err := b.PutModule(ctx, o.Wasm)
		if err != nil {
			return res, natsErr(err)
		}
		res.Uploaded = !existed
		progress(Event{Kind: EventUploaded, Time: time.Now(), Module: o.Module, Digest: o.Digest, Size: len(o.Wasm), Existed: existed})
	} else if err := Stored(ctx, b, o.Digest); err != nil {
		return res, err
	}
	id := o.ID
	if id == "" {
		id = uuid.NewString()
	}
	if o.Signer != nil {
		if req.Signature, req.Key, err = o.Signer.Sign(req.Module, req.Digest, id); err != nil {
			return res, withKind(ErrInvalidRequest, fmt.Errorf("sign the request: %w", err))
		}
	}
	if err := Publish(ctx, b, req, id, o.Source); err != nil {
		return res, err
	}
	res.Saga, res.Published = id, true
	progress(Event{Kind: EventPublished, Time: time.Now(), Saga: id, Module: o.Module, Digest: o.Digest, Request: &req})
	if o.NoWait {
		return res, nil
	}
	wctx, cancel := context.WithTimeout(ctx, o.Wait)
	defer cancel()
	out, err := Follow(wctx, b, id, progress)
	if errors.Is(err, ErrNoOutcome) {
		return res, withKind(ErrNoOutcome, fmt.Errorf("no outcome for saga %s within %s: is an orchestrator running "+
			"(a node with --orchestrator)? The saga may still finish: see `mcpreload-publisher history --module %s`", id, o.Wait, o.Module))
	}
	if err != nil {
		return res, err
	}
	res.Outcome = out
	return res, nil
}

// Stored checks that the module with digest is in the object store; the
// error matches bus.ErrNoObject when it is not, ErrNATS when the store
// cannot be read.
func Stored(ctx context.Context, b *bus.Bus, digest string) error {
	info, err := b.Modules.GetInfo(ctx, digest)
	if errors.Is(err, jetstream.ErrObjectNotFound) || (err == nil && info.Deleted) {
		return fmt.Errorf("%w: %s (upload it with `mcpreload-publisher reload --wasm FILE`)", bus.ErrNoObject, digest)
	}
	if err != nil {
		return natsErr(fmt.Errorf("object %s: %w", digest, err))
	}
	return nil
}

// Publish publishes req as a CloudEvent of type
// events.TypeReloadRequested with id (which becomes the saga id) on the
// module's request subject, with JetStream: the request is stored before
// Publish returns, and Nats-Msg-Id = id makes a retried publish a no-op.
// Errors match ErrInvalidRequest or ErrNATS.
func Publish(ctx context.Context, b *bus.Bus, req events.ReloadRequest, id, source string) error {
	if source == "" {
		source = DefaultSource
	}
	e, err := events.New(events.TypeReloadRequested, source, req.Module, req, events.WithID(id))
	if err != nil {
		return withKind(ErrInvalidRequest, err)
	}
	m, err := events.ToNATS(ctx, b.Subjects.ReloadRequest(req.Module), e)
	if err != nil {
		return withKind(ErrInvalidRequest, err)
	}
	if _, err := b.JS.PublishMsg(ctx, m); err != nil {
		return natsErr(jetStreamHint(fmt.Errorf("publish the reload request: %w", err)))
	}
	return nil
}
