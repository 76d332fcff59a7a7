package events_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mcpreload/mcpreload/events"
	"github.com/nats-io/nats.go"
)

// A publisher builds a reload request and encodes it for NATS; a node
// decodes it back.
func Example() {
	ctx := context.Background()
	subjects := events.Subjects{}

	req := events.ReloadRequest{
		Module:   "echo",
		Digest:   "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		Strategy: events.StrategyAll,
	}
	e, err := events.New(events.TypeReloadRequested, "urn:mcpreload:publisher", req.Module, req)
	if err != nil {
		panic(err)
	}
	m, err := events.ToNATS(ctx, subjects.ReloadRequest(req.Module), e)
	if err != nil {
		panic(err)
	}
	fmt.Println(m.Subject, m.Header.Get("ce-type"), m.Header.Get("Nats-Msg-Id") == e.ID())

	got, err := events.FromNATS(ctx, m)
	if err != nil {
		panic(err)
	}
	r, err := events.DecodeReloadRequest(got)
	if err != nil {
		panic(err)
	}
	fmt.Println(r.Module, r.Strategy, r.Timeout)
	fmt.Println(subjects.Saga(got.ID(), events.LeafPrepare) == "mcpreload.saga."+e.ID()+".prepare")
	// Output:
	// mcpreload.reload.request.echo io.mcpreload.reload.requested.v1 true
	// echo all 30s
	// true
}

// FromNATS reads header names case-insensitively and percent-decodes values.
func ExampleFromNATS() {
	m := nats.NewMsg("mcpreload.saga.s1.progress")
	m.Header.Set("CE-SpecVersion", "1.0")
	m.Header.Set("Ce-Id", "s1-p1")
	m.Header.Set("ce-source", "urn:mcpreload:orchestrator")
	m.Header.Set("CE-Type", events.TypeSagaProgress)
	m.Header.Set("ce-subject", "Euro%20%E2%82%AC%20%F0%9F%98%80")
	m.Data = []byte(`{"saga":"s1","module":"echo","phase":"commit"}`)

	e, err := events.FromNATS(context.Background(), m)
	if err != nil {
		panic(err)
	}
	p, err := events.DecodeProgress(e)
	if err != nil {
		panic(err)
	}
	fmt.Println(e.Subject(), p.Phase)

	m.Header.Set("ce-subject", "%C0%A0")
	_, err = events.FromNATS(context.Background(), m)
	fmt.Println(errors.Is(err, events.ErrMalformed), err)
	// Output:
	// Euro € 😀 commit
	// true events: ce-subject: not valid UTF-8 after percent-decoding
}

// A node answers a prepare command with an ack on its own ack subject.
func ExampleDecodeCommand() {
	cmd := events.Command{
		Saga:     "s1",
		Module:   "echo",
		Digest:   "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		Targets:  []string{"node-1"},
		Deadline: time.Now().Add(10 * time.Second),
	}
	e, err := events.New(events.TypePrepare, "urn:mcpreload:orchestrator", "", cmd)
	if err != nil {
		panic(err)
	}

	c, err := events.DecodeCommand(&e)
	if err != nil {
		panic(err)
	}
	phase, _ := events.PhaseOf(e.Type())
	ack := events.Ack{Saga: c.Saga, Node: "node-1", Module: c.Module, Phase: phase, Digest: c.Digest, OK: true}
	ackEvent, err := events.New(events.TypeAck, "urn:mcpreload:node/node-1", "", ack)
	if err != nil {
		panic(err)
	}
	fmt.Println(ackEvent.Type(), events.Subjects{}.Saga(c.Saga, events.AckLeaf(ack.Node)))
	// Output:
	// io.mcpreload.saga.ack.v1 mcpreload.saga.s1.ack.node-1
}
