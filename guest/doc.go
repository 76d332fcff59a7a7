// Package guest is the Go SDK for writing mcpreload tool modules.
//
// A tool module is a wasm32 module that implements the mcpreload tool
// module ABI v1: it describes its version and MCP tools, executes tool calls,
// and optionally saves and migrates its state so the host can hot-swap one
// version for another without losing it. This package implements the whole
// ABI; a tool author only registers tools and, for stateful tools, the state
// hooks:
//
//	package main
//
//	import (
//		"encoding/json"
//
//		"github.com/mcpreload/mcpreload/guest"
//	)
//
//	func main() {}
//
//	func init() {
//		guest.SetVersion("1.0.0")
//		guest.SetStateless(true)
//		guest.Register(guest.Tool{
//			Name:        "echo",
//			Description: "Return the given text.",
//			InputSchema: json.RawMessage(`{"type":"object","properties":{"text":{"type":"string"}},"required":["text"]}`),
//			Handler: func(args json.RawMessage) (guest.Result, error) {
//				var in struct {
//					Text string `json:"text"`
//				}
//				if err := json.Unmarshal(args, &in); err != nil {
//					return guest.Result{}, err
//				}
//				return guest.Text(in.Text), nil
//			},
//		})
//	}
//
// Build it as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o echo.wasm .
//
// The main package needs a main function, but it never runs: the host calls
// the module's _initialize export, which runs package initialization (and
// therefore the init functions registering tools) and not main.
//
// # Exports
//
// Linking this package into a wasip1 build adds the ABI exports mcpr_alloc,
// mcpr_describe, mcpr_call, mcpr_state_save and mcpr_code_change. The last
// two are always exported; without the corresponding hook they behave as
// documented on [OnStateSave] and [OnCodeChange]. On other platforms the
// package compiles without the exports, so tool logic can be unit tested on
// the host.
//
// # Errors
//
// A handler reports a failure the model should see by returning an error or
// a [Result] with IsError set (see [Errorf]); both become a CallToolResult
// with "isError": true. A panicking handler is recovered and reported the
// same way, so one bad call does not take the instance down. Calls naming an
// unknown tool or carrying malformed input also produce an isError result.
//
// Configuration mistakes (an empty version, an invalid tool definition, a
// duplicate tool name) panic: they happen during initialization, so the
// module fails to instantiate, with the panic message on its stderr.
//
// # Concurrency
//
// The host serializes calls into an instance, and handlers and hooks run
// synchronously inside them, so they may use package-level state without
// locking.
package guest
