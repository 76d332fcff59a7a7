// Package signing signs and verifies reload requests with ed25519 keys in
// the NATS nkeys format: a publisher signs (module, digest, saga id) with its
// seed, and a node started with --trusted-keys refuses, in prepare, any
// reload that is unsigned or signed by a key it does not trust.
//
// The signed message binds the module name, the content digest and the saga
// id, so a signature cannot be replayed for another module, other bytes or
// another saga.
package signing

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nkeys"
)

// Errors of Verify, each a distinct NACK reason.
var (
	ErrUnsigned     = errors.New("request is not signed")
	ErrUntrustedKey = errors.New("request is signed by a key this node does not trust")
	ErrBadSignature = errors.New("signature does not match the module, digest and saga")
)

// Message is the byte string a signature covers.
func Message(module, digest, saga string) []byte {
	return fmt.Appendf(nil, "mcpreload reload v1\nmodule=%s\ndigest=%s\nsaga=%s\n", module, digest, saga)
}

// Keygen creates a key pair and returns its seed (secret: keep it in the CI's
// secret store) and public key (give it to nodes in --trusted-keys).
func Keygen() (seed []byte, public string, err error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, "", err
	}
	seed, err = kp.Seed()
	if err != nil {
		return nil, "", err
	}
	public, err = kp.PublicKey()
	return seed, public, err
}

// Signer signs requests with one seed.
type Signer struct{ kp nkeys.KeyPair }

// LoadSigner reads a seed file (as written by Keygen / mcpreload-publisher keygen).
func LoadSigner(path string) (*Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	kp, err := nkeys.FromSeed(bytes.TrimSpace(b))
	if err != nil {
		return nil, fmt.Errorf("signing key %s: not an nkeys seed: %w", path, err)
	}
	return &Signer{kp: kp}, nil
}

// Sign returns the signature (base64url, unpadded) and the public key.
func (s *Signer) Sign(module, digest, saga string) (signature, key string, err error) {
	sig, err := s.kp.Sign(Message(module, digest, saga))
	if err != nil {
		return "", "", err
	}
	key, err = s.kp.PublicKey()
	return base64.RawURLEncoding.EncodeToString(sig), key, err
}

// Trusted is a set of public keys a node accepts.
type Trusted map[string]bool

// LoadTrusted reads public keys, one per line ('#' starts a comment).
func LoadTrusted(path string) (Trusted, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("trusted keys: %w", err)
	}
	defer func() { _ = f.Close() }()
	t := Trusted{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if _, err := nkeys.FromPublicKey(line); err != nil {
			return nil, fmt.Errorf("trusted keys %s:%d: %q is not an nkeys public key: %w", path, n, line, err)
		}
		t[line] = true
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(t) == 0 {
		return nil, fmt.Errorf("trusted keys %s: no keys (a node with an empty trust list would refuse every reload)", path)
	}
	return t, nil
}

// Verify checks a request's signature against the trusted keys.
func (t Trusted) Verify(module, digest, saga, signature, key string) error {
	if signature == "" || key == "" {
		return ErrUnsigned
	}
	if !t[key] {
		return fmt.Errorf("%w (%s)", ErrUntrustedKey, key)
	}
	pub, err := nkeys.FromPublicKey(key)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUntrustedKey, err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(signature)
	if err != nil {
		return fmt.Errorf("%w: not base64url", ErrBadSignature)
	}
	if err := pub.Verify(Message(module, digest, saga), sig); err != nil {
		return ErrBadSignature
	}
	return nil
}

// Code is the NACK code of a Verify error.
func Code(err error) string {
	switch {
	case errors.Is(err, ErrUnsigned):
		return "unsigned"
	case errors.Is(err, ErrUntrustedKey):
		return "untrusted_key"
	case errors.Is(err, ErrBadSignature):
		return "bad_signature"
	}
	return "verify_failed"
}
