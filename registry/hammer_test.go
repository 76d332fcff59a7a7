package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpreload/mcpreload/registry"
)

// moduleState is what a writer last set successfully.
type moduleState struct {
	version, digest string
	defs            map[string]json.RawMessage
}

// TestHammer: writers replace their modules (body-only reloads, description
// changes, tools added and removed, and a tool name they fight over) while
// readers check every snapshot, subscribers come and go, one subscriber
// reads every update and one never reads until the end. Afterwards the
// registry holds exactly each module's last successful SetModule, the
// reader saw strictly increasing Seqs ending at the registry's last Seq,
// and the idle subscriber's one pending update has that Seq too.
func TestHammer(t *testing.T) {
	const (
		writers    = 6
		iterations = 150
		readers    = 2
		churners   = 2
	)
	r := registry.New()
	idle := r.Subscribe()
	defer idle.Close()
	reader := r.Subscribe()
	defer reader.Close()

	// The reading subscriber hands each update to the test goroutine.
	ctx := t.Context()
	updates := make(chan registry.Update)
	runDone := make(chan error, 1)
	go func() {
		runDone <- reader.Run(ctx, func(ctx context.Context, u registry.Update) error {
			select {
			case updates <- u:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()

	var (
		writersWG sync.WaitGroup
		othersWG  sync.WaitGroup
		final     [writers]*moduleState
		errs      = make(chan error, writers+readers+churners)
		stop      = make(chan struct{})
		stopAll   = sync.OnceFunc(func() { close(stop) })
	)
	defer func() { stopAll(); othersWG.Wait() }()
	for w := range writers {
		writersWG.Go(func() {
			module := fmt.Sprintf("m%d", w)
			for i := range iterations {
				defs := map[string]json.RawMessage{
					module + "_a": tool(module+"_a", fmt.Sprintf("a, take %d", i/7)), // changes every 7 reloads
				}
				if i%5 < 3 {
					defs[module+"_b"] = tool(module+"_b", "b")
				}
				if i > 0 && i%3 == w%3 {
					defs["shared"] = tool("shared", module)
				}
				version := strconv.Itoa(i / 2) // every other reload is identical
				digest := digestOf(module + "@" + version)
				_, err := r.SetModule(module, version, digest, slices.Collect(maps.Values(defs)))
				switch {
				case err == nil:
					final[w] = &moduleState{version: version, digest: digest, defs: defs}
				case errors.Is(err, registry.ErrToolOwned) && defs["shared"] != nil:
				default:
					errs <- fmt.Errorf("%s: SetModule: %w", module, err)
					return
				}
			}
		})
	}
	for range readers {
		othersWG.Go(func() {
			verified := map[string]string{}
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := checkSnapshot(r.List(), verified); err != nil {
					errs <- err
					return
				}
				for _, name := range []string{"shared", "m0_a", "m1_b"} {
					if e, ok := r.Get(name); ok {
						if e.Tool != name {
							errs <- fmt.Errorf("Get(%q) returned tool %q", name, e.Tool)
							return
						}
						if err := checkSnapshot([]registry.Entry{e}, verified); err != nil {
							errs <- fmt.Errorf("Get(%q): %w", name, err)
							return
						}
					}
				}
			}
		})
	}
	for range churners {
		othersWG.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				s := r.Subscribe()
				var last uint64
				for range 3 {
					if u, ok := s.Pending(); ok {
						if u.Seq <= last {
							errs <- fmt.Errorf("churner: Seq went from %d to %d", last, u.Seq)
							s.Close()
							return
						}
						last = u.Seq
					}
				}
				s.Close()
			}
		})
	}

	writersDone := make(chan struct{})
	go func() { writersWG.Wait(); close(writersDone) }()
	var (
		last     uint64
		finalSeq uint64
		timeout  = time.After(time.Minute)
	)
	for finalSeq == 0 || last != finalSeq {
		select {
		case u := <-updates:
			require.Greater(t, u.Seq, last, "Seq must grow from update to update")
			last = u.Seq
		case <-writersDone:
			writersDone = nil
			finalSeq = r.Seq()
			require.NotZero(t, finalSeq)
		case err := <-errs:
			require.NoError(t, err)
		case <-timeout:
			t.Fatalf("the reading subscriber saw Seq %d, the registry is at %d", last, finalSeq)
		}
	}
	stopAll()
	othersWG.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	reader.Close()
	require.NoError(t, <-runDone)

	// Nothing was lost on the subscriber that never read.
	u, ok := idle.Pending()
	require.True(t, ok)
	require.Equal(t, finalSeq, u.Seq)
	require.Len(t, u.Modules, writers)
	require.True(t, u.DefinitionsChanged)

	// The registry holds exactly each module's last successful SetModule.
	entries := r.List()
	require.NoError(t, checkSnapshot(entries, map[string]string{}))
	want := map[string]string{} // tool -> module
	for w, st := range final {
		module := fmt.Sprintf("m%d", w)
		require.NotNil(t, st, module)
		v, d, ok := r.Version(module)
		require.True(t, ok)
		require.Equal(t, st.version, v, module)
		require.Equal(t, st.digest, d, module)
		for name, def := range st.defs {
			require.NotContains(t, want, name, "two modules' last SetModule both hold %q", name)
			want[name] = module
			e, ok := r.Get(name)
			require.True(t, ok, name)
			require.Equal(t, string(def), string(e.Definition), name)
		}
	}
	got := map[string]string{}
	for _, e := range entries {
		got[e.Tool] = e.Module
	}
	require.Equal(t, want, got)
}

// checkSnapshot checks the invariants of entries read at one Seq: sorted
// and unique names, one version per module, module-owned names, and
// definition digests that match the definitions. verified caches the
// digests of definitions already checked.
func checkSnapshot(entries []registry.Entry, verified map[string]string) error {
	versions := map[string]string{}
	for i, e := range entries {
		if i > 0 && entries[i-1].Tool >= e.Tool {
			return fmt.Errorf("List not sorted or not unique at %q, %q", entries[i-1].Tool, e.Tool)
		}
		if e.Tool != "shared" && !strings.HasPrefix(e.Tool, e.Module+"_") {
			return fmt.Errorf("tool %q registered by module %q", e.Tool, e.Module)
		}
		if v, ok := versions[e.Module]; ok && v != e.Version+" "+e.Digest {
			return fmt.Errorf("module %q has two versions in one List: %s and %s %s", e.Module, v, e.Version, e.Digest)
		}
		versions[e.Module] = e.Version + " " + e.Digest
		if e.Digest != digestOf(e.Module+"@"+e.Version) {
			return fmt.Errorf("tool %q: digest %s does not belong to version %s", e.Tool, e.Digest, e.Version)
		}
		dd, ok := verified[string(e.Definition)]
		if !ok {
			var err error
			if dd, err = registry.DefinitionDigest(e.Definition); err != nil {
				return fmt.Errorf("tool %q: invalid stored definition %s: %w", e.Tool, e.Definition, err)
			}
			if n := toolNameOf(e.Definition); n != e.Tool {
				return fmt.Errorf("tool %q is stored with the definition of %q", e.Tool, n)
			}
			verified[string(e.Definition)] = dd
		}
		if dd != e.DefinitionDigest {
			return fmt.Errorf("tool %q: definition digest %s does not match its definition %s", e.Tool, e.DefinitionDigest, e.Definition)
		}
	}
	return nil
}

func toolNameOf(def json.RawMessage) string {
	var v struct {
		Name string `json:"name"`
	}
	_ = json.Unmarshal(def, &v)
	return v.Name
}
