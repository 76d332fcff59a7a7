package nats_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/internal/bus"
)

// startCluster renders cluster-N.conf, cluster.conf and accounts.conf for
// three servers on loopback (each in its own dir, with its own ports and
// store) and starts them.
func startCluster(tb testing.TB) (servers []*server, routeAddrs []string) {
	tb.Helper()
	for range 3 {
		p := freePorts(tb, 9) // client, monitor, route per server
		client, monitor, route := p[0:3], p[3:6], p[6:9]
		var specs []spec
		for i := range 3 {
			n := i + 1
			dir := filepath.Join(tb.TempDir(), fmt.Sprintf("nats-%d", n))
			require.NoError(tb, os.Mkdir(dir, 0o755))
			render(tb, dir, fmt.Sprintf("cluster-%d.conf", n),
				replacement{fmt.Sprintf(`store_dir: "/var/lib/nats/nats-%d"`, n), fmt.Sprintf("store_dir: %q", filepath.Join(dir, "jetstream"))},
			)
			repl := []replacement{
				{"listen: 0.0.0.0:4222", fmt.Sprintf("listen: 127.0.0.1:%d", client[i])},
				{"http: 127.0.0.1:8222", fmt.Sprintf("http: 127.0.0.1:%d", monitor[i])},
				{"listen: 0.0.0.0:6222", fmt.Sprintf("listen: 127.0.0.1:%d", route[i])},
			}
			for j := range 3 {
				repl = append(repl, replacement{
					fmt.Sprintf("mcpreload-route:REPLACE_WITH_ROUTE_PASSWORD@nats-%d:6222", j+1),
					fmt.Sprintf("mcpreload-route:%s@127.0.0.1:%d", routePassword, route[j]),
				})
			}
			render(tb, dir, "cluster.conf", repl...)
			render(tb, dir, "accounts.conf")
			specs = append(specs, spec{name: fmt.Sprintf("nats-%d", n), dir: dir, conf: fmt.Sprintf("cluster-%d.conf", n), client: client[i], http: monitor[i]})
		}
		if servers, ok := startServers(tb, specs, 45*time.Second); ok {
			for _, p := range route {
				routeAddrs = append(routeAddrs, fmt.Sprintf("127.0.0.1:%d", p))
			}
			return servers, routeAddrs
		}
	}
	tb.Fatal("no free ports for the nats-server cluster after 3 attempts")
	return nil, nil
}

// routeConnect speaks the first lines of the route protocol to addr as a
// would-be server with the given route password and returns the server's
// answer to CONNECT+PING (an -ERR line or PONG).
func routeConnect(tb testing.TB, addr, pass string) string {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	require.NoError(tb, err)
	defer func() { _ = c.Close() }()
	require.NoError(tb, c.SetDeadline(time.Now().Add(5*time.Second)))
	r := bufio.NewReader(c)
	info, err := r.ReadString('\n')
	require.NoError(tb, err)
	require.True(tb, strings.HasPrefix(info, "INFO "), info)
	connect, _ := json.Marshal(map[string]any{
		"user": "mcpreload-route", "pass": pass, "name": "intruder", "cluster": "mcpreload", "headers": true,
	})
	_, err = fmt.Fprintf(c, "CONNECT %s\r\nPING\r\n", connect)
	require.NoError(tb, err)
	for {
		line, err := r.ReadString('\n')
		require.NoError(tb, err)
		if strings.HasPrefix(line, "-ERR") || strings.HasPrefix(line, "PONG") {
			return line
		}
	}
}

func TestCluster(t *testing.T) {
	t.Parallel()
	servers, routeAddrs := startCluster(t)

	t.Run("three servers form one cluster with a JetStream meta leader", func(t *testing.T) {
		names := map[string]bool{"nats-1": true, "nats-2": true, "nats-3": true}
		var leader string
		for _, s := range servers {
			var routez struct {
				Routes []struct {
					RemoteName string `json:"remote_name"`
				} `json:"routes"`
			}
			s.monitorJSON(t, "/routez", &routez)
			peers := map[string]bool{}
			for _, r := range routez.Routes {
				peers[r.RemoteName] = true
			}
			for n := range names {
				require.Equal(t, n != s.name, peers[n], "%s routes to %s", s.name, n)
			}

			// /healthz was 200 on every server: each is current with a
			// meta leader, and they agree on who it is.
			var jsz jszInfo
			s.monitorJSON(t, "/jsz", &jsz)
			require.NotNil(t, jsz.Meta, s.name)
			require.Equal(t, 3, jsz.Meta.Size, s.name)
			require.True(t, names[jsz.Meta.Leader], "%s: meta leader %q", s.name, jsz.Meta.Leader)
			if leader == "" {
				leader = jsz.Meta.Leader
			}
			require.Equal(t, leader, jsz.Meta.Leader, s.name)
		}
	})

	t.Run("a route without the route password is refused", func(t *testing.T) {
		for _, pass := range []string{"", "wrong"} {
			require.Contains(t, routeConnect(t, routeAddrs[0], pass), "Authorization Violation", "password %q", pass)
		}
		require.Contains(t, routeConnect(t, routeAddrs[0], routePassword), "PONG", "the right password is accepted")
	})

	t.Run("the orchestrator provisions R3 streams and every role works across servers", func(t *testing.T) {
		var urls []string
		for _, s := range servers {
			urls = append(urls, s.client)
		}
		orc := connect(t, strings.Join(urls, ","), orchestratorRole)
		ctx := ctxTimeout(t, 30*time.Second)
		b, err := bus.Open(ctx, orc.Conn, bus.Options{Replicas: 3})
		require.NoError(t, err)
		for _, st := range []jetstream.Stream{b.Requests, b.Sagas} {
			info, err := st.Info(ctx)
			require.NoError(t, err)
			require.Equal(t, 3, info.Config.Replicas, info.Config.Name)
			require.NotNil(t, info.Cluster, info.Config.Name)
			require.NotEmpty(t, info.Cluster.Leader, info.Config.Name)
			require.Len(t, info.Cluster.Replicas, 2, info.Config.Name)
		}

		// A publisher on server 3 uploads; a node on server 2 downloads it
		// and acks; the orchestrator (on any server) sees the ack.
		pub := connect(t, servers[2].client, publisherRole)
		pb := bind(t, pub)
		wasm := []byte("\x00asm\x01\x00\x00\x00 replicated")
		d, _, err := pb.PutModule(ctx, wasm)
		require.NoError(t, err)
		nd := connect(t, servers[1].client, nodeRole)
		nb := bind(t, nd)
		got, err := nb.GetModule(ctx, d, 1<<20)
		require.NoError(t, err)
		require.Equal(t, wasm, got)
		_, err = nb.JS.Publish(ctx, "mcpreload.saga.r3.ack.n2", []byte("{}"))
		require.NoError(t, err)
		m, err := b.Sagas.GetLastMsgForSubject(ctx, "mcpreload.saga.r3.ack.n2")
		require.NoError(t, err)
		require.Equal(t, "{}", string(m.Data))
		for _, c := range []*conn{orc, pub, nd} {
			c.requireNoViolations(t)
		}
	})
}
