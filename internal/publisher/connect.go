package publisher

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mcpreload/mcpreload/events"
	"github.com/mcpreload/mcpreload/internal/bus"
)

// DefaultNATSURL is where the publisher looks for NATS when no URL is given:
// the address a node started with --embedded-nats 127.0.0.1:4222 listens on.
const DefaultNATSURL = "nats://127.0.0.1:4222"

// DefaultConnectTimeout bounds the initial connection to NATS.
const DefaultConnectTimeout = 5 * time.Second

// ConnectOptions configures Connect.
type ConnectOptions struct {
	// URL is one or more NATS server URLs, comma-separated (default
	// DefaultNATSURL).
	URL string
	// Creds is a NATS credentials file (optional).
	Creds string
	// Timeout bounds the initial connection (default DefaultConnectTimeout).
	Timeout time.Duration
	// Name is the connection name the server shows (default
	// "mcpreload-publisher").
	Name string
}

// Connect opens a NATS connection. It fails at once if no server answers,
// rather than retrying in the background as a node does: a CLI should say
// so and exit. Once connected, the connection reconnects on its own. The
// error matches ErrNATS and says what to check; the caller closes the
// connection.
func Connect(o ConnectOptions) (*nats.Conn, error) {
	if o.URL == "" {
		o.URL = DefaultNATSURL
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultConnectTimeout
	}
	if o.Name == "" {
		o.Name = "mcpreload-publisher"
	}
	opts := []nats.Option{nats.Name(o.Name), nats.Timeout(o.Timeout)}
	if o.Creds != "" {
		if _, err := os.Stat(o.Creds); err != nil {
			return nil, withKind(ErrInvalidRequest, fmt.Errorf("credentials file: %w", err))
		}
		opts = append(opts, nats.UserCredentials(o.Creds))
	}
	nc, err := nats.Connect(o.URL, opts...)
	if err != nil {
		hint := "is a node with --embedded-nats running, or is --nats-url right?"
		if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked) {
			hint = "check --creds and the account's permissions (see deploy/nats)"
		}
		return nil, natsErr(fmt.Errorf("cannot reach NATS at %s: %w: %s", RedactURL(o.URL), err, hint))
	}
	return nc, nil
}

// RedactURL returns urls (comma-separated) with any password replaced by
// "xxxxx", for messages.
func RedactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

// Open binds to the mcpreload streams, object store and buckets under
// prefix ("" = events.DefaultPrefix) as they exist, without changing their
// configuration (bus.Open creates only what is missing, on a fresh NATS
// deployment). Bus.PresenceTTL is the nodes bucket's. Errors match ErrNATS.
func Open(ctx context.Context, nc *nats.Conn, prefix string) (*bus.Bus, error) {
	subj := events.Subjects{Prefix: prefix}
	if err := subj.Validate(); err != nil {
		return nil, withKind(ErrInvalidRequest, err)
	}
	b, err := bus.Open(ctx, nc, bus.Options{Prefix: prefix})
	if err != nil {
		return nil, natsErr(jetStreamHint(err))
	}
	return b, nil
}

// jetStreamHint adds what to do to the common JetStream failures.
func jetStreamHint(err error) error {
	switch {
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		return fmt.Errorf("%w: JetStream is not enabled on this server or account (start nats-server with -js, or see deploy/nats)", err)
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return fmt.Errorf("%w: JetStream did not answer (is JetStream enabled, and does --creds allow the $JS.API subjects?)", err)
	}
	return err
}
