package publisher

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/mcpreload/mcpreload/events"
	"github.com/mcpreload/mcpreload/internal/signing"
)

func runReload(ctx context.Context, r *runner) int {
	c := r.cfg
	switch {
	case c.Module == "":
		return r.usage(errors.New("--module is required"))
	case c.Wasm == "":
		return r.usage(errors.New("--wasm is required"))
	case c.MaxModuleBytes <= 0:
		return r.usage(errors.New("--max-module-bytes must be positive"))
	}
	wasm, err := readModule(c.Wasm, c.MaxModuleBytes)
	if err != nil {
		return r.fail(ExitUsage, err, nil)
	}
	signer, err := loadSigner(c.SignKey)
	if err != nil {
		return r.fail(ExitUsage, err, nil)
	}
	o := ReloadOptions{
		Module: c.Module, Wasm: wasm, Strategy: events.Strategy(c.Strategy), Nodes: splitNodes(c.Nodes),
		Timeout: c.Timeout, NoWait: c.NoWait, Check: CheckOptions{MaxModuleBytes: c.MaxModuleBytes, CacheDir: c.CacheDir},
		Signer: signer,
	}
	live := r.live()
	start := time.Now()
	info, err := Check(ctx, o) // flags and module, before NATS is contacted
	if err != nil {
		return r.fail(ExitCode(err), err, nil)
	}
	live(Event{Kind: EventChecked, Time: time.Now(), Module: o.Module, Info: info})
	b, closeBus, err := r.open(ctx)
	if err != nil {
		return r.fail(ExitCode(err), err, nil)
	}
	defer closeBus()
	o.SkipCheck = true
	res, err := Reload(ctx, b, o, live)
	res.Info = info
	return r.reportReload(res, err, time.Since(start))
}

func runRollback(ctx context.Context, r *runner) int {
	c := r.cfg
	if c.Module == "" {
		return r.usage(errors.New("--module is required"))
	}
	signer, err := loadSigner(c.SignKey)
	if err != nil {
		return r.fail(ExitUsage, err, nil)
	}
	o := RollbackOptions{Module: c.Module, To: c.To, Strategy: events.Strategy(c.Strategy), Nodes: splitNodes(c.Nodes),
		Timeout: c.Timeout, NoWait: c.NoWait, Signer: signer}
	// Check the flags before connecting; without --to, any valid digest
	// stands in for the one history will give.
	probe := ReloadOptions{Module: o.Module, Digest: o.To, Strategy: o.Strategy, Nodes: o.Nodes, Timeout: o.Timeout}
	if probe.Digest == "" {
		probe.Digest = "sha256:" + zeros64
	}
	if _, err := probe.Request(); err != nil {
		return r.fail(ExitUsage, err, nil)
	}
	start := time.Now()
	b, closeBus, err := r.open(ctx)
	if err != nil {
		return r.fail(ExitCode(err), err, nil)
	}
	defer closeBus()
	if o.To == "" {
		cur, prev, err := RollbackTarget(ctx, b, o.Module)
		if err != nil {
			return r.fail(ExitCode(err), err, nil)
		}
		o.To = prev
		line := fmt.Sprintf("rolling back %s from %s to %s (the previous desired version)", o.Module, ShortDigest(cur), ShortDigest(prev))
		if cur == "" {
			line = fmt.Sprintf("%s has no desired version; restoring the last one, %s", o.Module, ShortDigest(prev))
		}
		r.liveLine(line)
	}
	res, err := Rollback(ctx, b, o, r.live())
	return r.reportReload(res, err, time.Since(start))
}

func runStatus(ctx context.Context, r *runner) int {
	if m := r.cfg.Module; m != "" {
		if err := validModule(m); err != nil {
			return r.fail(ExitUsage, err, nil)
		}
	}
	b, closeBus, err := r.open(ctx)
	if err != nil {
		return r.fail(ExitCode(err), err, nil)
	}
	defer closeBus()
	rep, err := Status(ctx, b, r.cfg.Module)
	if err != nil {
		return r.fail(ExitCode(err), err, nil)
	}
	if r.json() {
		writeJSON(r.stdout, rep)
	} else {
		writeStatus(r.stdout, rep)
	}
	if !rep.Consistent {
		return ExitFailed
	}
	return ExitOK
}

func runHistory(ctx context.Context, r *runner) int {
	c := r.cfg
	if c.Module != "" {
		if err := validModule(c.Module); err != nil {
			return r.fail(ExitUsage, err, nil)
		}
	}
	if c.Limit < 0 {
		return r.usage(errors.New("--limit must not be negative (0 = all)"))
	}
	limit := c.Limit
	if limit == 0 {
		limit = -1
	}
	b, closeBus, err := r.open(ctx)
	if err != nil {
		return r.fail(ExitCode(err), err, nil)
	}
	defer closeBus()
	outs, err := History(ctx, b, HistoryOptions{Module: c.Module, Limit: limit})
	if err != nil {
		return r.fail(ExitCode(err), err, nil)
	}
	if r.json() {
		writeJSON(r.stdout, outs)
	} else {
		writeHistory(r.stdout, outs)
	}
	return ExitOK
}

