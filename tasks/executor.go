package tasks

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/output"
)

// Executor runs tasks for one davit invocation. Fill in the exported
// fields, then call Invoke; an Executor must not be copied after first use.
// Its methods are safe for concurrent use.
type Executor struct {
	Registry *Registry
	Vars     *Vars
	// Hosts is the selected stage's inventory.
	Hosts []*deploy.Host
	// Inventory says where Hosts came from (declared servers, host
	// sources and what they were asked), for messages about missing
	// hosts; nil when Hosts were given directly.
	Inventory *deploy.Inventory
	// Filter comes from --roles/--hosts and restricts every On.
	Filter deploy.Filter
	// Pool hands out each host's backend (SSH, local or dry run: the CLI
	// decides by how it builds the pool).
	Pool *deploy.Pool
	// Local runs commands for RunLocally.
	Local deploy.Backend
	// LocalDir is where relative local paths of UploadFile and
	// DownloadFile resolve (the CLI sets the Deployfile's directory, where
	// run_locally commands also start); empty means the working directory.
	LocalDir string
	// Sink receives task, command and message events; nil discards them.
	Sink output.Sink
	// DefaultParallel bounds On's default parallel strategy (--parallel);
	// 0 means runner.DefaultLimit.
	DefaultParallel int
	// Prompter answers Context.Ask; nil makes every Ask fail with a hint
	// to set the variable on the command line.
	Prompter Prompter
	// DryRun says the run only reports what it would do: the backends
	// (chosen by whoever builds the Pool and Local) run nothing, and a
	// task that acts other than through a backend (an API call) reads
	// Context.DryRun and reports instead of acting.
	DryRun bool

	varsOnce   sync.Once
	sharedOnce sync.Once
	shared     *runShared // what derived executors share with this one
	mu         sync.Mutex
	runs       map[string]*taskRun
}

// runShared is the part of a run that every executor derived from it
// (Derive) shares: answers already given to Ask, and the command ids, so
// no two commands of one run ever get the same id.
type runShared struct {
	askMu  sync.Mutex
	asked  map[string]string
	nextID atomic.Uint64
}

// taskRun is one task's run in an executor: done is closed when it ends,
// and err is then how it ended.
type taskRun struct {
	done chan struct{}
	err  error
}

func (e *Executor) share() *runShared {
	e.sharedOnce.Do(func() {
		if e.shared == nil {
			e.shared = &runShared{}
		}
	})
	return e.shared
}

// CommandsRun counts the commands and transfers this run (with every
// executor derived from it) has started on any host.
func (e *Executor) CommandsRun() uint64 { return e.share().nextID.Load() }

// Derive returns an executor for the same run that sees only hosts (further
// narrowed by this executor's filter) and runs every task afresh. Every
// other field is kept, and so are the answers Ask got and the command ids:
// a rolling publish runs deploy:publishing and its hooks once per batch of
// hosts, each batch on an executor derived for it, without asking the user
// twice or confusing two batches' commands in the output.
func (e *Executor) Derive(hosts []*deploy.Host) *Executor {
	keys := []string{} // not nil: no host passes when none is given
	for _, h := range e.Filter.Apply(hosts) {
		keys = append(keys, h.Key())
	}
	d := &Executor{
		Registry:        e.Registry,
		Vars:            e.vars(),
		Hosts:           e.Hosts,
		Inventory:       e.Inventory,
		Filter:          e.Filter,
		Pool:            e.Pool,
		Local:           e.Local,
		LocalDir:        e.LocalDir,
		Sink:            e.Sink,
		DefaultParallel: e.DefaultParallel,
		Prompter:        e.Prompter,
		DryRun:          e.DryRun,
		shared:          e.share(),
	}
	d.Filter.Only = keys
	return d
}

// TaskError is a task's failure. Its message reads "task NAME failed:
// CAUSE" ("canceled" instead of "failed" when the run was interrupted);
// errors.As finds the runner.HostErrors and CommandErrors inside, and
// errors.Is(err, context.Canceled) tells an interrupted run from a failed
// one.
type TaskError struct {
	Task string
	Err  error
}

