package publisher

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mcpreload/mcpreload/events"
	"github.com/mcpreload/mcpreload/internal/bus"
)

// DefaultHistoryLimit is how many sagas History returns by default.
const DefaultHistoryLimit = 20

// HistoryOptions configures History.
type HistoryOptions struct {
	// Module keeps only this module's sagas ("" = all).
	Module string
	// Limit keeps the newest Limit sagas (default DefaultHistoryLimit;
	// negative = all).
	Limit int
}

// historyBatch is how many outcomes one fetch asks for.
const historyBatch = 256

// History returns the outcomes of past sagas from the saga stream (kept
// for bus.DefaultHistory), oldest first, newest last. It reads what is
// stored when it starts and does not wait for more. Errors:
// ErrInvalidRequest for a bad module name, ErrNATS.
func History(ctx context.Context, b *bus.Bus, o HistoryOptions) ([]events.Outcome, error) {
	if o.Module != "" {
		if err := validModule(o.Module); err != nil {
			return nil, err
		}
	}
	if o.Limit == 0 {
		o.Limit = DefaultHistoryLimit
	}
	oc, err := b.JS.OrderedConsumer(ctx, b.Names.SagaStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{b.Subjects.Saga("*", events.LeafOutcome)},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, natsErr(fmt.Errorf("saga history: %w", err))
	}
	out := []events.Outcome{}
	for {
		batch, err := oc.FetchNoWait(historyBatch)
		if err != nil {
			return nil, natsErr(fmt.Errorf("saga history: %w", err))
		}
		n, done := 0, false
		for m := range batch.Messages() {
			n++
			if md, err := m.Metadata(); err == nil && md.NumPending == 0 {
				done = true
			}
			e, err := events.FromNATS(ctx, &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
			if err != nil {
				continue
			}
			got, err := events.DecodeOutcome(e)
			if err != nil || (o.Module != "" && got.Module != o.Module) {
				continue
			}
			out = append(out, *got)
			if o.Limit > 0 && len(out) > o.Limit {
				out = out[1:]
			}
		}
		if err := batch.Error(); err != nil && n == 0 {
			return nil, natsErr(fmt.Errorf("saga history: %w", err))
		}
		if done || n == 0 {
			return out, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}
