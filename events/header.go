package events

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Header values in binary content mode follow the NATS protocol binding:
// the encoder percent-encodes space, '"', '%' and every byte outside
// U+0021..U+007E with upper-case hex; the decoder first unquotes an RFC 7230
// quoted-string, then percent-decodes once (either hex case), then requires
// valid UTF-8. Raw bytes that should have been encoded (spaces, UTF-8) are
// accepted when decoding, so producers that skip the encoding (sdk-go's
// nats_jetstream/v3) interoperate as long as their values hold no '%'.

const upperHex = "0123456789ABCDEF"

// needsEscape reports whether c must be percent-encoded in a header value.
func needsEscape(c byte) bool {
	return c <= 0x20 || c >= 0x7F || c == '"' || c == '%'
}

// encodeHeaderValue percent-encodes s for a ce-* header.
func encodeHeaderValue(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if needsEscape(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if needsEscape(c) {
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&0x0F])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// decodeHeaderValue reverses encodeHeaderValue and also accepts RFC 7230
// quoted strings, lower-case hex and unencoded bytes. It rejects malformed
// escapes, malformed quoted strings and values that are not UTF-8.
func decodeHeaderValue(v string) (string, error) {
	if strings.HasPrefix(v, `"`) {
		u, err := unquote(v)
		if err != nil {
			return "", err
		}
		v = u
	}
	s, err := percentDecode(v)
	if err != nil {
		return "", err
	}
	if !utf8.ValidString(s) {
		return "", errors.New("not valid UTF-8 after percent-decoding")
	}
	return s, nil
}

// percentDecode decodes every %XX escape in s once.
func percentDecode(s string) (string, error) {
	i := strings.IndexByte(s, '%')
	if i < 0 {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("malformed percent-escape %q at offset %d", s[i:], i)
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("malformed percent-escape %q at offset %d", s[i:i+3], i)
		}
		b.WriteByte(hi<<4 | lo)
		i += 2
	}
	return b.String(), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// unquote decodes an RFC 7230 quoted-string:
//
//	quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE
//	qdtext        = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
//	quoted-pair   = "\" ( HTAB / SP / VCHAR / obs-text )
func unquote(v string) (string, error) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", errors.New("unterminated quoted string")
	}
	in := v[1 : len(v)-1]
	var b strings.Builder
	b.Grow(len(in))
	for i := 0; i < len(in); i++ {
		c := in[i]
		switch {
		case c == '\\':
			if i+1 == len(in) {
				return "", errors.New("quoted string ends in a backslash")
			}
			i++
			if !quotedText(in[i]) && in[i] != '"' && in[i] != '\\' {
				return "", fmt.Errorf("quoted string: invalid escaped byte 0x%02X", in[i])
			}
			b.WriteByte(in[i])
		case c == '"':
			return "", errors.New("quoted string: unescaped '\"' inside")
		case quotedText(c):
			b.WriteByte(c)
		default:
			return "", fmt.Errorf("quoted string: invalid byte 0x%02X", c)
		}
	}
	return b.String(), nil
}

// quotedText reports whether c is qdtext (HTAB, SP, visible ASCII except '"'
// and '\', or obs-text).
func quotedText(c byte) bool {
	return c == '\t' || c == ' ' || (c >= 0x21 && c <= 0x7E && c != '"' && c != '\\') || c >= 0x80
}