func (e *TaskError) Error() string {
	verb := "failed"
	if errors.Is(e.Err, context.Canceled) || errors.Is(e.Err, context.DeadlineExceeded) {
		verb = "canceled"
	}
	return fmt.Sprintf("task %s %s: %v", e.Task, verb, e.Err)
}

func (e *TaskError) Unwrap() error { return e.Err }

// interrupted adds the context's error to an error caused by cancellation
// that does not say so itself (a Starlark thread's "computation
// cancelled", a backend's "signal: terminated"), keeping its message.
type interrupted struct {
	err, cause error
}

func (e *interrupted) Error() string   { return e.err.Error() }
func (e *interrupted) Unwrap() []error { return []error{e.err, e.cause} }

// Invoke runs the task called name: its before hooks, its body, its after
// hooks. Each task runs at most once per Executor, so invoking a task that
// already ran (as a hook or directly) does nothing; use Reinvoke to run it
// again. An Invoke from another goroutine while the task is still running
// waits for it to end (or for ctx) and returns its error, so whoever
// invokes a task may rely on its work being done. Hooks are checked before
// anything runs: a hook naming an unknown task or a cycle of hooks is an
// error that points at the hook's position.
func (e *Executor) Invoke(ctx context.Context, name string) error {
	return e.invoke(ctx, name, false)
}

// Reinvoke runs the task's body again even if it already ran. Its hooks are
// treated as in Invoke: those that already ran are not repeated (Rake's and
// Capistrano's invoke! semantics).
func (e *Executor) Reinvoke(ctx context.Context, name string) error {
	return e.invoke(ctx, name, true)
}

type stackKey struct{}

// invocationStack is the chain of tasks running in ctx, used to refuse a
// task that (through invoke calls in bodies) invokes itself.
func invocationStack(ctx context.Context) []string {
	s, _ := ctx.Value(stackKey{}).([]string)
	return s
}

func (e *Executor) invoke(ctx context.Context, name string, force bool) error {
	if e.Registry == nil {
		return errors.New("executor has no task registry")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("invoke %s: %w", name, err)
	}
	stack := invocationStack(ctx)
	if slices.Contains(stack, name) {
		return fmt.Errorf("task %s invokes itself: %s", name, strings.Join(append(slices.Clone(stack), name), " -> "))
	}
	if err := e.checkHooks(name); err != nil {
		return err
	}
	return e.run(ctx, name, force)
}

// CheckHooks reports, for the task root and every task its hooks reach, a
// hook naming an unknown task or a cycle of hooks, so a typo in an after
// hook fails before the task's body has changed any server. Invoke checks
// this itself; a run checks every task asked for before running the first.
func (e *Executor) CheckHooks(root string) error { return e.checkHooks(root) }

// checkHooks walks the hook graph reachable from root.
func (e *Executor) checkHooks(root string) error {
	if _, err := e.Registry.Lookup(root); err != nil {
		return err
	}
	done := map[string]bool{}
	type edge struct {
		task string
		kind string
		pos  Position
	}
	var path []edge
	var visit func(name string) error
	visit = func(name string) error {
		if done[name] {
			return nil
		}
		before, after := e.Registry.Hooks(name)
		for _, k := range []struct {
			kind  string
			hooks []Hook
		}{{"before", before}, {"after", after}} {
			for _, h := range k.hooks {
				at := ""
				if h.Pos.IsValid() {
					at = " at " + h.Pos.String()
				}
				if _, err := e.Registry.Lookup(h.Task); err != nil {
					return fmt.Errorf("%s hook of task %s%s: %w", k.kind, name, at, err)
				}
				if h.Task == root || slices.ContainsFunc(path, func(p edge) bool { return p.task == h.Task }) {
					names := []string{root}
					var where []string
					for _, p := range append(slices.Clone(path), edge{h.Task, k.kind, h.Pos}) {
						names = append(names, p.task)
						if p.pos.IsValid() {
							where = append(where, p.kind+" "+p.pos.String())
						}
					}
					msg := "hook cycle: " + strings.Join(names, " -> ")
					if len(where) > 0 {
						msg += " (hooks declared at " + strings.Join(where, ", ") + ")"
					}
					return errors.New(msg)
				}
				path = append(path, edge{h.Task, k.kind, h.Pos})
				err := visit(h.Task)
				path = path[:len(path)-1]
				if err != nil {
					return err
				}
			}
		}
		done[name] = true
		return nil
	}
	return visit(root)
}

