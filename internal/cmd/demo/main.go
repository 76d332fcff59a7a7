// Command demo shows the code loader at work on one machine: it loads the
// counter tool, calls it, hot reloads it to v2 keeping its state, refuses a
// broken v3 while v2 keeps serving, and rolls back to v1. make demo runs it.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mcpreload/mcpreload/internal/wasmbuild"
	"github.com/mcpreload/mcpreload/loader"
)

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

func say(format string, args ...any) { fmt.Printf(format+"\n", args...) }

func run(ctx context.Context) error {
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	root, err := wasmbuild.FindRoot(wd)
	if err != nil {
		return err
	}
	out := wasmbuild.OutDir(root)
	if err := wasmbuild.Build(ctx, root, out); err != nil {
		return err
	}
	read := func(name string) ([]byte, error) { return os.ReadFile(wasmbuild.OutputPath(out, name)) }

	l, err := loader.New(ctx, loader.Config{CacheDir: filepath.Join(root, "build", "cache", "wazero")})
	if err != nil {
		return err
	}
	defer func() { _ = l.Close(ctx) }()

	call := func(tool string) (string, error) {
		res, err := l.Call(ctx, tool, json.RawMessage(`{}`))
		if err != nil {
			return "", err
		}
		var r struct {
			Content []struct{ Text string } `json:"content"`
		}
		if err := json.Unmarshal(res.Output, &r); err != nil || len(r.Content) == 0 {
			return "", fmt.Errorf("unexpected result %s", res.Output)
		}
		return fmt.Sprintf("%s  (served by %s, %s)", r.Content[0].Text, res.Version, short(res.Digest)), nil
	}
	reload := func(name string) error {
		wasm, err := read(name)
		if err != nil {
			return err
		}
		staged, err := l.Prepare(ctx, "counter", wasm, loader.DigestOf(wasm))
		if err != nil {
			return err
		}
		res, err := l.Commit(ctx, staged)
		if err != nil {
			return err
		}
		say("    committed %s -> %s in %v, state migrated: %v", res.From.Version, res.To.Version, res.Took.Round(1000), res.Migrated)
		return nil
	}

	say("1. Load the counter tool, version 1 (a WebAssembly module built from examples/counter/v1).")
	v1, err := read("counter-v1")
	if err != nil {
		return err
	}
	staged, err := l.Prepare(ctx, "counter", v1, loader.DigestOf(v1))
	if err != nil {
		return err
	}
	if _, err := l.Commit(ctx, staged); err != nil {
		return err
	}
	say("    loaded %s, %d bytes, digest %s", staged.Info().Version, len(v1), short(staged.Digest()))
	say("2. Call counter_increment three times.")
	for range 3 {
		s, err := call("counter_increment")
		if err != nil {
			return err
		}
		say("    count = %s", s)
	}

	say("3. Hot reload to version 2. It keeps its state in a new shape and migrates v1's count in code_change.")
	if err := reload("counter-v2"); err != nil {
		return err
	}
	s, err := call("counter_increment")
	if err != nil {
		return err
	}
	say("    count = %s   <- the count survived the upgrade", s)

	say("4. Try a broken version 3: bytes that are not a WebAssembly module.")
	_, err = l.Prepare(ctx, "counter", []byte("definitely not wasm"), "")
	say("    rejected (%s at stage %s): %v", loader.Code(err), loader.StageOf(err), err)
	s, err = call("counter_get")
	if err != nil {
		return err
	}
	say("    still serving: count = %s", s)

	say("5. Roll back to version 1 (kept loaded: no recompile). v1 migrates v2's state down.")
	rb, err := l.Rollback(ctx, "counter")
	if err != nil {
		return err
	}
	say("    rolled back %s -> %s in %v, state carried down: %v", rb.From.Version, rb.To.Version, rb.Took.Round(1000), rb.Migrated)
	s, err = call("counter_get")
	if err != nil {
		return err
	}
	say("    count = %s", s)
	say("Done: one load, one hot upgrade with state, one rejected broken module, one rollback, no call failed.")
	return nil
}

func short(d string) string {
	if len(d) > 19 {
		return d[:19] + "…"
	}
	return d
}
