package tasks

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// CheckHookNames reports every hook in the registry that names a task
// that does not exist, either as the task to hook (after("deploy:symlink:
// linked_dirs", …), a Capistrano 2 name) or as the hook to run
// ("app:restrat"), each with where it was declared and the closest task
// name. All of them are reported at once: a run checks this before its
// first command, since a hook is otherwise only looked up when its task
// runs, which may be after the fleet has switched.
func (r *Registry) CheckHookNames() error {
	r.mu.RLock()
	names := slices.Collect(maps.Keys(r.tasks))
	type entry struct {
		kind, target string
		hooks        []Hook
	}
	var entries []entry
	for _, kind := range []string{"before", "after"} {
		m := r.before
		if kind == "after" {
			m = r.after
		}
		for _, target := range slices.Sorted(maps.Keys(m)) {
			entries = append(entries, entry{kind, target, slices.Clone(m[target])})
		}
	}
	r.mu.RUnlock()
	var errs []error
	for _, e := range entries {
		targetOK := slices.Contains(names, e.target)
		for _, h := range e.hooks {
			at := ""
			if h.Pos.IsValid() {
				at = " at " + h.Pos.String()
			}
			if !targetOK {
				errs = append(errs, fmt.Errorf("%s(%q, %q)%s: there is no task %q to hook%s", e.kind, e.target, h.Task, at, e.target, suggestion(e.target, names)))
				continue
			}
			if !slices.Contains(names, h.Task) {
				errs = append(errs, fmt.Errorf("%s hook of task %s%s: %w", e.kind, e.target, at, &UnknownTaskError{Name: h.Task, Suggestion: Suggest(h.Task, names)}))
			}
		}
	}
	return errors.Join(errs...)
}

func suggestion(name string, names []string) string {
	if s := DidYouMean(name, names); s != "" {
		return s
	}
	if i := strings.LastIndex(name, ":"); i > 0 {
		// A step of a namespace that has others: list them.
		var same []string
		for _, n := range names {
			if strings.HasPrefix(n, name[:i+1]) {
				same = append(same, n)
			}
		}
		if len(same) > 0 && len(same) <= 8 {
			slices.Sort(same)
			return " (" + name[:i+1] + "* tasks: " + strings.Join(same, ", ") + ")"
		}
	}
	return ""
}
