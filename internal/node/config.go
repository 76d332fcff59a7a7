package node

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mcpreload/mcpreload/internal/names"
	"github.com/mcpreload/mcpreload/loader"
)

// Config is the node's configuration. Every field maps 1:1 to a flag and
// to an environment variable MCPRELOAD_<FLAG> (upper case, '-' -> '_'); a
// flag given on the command line wins over the environment.
type Config struct {
	ID        string // --id: node id, unique in the fleet (default: hostname)
	MCPListen string // --mcp-listen: address of the HTTP server (/mcp, /healthz, /readyz, /metrics)
	Stdio     bool   // --stdio: serve MCP on stdin/stdout instead of HTTP
	Watch     string // --watch: directory of *.wasm modules to load and hot reload on change (no NATS needed)
	DataDir   string // --data-dir: compilation cache and module cache

	WatchDebounce   time.Duration // --watch-debounce
	CallTimeout     time.Duration // --call-timeout
	DrainTimeout    time.Duration // --drain-timeout
	ShutdownTimeout time.Duration // --shutdown-timeout
	MaxModuleBytes  int           // --max-module-bytes
	MemoryLimitMiB  int           // --memory-limit-mib

	LogLevel  string // --log-level: debug, info, warn, error
	LogFormat string // --log-format: auto (console on a terminal, JSON otherwise), json, console

	// Fleet mode (reloads over NATS JetStream).
	NATSURL      string        // --nats-url: NATS server(s), comma-separated
	Creds        string        // --creds: NATS credentials file
	EmbeddedNATS string        // --embedded-nats: start an embedded JetStream server on this loopback address
	Prefix       string        // --prefix: subject prefix
	Orchestrator bool          // --orchestrator: also run a saga orchestrator in this process
	Replicas     int           // --replicas: replicas of streams and buckets this node creates
	PresenceTTL  time.Duration // --presence-ttl: a node is live this long after its last heartbeat
	Lease        time.Duration // --lease: how long an orchestrator owns a saga without renewing
	TrustedKeys  string        // --trusted-keys: file of public keys; reloads not signed by one are refused
}

// Fleet reports whether the node takes part in a fleet over NATS.
func (c Config) Fleet() bool { return c.NATSURL != "" || c.EmbeddedNATS != "" }

// ErrHelp is returned by ParseFlags when -h or --help was given.
var ErrHelp = flag.ErrHelp

const usage = `mcpreload-node: an MCP server whose tools are WebAssembly modules, hot reloaded.

Usage:
  mcpreload-node [flags]

Examples:
  mcpreload-node --watch ./tools                 # one-machine loop: reload tools/*.wasm on change
  mcpreload-node --watch ./tools --stdio         # the same, for a desktop MCP client that launches the node
  mcpreload-node --id a --embedded-nats 127.0.0.1:4222 --orchestrator   # a one-machine fleet: NATS inside the node
  mcpreload-node --id b --nats-url nats://127.0.0.1:4222 --mcp-listen 127.0.0.1:7802  # another node joins

Endpoints (on --mcp-listen): /mcp (MCP streamable HTTP), /healthz, /readyz, /metrics.
Every flag can also be set as MCPRELOAD_<FLAG> in the environment (e.g. MCPRELOAD_MCP_LISTEN).

Exit codes: 0 clean shutdown (SIGTERM/SIGINT), 1 runtime failure, 2 bad flags.

Flags:
`

