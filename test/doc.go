// Package test holds mcpreload's integration and fault tests: real nodes
// (their Main, real HTTP on loopback), the official MCP Go SDK as the client,
// embedded nats-server with JetStream, and wasm modules built from source.
package test
