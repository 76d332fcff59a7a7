package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mcpreload/mcpreload/events"
	"github.com/mcpreload/mcpreload/internal/bus"
	"github.com/mcpreload/mcpreload/internal/signing"
)

// RollbackOptions describes a rollback: a reload of an earlier version.
type RollbackOptions struct {
	// Module is the module name. Required.
	Module string
	// To is the digest to go back to; empty means the previous desired
	// digest (see RollbackTarget). It must be in the object store.
	To string
	// Strategy, Nodes, Timeout, Wait, NoWait, ID and Source are as in
	// ReloadOptions.
	Strategy events.Strategy
	Nodes    []string
	Timeout  time.Duration
	Wait     time.Duration
	NoWait   bool
	ID       string
	Source   string
	Signer   *signing.Signer
}

// RollbackTarget returns the module's current fleet-wide desired digest
// ("" if none) and the previous distinct one that was kept, read from the
// desired key's history (the bucket keeps 16 revisions; deletions are
// skipped, and so is a digest a saga's compensation undid). It fails
// with ErrNoPrevious if the history holds no other digest.
func RollbackTarget(ctx context.Context, b *bus.Bus, module string) (current, previous string, err error) {
	if err := validModule(module); err != nil {
		return "", "", err
	}
	d, _, err := b.GetDesired(ctx, module, "")
	if err != nil {
		return "", "", natsErr(err)
	}
	current = d.Digest
	hist, err := b.Desired.History(ctx, module)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return current, "", withKind(ErrNoPrevious, fmt.Errorf("module %s has no desired version yet: nothing to roll back to", module))
	}
	if err != nil {
		return current, "", natsErr(fmt.Errorf("desired history of %s: %w", module, err))
	}
	undone := false // the newer entry undid this one
	for i := len(hist) - 1; i >= 0; i-- {
		e := hist[i]
		if e.Operation() != jetstream.KeyValuePut {
			undone = false
			continue
		}
		var h bus.Desired
		if json.Unmarshal(e.Value(), &h) != nil {
			undone = false
			continue
		}
		skip := undone
		undone = h.Compensation
		if skip || h.Digest == "" || h.Digest == current {
			continue
		}
		return current, h.Digest, nil
	}
	return current, "", withKind(ErrNoPrevious, fmt.Errorf("the desired history of %s holds no version before %s: name one with --to sha256:<hex>",
		module, ShortDigest(current)))
}

// Rollback reloads an earlier version of a module, already in the object
// store, through a normal saga, and follows it like Reload (same result and
// errors; ErrNoPrevious when there is nothing to go back to).
func Rollback(ctx context.Context, b *bus.Bus, o RollbackOptions, progress func(Event)) (*ReloadResult, error) {
	to := o.To
	if to == "" {
		var err error
		if _, to, err = RollbackTarget(ctx, b, o.Module); err != nil {
			return &ReloadResult{Module: o.Module, Strategy: o.Strategy}, err
		}
	}
	return Reload(ctx, b, ReloadOptions{
		Module: o.Module, Digest: to, Strategy: o.Strategy, Nodes: o.Nodes, Timeout: o.Timeout,
		Wait: o.Wait, NoWait: o.NoWait, ID: o.ID, Source: o.Source, Signer: o.Signer,
	}, progress)
}

// validModule checks a module name the way the reload request does.
func validModule(module string) error {
	r := events.ReloadRequest{Module: module, Digest: "sha256:" + zeros64, Strategy: events.StrategyAll}
	if err := r.Validate(); err != nil {
		return withKind(ErrInvalidRequest, err)
	}
	return nil
}

const zeros64 = "0000000000000000000000000000000000000000000000000000000000000000"
