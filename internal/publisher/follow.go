package publisher

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mcpreload/mcpreload/events"
	"github.com/mcpreload/mcpreload/internal/bus"
	"github.com/mcpreload/mcpreload/loader"
)

// EventKind says what an Event reports.
type EventKind string

// Event kinds, in the order a reload produces them.
const (
	EventChecked   EventKind = "checked"   // the module passed the local check: Info
	EventUploaded  EventKind = "uploaded"  // the module is in the object store: Digest, Size, Existed
	EventPublished EventKind = "published" // the reload request is on the request stream: Request
	EventProgress  EventKind = "progress"  // the orchestrator reported progress: Progress
	EventAck       EventKind = "ack"       // a node answered a saga command: Ack
	EventOutcome   EventKind = "outcome"   // the saga ended: Outcome
)

// Event is one step of a reload, reported to the progress callback of
// Reload, Rollback and Follow as it happens. Only the fields its Kind names
// are set.
type Event struct {
	Kind EventKind
	// Time is the event's CloudEvents time for saga events, else when the
	// publisher took the step.
	Time   time.Time
	Saga   string
	Module string
	Digest string

	Info     *loader.VersionInfo   // EventChecked
	Size     int                   // EventUploaded: bytes
	Existed  bool                  // EventUploaded: already stored, nothing was sent
	Request  *events.ReloadRequest // EventPublished
	Progress *events.Progress      // EventProgress
	Ack      *events.Ack           // EventAck
	Outcome  *events.Outcome       // EventOutcome
}

// String is the event as one line for a terminal, e.g. "n1 prepared" or
// "n2 rejected: abi/missing_export: ...".
func (e Event) String() string {
	switch e.Kind {
	case EventChecked:
		if e.Info == nil {
			return "checked " + e.Module
		}
		names := make([]string, len(e.Info.Tools))
		for i, t := range e.Info.Tools {
			names[i] = t.Name
		}
		return fmt.Sprintf("checked %s %s locally: %d tool(s) (%s), %d bytes", e.Module, e.Info.Version,
			len(names), strings.Join(names, ", "), e.Info.Size)
	case EventUploaded:
		if e.Existed {
			return fmt.Sprintf("already stored %s", e.Digest)
		}
		return fmt.Sprintf("uploaded %s (%d bytes)", e.Digest, e.Size)
	case EventPublished:
		s := fmt.Sprintf("published saga %s: %s %s", e.Saga, e.Module, ShortDigest(e.Digest))
		if r := e.Request; r != nil {
			s += fmt.Sprintf(", strategy %s, timeout %s", r.Strategy, r.Timeout)
			if len(r.Nodes) > 0 {
				s += ", nodes " + strings.Join(r.Nodes, ",")
			}
		}
		return s
	case EventProgress:
		if p := e.Progress; p != nil {
			return fmt.Sprintf("[%s] %s", p.Phase, p.Message)
		}
	case EventAck:
		if a := e.Ack; a != nil {
			return ackLine(a)
		}
	case EventOutcome:
		if o := e.Outcome; o != nil {
			if o.Reason == "" {
				return "outcome: " + o.Result
			}
			return "outcome: " + o.Result + ": " + o.Reason
		}
	}
	return string(e.Kind)
}

func ackLine(a *events.Ack) string {
	var s string
	if a.OK {
		switch a.Phase {
		case events.PhasePrepare:
			s = a.Node + " prepared"
		case events.PhaseCommit:
			s = a.Node + " committed"
		case events.PhaseAbort:
			s = a.Node + " aborted"
		case events.PhaseRollback:
			s = a.Node + " rolled back"
			if a.Digest != "" {
				s += " to " + ShortDigest(a.Digest)
			} else {
				s += " (module unloaded)"
			}
		default:
			s = a.Node + " " + a.Phase + " ok"
		}
	} else {
		verb := a.Phase + " failed"
		if a.Phase == events.PhasePrepare {
			verb = "rejected"
		}
		s = a.Node + " " + verb + ": " + failure(a.Stage, a.Code, a.Message)
	}
	if a.Stale {
		s += " (stale command)"
	}
	return s
}

