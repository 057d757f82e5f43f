package capdeploy

import (
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/davit-deploy/davit/deploy/runner"
	"github.com/davit-deploy/davit/recipes/scm"
	"github.com/davit-deploy/davit/tasks"
)

// Round trips. Over SSH every command is a session and a shell on the
// server; on a fleet that costs more than the small things each deploy
// step does. So the remote work of most of the recipe's tasks is shell
// steps (tasks.Step, one script of scripts/ each), and each parent stage
// lists its children once, through Context.InvokeSequence: consecutive
// children that carry the recipe's Combiner (stepCombiner) and have no
// hook between them run as ONE command per host, and the executor marks
// them as run. A task the Deployfile redefined has no Combiner, so it
// runs on its own and splits the command there; a hook between two steps
// does the same. Every step stays a task (hooks attach to it, -T lists
// it) and keeps its own name in errors; invoked alone, it runs its own
// work only.
//
// The stages and the steps that share a command when nothing splits them:
//
//	deploy:check               deploy:check:directories, deploy:check:linked_files, <scm>:check
//	deploy:updating            <scm>:update, <scm>:create_release, deploy:set_current_revision, deploy:symlink:shared
//	deploy:finishing           deploy:cleanup, deploy:log_revision, deploy:unlock
//	deploy:finishing_rollback  deploy:cleanup_rollback, deploy:log_revision, deploy:unlock
//
// Fleet barriers are never crossed: check before lock, lock (whose probe
// picks the release id) before updating, every host updated before any
// switches, every host switched and healthy before finishing.

// hostWork is one task's work on one host: a shell step, and what to make
// of how it went.
type hostWork struct {
	step tasks.Step
	// before runs just before the command that holds the step (to note
	// that it may have changed the host, whatever happens next).
	before func()
	// done reads the step's output once it succeeded.
	done func(out string) error
	// failed is told the step's failure and returns the error to report
	// for the host (nil when it recorded the failure itself, as checks
	// do); nil failed reports the error as it is.
	failed func(err error) error
	// skipped: an earlier step of the same command failed, so this one
	// never ran (not called when the command's end is unknown).
	skipped func()
	// next is more work of the same task, in the same command.
	next *hostWork
}

// hostPlan gives one host's work for a task, or nil when the host has
// nothing to do.
type hostPlan func(hc *tasks.HostContext, hs *hostState) (*hostWork, error)

// planFunc prepares a task's work once per run, on the control machine.
// A nil hostPlan means the task has nothing to do on any host.
type planFunc func(c *tasks.Context, st *runState) (hostPlan, error)

// stepPlan returns the plan of step task name, or nil for a task whose
// work is not shell steps alone (the copy strategy's), which never shares
// a command.
func (r *Recipe) stepPlan(c *tasks.Context, st *runState, name string) planFunc {
	switch name {
	case "deploy:check:directories":
		return r.planCheckDirectories
	case "deploy:check:linked_files":
		return r.planCheckLinkedFiles
	case "deploy:set_current_revision":
		return r.planSetCurrentRevision
	case "deploy:symlink:shared":
		return r.planSymlinkShared
	case "deploy:cleanup":
		return r.planCleanup
	case "deploy:cleanup_rollback":
		return r.planCleanupRollback
	case "deploy:log_revision":
		return r.planLogRevision
	case "deploy:unlock":
		return r.planUnlock
	}
	if scmName, step, ok := strings.Cut(name, ":"); ok && slices.Contains(scm.Names(), scmName) {
		s, err := r.strategyFor(c, st)
		if err != nil || s.Name() != scmName {
			return nil
		}
		sc, ok := s.(scm.Scripted)
		if !ok {
			return nil
		}
		switch step {
		case "check":
			return r.planSCMCheck(sc)
		case "update":
			return r.planSCMUpdate(sc)
		case "create_release":
			return r.planCreateRelease(sc)
		}
	}
	return nil
}

// stepCombiner is the Combiner of the recipe's step tasks: it runs the
// shell steps of a group of them as one command per host.
type stepCombiner struct{ r *Recipe }

