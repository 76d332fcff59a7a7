// Package events defines the CloudEvents mcpreload publishes on NATS
// JetStream, their payloads, their subjects, and the codec between
// sdk-go's event.Event and *nats.Msg.
//
// # Codec
//
// ToNATS writes binary content mode as the NATS protocol binding (1.0.3-wip)
// describes it: every attribute and extension is a ce-<name> header with a
// percent-encoded value, datacontenttype is ce-datacontenttype (not
// Content-Type), the data is the payload, and Nats-Msg-Id is the event id so
// JetStream deduplicates retried publishes. ToNATSStructured writes the JSON
// event format with Content-Type application/cloudevents+json. FromNATS
// reads both, plus what sdk-go's protocol/nats_jetstream/v3 writes (ce-*
// headers without percent-encoding) and a content-type header in place of
// ce-datacontenttype. A JetStream message is decoded with
//
//	events.FromNATS(ctx, &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
//
// The codec is built on sdk-go/v2's binding package (binding.Write,
// binding.ToEvent, spec, format); only the NATS reader and writer and the
// header value encoding are written here.
//
// # Types and payloads
//
// Each Type* constant has one payload struct: ReloadRequest, Command, Ack,
// Progress or Outcome. New builds a validated event from a payload; Decode
// and the typed Decode* helpers turn an event back into a validated payload.
//
// # Subjects
//
// Subjects names the subjects: reload requests per module, and per saga one
// subject per command, per node's acks, progress and outcome. The saga id is
// the reload request's event id, which is why ValidateID keeps ids usable as
// a subject token.
//
// # Errors
//
// Every error matches one of ErrNotCloudEvent, ErrMalformed, ErrUnknownType,
// ErrTooLarge or ErrInvalidPayload with errors.Is, and its message says what
// was wrong. The package does not log.
//
// # Decisions
//
//   - Decoding is strict where a lenient reading would be ambiguous and
//     lenient where interoperability needs it. Rejected: a ce-* header that
//     appears twice (in any case spelling or with two values), malformed
//     percent-escapes, values that are not UTF-8, spec versions other than
//     1.0, extension names outside [a-z0-9]+ (and "data"), surrounding
//     whitespace in string attributes (sdk-go trims it in binary mode but not
//     in structured mode, so accepting it would make the two modes decode the
//     same event differently). Accepted: lower-case hex, quoted strings, raw
//     unencoded bytes such as spaces and UTF-8.
//   - Binary-mode extensions decode as strings (headers carry no type), so
//     compare extension values through types.Format when the mode may vary.
//   - sdk-go's format.JSON marshals through encoding/json, which compacts and
//     HTML-escapes embedded JSON data; ToNATSStructured marshals with
//     event.MarshalJSON directly so data keeps its bytes. Data that is not
//     UTF-8 and not JSON goes into data_base64.
//   - MaxEventBytes (64 KiB) bounds the payload plus the encoded header
//     block (the size NATS itself limits), checked before any parsing.
//     Modules travel in the object store; only a prepare command may carry a
//     small one (at most MaxInlineBytes) inline.
//   - Payload JSON allows unknown fields, so producers can add fields without
//     breaking older consumers; required fields are enforced by Validate.
//   - Names and digests are checked with internal/names, the rules the
//     loader uses too (events does not import loader, which pulls in wazero).
package events