// failure formats a node's failure as "stage/code: message".
func failure(stage, code, msg string) string {
	var sc string
	switch {
	case stage != "" && code != "":
		sc = stage + "/" + code
	default:
		sc = stage + code
	}
	switch {
	case sc == "":
		return msg
	case msg == "":
		return sc
	}
	return sc + ": " + msg
}

// ShortDigest shortens "sha256:<64 hex>" to "sha256:<12 hex>" for tables;
// other strings are returned unchanged.
func ShortDigest(d string) string {
	if h, ok := strings.CutPrefix(d, "sha256:"); ok && len(h) > 12 {
		return "sha256:" + h[:12]
	}
	return d
}

// Follow reads saga id's events from the saga stream, from the first one
// on (so it cannot miss events published before it started), passes
// progress events and node acks to progress (if not nil) as they arrive,
// and returns the outcome. Commands and malformed messages are skipped.
//
// It waits until ctx ends: a deadline gives an error matching ErrNoOutcome,
// a cancellation ctx.Err(); NATS failures match ErrNATS.
func Follow(ctx context.Context, b *bus.Bus, id string, progress func(Event)) (*events.Outcome, error) {
	if err := events.ValidateID(id); err != nil {
		return nil, withKind(ErrInvalidRequest, err)
	}
	// Only what is shown: commands are not read (at a thousand nodes they
	// are most of the saga's bytes), and without a progress callback only
	// the outcome is.
	subjects := []string{b.Subjects.Saga(id, events.LeafOutcome)}
	if progress != nil {
		subjects = append(subjects, b.Subjects.Saga(id, events.LeafProgress), b.Subjects.Saga(id, "ack.>"))
	} else {
		progress = func(Event) {}
	}
	oc, err := b.JS.OrderedConsumer(ctx, b.Names.SagaStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: subjects,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, followErr(ctx, id, err)
	}
	// One pull request for many messages, not one per message.
	it, err := oc.Messages(jetstream.PullMaxMessages(256))
	if err != nil {
		return nil, followErr(ctx, id, err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || expired(ctx) {
				return nil, followErr(ctx, id, ctx.Err())
			}
			return nil, followErr(ctx, id, err)
		}
		_, leaf, ok := b.Subjects.ParseSaga(m.Subject())
		if !ok {
			continue
		}
		e, err := events.FromNATS(ctx, &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
		if err != nil {
			continue
		}
		ev := Event{Time: e.Time(), Saga: id}
		switch {
		case leaf == events.LeafProgress:
			p, err := events.DecodeProgress(e)
			if err != nil {
				continue
			}
			ev.Kind, ev.Module, ev.Progress = EventProgress, p.Module, p
		case strings.HasPrefix(leaf, "ack."):
			a, err := events.DecodeAck(e)
			if err != nil || leaf != events.AckLeaf(a.Node) {
				continue
			}
			ev.Kind, ev.Module, ev.Digest, ev.Ack = EventAck, a.Module, a.Digest, a
		case leaf == events.LeafOutcome:
			o, err := events.DecodeOutcome(e)
			if err != nil || o.Saga != id {
				continue
			}
			ev.Kind, ev.Module, ev.Digest, ev.Outcome = EventOutcome, o.Module, o.Digest, o
			progress(ev)
			return o, nil
		default:
			continue // commands
		}
		progress(ev)
	}
}

// expired reports whether ctx's deadline has passed, even if ctx.Err() does
// not say so yet (jetstream checks the deadline itself).
func expired(ctx context.Context) bool {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

func followErr(ctx context.Context, id string, err error) error {
	switch {
	case expired(ctx):
		return withKind(ErrNoOutcome, fmt.Errorf("saga %s: no outcome yet", id))
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return natsErr(fmt.Errorf("follow saga %s: %w", id, err))
}
