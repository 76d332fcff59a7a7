package publisher_test

import (
	"context"
	"fmt"
	"os"

	"github.com/mcpreload/mcpreload/events"
	"github.com/mcpreload/mcpreload/internal/publisher"
)

// Reload a module from Go, as the CLI's reload command does, and map the
// outcome to an exit code. (Compiled, not run: it needs a fleet.)
func ExampleReload() {
	ctx := context.Background()
	nc, err := publisher.Connect(publisher.ConnectOptions{URL: "nats://127.0.0.1:4222"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	b, err := publisher.Open(ctx, nc, "")
	if err != nil {
		fmt.Println(err)
		return
	}
	wasm, err := os.ReadFile("build/wasm/counter-v2.wasm")
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := publisher.Reload(ctx, b, publisher.ReloadOptions{
		Module: "counter", Wasm: wasm, Strategy: events.StrategyQuorum,
	}, func(e publisher.Event) { fmt.Println(e) })
	if err != nil {
		fmt.Println(err, "exit", publisher.ExitCode(err))
		return
	}
	fmt.Println(res.Outcome.Result, "exit", publisher.ResultExitCode(res.Outcome.Result))
}

// Check that every live node serves its desired version.
func ExampleStatus() {
	ctx := context.Background()
	nc, err := publisher.Connect(publisher.ConnectOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	b, err := publisher.Open(ctx, nc, "")
	if err != nil {
		fmt.Println(err)
		return
	}
	rep, err := publisher.Status(ctx, b, "")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, m := range rep.Modules {
		for _, n := range m.Nodes {
			fmt.Println(m.Module, n.Node, n.State)
		}
	}
}
