package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/binding/format"
	"github.com/cloudevents/sdk-go/v2/binding/spec"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/nats-io/nats.go"
)

// MaxEventBytes bounds one CloudEvents message on NATS: the payload plus the
// encoded header block, counted the way nats-server counts them against
// max_payload and a stream's MaxMsgSize. FromNATS rejects larger messages and
// ToNATS refuses to build them, both with ErrTooLarge. Headers a publisher
// adds after ToNATS (JetStream expectations) come on top, so a stream limit
// should leave some room above MaxEventBytes.
const MaxEventBytes = 64 << 10

const (
	// headerPrefix starts every binary-mode attribute header. Header names
	// are case-insensitive on the wire; this package writes them lower-case.
	headerPrefix      = "ce-"
	contentTypeHeader = "Content-Type"
	natsHeaderPrefix  = "nats-"
)

// specs looks up ce-prefixed attribute names (case-insensitive).
var specs = spec.WithPrefix(headerPrefix)

// ToNATS encodes e in binary content mode for subject: every attribute and
// extension becomes a percent-encoded ce-<name> header (datacontenttype as
// ce-datacontenttype), the data becomes the payload, and Nats-Msg-Id is set
// to the event id so JetStream drops duplicate publishes.
//
// e must be a valid CloudEvents 1.0 event (ErrMalformed otherwise) and the
// message must fit MaxEventBytes (ErrTooLarge). e is not modified. ctx must
// not be nil; it only carries sdk-go's encoding options.
func ToNATS(ctx context.Context, subject string, e event.Event) (*nats.Msg, error) {
	return toNATS(binding.WithForceBinary(ctx), subject, e, false)
}

// ToNATSStructured encodes e in structured content mode for subject: the
// payload is the JSON event format and Content-Type is
// application/cloudevents+json. Nats-Msg-Id is set as in ToNATS, and the same
// errors apply. Data whose datacontenttype is JSON (or absent) is embedded
// verbatim, minus whitespace around the value, so it must be valid UTF-8
// JSON (ErrMalformed otherwise). Other data becomes a JSON string, or
// data_base64 when it is not UTF-8.
func ToNATSStructured(ctx context.Context, subject string, e event.Event) (*nats.Msg, error) {
	ctx = binding.UseFormatForEvent(binding.WithForceStructured(ctx), verbatimJSON{})
	return toNATS(ctx, subject, e, true)
}

// verbatimJSON is sdk-go's JSON event format without the detour through
// encoding/json: format.JSON.Marshal is json.Marshal(e), which re-compacts
// and HTML-escapes the output of e.MarshalJSON, so JSON data would not
// arrive byte for byte ('&' becomes \u0026, whitespace disappears).
type verbatimJSON struct{}

func (verbatimJSON) MediaType() string { return event.ApplicationCloudEventsJSON }

func (verbatimJSON) Marshal(e *event.Event) ([]byte, error) {
	b, err := e.MarshalJSON()
	if err != nil {
		return nil, err
	}
	if !json.Valid(b) || !utf8.Valid(b) {
		return nil, errors.New("event does not marshal to valid UTF-8 JSON")
	}
	return b, nil
}

func (verbatimJSON) Unmarshal(b []byte, e *event.Event) error { return format.JSON.Unmarshal(b, e) }

func toNATS(ctx context.Context, subject string, e event.Event, structured bool) (*nats.Msg, error) {
	if err := validateEvent(&e, ""); err != nil {
		return nil, err
	}
	if structured && !e.DataBase64 && len(e.Data()) > 0 {
		switch {
		case !jsonMediaType(e.DataMediaType()):
			// Text data goes into a JSON string; bytes that are not UTF-8
			// would not survive that, so they go into data_base64.
			e.DataBase64 = !utf8.Valid(e.Data())
		case !json.Valid(e.Data()) || !utf8.Valid(e.Data()):
			return nil, errorf(ErrMalformed, "data: not valid UTF-8 JSON although datacontenttype is %q", e.DataContentType())
		default:
			// sdk-go's decoder keeps or drops whitespace around embedded
			// JSON depending on attribute order; drop it here so the result
			// is the same either way.
			e.DataEncoded = bytes.Trim(e.DataEncoded, " \t\r\n")
		}
	}
	m := nats.NewMsg(subject)
	w := &msgWriter{msg: m}
	if _, err := binding.Write(ctx, binding.ToMessage(&e), w, w); err != nil {
		if isKind(err) {
			return nil, err
		}
		return nil, errorf(ErrMalformed, "encode: %w", err)
	}
	m.Header.Set(nats.MsgIdHdr, encodeHeaderValue(e.ID()))
	if n := msgSize(m); n > MaxEventBytes {
		return nil, errorf(ErrTooLarge, "encoded event is %d bytes, limit is %d", n, MaxEventBytes)
	}
	return m, nil
}

