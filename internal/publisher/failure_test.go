package publisher_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/events"
	"github.com/mcpreload/mcpreload/internal/bus"
	"github.com/mcpreload/mcpreload/internal/natstest"
	"github.com/mcpreload/mcpreload/internal/publisher"
	"github.com/mcpreload/mcpreload/internal/testutil"
	"github.com/mcpreload/mcpreload/internal/wasmgen"
	"github.com/mcpreload/mcpreload/loader"
)

// TestInvalidModuleIsRefusedBeforeUpload: the local check refuses the
// module with the loader's stage and code, exit 2, and NATS is untouched.
func TestInvalidModuleIsRefusedBeforeUpload(t *testing.T) {
	s := natstest.Run(t)
	for _, tc := range []struct {
		name string
		wasm []byte
		want string
	}{
		{"not wasm", wasmgen.InvalidBytes(), "compile/invalid_wasm"},
		{"missing export", wasmgen.MissingExport(wasmgen.ExportCall), "abi/missing_export"},
		{"forbidden import", wasmgen.ForbiddenImport(), "abi/forbidden_import"},
		{"describe traps", wasmgen.Tiny(wasmgen.Spec{Misbehave: wasmgen.TrapInDescribe}), "describe/trap"},
		{"bad describe", wasmgen.DescribeJSON("{not json"), "describe/bad_describe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, "reload", "--module", "tiny", "--wasm", wasmFile(t, tc.wasm), "--nats-url", s.ClientURL())
			require.Equal(t, publisher.ExitUsage, r.code, r.stdout+r.stderr)
			require.Contains(t, r.stderr, tc.want)
			require.Contains(t, r.stderr, "nothing was uploaded")
			require.NotContains(t, r.stdout, "uploaded")

			r = run(t, "reload", "--module", "tiny", "--wasm", wasmFile(t, tc.wasm), "--nats-url", s.ClientURL(), "--output", "json")
			require.Equal(t, publisher.ExitUsage, r.code)
			doc := jsonOut[reloadReport](t, r)
			require.Equal(t, publisher.ExitUsage, doc.ExitCode)
			require.Contains(t, doc.Error, tc.want)
		})
	}
	// Nothing was created, let alone uploaded: the publisher never touched
	// JetStream.
	js, err := jetstream.New(s.Connect(t))
	require.NoError(t, err)
	_, err = js.ObjectStore(t.Context(), bus.NamesFor("").ModulesBucket)
	require.ErrorIs(t, err, jetstream.ErrBucketNotFound)
	_, err = js.Stream(t.Context(), bus.NamesFor("").RequestStream)
	require.ErrorIs(t, err, jetstream.ErrStreamNotFound)
}

