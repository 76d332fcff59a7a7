package guest

import "fmt"

// pack encodes a (pointer, length) pair as an ABI i64 result.
func pack(ptr, size uint32) uint64 {
	return uint64(ptr)<<32 | uint64(size)
}

// inputAt returns the size bytes at guest address ptr, which must lie in
// buf, the buffer last returned by mcpr_alloc, located at address base. The
// ABI has the host write every input into that buffer, so an address
// outside it is a host bug; rejecting it avoids reading arbitrary memory.
func inputAt(buf []byte, base, ptr, size uint32) ([]byte, error) {
	if size == 0 {
		return nil, nil
	}
	end := uint64(ptr) + uint64(size)
	if len(buf) == 0 || ptr < base || end > uint64(base)+uint64(len(buf)) {
		return nil, fmt.Errorf("input [%#x, %#x) is outside the buffer returned by mcpr_alloc", ptr, end)
	}
	off := ptr - base
	return buf[off : off+size], nil
}
