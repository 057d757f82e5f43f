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
// step does. So every step of the recipe is one shell step per host
// (tasks.Step), and consecutive steps of the flow share ONE command per
// host when nothing can run between them: no before/after hook of the
// user's at the boundary, no task redefined in the Deployfile. The steps
// stay tasks (they are invoked, hooks attach to them, -T lists them);
// only their remote work moves into the command of the first one, and
// each still has its own name in errors.
//
// The flow's runs of consecutive steps that may share a command:
//
//	deploy:check:directories, deploy:check:linked_files, <scm>:check   (inside deploy:check)
//	<scm>:update, <scm>:create_release, deploy:set_current_revision, deploy:symlink:shared
//	deploy:cleanup, deploy:log_revision, deploy:unlock                 (deploy:finishing)
//	deploy:cleanup_rollback, deploy:log_revision, deploy:unlock        (deploy:finishing_rollback)
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

// sequence is the run of consecutive steps name belongs to in the flow
// in progress, from name on, or nil when its work must run alone. Each run
// is invoked in order by one task of the recipe's (its parent), which must
// not have been redefined either: a replaced deploy:check might not invoke
// the checks after the first.
func (r *Recipe) sequence(c *tasks.Context, st *runState, name string) []string {
	scmName, _ := c.Executor.Vars.FetchString("scm")
	type run struct {
		parent string
		steps  []string
	}
	var runs []run
	st.mu.Lock()
	checking := st.checking
	st.mu.Unlock()
	switch {
	case checking && st.op == opRollback:
		// A rollback checks the directories only: never the repository.
	case checking:
		runs = append(runs, run{"deploy:check", []string{"deploy:check:directories", "deploy:check:linked_files", scmName + ":check"}})
	}
	switch st.op {
	case opDeploy:
		runs = append(runs,
			run{"deploy:updating", []string{scmName + ":update", scmName + ":create_release", "deploy:set_current_revision", "deploy:symlink:shared"}},
			run{"deploy:finishing", []string{"deploy:cleanup", "deploy:log_revision", "deploy:unlock"}})
	case opRollback:
		runs = append(runs, run{"deploy:finishing_rollback", []string{"deploy:cleanup_rollback", "deploy:log_revision", "deploy:unlock"}})
	}
	for _, s := range runs {
		if i := slices.Index(s.steps, name); i >= 0 && r.isOwn(c.Executor.Registry, s.parent) {
			return s.steps[i:]
		}
	}
	return nil
}

// fusible returns the tasks after name whose work can share name's
// command: the following steps of its sequence, up to the first boundary
// where a hook of the user's would run, a task the Deployfile redefined,
// or work that is not a shell step.
func (r *Recipe) fusible(c *tasks.Context, st *runState, name string) []string {
	seq := r.sequence(c, st, name)
	reg := c.Executor.Registry
	var out []string
	for i := 1; i < len(seq); i++ {
		_, after := reg.Hooks(seq[i-1])
		before, _ := reg.Hooks(seq[i])
		if len(after) > 0 || len(before) > 0 || !r.isOwn(reg, seq[i]) || st.isFused(seq[i]) || r.stepPlan(c, st, seq[i]) == nil {
			break
		}
		out = append(out, seq[i])
	}
	return out
}

// isOwn reports whether the registry's task name is still the one this
// recipe defined (a Deployfile may replace any step).
func (r *Recipe) isOwn(reg *tasks.Registry, name string) bool {
	t, err := reg.Lookup(name)
	return err == nil && t == r.own[name]
}

func (st *runState) isFused(name string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.fused[name]
}

// runStep runs task name's work on every deploy host, together with the
// work of the tasks fusible with it, as one command per host. A task whose
// work already ran in an earlier task's command does nothing.
func (r *Recipe) runStep(c *tasks.Context, st *runState, name string, plan planFunc) error {
	st.mu.Lock()
	if st.fused[name] {
		st.mu.Unlock()
		return nil
	}
	st.mu.Unlock()
	names := append([]string{name}, r.fusible(c, st, name)...)
	var plans []hostPlan
	var owners []string
	for i, n := range names {
		p := plan
		if i > 0 {
			p = r.stepPlan(c, st, n)
		}
		hp, err := p(c, st)
		if err != nil {
			if i == 0 {
				return err
			}
			// The later task fails on its own, when it is invoked.
			names = names[:i]
			break
		}
		if hp != nil {
			plans = append(plans, hp)
			owners = append(owners, n)
		}
	}
	st.mu.Lock()
	for _, n := range names[1:] {
		st.fused[n] = true
	}
	st.mu.Unlock()
	if len(plans) == 0 {
		return nil
	}
	var mu sync.Mutex
	failedAt := len(owners)
	err := st.on(c, func(hc *tasks.HostContext, hs *hostState) error {
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
		outs, err := hc.Batch(steps, tasks.CommandOptions{})
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
			case se.Err.Err != nil:
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