// run invokes name's hooks and body; the hook graph has been checked.
func (e *Executor) run(ctx context.Context, name string, force bool) error {
	if err := ctx.Err(); err != nil {
		return &TaskError{Task: name, Err: err}
	}
	t, err := e.Registry.Lookup(name)
	if err != nil {
		return err
	}
	tr, first := e.claim(name, force)
	if !first {
		return e.wait(ctx, name, tr)
	}
	err = e.runClaimed(ctx, t)
	e.finish(tr, err)
	return err
}

// claim marks name as running and reports whether the caller is the one to
// run it; otherwise tr is the run already started (or finished).
func (e *Executor) claim(name string, force bool) (tr *taskRun, first bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.runs == nil {
		e.runs = map[string]*taskRun{}
	}
	if prev, ok := e.runs[name]; ok && !force {
		return prev, false
	}
	tr = &taskRun{done: make(chan struct{})}
	e.runs[name] = tr
	return tr, true
}

func (e *Executor) finish(tr *taskRun, err error) {
	tr.err = err
	close(tr.done)
}

// unclaim ends a claimed run that never started (a task of a sequence's
// group after the one that failed): waiters get err, and a later invoke
// runs the task afresh.
func (e *Executor) unclaim(name string, tr *taskRun, err error) {
	e.mu.Lock()
	if e.runs[name] == tr {
		delete(e.runs, name)
	}
	e.mu.Unlock()
	e.finish(tr, err)
}

// wait blocks until a run of name that another goroutine started ends.
func (e *Executor) wait(ctx context.Context, name string, tr *taskRun) error {
	select {
	case <-tr.done:
		return tr.err
	case <-ctx.Done():
		return &TaskError{Task: name, Err: ctx.Err()}
	}
}

// hasRun reports whether name was started in this executor.
func (e *Executor) hasRun(name string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.runs[name]
	return ok
}

// runClaimed runs t's before hooks, body and after hooks.
func (e *Executor) runClaimed(ctx context.Context, t *Task) error {
	ctx = context.WithValue(ctx, stackKey{}, append(slices.Clone(invocationStack(ctx)), t.Name))
	before, after := e.Registry.Hooks(t.Name)
	for _, h := range before {
		if err := e.run(ctx, h.Task, false); err != nil {
			return err
		}
	}
	if err := e.runBody(ctx, t); err != nil {
		return err
	}
	for _, h := range after {
		if err := e.run(ctx, h.Task, false); err != nil {
			return err
		}
	}
	return nil
}

func (e *Executor) runBody(ctx context.Context, t *Task) (err error) {
	if err := ctx.Err(); err != nil {
		return &TaskError{Task: t.Name, Err: err}
	}
	e.emit(output.Event{Kind: output.TaskStart, Task: t.Name})
	start := time.Now()
	c := &Context{ctx: ctx, Executor: e, Task: t}
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
			}
		}()
		err = t.Run(c)
	}()
	if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		err = &interrupted{err: err, cause: ctx.Err()}
	}
	ev := output.Event{Kind: output.TaskEnd, Task: t.Name, Duration: time.Since(start)}
	if err != nil {
		ev.Error = err.Error()
	}
	e.emit(ev)
	if err == nil {
		return nil
	}
	// A task that failed because a task it invoked failed reports that
	// task, not itself wrapped around it.
	if te, ok := err.(*TaskError); ok {
		return te
	}
	return &TaskError{Task: t.Name, Err: err}
}

func (e *Executor) emit(ev output.Event) {
	if e.Sink == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	e.Sink.Emit(ev)
}

// parallelLimit is the limit On uses when the task does not choose one.
func (e *Executor) parallelLimit() int {
	if e.DefaultParallel > 0 {
		return e.DefaultParallel
	}
	return 0 // runner.Parallel's own default
}

// vars returns the variable store, creating an empty one if none was given
// so that Go recipes' tests need not build one.
func (e *Executor) vars() *Vars {
	e.varsOnce.Do(func() {
		if e.Vars == nil {
			e.Vars = NewVars()
		}
	})
	return e.Vars
}
