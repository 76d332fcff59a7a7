package node

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// startEmbeddedNATS starts the one-machine NATS server: JetStream, file
// storage in <data-dir>/nats, listening on addr (loopback).
func startEmbeddedNATS(addr, dataDir string) (*server.Server, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--embedded-nats %q: want host:port, e.g. 127.0.0.1:4222", addr)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("--embedded-nats %q: bad port", addr)
	}
	s, err := server.NewServer(&server.Options{
		ServerName: "mcpreload-embedded", Host: host, Port: port,
		JetStream: true, StoreDir: filepath.Join(dataDir, "nats"),
		NoLog: true, NoSigs: true,
		// Each node watches two buckets (a consumer each); the default of
		// 1,000 consumers per stream would cap a fleet at 500 nodes.
		JetStreamLimits: server.JSLimitOpts{DefaultMaxConsumers: -1},
	})
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded NATS did not start on %s (port in use?)", addr)
	}
	return s, nil
}

// connectNATS connects (or keeps trying to, in the background) to url.
func (n *Node) connectNATS(url string) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name("mcpreload-node " + n.cfg.ID),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				n.log.Warn().Err(err).Msg("NATS disconnected; serving the current versions, reconnecting")
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			n.log.Info().Str("url", c.ConnectedUrlRedacted()).Msg("NATS reconnected")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			n.log.Warn().Err(err).Msg("NATS error")
		}),
	}
	if n.cfg.Creds != "" {
		opts = append(opts, nats.UserCredentials(n.cfg.Creds))
	}
	return nats.Connect(url, opts...)
}

// openFleet starts the fleet part: embedded server if asked, the module
// cache (served at once), then NATS in the background.
func (n *Node) openFleet(ctx context.Context) error {
	url := n.cfg.NATSURL
	if n.cfg.EmbeddedNATS != "" {
		s, err := startEmbeddedNATS(n.cfg.EmbeddedNATS, n.cfg.DataDir)
		if err != nil {
			return err
		}
		n.natsServer = s
		url = s.ClientURL()
		n.log.Info().Str("url", url).Msg("embedded NATS server with JetStream running; other nodes join with --nats-url " + url)
	}
	nc, err := n.connectNATS(url)
	if err != nil {
		return fmt.Errorf("NATS %s: %w", url, err)
	}
	a, err := newAgent(n, nc)
	if err != nil {
		nc.Close()
		return err
	}
	n.agent = a
	a.loadCache(ctx)
	a.wg.Go(a.connect)
	return nil
}

func (n *Node) closeFleet() {
	if n.agent != nil {
		n.agent.close()
		n.agent.nc.Close()
	}
	if n.natsServer != nil {
		n.natsServer.Shutdown()
		n.natsServer.WaitForShutdown()
	}
}
