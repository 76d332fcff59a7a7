package registry_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/mcpreload/mcpreload/registry"
)

func BenchmarkDefinitionDigest(b *testing.B) {
	def := tool("add", "Add a and b")
	b.SetBytes(int64(len(def)))
	for b.Loop() {
		if _, err := registry.DefinitionDigest(def); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSetModule: a body-only reload of a 10-tool module.
func BenchmarkSetModule(b *testing.B) {
	r := registry.New()
	var defs []json.RawMessage
	for i := range 10 {
		defs = append(defs, tool(fmt.Sprintf("t%d", i), "Tool"))
	}
	sub := r.Subscribe()
	defer sub.Close()
	i := 0
	for b.Loop() {
		i++
		if _, err := r.SetModule("m", fmt.Sprint(i), "sha256:00", defs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkList: a tools/list of 100 tools.
func BenchmarkList(b *testing.B) {
	r := registry.New()
	for m := range 10 {
		var defs []json.RawMessage
		for i := range 10 {
			defs = append(defs, tool(fmt.Sprintf("m%d_t%d", m, i), "Tool"))
		}
		if _, err := r.SetModule(fmt.Sprintf("m%d", m), "1", "sha256:00", defs); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if len(r.List()) != 100 {
			b.Fatal("want 100 tools")
		}
	}
}
