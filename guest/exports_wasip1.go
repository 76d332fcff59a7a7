//go:build wasip1

package guest

import (
	"fmt"
	"unsafe"
)

// Buffers shared with the host. Keeping them in package-level variables
// keeps them reachable, and Go's heap objects do not move, so the addresses
// handed to the host stay valid until the variables are reassigned.
var (
	// inputBuf is the buffer last returned by mcpr_alloc. It is reused
	// while large enough, and stays valid until the next mcpr_alloc call.
	inputBuf []byte
	// outputBuf holds the output of the last export call, valid until the
	// next export call.
	outputBuf []byte
)

// addr returns the linear memory address of b's first byte.
func addr(b []byte) uint32 {
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}

// input returns the input the host wrote at (ptr, size).
func input(ptr, size uint32) ([]byte, error) {
	return inputAt(inputBuf, addr(inputBuf), ptr, size)
}

// output keeps b alive until the next export call and returns its packed
// location.
func output(b []byte) uint64 {
	outputBuf = b
	if len(b) == 0 {
		return 0
	}
	return pack(addr(b), uint32(len(b)))
}

//go:wasmexport mcpr_alloc
func mcprAlloc(size uint32) uint32 {
	outputBuf = nil
	if cap(inputBuf) < int(size) || cap(inputBuf) == 0 {
		inputBuf = make([]byte, max(size, 1))
	}
	inputBuf = inputBuf[:cap(inputBuf)]
	return addr(inputBuf)
}

//go:wasmexport mcpr_describe
func mcprDescribe() uint64 {
	return output(std.describe())
}

//go:wasmexport mcpr_call
func mcprCall(ptr, size uint32) uint64 {
	in, err := input(ptr, size)
	if err != nil {
		return output(encodeResult(Errorf("invalid tool call: %v", err)))
	}
	return output(std.call(in))
}

//go:wasmexport mcpr_state_save
func mcprStateSave() uint64 {
	state, err := std.saveState()
	if err != nil {
		// The ABI has no error channel for state saves. Trapping makes the
		// host see the failure instead of carrying on with empty state.
		panic(fmt.Sprintf("guest: saving state: %v", err))
	}
	return output(state)
}

//go:wasmexport mcpr_code_change
func mcprCodeChange(ptr, size uint32) uint64 {
	in, err := input(ptr, size)
	if err != nil {
		return output(encodeCodeChangeReply(fmt.Errorf("invalid code_change input: %w", err)))
	}
	return output(std.handleCodeChange(in))
}
