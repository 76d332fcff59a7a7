package loader

import "crypto/rand"

// randReader feeds WASI random_get from the host's CSPRNG, so guests get
// real randomness (wazero's default is deterministic).
type randReader struct{}

func (randReader) Read(p []byte) (int, error) { return rand.Read(p) }
