package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Figure is one measured quantity: its samples summarised, and optionally a
// floor (the same work done by the simplest possible means, measured in the
// same run) with the ratio between the two.
type Figure struct {
	Suite   string  `json:"suite"`
	Name    string  `json:"name"`
	Unit    string  `json:"unit"` // "ns", "ms", "ops/s", "MiB", ...
	N       int     `json:"n"`    // samples
	Median  float64 `json:"median"`
	P99     float64 `json:"p99"`
	Floor   string  `json:"floor,omitempty"` // what the floor is
	FloorMd float64 `json:"floor_median,omitempty"`
	Ratio   float64 `json:"ratio,omitempty"` // Median / FloorMd
	Note    string  `json:"note,omitempty"`
}

// durations summarises samples as a Figure in the given unit.
func durations(suite, name string, samples []time.Duration, unit time.Duration) Figure {
	f := Figure{Suite: suite, Name: name, Unit: unitName(unit), N: len(samples)}
	if len(samples) == 0 {
		return f
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	f.Median = float64(s[len(s)/2]) / float64(unit)
	f.P99 = float64(s[min(len(s)-1, int(math.Ceil(float64(len(s))*0.99))-1)]) / float64(unit)
	return f
}

// withFloor attaches a floor figure to f.
func (f Figure) withFloor(name string, floor Figure) Figure {
	f.Floor, f.FloorMd = name, floor.Median
	if floor.Median > 0 {
		f.Ratio = f.Median / floor.Median
	}
	return f
}

func unitName(u time.Duration) string {
	switch u {
	case time.Nanosecond:
		return "ns"
	case time.Microsecond:
		return "µs"
	case time.Millisecond:
		return "ms"
	}
	return u.String()
}

// timeN runs f n times and returns each run's duration.
func timeN(n int, f func(i int) error) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	for i := range n {
		start := time.Now()
		if err := f(i); err != nil {
			return out, err
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}

// perOp measures a fast operation: batches of `batch` calls, each batch's
// time divided by batch, `rounds` times.
func perOp(rounds, batch int, f func() error) ([]time.Duration, error) {
	out := make([]time.Duration, 0, rounds)
	for range rounds {
		start := time.Now()
		for range batch {
			if err := f(); err != nil {
				return out, err
			}
		}
		out = append(out, time.Since(start)/time.Duration(batch))
	}
	return out, nil
}

func fmtNum(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}