// FromNATS decodes a CloudEvent from m. A Content-Type header (name matched
// case-insensitively) starting with application/cloudevents selects
// structured mode; otherwise a ce-specversion header selects binary mode;
// otherwise the error is ErrNotCloudEvent.
//
// Binary mode matches header names case-insensitively, unquotes RFC 7230
// quoted strings, percent-decodes values and requires UTF-8. A Content-Type
// header stands in for a missing ce-datacontenttype, as sdk-go's
// nats_jetstream/v3 reader allows. Nats-* headers and other non-ce headers
// are ignored. Extensions decoded from binary mode are strings.
//
// The event is validated (spec version 1.0 only). Errors: ErrTooLarge beyond
// MaxEventBytes, ErrMalformed for anything broken, ErrNotCloudEvent. The
// returned event does not share memory with m. ctx must not be nil.
func FromNATS(ctx context.Context, m *nats.Msg) (*event.Event, error) {
	if m == nil {
		return nil, errorf(ErrNotCloudEvent, "nil message")
	}
	if n := msgSize(m); n > MaxEventBytes {
		return nil, errorf(ErrTooLarge, "message is %d bytes, limit is %d", n, MaxEventBytes)
	}
	nm, err := newNatsMessage(m)
	if err != nil {
		return nil, err
	}
	e, err := binding.ToEvent(ctx, nm)
	if err != nil {
		if isKind(err) {
			return nil, err
		}
		if nm.format != nil {
			return nil, errorf(ErrMalformed, "bad JSON event: %w", err)
		}
		return nil, errorf(ErrMalformed, "binary event: %w", err)
	}
	prefix := headerPrefix
	if nm.format != nil {
		prefix = ""
		if err := checkStructured(e); err != nil {
			return nil, err
		}
	}
	if err := validateEvent(e, prefix); err != nil {
		return nil, err
	}
	return e, nil
}

// msgSize is what MaxEventBytes bounds: the payload plus the header block as
// nats.go encodes it ("NATS/1.0\r\n", "name: value\r\n" per value, "\r\n"),
// which is what nats-server checks against max_payload and a stream's
// MaxMsgSize.
func msgSize(m *nats.Msg) int {
	n := len(m.Data)
	if len(m.Header) == 0 {
		return n
	}
	n += len("NATS/1.0\r\n") + len("\r\n")
	for k, vs := range m.Header {
		for _, v := range vs {
			n += len(k) + len(": ") + len(v) + len("\r\n")
		}
	}
	return n
}

// jsonMediaType reports whether data of this media type is embedded as JSON
// by sdk-go's structured encoder (absent means JSON).
func jsonMediaType(mt string) bool {
	switch strings.ToLower(strings.TrimSpace(mt)) {
	case "", event.ApplicationJSON, event.TextJSON, event.ApplicationCloudEventsJSON, event.ApplicationCloudEventsBatchJSON:
		return true
	}
	return false
}

// validateEvent runs the sdk's validation and turns its map-shaped error into
// one deterministic ErrMalformed message. prefix ("ce-" or "") names the
// attributes the way the input spelled them.
func validateEvent(e *event.Event, prefix string) error {
	if e.Context == nil {
		return errorf(ErrMalformed, "%sspecversion: missing required attribute", prefix)
	}
	if v := e.SpecVersion(); v != event.CloudEventsVersionV1 {
		return errorf(ErrMalformed, "%sspecversion %q: unsupported, want %s", prefix, v, event.CloudEventsVersionV1)
	}
	err := e.Validate()
	if err == nil {
		return nil
	}
	var ve event.ValidationError
	if !errors.As(err, &ve) {
		return errorf(ErrMalformed, "%w", err)
	}
	keys := make([]string, 0, len(ve))
	for k := range ve {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	required := map[string]string{"id": e.ID(), "source": e.Source(), "type": e.Type()}
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		if _, set := e.FieldErrors[k]; set {
			parts = append(parts, prefix+k+": "+e.FieldErrors[k].Error())
			continue
		}
		if v, ok := required[k]; ok && strings.TrimSpace(v) == "" {
			parts = append(parts, prefix+k+": missing required attribute")
			continue
		}
		parts = append(parts, prefix+k+": "+ve[k].Error())
	}
	return errorf(ErrMalformed, "%s", strings.Join(parts, "; "))
}

