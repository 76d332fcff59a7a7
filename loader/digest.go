package loader

import (
	"crypto/md5" //nolint:gosec // MD5 is reported for compatibility only, never used for identity.
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/mcpreload/mcpreload/internal/names"
)

// DigestPrefix starts every digest string.
const DigestPrefix = names.DigestPrefix

// DigestOf returns the identity of a module version: "sha256:" followed by
// the 64 lowercase hex digits of the SHA-256 of its bytes.
func DigestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return DigestPrefix + hex.EncodeToString(sum[:])
}

// MD5Of returns the hex MD5 of b. It is reported beside the digest for
// compatibility with tools that expect a module MD5 (as Erlang's
// module_info(md5)); it is never used to identify a version.
func MD5Of(b []byte) string {
	sum := md5.Sum(b) //nolint:gosec // see MD5Of.
	return hex.EncodeToString(sum[:])
}

// ValidateDigest reports whether s is a well-formed digest: "sha256:" and 64
// lowercase hex digits.
func ValidateDigest(s string) error {
	if !names.Digest(s) {
		return fmt.Errorf("digest %q: want %s<64 lowercase hex digits>", s, DigestPrefix)
	}
	return nil
}
