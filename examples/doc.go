// Package examples holds example tool modules written with the guest SDK
// (github.com/mcpreload/mcpreload/guest). Each subdirectory is a main
// package built into a wasm tool module:
//
//   - calc: a stateless module with calc_add, calc_sub, calc_mul and
//     calc_div (version 1.0.0).
//   - counter/v1, counter/v2, counter/v3: three successive versions (1.0.0,
//     2.0.0, 3.0.0) of a stateful counter, showing state migration on
//     upgrade and rollback; v2 changes the state shape behind unchanged
//     tools, v3 adds the counter_reset tool.
//
// Build them all into build/wasm with
//
//	go run ./internal/wasmbuild/cmd/buildwasm
//
// or one by hand, for example
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o build/wasm/calc.wasm ./examples/calc
//
// The package's tests build every example and exercise it through the ABI
// in wazero.
package examples
