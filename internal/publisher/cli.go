package publisher

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mcpreload/mcpreload/events"
	"github.com/mcpreload/mcpreload/internal/bus"
	"github.com/mcpreload/mcpreload/loader"
)

// Config is the CLI's configuration. Every field maps 1:1 to a flag and to
// an environment variable MCPRELOAD_<FLAG> (upper case, '-' -> '_'); a flag
// on the command line wins over the environment. Global flags are accepted
// before or after the command.
type Config struct {
	// Global flags.
	NATSURL        string        // --nats-url: NATS server URL(s), comma-separated
	Creds          string        // --creds: NATS credentials file
	Prefix         string        // --prefix: subject prefix of the fleet
	Output         string        // --output: text or json
	ConnectTimeout time.Duration // --connect-timeout: initial NATS connection

	// Command flags (each command uses some).
	SignKey        string        // --sign-key: seed file signing reload and rollback requests
	Out            string        // --out: keygen's seed file
	Module         string        // --module (reload, rollback, status, history)
	Wasm           string        // --wasm: module file (reload)
	Strategy       string        // --strategy: all, quorum or local (reload, rollback)
	Nodes          string        // --nodes: comma-separated node ids (reload, rollback)
	To             string        // --to: digest to roll back to (rollback)
	Timeout        time.Duration // --timeout: per saga phase (reload, rollback)
	NoWait         bool          // --no-wait: return once published (reload, rollback)
	MaxModuleBytes int           // --max-module-bytes (reload)
	CacheDir       string        // --cache-dir: wazero compilation cache for the local check (reload)
	Limit          int           // --limit: sagas to list, 0 = all (history)
}

func defaultConfig() Config {
	return Config{
		NATSURL: DefaultNATSURL, Prefix: events.DefaultPrefix, Output: outputText, ConnectTimeout: DefaultConnectTimeout,
		Strategy: string(events.StrategyAll), Timeout: events.DefaultTimeout,
		MaxModuleBytes: loader.DefaultMaxModuleBytes, Limit: DefaultHistoryLimit,
	}
}

const (
	outputText = "text"
	outputJSON = "json"
)

// command is one subcommand.
type command struct {
	name  string
	usage string
	flags func(fs *flag.FlagSet, c *Config)
	run   func(ctx context.Context, r *runner) int
}

func commands() map[string]*command {
	return map[string]*command{
		"reload":   {name: "reload", usage: reloadUsage, flags: reloadFlags, run: runReload},
		"rollback": {name: "rollback", usage: rollbackUsage, flags: rollbackFlags, run: runRollback},
		"status":   {name: "status", usage: statusUsage, flags: moduleFlag("only this module"), run: runStatus},
		"history":  {name: "history", usage: historyUsage, flags: historyFlags, run: runHistory},
		"nodes":    {name: "nodes", usage: nodesUsage, flags: func(*flag.FlagSet, *Config) {}, run: runNodes},
		"keygen":   {name: "keygen", usage: keygenUsage, flags: keygenFlags, run: runKeygen},
	}
}

func globalFlags(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.NATSURL, "nats-url", c.NATSURL, "NATS server URL(s), comma-separated")
	fs.StringVar(&c.Creds, "creds", c.Creds, "NATS credentials file (see deploy/nats)")
	fs.StringVar(&c.Prefix, "prefix", c.Prefix, "subject prefix of the fleet, as the nodes' --prefix")
	fs.StringVar(&c.Output, "output", c.Output, "text, or json for CI: one JSON document on stdout")
	fs.DurationVar(&c.ConnectTimeout, "connect-timeout", c.ConnectTimeout, "give up connecting to NATS after this long")
}

func moduleFlag(help string) func(fs *flag.FlagSet, c *Config) {
	return func(fs *flag.FlagSet, c *Config) {
		fs.StringVar(&c.Module, "module", c.Module, help)
	}
}

func sagaFlags(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.Strategy, "strategy", c.Strategy, "all, quorum or local")
	fs.StringVar(&c.Nodes, "nodes", c.Nodes, "comma-separated node ids: the only participants (required for local)")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "deadline of each saga phase (prepare, commit, rollback), at most 1h; the publisher waits 3 x timeout + 10s")
	fs.BoolVar(&c.NoWait, "no-wait", c.NoWait, "return once the request is published, without following the saga")
	fs.StringVar(&c.SignKey, "sign-key", c.SignKey, "seed file (from `keygen`) to sign the request with; nodes started with --trusted-keys require it")
}

func keygenFlags(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.Out, "out", c.Out, "file to write the new seed (secret) to; it must not exist (required)")
}

