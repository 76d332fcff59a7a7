// Command v2 is version 2.0.0 of the counter tool module. It keeps the tools
// of version 1.0.0 (../v1) unchanged and additionally remembers the last
// increments, so its state is an object: {"count":N,"history":[...]}.
//
// Upgrading from 1.0.0 converts that version's state, a JSON number, into a
// count with an empty history. Rolling back from 3.0.0 (../v3), which saves
// the same object shape, keeps count and history.
//
// Build it with:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o build/wasm/counter-v2.wasm ./examples/counter/v2
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

const version = "2.0.0"

// historyLen is how many increments the counter remembers.
const historyLen = 10

// counterState is the module state; it is also the structured content of
// every result and, encoded as JSON, the saved state.
type counterState struct {
	Count int64 `json:"count"`
	// History holds the last historyLen increments, oldest first.
	History []int64 `json:"history"`
}

var state = counterState{History: []int64{}}

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
	guest.OnStateSave(func() ([]byte, error) { return json.Marshal(state) })
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
	if (by > 0 && state.Count > math.MaxInt64-by) || (by < 0 && state.Count < math.MinInt64-by) {
		return guest.Result{}, fmt.Errorf("adding %d to %d overflows the counter", by, state.Count)
	}
	state.Count += by
	state.History = lastN(append(state.History, by), historyLen)
	return result(), nil
}

func result() guest.Result {
	return guest.JSON(strconv.FormatInt(state.Count, 10), state)
}

// lastN returns the last n elements of s.
func lastN(s []int64, n int) []int64 {
	if len(s) <= n {
		return s
	}
	return append([]int64(nil), s[len(s)-n:]...)
}

// codeChange adopts the state of another version: a JSON number (1.0.0,
// upgrading) or a {"count":N,"history":[...]} object (2.0.0 and later, such
// as 3.0.0 rolling back). Empty state means a count of zero.
func codeChange(from, direction string, saved []byte) error {
	s, err := decodeState(saved)
	if err != nil {
		return fmt.Errorf("counter %s: cannot adopt state of version %s (%s): %w", version, from, direction, err)
	}
	state = s
	return nil
}

func decodeState(saved []byte) (counterState, error) {
	saved = bytes.TrimSpace(saved)
	s := counterState{History: []int64{}}
	if len(saved) == 0 {
		return s, nil
	}
	if saved[0] != '{' {
		if err := json.Unmarshal(saved, &s.Count); err != nil {
			return counterState{}, fmt.Errorf("state is neither an integer nor an object: %w", err)
		}
		return s, nil
	}
	var obj struct {
		Count   *int64  `json:"count"`
		History []int64 `json:"history"`
	}
	if err := json.Unmarshal(saved, &obj); err != nil {
		return counterState{}, fmt.Errorf("invalid state object: %w", err)
	}
	if obj.Count == nil {
		return counterState{}, errors.New(`state object has no "count"`)
	}
	s.Count = *obj.Count
	if obj.History != nil {
		s.History = lastN(obj.History, historyLen)
	}
	return s, nil
}
