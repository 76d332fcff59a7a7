package publisher

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/mcpreload/mcpreload/internal/bus"
)

// ModuleVersion is one module a node serves.
type ModuleVersion struct {
	Module  string `json:"module"`
	Digest  string `json:"digest"`
	Version string `json:"version,omitempty"`
}

// NodeInfo is a live node as its presence heartbeat describes it.
type NodeInfo struct {
	Node string `json:"node"`
	// MCP is the node's MCP endpoint ("" with --stdio).
	MCP string `json:"mcp,omitempty"`
	// Started is when the node started; Heartbeat when it last reported,
	// HeartbeatAge how long before the report was made.
	Started      time.Time       `json:"started"`
	Heartbeat    time.Time       `json:"heartbeat"`
	HeartbeatAge time.Duration   `json:"-"`
	AgeMS        int64           `json:"heartbeat_age_ms"`
	Modules      []ModuleVersion `json:"modules"`
}

// Nodes returns the live nodes (those whose heartbeat is younger than the
// presence TTL), sorted by id, with their modules sorted by name. now
// computes heartbeat ages (time.Now if nil). Errors match ErrNATS.
func Nodes(ctx context.Context, b *bus.Bus, now func() time.Time) ([]NodeInfo, error) {
	if now == nil {
		now = time.Now
	}
	live, err := b.LiveNodes(ctx)
	if err != nil {
		return nil, natsErr(fmt.Errorf("live nodes: %w", err))
	}
	t := now()
	out := []NodeInfo{}
	for _, id := range slices.Sorted(maps.Keys(live)) {
		p := live[id]
		n := NodeInfo{Node: id, MCP: p.MCP, Started: p.Started, Heartbeat: p.Updated, Modules: []ModuleVersion{}}
		if !p.Updated.IsZero() {
			n.HeartbeatAge = max(0, t.Sub(p.Updated))
			n.AgeMS = n.HeartbeatAge.Milliseconds()
		}
		for _, m := range slices.Sorted(maps.Keys(p.Modules)) {
			n.Modules = append(n.Modules, ModuleVersion{Module: m, Digest: p.Modules[m], Version: p.Versions[m]})
		}
		out = append(out, n)
	}
	return out, nil
}
