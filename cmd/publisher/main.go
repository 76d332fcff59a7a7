// Command mcpreload-publisher ships WebAssembly tool modules to an mcpreload
// fleet over NATS JetStream: reload, rollback, status, history, nodes. See
// internal/publisher and `mcpreload-publisher --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/mcpreload/mcpreload/internal/publisher"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := publisher.Main(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