func reloadFlags(fs *flag.FlagSet, c *Config) {
	moduleFlag("module name, [A-Za-z0-9_-]{1,64} (required)")(fs, c)
	fs.StringVar(&c.Wasm, "wasm", c.Wasm, "the module's .wasm file (required)")
	sagaFlags(fs, c)
	fs.IntVar(&c.MaxModuleBytes, "max-module-bytes", c.MaxModuleBytes, "largest module accepted (as the nodes' --max-module-bytes)")
	fs.StringVar(&c.CacheDir, "cache-dir", c.CacheDir, "wazero compilation cache directory for the local check (default: in memory, for this run)")
}

func rollbackFlags(fs *flag.FlagSet, c *Config) {
	moduleFlag("module name (required)")(fs, c)
	fs.StringVar(&c.To, "to", c.To, "digest to go back to, sha256:<hex> (default: the previous desired digest)")
	sagaFlags(fs, c)
}

func historyFlags(fs *flag.FlagSet, c *Config) {
	moduleFlag("only this module's sagas")(fs, c)
	fs.IntVar(&c.Limit, "limit", c.Limit, "show the newest N sagas (0 = all)")
}

// envName is the environment variable of a flag.
func envName(flagName string) string {
	return "MCPRELOAD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyEnv sets the flags of fs (except those in skip) from the environment.
func applyEnv(fs *flag.FlagSet, getenv func(string) string, skip map[string]bool) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if skip[f.Name] || err != nil {
			return
		}
		key := envName(f.Name)
		if v := getenv(key); v != "" {
			if serr := f.Value.Set(v); serr != nil {
				err = fmt.Errorf("environment %s=%q: %v", key, v, serr)
			}
		}
	})
	return err
}

// helpError asks for cmd's help (nil: the root's) on stdout.
type helpError struct{ cmd *command }

func (*helpError) Error() string { return "help requested" }

// usageError is a command line the CLI cannot run.
type usageError struct {
	cmd       *command // nil: the root
	err       error
	showUsage bool // print the whole usage, not just a pointer to --help
}

func (u *usageError) Error() string { return u.err.Error() }

// parse turns args into the command to run and its configuration.
func parse(args []string, getenv func(string) string) (*command, Config, error) {
	c := defaultConfig()
	root := flag.NewFlagSet("mcpreload-publisher", flag.ContinueOnError)
	root.SetOutput(io.Discard)
	globalFlags(root, &c)
	globals := map[string]bool{}
	root.VisitAll(func(f *flag.Flag) { globals[f.Name] = true })
	if err := applyEnv(root, getenv, nil); err != nil {
		return nil, c, &usageError{err: err}
	}
	if err := root.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, c, &helpError{}
		}
		return nil, c, &usageError{err: err}
	}
	if root.NArg() == 0 {
		return nil, c, &usageError{err: errors.New("no command given"), showUsage: true}
	}
	cmds := commands()
	name, rest := root.Arg(0), root.Args()[1:]
	if name == "help" {
		if len(rest) == 0 {
			return nil, c, &helpError{}
		}
		if cmd, ok := cmds[rest[0]]; ok {
			return nil, c, &helpError{cmd: cmd}
		}
		return nil, c, &usageError{err: fmt.Errorf("unknown command %q", rest[0]), showUsage: true}
	}
	cmd, ok := cmds[name]
	if !ok {
		return nil, c, &usageError{err: fmt.Errorf("unknown command %q", name), showUsage: true}
	}
	fs := flag.NewFlagSet("mcpreload-publisher "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	globalFlags(fs, &c)
	cmd.flags(fs, &c)
	if err := applyEnv(fs, getenv, globals); err != nil {
		return cmd, c, &usageError{cmd: cmd, err: err}
	}
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, c, &helpError{cmd: cmd}
		}
		return cmd, c, &usageError{cmd: cmd, err: err}
	}
	if fs.NArg() > 0 {
		return cmd, c, &usageError{cmd: cmd, err: fmt.Errorf("unexpected argument %q (all options are flags)", fs.Arg(0))}
	}
	if err := c.validate(); err != nil {
		return cmd, c, &usageError{cmd: cmd, err: err}
	}
	return cmd, c, nil
}

// validate checks what every command shares; commands check their own
// flags.
func (c Config) validate() error {
	var errs []error
	if c.Output != outputText && c.Output != outputJSON {
		errs = append(errs, fmt.Errorf("--output %q: want text or json", c.Output))
	}
	if err := (events.Subjects{Prefix: c.Prefix}).Validate(); err != nil {
		errs = append(errs, fmt.Errorf("--prefix: %w", err))
	}
	if c.ConnectTimeout <= 0 {
		errs = append(errs, errors.New("--connect-timeout must be positive"))
	}
	if strings.TrimSpace(c.NATSURL) == "" {
		errs = append(errs, errors.New("--nats-url must not be empty"))
	}
	return errors.Join(errs...)
}

