// Package natstest runs real nats-server instances with JetStream for
// tests: in-process, on loopback, file storage in a test temp dir.
package natstest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/internal/bus"
)

// Server is a running embedded nats-server.
type Server struct {
	*server.Server
	StoreDir string
	Port     int
}

// Run starts a JetStream server storing in a fresh temp dir on a random
// loopback port; it is shut down when the test ends.
func Run(tb testing.TB) *Server {
	tb.Helper()
	return RunAt(tb, tb.TempDir(), server.RANDOM_PORT)
}

// RunAt starts a JetStream server with the given store dir and port (use
// the same two to restart a server "in place").
func RunAt(tb testing.TB, storeDir string, port int) *Server {
	tb.Helper()
	s, err := server.NewServer(&server.Options{
		ServerName: "test", Host: "127.0.0.1", Port: port,
		JetStream: true, StoreDir: storeDir, NoLog: true, NoSigs: true,
	})
	require.NoError(tb, err)
	go s.Start()
	require.True(tb, s.ReadyForConnections(10*time.Second), "nats-server did not start")
	out := &Server{Server: s, StoreDir: storeDir, Port: portOf(s)}
	tb.Cleanup(out.Stop)
	return out
}

func portOf(s *server.Server) int {
	if a, ok := s.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}

// Stop shuts the server down and waits; it is idempotent.
func (s *Server) Stop() {
	if s.Running() {
		s.Shutdown()
	}
	s.WaitForShutdown()
}

// Connect returns a client connection that reconnects forever; it is closed
// when the test ends.
func (s *Server) Connect(tb testing.TB, opts ...nats.Option) *nats.Conn {
	tb.Helper()
	opts = append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(20 * time.Millisecond)}, opts...)
	nc, err := nats.Connect(s.ClientURL(), opts...)
	require.NoError(tb, err)
	tb.Cleanup(nc.Close)
	return nc
}

// OpenBus connects to s and opens mcpreload's resources on it, the way
// nodes do, with the given presence TTL.
func (s *Server) OpenBus(tb testing.TB, presenceTTL time.Duration) (*nats.Conn, *bus.Bus) {
	tb.Helper()
	nc := s.Connect(tb)
	b, err := bus.Open(context.Background(), nc, bus.Options{PresenceTTL: presenceTTL})
	require.NoError(tb, err)
	return nc, b
}

// WaitLive waits (bounded polling) until exactly the given nodes are live.
func WaitLive(tb testing.TB, b *bus.Bus, ids ...string) {
	tb.Helper()
	require.Eventually(tb, func() bool {
		live, err := b.LiveNodes(context.Background())
		if err != nil || len(live) != len(ids) {
			return false
		}
		for _, id := range ids {
			if _, ok := live[id]; !ok {
				return false
			}
		}
		return true
	}, 30*time.Second, 10*time.Millisecond, "live nodes should be exactly %v", ids)
}