// RunCombined does the work of group's tasks in order: the runs of those
// whose work is shell steps in the flow in progress as one command per
// host each, and any other (no flow in progress, or the step of a
// strategy other than the run's) by its own body, between them. Such a
// body that invokes an earlier task of the group gets the executor's
// "invokes itself" error, never a wait on a task that cannot end first.
func (sc *stepCombiner) RunCombined(c *tasks.Context, group []*tasks.Task) error {
	r := sc.r
	st := r.current()
	var names []string
	var plans []planFunc
	flush := func() error {
		if len(names) == 0 {
			return nil
		}
		err := r.runPlans(c, st, names, plans)
		names, plans = nil, nil
		return err
	}
	for _, t := range group {
		var plan planFunc
		if st != nil {
			plan = r.stepPlan(c, st, t.Name)
		}
		if plan != nil {
			names, plans = append(names, t.Name), append(plans, plan)
			continue
		}
		if err := flush(); err != nil {
			return err
		}
		if err := t.Run(tasks.NewContext(c.Ctx(), c.Executor, t)); err != nil {
			if _, ok := err.(*tasks.TaskError); ok {
				return err
			}
			return &tasks.TaskError{Task: t.Name, Err: err}
		}
	}
	return flush()
}

// runPlans does the work of the tasks names (plans[i] is names[i]'s) on
// every deploy host as one command per host. A plan that cannot be made
// fails its task after the work of the tasks before it is done, as if
// each had run on its own; a failure on a host is the failing step's
// task's, named as a *tasks.TaskError when it is not c's own.
func (r *Recipe) runPlans(c *tasks.Context, st *runState, names []string, plans []planFunc) error {
	var hostPlans []hostPlan
	var owners []string
	var planErr error
	for i, p := range plans {
		hp, err := p(c, st)
		if err != nil {
			planErr = err
			if names[i] != c.Task.Name {
				planErr = &tasks.TaskError{Task: names[i], Err: err}
			}
			break
		}
		if hp != nil {
			hostPlans = append(hostPlans, hp)
			owners = append(owners, names[i])
		}
	}
	if err := r.runHostPlans(c, st, owners, hostPlans); err != nil {
		return err
	}
	return planErr
}

// runHostPlans runs the host plans of the tasks owners as one command per
// host.
func (r *Recipe) runHostPlans(c *tasks.Context, st *runState, owners []string, plans []hostPlan) error {
	if len(plans) == 0 {
		return nil
	}
	// The command's events name the first task that has work in it.
	on := c
	if owners[0] != c.Task.Name {
		if t, err := c.Executor.Registry.Lookup(owners[0]); err == nil {
			on = tasks.NewContext(c.Ctx(), c.Executor, t)
		}
	}
	var mu sync.Mutex
	failedAt := len(owners)
	err := st.on(on, func(hc *tasks.HostContext, hs *hostState) error {
		var works []*hostWork
		var steps []tasks.Step
		var who []int
		for i, hp := range plans {
			w, err := hp(hc, hs)
			if err != nil {
				return err
			}
			for ; w != nil; w = w.next {
				works, steps, who = append(works, w), append(steps, w.step), append(who, i)
			}
		}
		if len(works) == 0 {
			return nil
		}
		for _, w := range works {
			if w.before != nil {
				w.before()
			}
		}
		outs, err := hc.RunStepsIn(st.shell(hc.Host), steps, tasks.CommandOptions{})
		var se *tasks.StepError
		bad := len(works)
		if errors.As(err, &se) {
			bad = se.Index
		} else if err != nil {
			return err
		}
		var errs []error
		for i, w := range works {
			switch {
			case i < bad && i < len(outs):
				if w.done != nil {
					if err := w.done(outs[i]); err != nil {
						errs = append(errs, err)
					}
				}
			case i == bad:
				e := error(se)
				if w.failed != nil {
					e = w.failed(se)
				}
				if e != nil {
					errs = append(errs, e)
					mu.Lock()
					failedAt = min(failedAt, who[i])
					mu.Unlock()
				}
			case se != nil && se.Err.Err != nil:
				// The command did not finish (a lost connection): the
				// markers that reached us may lag behind what ran, so a
				// later step may have run too, and keeps what its before
				// noted (a release that may exist is cleaned up).
			default:
				if w.skipped != nil {
					w.skipped()
				}
			}
		}
		return errors.Join(errs...)
	})
	if err == nil || failedAt >= len(owners) || owners[failedAt] == c.Task.Name {
		return err
	}
	// The failing step belongs to a later task: name it, as if that task
	// had run its own command.
	var he *runner.HostErrors
	if errors.As(err, &he) {
		return &tasks.TaskError{Task: owners[failedAt], Err: err}
	}
	return err
}
