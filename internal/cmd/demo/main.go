// Command demo runs mcpreload's main job on one machine, with real
// processes: a node with an embedded NATS server and an orchestrator, two
// more nodes joining it, and the publisher reloading the counter tool
// across the three while an MCP client shows its state surviving. Then
// broken versions are refused and the fleet stays as it was, and the fleet
// is rolled back to v1 with its state. make demo runs it.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpreload/mcpreload/internal/wasmbuild"
	"github.com/mcpreload/mcpreload/internal/wasmgen"
)

func main() {
	bin := flag.String("bin", "bin", "directory with mcpreload-node and mcpreload-publisher")
	verbose := flag.Bool("v", false, "show the nodes' logs")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	d := &demo{bin: *bin, verbose: *verbose}
	err := d.run(ctx)
	d.stop()
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo failed: %v\n", err)
		d.dumpLogs()
		os.Exit(1)
	}
}

type demo struct {
	bin     string
	verbose bool
	dir     string
	nats    string
	nodes   []*proc
	start   time.Time
}

type proc struct {
	name string
	cmd  *exec.Cmd
	mcp  string
	mu   sync.Mutex
	log  []string
	done chan struct{}
}

func (d *demo) say(format string, args ...any) {
	fmt.Printf("[%5.1fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

func (d *demo) step(format string, args ...any) {
	fmt.Printf("\n== %s\n", fmt.Sprintf(format, args...))
}

func (d *demo) run(ctx context.Context) error {
	d.start = time.Now()
	wd, _ := os.Getwd()
	root, err := wasmbuild.FindRoot(wd)
	if err != nil {
		return err
	}
	out := wasmbuild.OutDir(root)
	if err := wasmbuild.Build(ctx, root, out); err != nil {
		return err
	}
	d.dir, err = os.MkdirTemp("", "mcpreload-demo-")
	if err != nil {
		return err
	}
	cache := filepath.Join(root, "build", "cache", "wazero")

	d.step("A fleet of three MCP nodes on this machine")
	natsPort, err := freePort()
	if err != nil {
		return err
	}
	d.nats = fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	first, err := d.startNode(ctx, "node-a", cache, "--embedded-nats", fmt.Sprintf("127.0.0.1:%d", natsPort), "--orchestrator")
	if err != nil {
		return err
	}
	d.say("node-a is up: it runs an embedded NATS server with JetStream (%s) and a saga orchestrator; MCP on %s", d.nats, first.mcp)
	for _, name := range []string{"node-b", "node-c"} {
		n, err := d.startNode(ctx, name, cache, "--nats-url", d.nats)
		if err != nil {
			return err
		}
		d.say("%s joined the fleet through NATS; MCP on %s", name, n.mcp)
	}
	if err := d.publisher(ctx, 0, "nodes"); err != nil {
		return err
	}

	d.step("Ship counter v1 to every node (strategy all: every node must prepare, or none changes)")
	if err := d.publisher(ctx, 0, "reload", "--module", "counter", "--wasm", filepath.Join(out, "counter-v1.wasm"), "--strategy", "all"); err != nil {
		return err
	}
	d.step("Use the tool through MCP on each node")
	for i, n := range d.nodes {
		text, err := callTool(ctx, n.mcp, "counter_increment", map[string]any{"by": 10 * (i + 1)})
		if err != nil {
			return err
		}
		d.say("%s: counter_increment by %d -> count is %s", n.name, 10*(i+1), text)
	}

	d.step("Hot reload to counter v2: new code and a new state shape; each node migrates its count in code_change")
	if err := d.publisher(ctx, 0, "reload", "--module", "counter", "--wasm", filepath.Join(out, "counter-v2.wasm")); err != nil {
		return err
	}
	for i, n := range d.nodes {
		text, err := callTool(ctx, n.mcp, "counter_increment", nil)
		if err != nil {
			return err
		}
		d.say("%s: counter_increment -> %s (was %d: the state survived the upgrade)", n.name, text, 10*(i+1))
	}

	d.step("A broken build, caught before it leaves CI: not WebAssembly at all")
	garbage := filepath.Join(d.dir, "counter-broken.wasm")
	if err := os.WriteFile(garbage, []byte("this is not a wasm module"), 0o644); err != nil {
		return err
	}
	if err := d.publisher(ctx, 2, "reload", "--module", "counter", "--wasm", garbage); err != nil {
		return err
	}
	d.say("the publisher refused it locally (exit code 2); nothing was uploaded")

	d.step("A subtler broken build: valid WebAssembly that cannot migrate the counter's state")
	bad := filepath.Join(d.dir, "counter-v3-broken.wasm")
	if err := os.WriteFile(bad, wasmgen.Tiny(wasmgen.Spec{Version: "3.0.0-broken", Tools: []string{"counter_increment", "counter_get"},
		CodeChange: "fail", StateSave: "x"}), 0o644); err != nil {
		return err
	}
	if err := d.publisher(ctx, 1, "reload", "--module", "counter", "--wasm", bad); err != nil {
		return err
	}
	d.say("every node prepared it, the commit failed in code_change, the saga rolled back (exit code 1)")
	for i, n := range d.nodes {
		text, err := callTool(ctx, n.mcp, "counter_get", nil)
		if err != nil {
			return err
		}
		d.say("%s: counter_get -> %s (still v2, count intact: %d + 1)", n.name, text, 10*(i+1))
	}

	d.step("Roll the fleet back to v1 (a saga to the previous desired version; v1 migrates v2's state down)")
	if err := d.publisher(ctx, 0, "rollback", "--module", "counter"); err != nil {
		return err
	}
	for i, n := range d.nodes {
		text, err := callTool(ctx, n.mcp, "counter_get", nil)
		if err != nil {
			return err
		}
		d.say("%s: counter_get -> %s (back on v1, count carried down: %d + 1)", n.name, text, 10*(i+1))
	}

	d.step("Check that the fleet is consistent: every node serves the desired version")
	if err := d.publisher(ctx, 0, "status"); err != nil {
		return err
	}
	if err := d.publisher(ctx, 0, "history"); err != nil {
		return err
	}
	fmt.Printf("\nDone in %.1fs: 3 nodes, a reload and a rollback with state kept, 2 broken builds refused, fleet consistent.\n", time.Since(d.start).Seconds())
	return nil
}

// startNode starts a node process and waits until it is ready.
func (d *demo) startNode(ctx context.Context, name, cache string, args ...string) (*proc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(d.dir, name)
	if err := os.MkdirAll(filepath.Join(data, "cache"), 0o755); err != nil {
		return nil, err
	}
	// Share the compilation cache `make` filled: compiles take milliseconds.
	_ = os.Symlink(cache, filepath.Join(data, "cache", "wazero"))
	args = append([]string{"--id", name, "--mcp-listen", fmt.Sprintf("127.0.0.1:%d", port), "--data-dir", data,
		"--log-format", "console", "--presence-ttl", "3s"}, args...)
	p := &proc{name: name, cmd: exec.CommandContext(ctx, filepath.Join(d.bin, "mcpreload-node"), args...),
		mcp: fmt.Sprintf("http://127.0.0.1:%d/mcp", port), done: make(chan struct{})}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	p.cmd.Stdout = io.Discard
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w (run make build)", name, err)
	}
	d.nodes = append(d.nodes, p)
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.log = append(p.log, sc.Text())
			p.mu.Unlock()
			if d.verbose {
				fmt.Printf("    %s | %s\n", name, sc.Text())
			}
		}
	}()
	// Ready when /readyz says so and the node has joined the fleet.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", port))
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK && p.logged("joined the fleet") {
				return p, nil
			}
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited during start-up", name)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("%s did not become ready in 30s", name)
}