func runNodes(ctx context.Context, r *runner) int {
	b, closeBus, err := r.open(ctx)
	if err != nil {
		return r.fail(ExitCode(err), err, nil)
	}
	defer closeBus()
	nodes, err := Nodes(ctx, b, nil)
	if err != nil {
		return r.fail(ExitCode(err), err, nil)
	}
	if r.json() {
		writeJSON(r.stdout, nodes)
	} else {
		writeNodes(r.stdout, nodes, time.Now())
	}
	return ExitOK
}

// reloadReport is the JSON document of reload and rollback.
type reloadReport struct {
	Saga           string              `json:"saga"`
	Module         string              `json:"module"`
	Digest         string              `json:"digest"`
	PreviousDigest string              `json:"previous_digest,omitempty"`
	Version        string              `json:"version,omitempty"`
	Strategy       events.Strategy     `json:"strategy"`
	Result         string              `json:"result"`
	Reason         string              `json:"reason"`
	Nodes          []events.NodeResult `json:"nodes"`
	StartedAt      time.Time           `json:"started_at"`
	FinishedAt     time.Time           `json:"finished_at"`
	Uploaded       bool                `json:"uploaded"`
	TookMS         int64               `json:"took_ms"`
}

// reportReload prints the end of a reload or rollback and returns its exit
// code.
func (r *runner) reportReload(res *ReloadResult, err error, took time.Duration) int {
	if err != nil {
		var doc map[string]any
		if res.Published {
			doc = map[string]any{"saga": res.Saga, "module": res.Module, "digest": res.Digest, "uploaded": res.Uploaded, "published": true}
			if errors.Is(err, context.Canceled) {
				err = withKind(context.Canceled, fmt.Errorf("interrupted while waiting; saga %s goes on: see `mcpreload-publisher history --module %s`", res.Saga, res.Module))
			}
		}
		return r.fail(ExitCode(err), err, doc)
	}
	if res.Outcome == nil { // --no-wait
		if r.json() {
			writeJSON(r.stdout, map[string]any{"saga": res.Saga, "module": res.Module, "digest": res.Digest, "published": true, "uploaded": res.Uploaded})
		} else {
			fmt.Fprintf(r.stdout, "not waiting for the outcome: see `mcpreload-publisher history --module %s` or `status`\n", res.Module)
		}
		return ExitOK
	}
	o := res.Outcome
	if r.json() {
		rep := reloadReport{
			Saga: o.Saga, Module: o.Module, Digest: o.Digest, PreviousDigest: o.PreviousDigest, Strategy: o.Strategy,
			Result: o.Result, Reason: o.Reason, Nodes: o.Nodes, StartedAt: o.StartedAt, FinishedAt: o.FinishedAt,
			Uploaded: res.Uploaded, TookMS: took.Milliseconds(),
		}
		if rep.Nodes == nil {
			rep.Nodes = []events.NodeResult{}
		}
		if res.Info != nil {
			rep.Version = res.Info.Version
		}
		writeJSON(r.stdout, rep)
	} else {
		writeOutcome(r.stdout, o, took)
	}
	return ResultExitCode(o.Result)
}

// liveLine prints a free-form progress line where live events go.
func (r *runner) liveLine(s string) {
	w := r.stdout
	if r.json() {
		w = r.stderr
	}
	fmt.Fprintln(w, s)
}

func loadSigner(path string) (*signing.Signer, error) {
	if path == "" {
		return nil, nil
	}
	return signing.LoadSigner(path)
}

func runKeygen(_ context.Context, r *runner) int {
	if r.cfg.Out == "" {
		return r.usage(errors.New("--out is required"))
	}
	seed, public, err := signing.Keygen()
	if err != nil {
		return r.fail(ExitFailed, err, nil)
	}
	f, err := os.OpenFile(r.cfg.Out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return r.fail(ExitUsage, fmt.Errorf("seed file: %w (keygen never overwrites a key)", err), nil)
	}
	if _, err := f.Write(append(seed, '\n')); err != nil {
		_ = f.Close()
		return r.fail(ExitUsage, err, nil)
	}
	if err := f.Close(); err != nil {
		return r.fail(ExitUsage, err, nil)
	}
	if r.json() {
		writeJSON(r.stdout, map[string]any{"public_key": public, "seed_file": r.cfg.Out})
		return ExitOK
	}
	fmt.Fprintf(r.stdout, "seed written to %s (secret: keep it in your CI's secret store)\npublic key: %s\n", r.cfg.Out, public)
	fmt.Fprintln(r.stdout, "add the public key to the --trusted-keys file of every node")
	return ExitOK
}
