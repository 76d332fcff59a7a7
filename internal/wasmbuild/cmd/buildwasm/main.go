// Command buildwasm builds the example tool modules into wasm files.
//
// Usage:
//
//	go run ./internal/wasmbuild/cmd/buildwasm [-root dir] [-out dir] [target ...]
//
// With no targets it builds all of them (see wasmbuild.Targets). A target
// whose output is newer than its sources is left alone. It prints one line
// per target and exits with status 1 on failure.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/mcpreload/mcpreload/internal/wasmbuild"
)

func main() {
	root := flag.String("root", "", "repository root (default: the directory of the nearest go.mod of "+wasmbuild.ModulePath+" at or above the working directory)")
	out := flag.String("out", "", "output directory (default: <root>/build/wasm)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: buildwasm [-root dir] [-out dir] [target ...]\n")
		flag.PrintDefaults()
	}
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *root, *out, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "buildwasm:", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, root, out string, targets []string) error {
	if root == "" {
		wd, err := os.Getwd()
		if err != nil {
			return err
		}
		if root, err = wasmbuild.FindRoot(wd); err != nil {
			return err
		}
	}
	if out == "" {
		out = wasmbuild.OutDir(root)
	}
	return wasmbuild.BuildReport(ctx, root, out, func(o wasmbuild.Outcome) {
		path := o.Path
		if rel, err := filepath.Rel(root, o.Path); err == nil && filepath.IsLocal(rel) {
			path = rel
		}
		if o.Built {
			fmt.Printf("%-12s built %s (%s)\n", o.Name, path, o.Duration.Round(10*time.Millisecond))
		} else {
			fmt.Printf("%-12s up to date %s\n", o.Name, path)
		}
	}, targets...)
}