// TestBadInputIsExit2: bad flags and bad input are refused before NATS is
// contacted (the URL points nowhere, which would be exit 4).
func TestBadInputIsExit2(t *testing.T) {
	nowhere := closedURL(t)
	good := wasmFile(t, wasmgen.Tiny(wasmgen.Spec{}))
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.wasm")
	require.NoError(t, os.WriteFile(empty, nil, 0o644))
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "no command given"},
		{"unknown command", []string{"deploy"}, `unknown command "deploy"`},
		{"unknown flag", []string{"reload", "--modul", "x"}, "flag provided but not defined: -modul"},
		{"unknown global flag", []string{"--natsurl", "x", "status"}, "flag provided but not defined"},
		{"missing module", []string{"reload", "--wasm", good}, "--module is required"},
		{"missing wasm", []string{"reload", "--module", "tiny"}, "--wasm is required"},
		{"bad module name", []string{"reload", "--module", "a.b", "--wasm", good}, `module "a.b"`},
		{"bad strategy", []string{"reload", "--module", "tiny", "--wasm", good, "--strategy", "most"}, `strategy "most"`},
		{"local without nodes", []string{"reload", "--module", "tiny", "--wasm", good, "--strategy", "local"}, "nodes must list at least one node"},
		{"bad node id", []string{"reload", "--module", "tiny", "--wasm", good, "--nodes", "n1,n*"}, `node "n*"`},
		{"duplicate node", []string{"reload", "--module", "tiny", "--wasm", good, "--nodes", "n1,n1"}, "listed twice"},
		{"timeout too long", []string{"reload", "--module", "tiny", "--wasm", good, "--timeout", "2h"}, "timeout 2h0m0s"},
		{"bad duration", []string{"reload", "--module", "tiny", "--wasm", good, "--timeout", "soon"}, "invalid value"},
		{"unreadable file", []string{"reload", "--module", "tiny", "--wasm", filepath.Join(dir, "missing.wasm")}, "cannot read --wasm"},
		{"directory", []string{"reload", "--module", "tiny", "--wasm", dir}, "is a directory"},
		{"empty file", []string{"reload", "--module", "tiny", "--wasm", empty}, "empty file"},
		{"over the size cap", []string{"reload", "--module", "tiny", "--wasm", good, "--max-module-bytes", "10"}, "over --max-module-bytes 10"},
		{"bad cache dir", []string{"reload", "--module", "tiny", "--wasm", good, "--cache-dir", filepath.Join(good, "sub")}, "check --cache-dir"},
		{"bad output", []string{"status", "--output", "yaml"}, `--output "yaml"`},
		{"bad prefix", []string{"status", "--prefix", "a..b"}, "--prefix"},
		{"extra argument", []string{"status", "counter"}, `unexpected argument "counter"`},
		{"bad rollback digest", []string{"rollback", "--module", "counter", "--to", "sha256:abc"}, "want sha256:"},
		{"rollback without module", []string{"rollback"}, "--module is required"},
		{"negative limit", []string{"history", "--limit", "-1"}, "--limit must not be negative"},
		{"missing credentials file", []string{"status", "--creds", filepath.Join(dir, "none.creds")}, "credentials file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, append(tc.args, "--nats-url", nowhere)...)
			if tc.args == nil {
				r = run(t)
			}
			require.Equal(t, publisher.ExitUsage, r.code, r.stdout+r.stderr)
			require.Contains(t, r.stderr, tc.want)
		})
	}

	t.Run("help is exit 0 with usage, examples and exit codes", func(t *testing.T) {
		for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"reload", "--help"}, {"help", "status"},
			{"rollback", "-h"}, {"history", "--help"}, {"nodes", "--help"}} {
			r := run(t, args...)
			require.Equal(t, publisher.ExitOK, r.code, args)
			require.Contains(t, r.stdout, "Usage:", args)
			require.Contains(t, r.stdout, "Examples:", args)
			require.Contains(t, r.stdout, "Exit codes:", args)
			require.Contains(t, r.stdout, "-nats-url", args)
			require.Empty(t, r.stderr, args)
		}
		r := run(t, "reload", "--help")
		require.Contains(t, r.stdout, "-max-module-bytes")
		require.Contains(t, r.stdout, "quorum")
	})

	t.Run("an unknown command prints the usage", func(t *testing.T) {
		r := run(t, "deploy")
		require.Contains(t, r.stderr, "Commands:")
	})

	t.Run("environment", func(t *testing.T) {
		r := runEnv(t, map[string]string{"MCPRELOAD_STRATEGY": "sometimes"}, "reload", "--module", "tiny", "--wasm", good)
		require.Equal(t, publisher.ExitUsage, r.code)
		require.Contains(t, r.stderr, `strategy "sometimes"`)
		r = runEnv(t, map[string]string{"MCPRELOAD_TIMEOUT": "soon"}, "reload")
		require.Equal(t, publisher.ExitUsage, r.code)
		require.Contains(t, r.stderr, "MCPRELOAD_TIMEOUT")
	})
}

// TestNATSUnreachableIsExit4: a closed loopback port fails fast with exit 4
// and a hint, for every command.
func TestNATSUnreachableIsExit4(t *testing.T) {
	nowhere := closedURL(t)
	good := wasmFile(t, wasmgen.Tiny(wasmgen.Spec{}))
	for _, args := range [][]string{
		{"reload", "--module", "tiny", "--wasm", good},
		{"rollback", "--module", "tiny"},
		{"status"},
		{"history"},
		{"nodes"},
	} {
		t.Run(args[0], func(t *testing.T) {
			start := time.Now()
			r := run(t, append(args, "--nats-url", nowhere, "--connect-timeout", "1s")...)
			require.Equal(t, publisher.ExitNATS, r.code, r.stdout+r.stderr)
			require.Less(t, time.Since(start), 5*time.Second)
			require.Contains(t, r.stderr, "cannot reach NATS at "+nowhere)
			require.Contains(t, r.stderr, "--embedded-nats")
			require.Contains(t, r.stderr, "(exit 4)")
		})
	}
	t.Run("JSON output carries the error", func(t *testing.T) {
		r := runEnv(t, map[string]string{"MCPRELOAD_NATS_URL": nowhere, "MCPRELOAD_OUTPUT": "json"}, "status")
		require.Equal(t, publisher.ExitNATS, r.code)
		doc := jsonOut[reloadReport](t, r)
		require.Equal(t, publisher.ExitNATS, doc.ExitCode)
		require.Contains(t, doc.Error, "cannot reach NATS")
	})
}

