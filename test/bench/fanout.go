package main

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// fanoutFloor is the floor of a two-phase commit over NATS: n subscribers,
// each on its own connection to the same server, and a coordinator that
// publishes a command, waits for n replies, publishes a second command and
// waits for n replies again. Core NATS only: no JetStream, no persistence,
// no decoding. It returns the time of each of reps such exchanges.
func fanoutFloor(ctx context.Context, url string, n, reps int) ([]time.Duration, error) {
	const subject = "bench.floor.cmd"
	ack := bytes.Repeat([]byte("a"), 200) // about an ack's size
	cmd := bytes.Repeat([]byte("c"), 300) // about a command's size (plus targets)
	var conns []*nats.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := nats.Connect(url, nats.Name("bench floor subscriber"))
		if err != nil {
			return nil, err
		}
		conns = append(conns, c)
		if _, err := c.Subscribe(subject, func(m *nats.Msg) { _ = m.Respond(ack) }); err != nil {
			return nil, err
		}
		if err := c.Flush(); err != nil {
			return nil, err
		}
	}
	coord, err := nats.Connect(url, nats.Name("bench floor coordinator"))
	if err != nil {
		return nil, err
	}
	conns = append(conns, coord)
	replies := make(chan struct{}, 2*n)
	inbox := nats.NewInbox()
	if _, err := coord.Subscribe(inbox, func(*nats.Msg) { replies <- struct{}{} }); err != nil {
		return nil, err
	}
	if err := coord.Flush(); err != nil {
		return nil, err
	}
	round := func() error {
		if err := coord.PublishMsg(&nats.Msg{Subject: subject, Reply: inbox, Data: cmd}); err != nil {
			return err
		}
		timeout := time.After(30 * time.Second)
		for got := 0; got < n; got++ {
			select {
			case <-replies:
			case <-timeout:
				return fmt.Errorf("floor: %d of %d replies", got, n)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	// One untimed exchange warms connections and buffers.
	if err := round(); err != nil {
		return nil, err
	}
	return timeN(reps, func(int) error {
		if err := round(); err != nil {
			return err
		}
		return round()
	})
}