// checkStructured applies the rules binary mode gets from header decoding to
// a structured event, so both modes accept the same events: no surrounding
// whitespace in string attributes (sdk-go trims them in binary mode only) and
// no extension named "data".
func checkStructured(e *event.Event) error {
	for _, a := range []struct{ name, v string }{
		{"id", e.ID()}, {"source", e.Source()}, {"type", e.Type()}, {"subject", e.Subject()},
		{"datacontenttype", e.DataContentType()}, {"dataschema", e.DataSchema()},
	} {
		if !utf8.ValidString(a.v) {
			return errorf(ErrMalformed, "%s %q: not valid UTF-8", a.name, a.v)
		}
		if a.v != strings.TrimSpace(a.v) {
			return errorf(ErrMalformed, "%s %q: leading or trailing whitespace", a.name, a.v)
		}
	}
	for name, v := range e.Extensions() {
		if name == "data" {
			return errorf(ErrMalformed, "extension \"data\": reserved name")
		}
		if s, ok := v.(string); ok && !utf8.ValidString(s) {
			return errorf(ErrMalformed, "extension %s %q: not valid UTF-8", name, s)
		}
	}
	return nil
}

// validExtensionName reports whether name is a CloudEvents attribute name
// ([a-z0-9]+, after lower-casing) that is not reserved.
func validExtensionName(name string) bool {
	if name == "" || name == "data" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// msgWriter receives an event from binding.Write and fills a *nats.Msg. It is
// both the structured and the binary writer.
type msgWriter struct {
	msg *nats.Msg
}

var (
	_ binding.StructuredWriter = (*msgWriter)(nil)
	_ binding.BinaryWriter     = (*msgWriter)(nil)
)

func (w *msgWriter) SetStructuredEvent(_ context.Context, f format.Format, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	w.msg.Header.Set(contentTypeHeader, f.MediaType())
	w.msg.Data = b
	return nil
}

func (w *msgWriter) Start(context.Context) error { return nil }
func (w *msgWriter) End(context.Context) error   { return nil }

func (w *msgWriter) SetAttribute(a spec.Attribute, v any) error {
	s, err := types.Format(v)
	if err != nil {
		return errorf(ErrMalformed, "%s: %w", a.Name(), err)
	}
	w.msg.Header.Set(headerPrefix+a.Name(), encodeHeaderValue(s))
	return nil
}

func (w *msgWriter) SetExtension(name string, v any) error {
	name = strings.ToLower(name)
	if !validExtensionName(name) {
		return errorf(ErrMalformed, "extension %q: name must be [a-z0-9]+ and not \"data\"", name)
	}
	s, err := types.Format(v)
	if err != nil {
		return errorf(ErrMalformed, "extension %s: %w", name, err)
	}
	w.msg.Header.Set(headerPrefix+name, encodeHeaderValue(s))
	return nil
}

func (w *msgWriter) SetData(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	w.msg.Data = b
	return nil
}

// natsMessage is a decoded view of a *nats.Msg for binding.ToEvent. Binary
// messages also implement binding.MessageMetadataReader: binding.DirectWrite
// type-asserts to it and panics without it.
type natsMessage struct {
	format format.Format // non-nil in structured mode
	data   []byte

	// binary mode: decoded values by attribute kind and extension name.
	version spec.Version
	attrs   map[spec.Kind]string
	exts    map[string]string
}

var (
	_ binding.MessageReader         = (*natsMessage)(nil)
	_ binding.MessageMetadataReader = (*natsMessage)(nil)
)

// header is one header of the input after folding names to lower case.
type header struct {
	name  string // lower-case
	value string
}

// newNatsMessage classifies m and, in binary mode, decodes its ce-* headers.
func newNatsMessage(m *nats.Msg) (*natsMessage, error) {
	hs, err := foldHeaders(m.Header)
	if err != nil {
		return nil, err
	}
	var ctype, specVersion *header
	for i := range hs {
		switch hs[i].name {
		case "content-type":
			ctype = &hs[i]
		case specs.PrefixedSpecVersionName():
			specVersion = &hs[i]
		}
	}
	data := bytes.Clone(m.Data)
	if ctype != nil && strings.HasPrefix(strings.ToLower(ctype.value), format.Prefix) {
		f := format.Lookup(ctype.value)
		if f != format.JSON {
			return nil, errorf(ErrMalformed, "content-type %q: unsupported event format, want %s", ctype.value, event.ApplicationCloudEventsJSON)
		}
		if !json.Valid(data) {
			return nil, errorf(ErrMalformed, "bad JSON event: payload is not valid JSON")
		}
		if !utf8.Valid(data) {
			return nil, errorf(ErrMalformed, "bad JSON event: payload is not valid UTF-8")
		}
		return &natsMessage{format: f, data: data}, nil
	}
	if specVersion == nil {
		return nil, errorf(ErrNotCloudEvent, "no Content-Type application/cloudevents* and no ce-specversion header")
	}
	return newBinaryMessage(hs, ctype, data)
}

// foldHeaders lower-cases header names, drops Nats-* headers and rejects a
// ce-* or Content-Type header that occurs more than once (in any case
// spelling, or with several values). The result is sorted by name.
func foldHeaders(h nats.Header) ([]header, error) {
	seen := make(map[string]bool, len(h))
	out := make([]header, 0, len(h))
	for k, vs := range h {
		name := strings.ToLower(k)
		if strings.HasPrefix(name, natsHeaderPrefix) {
			continue
		}
		relevant := name == "content-type" || strings.HasPrefix(name, headerPrefix)
		if !relevant {
			continue
		}
		if seen[name] || len(vs) != 1 {
			return nil, errorf(ErrMalformed, "header %s: appears more than once", name)
		}
		seen[name] = true
		out = append(out, header{name: name, value: vs[0]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// newBinaryMessage decodes the ce-* headers of a binary-mode message.
func newBinaryMessage(hs []header, ctype *header, data []byte) (*natsMessage, error) {
	nm := &natsMessage{data: data, attrs: map[spec.Kind]string{}, exts: map[string]string{}}
	decoded := make(map[string]string, len(hs))
	for _, h := range hs {
		if !strings.HasPrefix(h.name, headerPrefix) {
			continue
		}
		v, err := decodeHeaderValue(h.value)
		if err != nil {
			return nil, errorf(ErrMalformed, "%s: %w", h.name, err)
		}
		decoded[h.name] = v
	}
	sv := decoded[specs.PrefixedSpecVersionName()]
	if sv != event.CloudEventsVersionV1 {
		return nil, errorf(ErrMalformed, "%s %q: unsupported, want %s", specs.PrefixedSpecVersionName(), sv, event.CloudEventsVersionV1)
	}
	nm.version = specs.Version(sv)
	for _, h := range hs {
		v, ok := decoded[h.name]
		if !ok {
			continue
		}
		if a := nm.version.Attribute(h.name); a != nil {
			if a.Kind().IsRequired() && v == "" {
				return nil, errorf(ErrMalformed, "%s: missing required attribute", h.name)
			}
			if v != strings.TrimSpace(v) {
				return nil, errorf(ErrMalformed, "%s %q: leading or trailing whitespace", h.name, v)
			}
			nm.attrs[a.Kind()] = v
			continue
		}
		name := strings.TrimPrefix(h.name, headerPrefix)
		if !validExtensionName(name) {
			return nil, errorf(ErrMalformed, "header %s: extension name must be [a-z0-9]+ and not \"data\"", h.name)
		}
		nm.exts[name] = v
	}
	if _, ok := nm.attrs[spec.DataContentType]; !ok && ctype != nil {
		nm.attrs[spec.DataContentType] = strings.TrimSpace(ctype.value)
	}
	return nm, nil
}

func (m *natsMessage) ReadEncoding() binding.Encoding {
	if m.format != nil {
		return binding.EncodingStructured
	}
	return binding.EncodingBinary
}

func (m *natsMessage) ReadStructured(ctx context.Context, w binding.StructuredWriter) error {
	if m.format == nil {
		return binding.ErrNotStructured
	}
	return w.SetStructuredEvent(ctx, m.format, bytes.NewReader(m.data))
}

func (m *natsMessage) ReadBinary(_ context.Context, w binding.BinaryWriter) error {
	if m.version == nil {
		return binding.ErrNotBinary
	}
	for _, a := range m.version.Attributes() {
		v, ok := m.attrs[a.Kind()]
		if !ok {
			continue
		}
		if err := w.SetAttribute(a, v); err != nil {
			return errorf(ErrMalformed, "%s %q: %w", a.PrefixedName(), v, err)
		}
	}
	names := make([]string, 0, len(m.exts))
	for n := range m.exts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := w.SetExtension(n, m.exts[n]); err != nil {
			return errorf(ErrMalformed, "%s%s: %w", headerPrefix, n, err)
		}
	}
	if len(m.data) > 0 {
		if err := w.SetData(bytes.NewBuffer(m.data)); err != nil {
			return fmt.Errorf("data: %w", err)
		}
	}
	return nil
}

func (m *natsMessage) GetAttribute(k spec.Kind) (spec.Attribute, any) {
	if m.version == nil {
		return nil, nil
	}
	a := m.version.AttributeFromKind(k)
	if v, ok := m.attrs[k]; ok && a != nil {
		return a, v
	}
	return a, nil
}

func (m *natsMessage) GetExtension(name string) any {
	if v, ok := m.exts[strings.ToLower(name)]; ok {
		return v
	}
	return nil
}