// TestJetStreamDisabledIsExit4: a server without JetStream is a NATS error
// that says what to do.
func TestJetStreamDisabledIsExit4(t *testing.T) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	require.NoError(t, err)
	go s.Start()
	require.True(t, s.ReadyForConnections(10*time.Second))
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	r := run(t, "status", "--nats-url", s.ClientURL())
	require.Equal(t, publisher.ExitNATS, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stderr, "JetStream")
}

// TestEnvironmentAndFlagPrecedence: MCPRELOAD_* set defaults, flags win.
func TestEnvironmentAndFlagPrecedence(t *testing.T) {
	f := newFleet(t)
	env := map[string]string{"MCPRELOAD_NATS_URL": f.url(), "MCPRELOAD_OUTPUT": "json"}
	r := runEnv(t, env, "nodes")
	require.Equal(t, publisher.ExitOK, r.code, r.stderr)
	require.Empty(t, jsonOut[[]publisher.NodeInfo](t, r))

	r = runEnv(t, env, "history", "--output", "text")
	require.Equal(t, publisher.ExitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "no saga in the history")

	r = runEnv(t, map[string]string{"MCPRELOAD_NATS_URL": closedURL(t)}, "--nats-url", f.url(), "status")
	require.Equal(t, publisher.ExitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "no live node")
}

// TestNoOutcomeInTime: without an orchestrator the outcome never comes:
// ErrNoOutcome, exit 3, and the saga id is known.
func TestNoOutcomeInTime(t *testing.T) {
	f := newFleet(t)
	b, err := publisher.Open(t.Context(), f.nc, "")
	require.NoError(t, err)
	var kinds []publisher.EventKind
	res, err := publisher.Reload(t.Context(), b, publisher.ReloadOptions{
		Module: "tiny", Wasm: wasmgen.Tiny(wasmgen.Spec{}), Timeout: time.Second, Wait: 300 * time.Millisecond,
	}, func(e publisher.Event) { kinds = append(kinds, e.Kind) })
	require.ErrorIs(t, err, publisher.ErrNoOutcome)
	require.Equal(t, publisher.ExitTimeout, publisher.ExitCode(err))
	require.Contains(t, err.Error(), "is an orchestrator running")
	require.True(t, res.Published)
	require.NotEmpty(t, res.Saga)
	require.Equal(t, []publisher.EventKind{publisher.EventChecked, publisher.EventUploaded, publisher.EventPublished}, kinds)
}

// TestInterruptedWhileWaiting: cancelling the context (SIGINT in the
// binary) after the request went out is exit 130, and says the saga goes
// on.
func TestInterruptedWhileWaiting(t *testing.T) {
	f := newFleet(t) // no orchestrator: the saga never ends
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout bytes.Buffer
	stderr := &cancelOn{match: "published saga ", cancel: cancel}
	code := publisher.Main(ctx, []string{"reload", "--module", "tiny", "--wasm", wasmFile(t, wasmgen.Tiny(wasmgen.Spec{})),
		"--nats-url", f.url(), "--output", "json"}, func(string) string { return "" }, &stdout, stderr)
	require.Equal(t, publisher.ExitInterrupted, code, stderr.String())
	doc := jsonOut[reloadReport](t, result{stdout: stdout.String()})
	require.True(t, doc.Published)
	require.NotEmpty(t, doc.Saga)
	require.Equal(t, publisher.ExitInterrupted, doc.ExitCode)
	require.Contains(t, doc.Error, "saga "+doc.Saga+" goes on")
}

// cancelOn is a writer that calls cancel once match was written to it.
type cancelOn struct {
	bytes.Buffer
	match  string
	cancel func()
}

