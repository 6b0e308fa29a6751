package authz

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultDebounce is how long Watch waits after the last change before it
// reloads: editors write a file in several steps (temp file, rename, chmod).
const DefaultDebounce = 300 * time.Millisecond

// Watch reloads the policy whenever a file in the folder changes, until ctx
// ends. Changes are debounced; each reload's outcome is passed to report
// (err is nil on success; changed says the revision moved).
func (e *Engine) Watch(ctx context.Context, debounce time.Duration, report func(changed bool, err error)) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch policy: %w", err)
	}
	defer w.Close()
	if err := watchTree(w, e.dir); err != nil {
		return fmt.Errorf("watch policy: %w", err)
	}
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Has(fsnotify.Create) {
				// A new subfolder (teams/, say) is watched too.
				_ = watchTree(w, ev.Name)
			}
			timer.Reset(debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			report(false, fmt.Errorf("watch policy: %w", err))
		case <-timer.C:
			report(e.Reload(ctx))
		}
	}
}

// watchTree adds root and every folder below it to the watcher; fsnotify
// watches one folder level at a time.
func watchTree(w *fsnotify.Watcher, root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return w.Add(path)
		}
		return nil
	})
}