func (p *proc) logged(s string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.log {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// publisher runs mcpreload-publisher and checks its exit code.
func (d *demo) publisher(ctx context.Context, wantExit int, args ...string) error {
	args = append(args, "--nats-url", d.nats)
	fmt.Printf("$ mcpreload-publisher %s\n", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, filepath.Join(d.bin, "mcpreload-publisher"), args...)
	cmd.Stdout, cmd.Stderr = prefixed{os.Stdout}, prefixed{os.Stdout}
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		return err
	}
	if code != wantExit {
		return fmt.Errorf("mcpreload-publisher %s: exit code %d, want %d", args[0], code, wantExit)
	}
	return nil
}

type prefixed struct{ w io.Writer }

func (p prefixed) Write(b []byte) (int, error) {
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line != "" {
			fmt.Fprint(p.w, "  "+line)
		}
	}
	return len(b), nil
}

func callTool(ctx context.Context, url, tool string, args map[string]any) (string, error) {
	c := mcp.NewClient(&mcp.Implementation{Name: "demo", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url}, nil)
	if err != nil {
		return "", err
	}
	defer func() { _ = cs.Close() }()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		return "", err
	}
	if len(res.Content) == 0 {
		return "", fmt.Errorf("%s returned no content", tool)
	}
	text := res.Content[0].(*mcp.TextContent).Text
	if res.IsError {
		return "", fmt.Errorf("%s: %s", tool, text)
	}
	return text, nil
}

// stop sends SIGTERM-equivalent (interrupt) to the nodes, last first.
func (d *demo) stop() {
	for i := len(d.nodes) - 1; i >= 0; i-- {
		p := d.nodes[i]
		if p.cmd.Process != nil {
			_ = p.cmd.Process.Signal(os.Interrupt)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				_ = p.cmd.Process.Kill()
			}
			_ = p.cmd.Wait()
		}
	}
	if d.dir != "" {
		_ = os.RemoveAll(d.dir)
	}
}

func (d *demo) dumpLogs() {
	for _, p := range d.nodes {
		p.mu.Lock()
		fmt.Fprintf(os.Stderr, "--- %s log (last 30 lines)\n", p.name)
		from := max(0, len(p.log)-30)
		for _, l := range p.log[from:] {
			fmt.Fprintln(os.Stderr, l)
		}
		p.mu.Unlock()
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}
