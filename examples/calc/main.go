// Command calc is a stateless tool module with the four basic arithmetic
// operations on two numbers.
//
// Build it with:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o build/wasm/calc.wasm ./examples/calc
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/mcpreload/mcpreload/guest"
)

// main is never called: the host runs the module's _initialize export.
func main() {}

// operandsSchema is the input schema shared by every calc tool.
const operandsSchema = `{"type":"object","properties":{"a":{"type":"number"},"b":{"type":"number"}},"required":["a","b"]}`

func init() {
	guest.SetVersion("1.0.0")
	guest.SetStateless(true)
	register("calc_add", "Add two numbers: a + b.", func(a, b float64) (float64, error) { return a + b, nil })
	register("calc_sub", "Subtract two numbers: a - b.", func(a, b float64) (float64, error) { return a - b, nil })
	register("calc_mul", "Multiply two numbers: a * b.", func(a, b float64) (float64, error) { return a * b, nil })
	register("calc_div", "Divide two numbers: a / b.", func(a, b float64) (float64, error) {
		if b == 0 {
			return 0, errors.New("division by zero")
		}
		return a / b, nil
	})
}

// register adds a tool applying op to the call's operands a and b.
func register(name, description string, op func(a, b float64) (float64, error)) {
	guest.Register(guest.Tool{
		Name:        name,
		Description: description,
		InputSchema: json.RawMessage(operandsSchema),
		Handler: func(args json.RawMessage) (guest.Result, error) {
			a, b, err := operands(args)
			if err != nil {
				return guest.Result{}, err
			}
			x, err := op(a, b)
			if err != nil {
				return guest.Result{}, err
			}
			if math.IsInf(x, 0) || math.IsNaN(x) {
				return guest.Result{}, fmt.Errorf("result %v is not a finite number", x)
			}
			return guest.JSON(strconv.FormatFloat(x, 'g', -1, 64), map[string]float64{"result": x}), nil
		},
	})
}

// operands decodes the required arguments a and b.
func operands(args json.RawMessage) (a, b float64, err error) {
	var in struct {
		A *float64 `json:"a"`
		B *float64 `json:"b"`
	}
	if err := json.Unmarshal(args, &in); err != nil {
		return 0, 0, fmt.Errorf("invalid arguments: %w", err)
	}
	switch {
	case in.A == nil:
		return 0, 0, errors.New(`missing required argument "a"`)
	case in.B == nil:
		return 0, 0, errors.New(`missing required argument "b"`)
	}
	return *in.A, *in.B, nil
}
