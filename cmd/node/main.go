// Command mcpreload-node is an MCP server whose tools are WebAssembly
// modules, hot reloaded. See internal/node and `mcpreload-node --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/mcpreload/mcpreload/internal/node"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := node.Main(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
