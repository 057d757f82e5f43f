package deployfile

import (
	"context"
	"fmt"
	"time"

	"go.starlark.net/starlark"

	"github.com/davit-deploy/davit/deploy/output"
	"github.com/davit-deploy/davit/tasks"
)

// phase says what a thread is doing, and so which builtins it may call.
type phase int

const (
	phaseLoad  phase = iota // running a Deployfile or a loaded file
	phaseStage              // running a stage function (UseStage)
	phaseLazy               // computing a lazy variable
	phaseTask               // running a task body, or a function given to on()/run_locally()
)

// threadState is a thread's thread-local: the phase and, in tasks, the
// tasks.Context (and HostContext inside on()). Each thread has its own.
type threadState struct {
	phase  phase
	module moduleRef          // phaseLoad: the file being run, for relative loads
	tc     *tasks.Context     // phaseTask
	hc     *tasks.HostContext // inside on() and run_locally()
	chain  []string           // phaseLazy: the fetch chain computing this value (tasks.LazyChain)
	ctx    context.Context    // what bounds this thread's work; nil means the Load context
}

const stateKey = "davit.state"

func stateOf(th *starlark.Thread) *threadState {
	st, _ := th.Local(stateKey).(*threadState)
	if st == nil {
		return &threadState{phase: phaseLazy}
	}
	return st
}

func (p *Project) newThread(name string, st *threadState) *starlark.Thread {
	th := &starlark.Thread{Name: name, Load: p.load, Print: p.print}
	th.SetLocal(stateKey, st)
	return th
}

// print sends Starlark's print() to the run's output as an info message.
func (p *Project) print(th *starlark.Thread, msg string) { p.message(th, "info", msg) }

func (p *Project) message(th *starlark.Thread, level, msg string) {
	st := stateOf(th)
	switch {
	case st.hc != nil && level == "warn":
		st.hc.Warn(msg)
	case st.hc != nil:
		st.hc.Info(msg)
	case st.tc != nil && level == "warn":
		st.tc.Warn(msg)
	case st.tc != nil:
		st.tc.Info(msg)
	case p.opts.Sink != nil:
		p.opts.Sink.Emit(output.Event{Time: time.Now(), Kind: output.Message, Level: level, Line: msg})
	}
}

// callerPos is the Starlark position that called the running builtin.
func callerPos(th *starlark.Thread) tasks.Position {
	if th.CallStackDepth() < 2 {
		return tasks.Position{}
	}
	pos := th.CallFrame(1).Pos
	return tasks.Position{File: pos.Filename(), Line: int(pos.Line), Col: int(pos.Col)}
}

// inTask returns the thread's state, or the error explaining that name
// acts on servers and so only works while a task runs.
func inTask(th *starlark.Thread, name string) (*threadState, error) {
	st := stateOf(th)
	if st.phase != phaseTask || st.tc == nil {
		return nil, fmt.Errorf("%s() can only be called inside a task", name)
	}
	return st, nil
}

// whileLoading refuses declarations (servers, stages, tasks, hooks) once
// the project is running: the executor's inventory and task graph are
// fixed by then.
func whileLoading(th *starlark.Thread, name string, allowStage bool) (*threadState, error) {
	st := stateOf(th)
	switch {
	case st.phase == phaseLoad:
		return st, nil
	case st.phase == phaseStage && allowStage:
		return st, nil
	case allowStage:
		return nil, fmt.Errorf("%s() can only be called while loading the Deployfile or in a stage function", name)
	}
	return nil, fmt.Errorf("%s() can only be called at the top level of a Deployfile or a loaded file", name)
}

// taskBody turns a Starlark callable into a tasks.Task body: each run gets
// a fresh thread, canceled with the run's context.
func (p *Project) taskBody(name string, fn starlark.Callable) func(*tasks.Context) error {
	return func(c *tasks.Context) error {
		ctx := c.Ctx()
		th := p.newThread("task "+name, &threadState{phase: phaseTask, tc: c, ctx: ctx})
		stop := context.AfterFunc(ctx, func() { th.Cancel(context.Cause(ctx).Error()) })
		defer stop()
		var args starlark.Tuple
		if takesArg(fn) {
			args = starlark.Tuple{p.taskCtxValue(c)}
		}
		_, err := starlark.Call(th, fn, args, nil)
		return convertErr(ctx, err)
	}
}

// takesArg reports whether fn accepts a positional argument, so a task
// body may be written `def t(ctx):` or `def t():`.
func takesArg(fn starlark.Callable) bool {
	f, ok := fn.(*starlark.Function)
	if !ok {
		return true
	}
	positional := f.NumParams() - f.NumKwonlyParams()
	if f.HasVarargs() {
		return true
	}
	if f.HasKwargs() {
		positional--
	}
	return positional > 0
}

// runOnHost calls fn(handle) on a new thread for one host.
func (p *Project) runOnHost(st *threadState, hc *tasks.HostContext, fn starlark.Callable) (starlark.Value, error) {
	ctx := hc.Ctx()
	th := p.newThread("host "+hc.Host.String(), &threadState{phase: phaseTask, tc: st.tc, hc: hc, ctx: ctx})
	stop := context.AfterFunc(ctx, func() { th.Cancel(context.Cause(ctx).Error()) })
	defer stop()
	v, err := starlark.Call(th, fn, starlark.Tuple{&hostValue{h: hc.Host, hc: hc}}, nil)
	if err != nil {
		return nil, convertErr(ctx, err)
	}
	v.Freeze() // it is handed back to the task's thread
	return v, nil
}
