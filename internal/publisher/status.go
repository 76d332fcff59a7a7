package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mcpreload/mcpreload/internal/bus"
)

// Node states in a StatusReport.
const (
	StateOK        = "ok"        // serves its desired digest
	StateDrift     = "drift"     // serves another digest than its desired one
	StateMissing   = "missing"   // has a desired digest but does not serve the module
	StateUnmanaged = "unmanaged" // serves the module, which has no desired digest for it
)

// NodeStatus is one live node's view of one module.
type NodeStatus struct {
	Node string `json:"node"`
	// Serving is the digest the node serves ("" if none) and Version its
	// version string.
	Serving string `json:"serving,omitempty"`
	Version string `json:"version,omitempty"`
	// Desired is the node's desired digest: its pin if Pinned, else the
	// module's fleet-wide one.
	Desired string `json:"desired,omitempty"`
	Pinned  bool   `json:"pinned,omitempty"`
	// State is StateOK, StateDrift, StateMissing or StateUnmanaged.
	State string `json:"state"`
}

// ModuleStatus compares one module's desired digest with what every live
// node serves.
type ModuleStatus struct {
	Module string `json:"module"`
	// Desired is the fleet-wide desired digest ("" if only pins exist),
	// set by saga Saga at Updated.
	Desired string    `json:"desired,omitempty"`
	Saga    string    `json:"saga,omitempty"`
	Updated time.Time `json:"updated,omitzero"`
	// InProgress is the id of the saga holding the module's lock: drift is
	// expected until it ends.
	InProgress string `json:"saga_in_progress,omitempty"`
	// Consistent reports that no node drifts or misses the module.
	Consistent bool         `json:"consistent"`
	Nodes      []NodeStatus `json:"nodes"`
}

// StatusReport is the fleet's consistency check (Erlang's
// check_consistency): desired versus served digest per module and node.
type StatusReport struct {
	// Consistent reports that every module is.
	Consistent bool `json:"consistent"`
	// LiveNodes lists the live nodes, sorted.
	LiveNodes []string       `json:"live_nodes"`
	Modules   []ModuleStatus `json:"modules"`
}

// Status reads the desired bucket (fleet keys and per-node pins; a pin
// wins) and the live nodes' presence, and compares them for module, or for
// every module when module is "". A node is inconsistent when it serves
// another digest than its desired one (StateDrift) or does not serve a
// module it should (StateMissing). Errors: ErrInvalidRequest for a bad
// module name, ErrUnknownModule, ErrNATS.
func Status(ctx context.Context, b *bus.Bus, module string) (*StatusReport, error) {
	if module != "" {
		if err := validModule(module); err != nil {
			return nil, err
		}
	}
	live, err := b.LiveNodes(ctx)
	if err != nil {
		return nil, natsErr(fmt.Errorf("live nodes: %w", err))
	}
	filters := []string{">"}
	if module != "" {
		filters = []string{module, module + ".*"}
	}
	entries, err := watchValues(ctx, b.Desired, filters)
	if err != nil {
		return nil, natsErr(fmt.Errorf("desired versions: %w", err))
	}
	fleet := map[string]bus.Desired{}
	pins := map[string]map[string]bus.Desired{}
	modules := map[string]bool{}
	for key, v := range entries {
		var d bus.Desired
		if json.Unmarshal(v, &d) != nil || d.Digest == "" {
			continue
		}
		m, node, pinned := strings.Cut(key, ".")
		if pinned {
			if pins[m] == nil {
				pins[m] = map[string]bus.Desired{}
			}
			pins[m][node] = d
		} else {
			fleet[m] = d
		}
		modules[m] = true
	}
	for _, p := range live {
		for m := range p.Modules {
			if module == "" || m == module {
				modules[m] = true
			}
		}
	}
	if module != "" && !modules[module] {
		return nil, fmt.Errorf("%w %s: it has no desired version and no live node serves it (see `mcpreload-publisher status` for all modules)",
			ErrUnknownModule, module)
	}
	rep := &StatusReport{Consistent: true, LiveNodes: slices.Sorted(maps.Keys(live))}
	for _, m := range slices.Sorted(maps.Keys(modules)) {
		ms := ModuleStatus{Module: m, Desired: fleet[m].Digest, Saga: fleet[m].Saga, Updated: fleet[m].Updated, Consistent: true}
		if e, err := b.Locks.Get(ctx, m); err == nil {
			ms.InProgress = string(e.Value())
		} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, natsErr(fmt.Errorf("lock of %s: %w", m, err))
		}
		for _, node := range rep.LiveNodes {
			p := live[node]
			ns := NodeStatus{Node: node, Serving: p.Modules[m], Version: p.Versions[m], Desired: fleet[m].Digest}
			if pin, ok := pins[m][node]; ok {
				ns.Desired, ns.Pinned = pin.Digest, true
			}
			switch {
			case ns.Serving == "" && ns.Desired == "":
				continue
			case ns.Desired == "":
				ns.State = StateUnmanaged
			case ns.Serving == "":
				ns.State = StateMissing
			case ns.Serving != ns.Desired:
				ns.State = StateDrift
			default:
				ns.State = StateOK
			}
			if ns.State == StateDrift || ns.State == StateMissing {
				ms.Consistent, rep.Consistent = false, false
			}
			ms.Nodes = append(ms.Nodes, ns)
		}
		rep.Modules = append(rep.Modules, ms)
	}
	return rep, nil
}

// watchValues returns the current value of every key matching filters.
func watchValues(ctx context.Context, kv jetstream.KeyValue, filters []string) (map[string][]byte, error) {
	w, err := kv.WatchFiltered(ctx, filters, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer func() { _ = w.Stop() }()
	out := map[string][]byte{}
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("watch closed before the initial values arrived")
			}
			if e == nil {
				return out, nil
			}
			out[e.Key()] = e.Value()
		}
	}
}
