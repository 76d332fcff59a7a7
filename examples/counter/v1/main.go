// Command v1 is version 1.0.0 of the counter tool module: a stateful counter
// whose state is the count, saved as a JSON number such as 41.
//
// Versions 2.0.0 (../v2) and 3.0.0 (../v3) keep the same tools and change
// the state shape; this version accepts their state when the host rolls back
// to it.
//
// Build it with:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o build/wasm/counter-v1.wasm ./examples/counter/v1
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/mcpreload/mcpreload/guest"
)

// main is never called: the host runs the module's _initialize export.
func main() {}

const version = "1.0.0"

// count is the module state.
var count int64

func init() {
	guest.SetVersion(version)
	guest.Register(guest.Tool{
		Name:        "counter_increment",
		Description: "Add to the counter and return the new count.",
		InputSchema: json.RawMessage(`{"type":"object","properties":{"by":{"type":"integer","description":"amount to add (default 1)"}}}`),
		Handler:     increment,
	})
	guest.Register(guest.Tool{
		Name:        "counter_get",
		Description: "Return the current count.",
		InputSchema: json.RawMessage(`{"type":"object"}`),
		Handler:     func(json.RawMessage) (guest.Result, error) { return result(), nil },
	})
	guest.OnStateSave(func() ([]byte, error) { return json.Marshal(count) })
	guest.OnCodeChange(codeChange)
}

func increment(args json.RawMessage) (guest.Result, error) {
	var in struct {
		By *int64 `json:"by"`
	}
	if err := json.Unmarshal(args, &in); err != nil {
		return guest.Result{}, fmt.Errorf("invalid arguments: %w", err)
	}
	by := int64(1)
	if in.By != nil {
		by = *in.By
	}
	if (by > 0 && count > math.MaxInt64-by) || (by < 0 && count < math.MinInt64-by) {
		return guest.Result{}, fmt.Errorf("adding %d to %d overflows the counter", by, count)
	}
	count += by
	return result(), nil
}

func result() guest.Result {
	return guest.JSON(strconv.FormatInt(count, 10), map[string]int64{"count": count})
}

// codeChange adopts the state of another version. Version 1.0.0 saves a
// JSON number; versions 2.0.0 and later save {"count":N,"history":[...]}, of
// which this version keeps the count. Either shape is accepted in both
// directions, and empty state means a count of zero.
func codeChange(from, direction string, state []byte) error {
	n, err := decodeCount(state)
	if err != nil {
		return fmt.Errorf("counter %s: cannot adopt state of version %s (%s): %w", version, from, direction, err)
	}
	count = n
	return nil
}

func decodeCount(state []byte) (int64, error) {
	state = bytes.TrimSpace(state)
	if len(state) == 0 {
		return 0, nil
	}
	if state[0] != '{' {
		var n int64
		if err := json.Unmarshal(state, &n); err != nil {
			return 0, fmt.Errorf("state %q is neither an integer nor an object: %w", state, err)
		}
		return n, nil
	}
	var s struct {
		Count *int64 `json:"count"`
	}
	if err := json.Unmarshal(state, &s); err != nil {
		return 0, fmt.Errorf("invalid state object: %w", err)
	}
	if s.Count == nil {
		return 0, errors.New(`state object has no "count"`)
	}
	return *s.Count, nil
}
