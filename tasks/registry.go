package tasks

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
)

// Position is where something was declared, so errors can point the user at
// the line to fix. Go recipes may leave it zero or name their package.
type Position struct {
	File      string
	Line, Col int
}

// String renders the position as File:Line:Col, the form editors and
// terminals turn into links; parts that are unknown are left out.
func (p Position) String() string {
	switch {
	case p.Line == 0:
		return p.File
	case p.Col == 0:
		return p.File + ":" + strconv.Itoa(p.Line)
	}
	return p.File + ":" + strconv.Itoa(p.Line) + ":" + strconv.Itoa(p.Col)
}

// IsValid reports whether the position says anything.
func (p Position) IsValid() bool { return p.File != "" || p.Line != 0 }

// Task is a named unit of work. Run is called at most once per Executor run
// unless the task is reinvoked.
type Task struct {
	Name string
	// Desc is the one-line description `davit -T` shows; tasks without one
	// (internal steps, anonymous hooks) are usually left out of listings.
	Desc string
	Pos  Position
	Run  func(*Context) error
	// Combine, if set, can do this task's work together with that of the
	// tasks after it in a sequence (Context.InvokeSequence) that share the
	// same Combiner, as one piece of work (the deploy recipe: one remote
	// command per host for several steps). It is a property of this *Task:
	// a Deployfile that defines the name again replaces the *Task, so its
	// task runs on its own. Run must still do the task's work alone; it is
	// what runs when the task is invoked by itself.
	Combine Combiner
	// Check, if set, looks at the variables the task will read (its
	// arguments on the command line, such as role=) before anything runs:
	// run.Run.Check calls it for every task named on the command line,
	// with the others' problems, and the run stops there with exit 2. It
	// reads variables only; it must not call out.
	Check func(v *Vars) error
}

// Hook is one before or after hook: the task to run and where the hook was
// declared.
type Hook struct {
	Task string
	Pos  Position
}

// Registry holds the tasks and hooks of a project. It is safe for
// concurrent use, though it is normally filled once while loading and only
// read while running.
type Registry struct {
	mu     sync.RWMutex
	tasks  map[string]*Task
	before map[string][]Hook
	after  map[string][]Hook
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{
		tasks:  map[string]*Task{},
		before: map[string][]Hook{},
		after:  map[string][]Hook{},
	}
}

// Define adds t, replacing any task of the same name. Replacing rather than
// refusing is what lets a Deployfile override a recipe's task by defining
// it again: the later definition wins, and hooks attached to the name stay
// attached.
func (r *Registry) Define(t *Task) error {
	if t == nil || t.Name == "" {
		return errors.New("define task: empty name")
	}
	if t.Run == nil {
		return fmt.Errorf("define task %s: no body", t.Name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tasks[t.Name] = t
	return nil
}

// Before makes hook run before target. Neither task needs to exist yet:
// recipes hook into each other in any order, so names are checked when the
// target is invoked, and the error then points at pos.
func (r *Registry) Before(target, hook string, pos Position) error {
	return r.addHook(r.before, "before", target, hook, pos)
}

// After makes hook run after target; see Before.
func (r *Registry) After(target, hook string, pos Position) error {
	return r.addHook(r.after, "after", target, hook, pos)
}

func (r *Registry) addHook(m map[string][]Hook, kind, target, hook string, pos Position) error {
	if target == "" || hook == "" {
		return fmt.Errorf("%s(%q, %q): empty task name", kind, target, hook)
	}
	if target == hook {
		return fmt.Errorf("%s(%q, %q): a task cannot hook itself", kind, target, hook)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	m[target] = append(m[target], Hook{Task: hook, Pos: pos})
	return nil
}

// Hooks returns the hooks of target in the order they run.
func (r *Registry) Hooks(target string) (before, after []Hook) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Clone(r.before[target]), slices.Clone(r.after[target])
}

// UnknownTaskError is returned for a task name that is not defined.
type UnknownTaskError struct {
	Name string
	// Suggestion is the closest defined name, or "".
	Suggestion string
}

func (e *UnknownTaskError) Error() string {
	msg := fmt.Sprintf("unknown task %q", e.Name)
	if e.Suggestion != "" {
		msg += " (did you mean " + e.Suggestion + "?)"
	}
	return msg
}

// Lookup returns the task called name. An unknown name's error suggests the
// closest defined name, because most unknown names are typos.
func (r *Registry) Lookup(name string) (*Task, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if t, ok := r.tasks[name]; ok {
		return t, nil
	}
	return nil, &UnknownTaskError{Name: name, Suggestion: Suggest(name, slices.Collect(maps.Keys(r.tasks)))}
}

// List returns every task sorted by name.
func (r *Registry) List() []*Task {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := slices.Collect(maps.Values(r.tasks))
	slices.SortFunc(out, func(a, b *Task) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}
