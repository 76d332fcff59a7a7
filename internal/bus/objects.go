package bus

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mcpreload/mcpreload/internal/names"
	"github.com/mcpreload/mcpreload/loader"
)

// Errors of module transfer.
var (
	// ErrNoObject: no module with the digest is in the object store.
	ErrNoObject = errors.New("module not in the object store")
	// ErrObjectTooLarge: the stored object exceeds the caller's cap.
	ErrObjectTooLarge = errors.New("module object too large")
	// ErrObjectCorrupt: the stored bytes do not hash to their name.
	ErrObjectCorrupt = errors.New("module object corrupt")
)

// PutModule uploads wasm under its digest unless an object of that name
// exists already (content addressing: the same bytes are stored once). It
// returns the digest and whether the upload was skipped.
func (b *Bus) PutModule(ctx context.Context, wasm []byte) (digest string, existed bool, err error) {
	digest = loader.DigestOf(wasm)
	if info, err := b.Modules.GetInfo(ctx, digest); err == nil && !info.Deleted && info.Size == uint64(len(wasm)) {
		return digest, true, nil
	}
	_, err = b.Modules.Put(ctx, jetstream.ObjectMeta{Name: digest, Description: "mcpreload module",
		Opts: &jetstream.ObjectMetaOptions{ChunkSize: 128 * 1024}}, bytes.NewReader(wasm))
	if err != nil {
		return digest, false, fmt.Errorf("upload %s: %w", digest, err)
	}
	return digest, false, nil
}

// Permanent reports whether a GetModule error will not go away by retrying.
func Permanent(err error) bool {
	return errors.Is(err, ErrNoObject) || errors.Is(err, ErrObjectTooLarge) || errors.Is(err, ErrObjectCorrupt)
}

// GetModule downloads the module with digest, refusing objects over max
// bytes before reading them and objects whose content hash is not their
// name. One read: the object store verifies the bytes against the stored
// SHA-256 as they arrive, and that hash must be the one the name claims.
func (b *Bus) GetModule(ctx context.Context, digest string, max int) ([]byte, error) {
	r, err := b.Modules.Get(ctx, digest)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("%w: %s (upload it with mcpreload-publisher)", ErrNoObject, digest)
	}
	if err != nil {
		return nil, fmt.Errorf("object %s: %w", digest, err)
	}
	defer func() { _ = r.Close() }()
	info, err := r.Info()
	if err != nil {
		return nil, fmt.Errorf("object %s: %w", digest, err)
	}
	if info.Size > uint64(max) {
		return nil, fmt.Errorf("%w: %s is %d bytes, the cap is %d", ErrObjectTooLarge, digest, info.Size, max)
	}
	sum, err := jetstream.DecodeObjectDigest(info.Digest)
	if err != nil || names.DigestPrefix+hex.EncodeToString(sum) != digest {
		return nil, fmt.Errorf("%w: %s is stored with content hash %q (other bytes under this name)", ErrObjectCorrupt, digest, info.Digest)
	}
	wasm, err := io.ReadAll(r)
	if errors.Is(err, jetstream.ErrDigestMismatch) {
		return nil, fmt.Errorf("%w: %s: %w", ErrObjectCorrupt, digest, err)
	}
	if err != nil {
		return nil, fmt.Errorf("object %s: %w", digest, err)
	}
	return wasm, nil
}