func (c *cancelOn) Write(p []byte) (int, error) {
	n, err := c.Buffer.Write(p)
	if strings.Contains(c.String(), c.match) {
		c.cancel()
	}
	return n, err
}

// TestOpenKeepsTheNodesConfiguration: binding to existing resources does
// not re-declare them (bus.Open with defaults would reset the presence TTL
// the nodes chose), and a fresh deployment gets them created.
func TestOpenKeepsTheNodesConfiguration(t *testing.T) {
	f := newFleet(t) // presence TTL 3s, as nodes started with --presence-ttl 3s
	b, err := publisher.Open(t.Context(), f.nc, "")
	require.NoError(t, err)
	require.Equal(t, 3*time.Second, b.PresenceTTL)
	st, err := f.b.Nodes.Status(t.Context())
	require.NoError(t, err)
	require.Equal(t, 3*time.Second, st.TTL())

	fresh := natstest.Run(t)
	b, err = publisher.Open(t.Context(), fresh.Connect(t), "team.a")
	require.NoError(t, err)
	require.Equal(t, "TEAM_A_SAGAS", b.Names.SagaStream)
	_, err = b.JS.Stream(t.Context(), "TEAM_A_REQUESTS")
	require.NoError(t, err)
}

// TestRejectionDriftAndPins: a node with a small --max-module-bytes
// refuses a bigger module: strategy all aborts (exit 1, the node and reason
// reported), quorum commits without it, status then reports the drift
// (exit 1), and a local reload pinning that node makes the fleet consistent
// again (the pin wins over the fleet's desired digest).
func TestRejectionDriftAndPins(t *testing.T) {
	f := newFleet(t)
	f.node(t, "n1", "--orchestrator")
	f.node(t, "n2", "--max-module-bytes", "16384")
	f.node(t, "n3")
	f.waitLive(t, "n1", "n2", "n3")
	small := wasmgen.Tiny(wasmgen.Spec{Version: "1.0.0", Tools: []string{"tiny_echo"}})
	big := wasmgen.Padded(wasmgen.Spec{Version: "2.0.0", Tools: []string{"tiny_echo"}}, 32<<10)
	smallFile, bigFile := wasmFile(t, small), wasmFile(t, big)
	reload := func(extra ...string) result {
		return run(t, append([]string{"reload", "--module", "tiny", "--nats-url", f.url(), "--timeout", "10s"}, extra...)...)
	}

	r := reload("--wasm", smallFile)
	require.Equal(t, publisher.ExitOK, r.code, r.stdout+r.stderr)

	t.Run("strategy all aborts on a rejection", func(t *testing.T) {
		r := reload("--wasm", bigFile, "--output", "json")
		require.Equal(t, publisher.ExitFailed, r.code, r.stdout+r.stderr)
		rep := jsonOut[reloadReport](t, r)
		require.Equal(t, events.ResultAborted, rep.Result)
		require.Contains(t, rep.Reason, "n2 rejected (too_large)")
		state, stage, code, msg := rep.node("n2")
		require.Equal(t, "rejected", state)
		// The module is small enough to travel inline in the prepare
		// command, so the node's size cap refuses it in validation.
		require.Equal(t, "validate", stage)
		require.Equal(t, "too_large", code)
		require.Contains(t, msg, "the cap is 16384")
		for _, id := range []string{"n1", "n3"} {
			state, _, _, _ := rep.node(id)
			require.Equal(t, "aborted", state, id)
		}
	})

	t.Run("the text output names the node and the reason", func(t *testing.T) {
		r := reload("--wasm", bigFile)
		require.Equal(t, publisher.ExitFailed, r.code, r.stdout+r.stderr)
		require.Contains(t, r.stdout, "already stored "+loader.DigestOf(big))
		require.Contains(t, r.stdout, "n2 rejected: validate/too_large: ")
		require.Contains(t, r.stdout, "result: aborted")
		require.Contains(t, r.stdout, "nothing was committed")
		d, _, err := f.b.GetDesired(t.Context(), "tiny", "")
		require.NoError(t, err)
		require.Equal(t, loader.DigestOf(small), d.Digest, "an aborted saga leaves the desired version alone")
	})

	t.Run("quorum commits without the node", func(t *testing.T) {
		r := reload("--wasm", bigFile, "--strategy", "quorum", "--output", "json")
		require.Equal(t, publisher.ExitOK, r.code, r.stdout+r.stderr)
		rep := jsonOut[reloadReport](t, r)
		require.Equal(t, events.ResultCommitted, rep.Result)
		state, _, _, _ := rep.node("n2")
		require.Equal(t, "rejected", state)
	})

	t.Run("status reports the drift", func(t *testing.T) {
		var rep publisher.StatusReport
		require.Eventually(t, func() bool {
			r := run(t, "status", "--nats-url", f.url(), "--output", "json")
			if r.code != publisher.ExitFailed {
				return false
			}
			rep = jsonOut[publisher.StatusReport](t, r)
			ok := 0
			for _, n := range rep.Modules[0].Nodes {
				if n.State == publisher.StateOK {
					ok++
				}
			}
			return ok == 2
		}, 15*time.Second, 50*time.Millisecond)
		require.False(t, rep.Consistent)
		m := rep.Modules[0]
		require.False(t, m.Consistent)
		require.Equal(t, loader.DigestOf(big), m.Desired)
		require.Equal(t, publisher.NodeStatus{Node: "n2", Serving: loader.DigestOf(small), Version: "1.0.0",
			Desired: loader.DigestOf(big), State: publisher.StateDrift}, m.Nodes[1])

		r := run(t, "status", "--module", "tiny", "--nats-url", f.url())
		require.Equal(t, publisher.ExitFailed, r.code, r.stdout+r.stderr)
		require.Contains(t, r.stdout, "DRIFT")
		require.Contains(t, r.stdout, "INCONSISTENT: n2 serves tiny "+publisher.ShortDigest(loader.DigestOf(small)))
	})

	t.Run("a pin from a local reload wins over the fleet's desired digest", func(t *testing.T) {
		small3 := wasmgen.Tiny(wasmgen.Spec{Version: "3.0.0", Tools: []string{"tiny_echo"}})
		r := reload("--wasm", wasmFile(t, small3), "--strategy", "local", "--nodes", "n2")
		require.Equal(t, publisher.ExitOK, r.code, r.stdout+r.stderr)
		var rep publisher.StatusReport
		require.Eventually(t, func() bool {
			r := run(t, "status", "--nats-url", f.url(), "--output", "json")
			rep = jsonOut[publisher.StatusReport](t, r)
			return r.code == publisher.ExitOK
		}, 15*time.Second, 50*time.Millisecond)
		n2 := rep.Modules[0].Nodes[1]
		require.True(t, n2.Pinned)
		require.Equal(t, loader.DigestOf(small3), n2.Desired)
		require.Equal(t, publisher.StateOK, n2.State)
	})
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, publisher.ExitOK},
		{publisher.ErrInvalidModule, publisher.ExitUsage},
		{publisher.ErrInvalidRequest, publisher.ExitUsage},
		{publisher.ErrNoPrevious, publisher.ExitUsage},
		{publisher.ErrUnknownModule, publisher.ExitUsage},
		{bus.ErrNoObject, publisher.ExitUsage},
		{publisher.ErrNoOutcome, publisher.ExitTimeout},
		{publisher.ErrNATS, publisher.ExitNATS},
		{context.Canceled, publisher.ExitInterrupted},
		{errors.New("anything else"), publisher.ExitNATS},
	} {
		require.Equal(t, tc.want, publisher.ExitCode(tc.err), "%v", tc.err)
	}
	require.Equal(t, publisher.ExitOK, publisher.ResultExitCode(events.ResultCommitted))
	for _, r := range []string{events.ResultAborted, events.ResultRolledBack, events.ResultFailed} {
		require.Equal(t, publisher.ExitFailed, publisher.ResultExitCode(r))
	}
}

// TestCheckModule: the local check reports the module and refuses what a
// node would.
func TestCheckModule(t *testing.T) {
	info, err := publisher.CheckModule(t.Context(), "calc", testutil.Wasm(t, "calc"), publisher.CheckOptions{CacheDir: testutil.CacheDir(t)})
	require.NoError(t, err)
	require.NotEmpty(t, info.Tools)
	_, err = publisher.CheckModule(t.Context(), "tiny", wasmgen.HugeMemory(40000), publisher.CheckOptions{})
	require.ErrorIs(t, err, publisher.ErrInvalidModule)
	require.ErrorIs(t, err, loader.ErrMemoryLimit)
}
