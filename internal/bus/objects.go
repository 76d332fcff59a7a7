package bus

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

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
// bytes before reading them and bytes that do not hash to digest.
func (b *Bus) GetModule(ctx context.Context, digest string, max int) ([]byte, error) {
	info, err := b.Modules.GetInfo(ctx, digest)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("%w: %s (upload it with mcpreload-publisher)", ErrNoObject, digest)
	}
	if err != nil {
		return nil, fmt.Errorf("object %s: %w", digest, err)
	}
	if info.Size > uint64(max) {
		return nil, fmt.Errorf("%w: %s is %d bytes, the cap is %d", ErrObjectTooLarge, digest, info.Size, max)
	}
	wasm, err := b.Modules.GetBytes(ctx, digest)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNoObject, digest)
	}
	if errors.Is(err, jetstream.ErrDigestMismatch) {
		return nil, fmt.Errorf("%w: %s: %w", ErrObjectCorrupt, digest, err)
	}
	if err != nil {
		return nil, fmt.Errorf("object %s: %w", digest, err)
	}
	if got := loader.DigestOf(wasm); got != digest {
		return nil, fmt.Errorf("%w: %s hashes to %s", ErrObjectCorrupt, digest, got)
	}
	return wasm, nil
}
