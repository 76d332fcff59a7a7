package node

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/mcpreload/mcpreload/loader"
)

// watcher is the --watch loop: every *.wasm in a directory is a module
// (named after the file), loaded at start and reloaded when the file
// changes. A file that disappears unloads its module. Changes are debounced
// per file, so an editor's write-rename-chmod burst is one reload.
type watcher struct {
	n        *Node
	dir      string
	debounce time.Duration
	fsw      *fsnotify.Watcher

	mu     sync.Mutex
	timers map[string]*time.Timer
	closed bool
	wg     sync.WaitGroup // reloads started by timers
}

func newWatcher(n *Node, dir string, debounce time.Duration) (*watcher, error) {
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	if err := fsw.Add(dir); err != nil {
		_ = fsw.Close()
		return nil, err
	}
	return &watcher{n: n, dir: dir, debounce: debounce, fsw: fsw, timers: map[string]*time.Timer{}}, nil
}

// moduleName maps a file to its module, or "" if the file is not a module.
func moduleName(path string) string {
	base := filepath.Base(path)
	name, ok := strings.CutSuffix(base, ".wasm")
	if !ok || strings.HasPrefix(base, ".") {
		return ""
	}
	return name
}

// loadAll loads every module file present now.
func (w *watcher) loadAll(ctx context.Context) {
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		w.n.log.Error().Err(err).Str("dir", w.dir).Msg("cannot list the watched directory")
		return
	}
	for _, e := range entries {
		if !e.IsDir() && moduleName(e.Name()) != "" {
			w.sync(ctx, filepath.Join(w.dir, e.Name()))
		}
	}
}

func (w *watcher) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return
			}
			if moduleName(ev.Name) != "" && ev.Op != fsnotify.Chmod {
				w.schedule(ctx, ev.Name)
			}
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return
			}
			w.n.log.Error().Err(err).Str("dir", w.dir).Msg("watch error; changes may be missed until the next write")
		}
	}
}

// schedule (re)arms the file's debounce timer.
func (w *watcher) schedule(ctx context.Context, path string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	if t, ok := w.timers[path]; ok && t.Stop() {
		t.Reset(w.debounce)
		return
	}
	w.wg.Add(1)
	w.timers[path] = time.AfterFunc(w.debounce, func() {
		defer w.wg.Done()
		w.mu.Lock()
		delete(w.timers, path)
		w.mu.Unlock()
		w.sync(ctx, path)
	})
}

// sync makes the module of path match the file: reload, or unload if gone.
func (w *watcher) sync(ctx context.Context, path string) {
	module := moduleName(path)
	log := w.n.log.With().Str("module", module).Str("file", path).Logger()
	if err := loader.ValidateModuleName(module); err != nil {
		log.Error().Err(err).Msg("file name is not a valid module name; rename the file")
		return
	}
	wasm, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if _, _, verr := w.n.loader.Versions(module); verr == nil {
			if err := w.n.Unload(ctx, module); err != nil {
				log.Error().Err(err).Msg("unload failed")
			}
		}
		return
	}
	if err != nil {
		log.Error().Err(err).Msg("cannot read the module file; the previous version keeps serving")
		return
	}
	// Errors are logged by Reload with the stage and reason.
	_, _ = w.n.Reload(ctx, module, wasm, "")
}

func (w *watcher) close() {
	w.mu.Lock()
	w.closed = true
	for path, t := range w.timers {
		if t.Stop() {
			w.wg.Done()
		}
		delete(w.timers, path)
	}
	w.mu.Unlock()
	_ = w.fsw.Close()
	w.wg.Wait()
}
