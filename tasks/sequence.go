package tasks

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"slices"
	"time"

	"github.com/davit-deploy/davit/deploy/output"
)

// Combiner does the work of several consecutive tasks of a sequence as
// one piece of work: the deploy recipe runs the shell steps of several of
// its tasks as one command per host, because over SSH each command costs
// a session and a shell on every host.
type Combiner interface {
	// RunCombined does the work of every task in group, in order, as
	// their bodies would have done it one after the other. c.Task is
	// group[0]. A failure that belongs to a later task of the group is a
	// *TaskError naming it; any other error is group[0]'s.
	RunCombined(c *Context, group []*Task) error
}

// InvokeSequence invokes the tasks names in order, as Invoke one after the
// other would, stopping at the first error: it is how a parent stage
// lists its children, once. Consecutive tasks that share the same
// Combiner (Task.Combine) form one group whose work the Combiner does in
// one RunCombined call, unless a hook would run between two of them (an
// after hook of the earlier or a before hook of the later splits the group
// there) or one of them already ran. The before hooks of a group's first
// task run before it, the after hooks of its last after it; every task of
// the group emits its task_start and task_end events and counts as run,
// so invoking it later does nothing. A task with a Combiner that is not
// in a group (alone, or invoked directly) runs its own Run.
func (c *Context) InvokeSequence(names ...string) error {
	return c.Executor.invokeSequence(c.ctx, names)
}

func (e *Executor) invokeSequence(ctx context.Context, names []string) error {
	if e.Registry == nil {
		return errors.New("executor has no task registry")
	}
	for i := 0; i < len(names); {
		group := e.group(ctx, names[i:])
		if len(group) < 2 {
			if err := e.invoke(ctx, names[i], false); err != nil {
				return err
			}
			i++
			continue
		}
		n, err := e.runGroup(ctx, group)
		if err != nil {
			return err
		}
		i += n
	}
	return nil
}

// group returns the tasks at the start of names that may run as one
// group: the first has a Combiner, each later one has the same, no hook
// sits at a boundary inside, none has run and none is running in ctx's
// chain of invocations. Fewer than two means no group.
func (e *Executor) group(ctx context.Context, names []string) []*Task {
	stack := invocationStack(ctx)
	var group []*Task
	for i, name := range names {
		t, err := e.Registry.Lookup(name)
		if err != nil || t.Combine == nil || e.hasRun(name) || slices.Contains(stack, name) {
			break
		}
		if i > 0 {
			prev := group[i-1]
			_, after := e.Registry.Hooks(prev.Name)
			before, _ := e.Registry.Hooks(name)
			if len(after) > 0 || len(before) > 0 || !sameCombiner(prev.Combine, t.Combine) || slices.ContainsFunc(group, func(g *Task) bool { return g.Name == name }) {
				break
			}
		}
		group = append(group, t)
	}
	return group
}

// sameCombiner compares two Combiners, treating values of types that
// cannot be compared (a func, a map) as different rather than panicking.
func sameCombiner(a, b Combiner) bool {
	if !reflect.TypeOf(a).Comparable() || !reflect.TypeOf(b).Comparable() {
		return false
	}
	return a == b
}

// runGroup runs group (of at least two tasks) as one RunCombined call and
// returns how many of its tasks it took: another goroutine may have
// started one of them meanwhile, which then ends the group before it.
func (e *Executor) runGroup(ctx context.Context, group []*Task) (int, error) {
	for _, t := range group {
		if err := e.checkHooks(t.Name); err != nil {
			return 0, err
		}
	}
	first := group[0].Name
	var runs []*taskRun
	for _, t := range group {
		tr, mine := e.claim(t.Name, false)
		if !mine {
			break
		}
		runs = append(runs, tr)
	}
	group = group[:len(runs)]
	switch len(group) {
	case 0: // the first task started elsewhere: invoke waits for it
		return 1, e.invoke(ctx, first, false)
	case 1:
		err := e.runClaimed(ctx, group[0])
		e.finish(runs[0], err)
		return 1, err
	}
	ctx = withGroup(ctx, group)
	before, _ := e.Registry.Hooks(group[0].Name)
	for _, h := range before {
		if err := e.run(ctx, h.Task, false); err != nil {
			e.finish(runs[0], err)
			for i := 1; i < len(group); i++ {
				e.unclaim(group[i].Name, runs[i], err)
			}
			return len(group), err
		}
	}
	failed, err := e.runCombined(ctx, group)
	for i, t := range group {
		switch {
		case err == nil || i < failed:
			e.finish(runs[i], nil)
		case i == failed:
			e.finish(runs[i], err)
		default:
			e.unclaim(t.Name, runs[i], err)
		}
	}
	if err != nil {
		return len(group), err
	}
	_, after := e.Registry.Hooks(group[len(group)-1].Name)
	for _, h := range after {
		if err := e.run(ctx, h.Task, false); err != nil {
			return len(group), err
		}
	}
	return len(group), nil
}

// withGroup puts the group's tasks on ctx's chain of invocations, so none of
// them (nor their hooks) can invoke one of them again.
func withGroup(ctx context.Context, group []*Task) context.Context {
	stack := slices.Clone(invocationStack(ctx))
	for _, t := range group {
		stack = append(stack, t.Name)
	}
	return context.WithValue(ctx, stackKey{}, stack)
}

// runCombined is runBody for a group: every task's task_start, the one
// RunCombined call, every task's task_end. failed is the index of the
// task the error belongs to; the tasks after it never ran, and their
// task_end says so.
func (e *Executor) runCombined(ctx context.Context, group []*Task) (failed int, err error) {
	if err := ctx.Err(); err != nil {
		return 0, &TaskError{Task: group[0].Name, Err: err}
	}
	for _, t := range group {
		e.emit(output.Event{Kind: output.TaskStart, Task: t.Name})
	}
	start := time.Now()
	c := &Context{ctx: ctx, Executor: e, Task: group[0]}
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
			}
		}()
		err = group[0].Combine.RunCombined(c, group)
	}()
	if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		err = &interrupted{err: err, cause: ctx.Err()}
	}
	failed = len(group)
	if err != nil {
		failed = 0
		var te *TaskError
		if errors.As(err, &te) {
			if i := slices.IndexFunc(group, func(t *Task) bool { return t.Name == te.Task }); i >= 0 {
				failed = i
			}
		}
		if _, ok := err.(*TaskError); !ok {
			err = &TaskError{Task: group[failed].Name, Err: err}
		}
	}
	d := time.Since(start)
	for i, t := range group {
		if i > failed {
			// It never ran: its task_start said it would, so its end says
			// why it did not.
			e.emit(output.Event{Kind: output.TaskEnd, Task: t.Name, Duration: 0, Error: "not run: " + group[failed].Name + " failed"})
			continue
		}
		ev := output.Event{Kind: output.TaskEnd, Task: t.Name, Duration: d}
		if i == failed {
			ev.Error = err.Error()
		}
		e.emit(ev)
	}
	return failed, err
}