// printHelp writes cmd's usage (nil: the root's) with its flags and their
// defaults to w.
func printHelp(w io.Writer, cmd *command) {
	c := defaultConfig()
	fs := flag.NewFlagSet("mcpreload-publisher", flag.ContinueOnError)
	fs.SetOutput(w)
	text := rootUsage
	if cmd != nil {
		text = cmd.usage
		cmd.flags(fs, &c)
	}
	globalFlags(fs, &c)
	fmt.Fprint(w, text)
	fs.PrintDefaults()
	if cmd == nil {
		names := []string{"reload", "rollback", "status", "history", "nodes", "keygen"}
		fmt.Fprintf(w, "\nRun `mcpreload-publisher <command> --help` for a command's flags (%s).\n", strings.Join(names, ", "))
	}
}

// Main runs the publisher CLI: args are the arguments without the program
// name, getenv supplies MCPRELOAD_* defaults, results go to stdout and
// errors and diagnostics to stderr. It returns the process exit code (see
// the Exit* constants). Cancelling ctx (SIGINT/SIGTERM in cmd/publisher)
// stops waiting; a request already published is not withdrawn.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cmd, cfg, err := parse(args, getenv)
	var h *helpError
	if errors.As(err, &h) {
		printHelp(stdout, h.cmd)
		return ExitOK
	}
	var u *usageError
	if errors.As(err, &u) {
		return usageFail(stderr, u)
	}
	r := &runner{cmd: cmd, cfg: cfg, stdout: stdout, stderr: stderr}
	return cmd.run(ctx, r)
}

func usageFail(stderr io.Writer, u *usageError) int {
	name := "mcpreload-publisher"
	if u.cmd != nil {
		name += " " + u.cmd.name
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, u.err)
	if u.showUsage {
		fmt.Fprintln(stderr)
		printHelp(stderr, u.cmd)
	} else {
		fmt.Fprintf(stderr, "(see %s --help; exit %d)\n", name, ExitUsage)
	}
	return ExitUsage
}

// runner carries one command's configuration and outputs.
type runner struct {
	cmd            *command
	cfg            Config
	stdout, stderr io.Writer
}

func (r *runner) json() bool { return r.cfg.Output == outputJSON }

// usage reports a missing or bad command flag (exit 2).
func (r *runner) usage(err error) int {
	return usageFail(r.stderr, &usageError{cmd: r.cmd, err: err})
}

// fail reports err on stderr and, with --output json, as the one JSON
// document on stdout (with the fields of doc), and returns code.
func (r *runner) fail(code int, err error, doc map[string]any) int {
	fmt.Fprintf(r.stderr, "mcpreload-publisher %s: %v (exit %d)\n", r.cmd.name, err, code)
	if r.json() {
		if doc == nil {
			doc = map[string]any{}
		}
		doc["error"], doc["exit_code"] = err.Error(), code
		writeJSON(r.stdout, doc)
	}
	return code
}

// open connects to NATS and binds the bus; close releases the connection.
func (r *runner) open(ctx context.Context) (b *bus.Bus, closeFn func(), err error) {
	nc, err := Connect(ConnectOptions{URL: r.cfg.NATSURL, Creds: r.cfg.Creds, Timeout: r.cfg.ConnectTimeout})
	if err != nil {
		return nil, nil, err
	}
	b, err = Open(ctx, nc, r.cfg.Prefix)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return b, nc.Close, nil
}

// live returns the progress callback: one line per event, on stdout in
// text mode and on stderr with --output json (stdout holds the document).
func (r *runner) live() func(Event) {
	w := r.stdout
	if r.json() {
		w = r.stderr
	}
	return func(e Event) {
		if e.Kind == EventOutcome {
			return // reported at the end
		}
		fmt.Fprintln(w, e.String())
	}
}

// splitNodes parses --nodes: comma-separated ids, blanks dropped.
func splitNodes(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// readModule reads a module file of at most max bytes.
func readModule(path string, max int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read --wasm: %w", err)
	}
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cannot read --wasm: %w", err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("--wasm %s: is a directory, want a .wasm file", path)
	}
	if st.Size() > int64(max) {
		return nil, fmt.Errorf("--wasm %s: %d bytes, over --max-module-bytes %d", path, st.Size(), max)
	}
	data, err := io.ReadAll(io.LimitReader(f, int64(max)+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read --wasm: %w", err)
	}
	if len(data) > max {
		return nil, fmt.Errorf("--wasm %s: over --max-module-bytes %d", path, max)
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("--wasm %s: empty file", path)
	}
	return data, nil
}