// ParseFlags parses args (without the program name) with defaults taken
// from getenv. Errors are usage errors.
func ParseFlags(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("mcpreload-node", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.ID, "id", defaultID(), "node id, unique in the fleet (default: the host name)")
	fs.StringVar(&c.MCPListen, "mcp-listen", "127.0.0.1:7801", "HTTP listen address for /mcp, /healthz, /readyz and /metrics")
	fs.BoolVar(&c.Stdio, "stdio", false, "serve MCP over stdin/stdout (for desktop clients that launch the node); logs go to stderr")
	fs.StringVar(&c.Watch, "watch", "", "load every *.wasm in this directory (module name = file name) and hot reload it on change")
	fs.StringVar(&c.DataDir, "data-dir", defaultDataDir(), "directory for the compilation cache and the module cache")
	fs.DurationVar(&c.WatchDebounce, "watch-debounce", 150*time.Millisecond, "wait this long after the last change to a file before reloading it")
	fs.DurationVar(&c.CallTimeout, "call-timeout", loader.DefaultCallTimeout, "deadline of every tool call")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", loader.DefaultDrainTimeout, "how long a reload waits for calls in flight on the old version")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGTERM, how long to wait for calls in flight")
	fs.IntVar(&c.MaxModuleBytes, "max-module-bytes", loader.DefaultMaxModuleBytes, "largest module accepted")
	fs.IntVar(&c.MemoryLimitMiB, "memory-limit-mib", loader.DefaultMemoryLimitPages/16, "linear memory cap of every tool instance, MiB")
	fs.StringVar(&c.NATSURL, "nats-url", "", "NATS server URL(s), comma-separated; enables fleet mode (reloads from mcpreload-publisher)")
	fs.StringVar(&c.Creds, "creds", "", "NATS credentials file (see deploy/nats)")
	fs.StringVar(&c.EmbeddedNATS, "embedded-nats", "", "start an embedded NATS server with JetStream on this address (e.g. 127.0.0.1:4222), data in --data-dir/nats; other nodes join with --nats-url")
	fs.StringVar(&c.Prefix, "prefix", "mcpreload", "subject prefix of every mcpreload subject (and resource names)")
	fs.BoolVar(&c.Orchestrator, "orchestrator", false, "run a saga orchestrator in this process (any number may run)")
	fs.IntVar(&c.Replicas, "replicas", 1, "replicas of the streams and buckets the node creates (3 on a JetStream cluster)")
	fs.DurationVar(&c.PresenceTTL, "presence-ttl", 10*time.Second, "a node counts as live this long after its last heartbeat")
	fs.DurationVar(&c.Lease, "lease", 10*time.Second, "an orchestrator that stops renewing a saga loses it to another after this long")
	fs.StringVar(&c.TrustedKeys, "trusted-keys", "", "file of nkeys public keys (one per line); refuse reloads that are unsigned or signed by another key")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "auto", "auto (console on a terminal, JSON otherwise), json or console")

	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		key := "MCPRELOAD_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(key); v != "" {
			if err := f.Value.Set(v); err != nil && envErr == nil {
				envErr = fmt.Errorf("environment %s=%q: %w", key, v, err)
			}
		}
	})
	if envErr != nil {
		return c, envErr
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q (all options are flags; see --help)", fs.Arg(0))
	}
	return c, c.validate()
}

func (c Config) validate() error {
	var errs []error
	if !names.Node(c.ID) {
		errs = append(errs, fmt.Errorf("--id %q: use 1 to 128 characters of A-Z a-z 0-9 _ - (the id is a NATS subject token)", c.ID))
	}
	if c.CallTimeout <= 0 || c.DrainTimeout <= 0 || c.ShutdownTimeout <= 0 || c.WatchDebounce < 0 {
		errs = append(errs, errors.New("timeouts must be positive"))
	}
	if c.MaxModuleBytes <= 0 {
		errs = append(errs, errors.New("--max-module-bytes must be positive"))
	}
	if c.MemoryLimitMiB <= 0 || c.MemoryLimitMiB > 4096 {
		errs = append(errs, errors.New("--memory-limit-mib must be between 1 and 4096"))
	}
	switch c.LogFormat {
	case "auto", "json", "console":
	default:
		errs = append(errs, fmt.Errorf("--log-format %q: want auto, json or console", c.LogFormat))
	}
	if c.NATSURL != "" && c.EmbeddedNATS != "" {
		errs = append(errs, errors.New("--nats-url and --embedded-nats exclude each other: the embedded server is the node's NATS"))
	}
	if c.Orchestrator && !c.Fleet() {
		errs = append(errs, errors.New("--orchestrator needs --nats-url or --embedded-nats"))
	}
	if c.Fleet() && c.Watch != "" {
		errs = append(errs, errors.New("--watch is the standalone developer loop; in fleet mode modules come from NATS"))
	}
	if c.Replicas != 1 && c.Replicas != 3 && c.Replicas != 5 {
		errs = append(errs, fmt.Errorf("--replicas %d: want 1, 3 or 5", c.Replicas))
	}
	if c.PresenceTTL < time.Second || c.Lease < time.Second {
		errs = append(errs, errors.New("--presence-ttl and --lease must be at least 1s"))
	}
	if c.Watch != "" {
		if st, err := os.Stat(c.Watch); err != nil || !st.IsDir() {
			errs = append(errs, fmt.Errorf("--watch %q: not a directory", c.Watch))
		}
	}
	return errors.Join(errs...)
}

// defaultID is the host name, made a valid node id.
func defaultID() string {
	host, _ := os.Hostname()
	id := strings.Map(func(r rune) rune {
		if r == '_' || r == '-' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9') {
			return r
		}
		return '-'
	}, host)
	if id == "" {
		return "node"
	}
	return id[:min(len(id), 128)]
}

func defaultDataDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "mcpreload")
	}
	return filepath.Join(os.TempDir(), "mcpreload")
}

// loaderConfig derives the loader's configuration.
func (c Config) loaderConfig() loader.Config {
	return loader.Config{
		CacheDir:         filepath.Join(c.DataDir, "cache", "wazero"),
		MaxModuleBytes:   c.MaxModuleBytes,
		MemoryLimitPages: uint32(c.MemoryLimitMiB * 16),
		CallTimeout:      c.CallTimeout,
		DrainTimeout:     c.DrainTimeout,
	}
}
