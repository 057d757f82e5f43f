package tasks

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/output"
	"github.com/davit-deploy/davit/deploy/runner"
)

// Context is what a task body works with: the run's context, the executor
// (inventory, variables, output) and the task itself. It is safe to use
// from the goroutines On starts.
type Context struct {
	ctx      context.Context
	Executor *Executor
	Task     *Task
}

// NewContext returns a Context for running t's body outside Invoke, e.g.
// from a test or a tool that calls a body directly.
func NewContext(ctx context.Context, e *Executor, t *Task) *Context {
	return &Context{ctx: ctx, Executor: e, Task: t}
}

// Ctx is the run's context; it is canceled when the run is interrupted.
func (c *Context) Ctx() context.Context { return c.ctx }

// DryRun reports whether the run only reports what it would do. Commands
// on hosts are already harmless then (the backends report them); a task
// that acts in another way, such as calling an API, must check this and
// report what it would do instead.
func (c *Context) DryRun() bool { return c.Executor.DryRun }

// Invoke runs another task (with its hooks) unless it already ran.
func (c *Context) Invoke(name string) error { return c.Executor.invoke(c.ctx, name, false) }

// Reinvoke runs another task's body even if it already ran.
func (c *Context) Reinvoke(name string) error { return c.Executor.invoke(c.ctx, name, true) }

// On calls fn for each of hosts that passes the executor's filter
// (--roles/--hosts), once per host even if it is listed twice, using
// strategy to decide how many run at once. A nil strategy, or a
// runner.Parallel without a limit, runs in parallel up to the executor's
// DefaultParallel. The error is the runner's *runner.HostErrors, naming
// every host that failed.
func (c *Context) On(hosts []*deploy.Host, strategy runner.Runner, fn func(*HostContext) error) error {
	hosts = c.Executor.Filter.Apply(dedupe(hosts))
	if len(hosts) == 0 {
		return nil
	}
	switch s := strategy.(type) {
	case nil:
		strategy = runner.Parallel{Limit: c.Executor.parallelLimit()}
	case runner.Parallel:
		if s.Limit <= 0 {
			strategy = runner.Parallel{Limit: c.Executor.parallelLimit()}
		}
	}
	return strategy.Run(c.ctx, hosts, func(ctx context.Context, h *deploy.Host) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
			}
		}()
		return fn(&HostContext{Host: h, Context: c, ctx: ctx})
	})
}

func dedupe(hosts []*deploy.Host) []*deploy.Host {
	seen := map[string]bool{}
	var out []*deploy.Host
	for _, h := range hosts {
		if h != nil && !seen[h.Key()] {
			seen[h.Key()] = true
			out = append(out, h)
		}
	}
	return out
}

// LocalHost is the host RunLocally's HostContext reports: events and
// errors from run_locally name "localhost".
func LocalHost() *deploy.Host { return &deploy.Host{Name: "localhost", Backend: "local"} }

// RunLocally calls fn with a HostContext whose commands run on this machine
// through the executor's Local backend, whatever the stage's hosts are.
func (c *Context) RunLocally(fn func(*HostContext) error) (err error) {
	if c.Executor.Local == nil {
		return errors.New("run locally: the executor has no local backend")
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("run locally: panic: %v\n%s", r, debug.Stack())
		}
	}()
	if err := fn(&HostContext{Host: LocalHost(), Context: c, ctx: c.ctx, backend: c.Executor.Local}); err != nil {
		return fmt.Errorf("run locally: %w", err)
	}
	return nil
}

// Roles returns the inventory's hosts carrying any of the roles ("all"
// matches every host), narrowed by the executor's filter.
func (c *Context) Roles(names ...string) []*deploy.Host {
	return c.Executor.Filter.Apply(deploy.WithRoles(c.Executor.Hosts, names...))
}

// Hosts returns the inventory's hosts whose name matches any of the glob
// patterns, narrowed by the executor's filter.
func (c *Context) Hosts(patterns ...string) []*deploy.Host {
	if len(patterns) == 0 {
		return nil
	}
	return c.Executor.Filter.Apply(deploy.Filter{Hosts: patterns}.Apply(c.Executor.Hosts))
}

// Primary returns the primary host of role in the whole inventory, or nil.
// It ignores the filter on purpose: the primary database is the primary
// whatever --hosts says, and On then drops it if it is filtered out rather
// than promoting another host.
func (c *Context) Primary(role string) *deploy.Host {
	return deploy.Primary(c.Executor.Hosts, role)
}

// Fetch returns a variable's value.
func (c *Context) Fetch(name string) (any, error) { return c.vars().Fetch(name) }

// FetchOr returns a variable's value, or def when it is not set.
func (c *Context) FetchOr(name string, def any) (any, error) { return c.vars().FetchOr(name, def) }

// Set sets a variable, recording the task's position as where it was set.
func (c *Context) Set(name string, value any) { c.vars().Set(name, value, c.taskPos()) }

func (c *Context) vars() *Vars { return c.Executor.vars() }

func (c *Context) taskName() string {
	if c.Task == nil {
		return ""
	}
	return c.Task.Name
}

func (c *Context) taskPos() Position {
	if c.Task == nil {
		return Position{}
	}
	return c.Task.Pos
}

// Ask prompts for a variable and sets it to the answer, which it returns.
// A variable given on the command line (name=VALUE) is not asked for, and a
// variable is asked at most once per run, even from several hosts at once.
// def (or the variable's current value when def is "") is offered as the
// default. Secret answers, and variables named like secrets, are marked
// secret so the output redacts them.
func (c *Context) Ask(name, prompt, def string, secret bool) (string, error) {
	vars := c.vars()
	if vars.Overridden(name) {
		return vars.FetchString(name)
	}
	e := c.Executor
	sh := e.share()
	sh.askMu.Lock()
	defer sh.askMu.Unlock()
	if a, ok := sh.asked[name]; ok {
		return a, nil
	}
	secret = secret || vars.IsSecret(name)
	if def == "" && vars.Has(name) {
		if s, err := vars.FetchString(name); err == nil {
			def = s
		}
	}
	if prompt == "" {
		prompt = name
	}
	if e.Prompter == nil {
		return "", fmt.Errorf("ask %s: %w; set it with %s=VALUE", name, ErrNoTerminal, name)
	}
	answer, err := e.Prompter.Ask(prompt, def, secret)
	if errors.Is(err, ErrNoTerminal) {
		return "", fmt.Errorf("ask %s: %w; set it with %s=VALUE", name, err, name)
	}
	if err != nil {
		return "", fmt.Errorf("ask %s: %w", name, err)
	}
	if secret {
		vars.MarkSecret(name)
	}
	vars.Set(name, answer, c.taskPos())
	if sh.asked == nil {
		sh.asked = map[string]string{}
	}
	sh.asked[name] = answer
	return answer, nil
}

// Emit sends an event to the run's output, attributed to the task; for
// what Info and Warn do not cover, such as a host description.
func (c *Context) Emit(e output.Event) {
	if e.Task == "" {
		e.Task = c.taskName()
	}
	c.Executor.emit(e)
}

// Info prints a message in the run's output.
func (c *Context) Info(msg string) { c.message("info", "", msg) }

// Warn prints a warning in the run's output.
func (c *Context) Warn(msg string) { c.message("warn", "", msg) }

func (c *Context) message(level, host, msg string) {
	c.Executor.emit(output.Event{Kind: output.Message, Task: c.taskName(), Host: host, Level: level, Line: msg})
}
