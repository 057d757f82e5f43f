package capdeploy

import (
	"errors"
	"fmt"
	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/runner"
	"github.com/davit-deploy/davit/recipes/scm"
	"github.com/davit-deploy/davit/tasks"
	"slices"
	"strings"
)

// lockStep takes the lock atomically (mkdir) and, in the same round
// trip, probes the host (scripts/lock.sh, then scripts/probe.sh), so the
// run plans from the state it locked.
func lockStep(l deploy.Layout, info []string, cacheFile string) tasks.Step {
	return tasks.Step{Name: "take the deploy lock", Script: lockScript + probeScript, Args: append([]string{l.DeployTo, cacheFile}, info...)}
}

// probeStep reads the layout's state (scripts/probe.sh); full adds what
// only the releases table needs.
func probeStep(name string, l deploy.Layout, full bool, cacheFile string) tasks.Step {
	mode := ""
	if full {
		mode = "full"
	}
	return tasks.Step{Name: name, Script: probeScript, Args: []string{l.DeployTo, mode, cacheFile}}
}

// cacheFile is the file the deploy's SCM strategy keeps its cache by, for
// the probe to test ("" outside a deploy, or for a strategy without one).
func (r *Recipe) cacheFile(c *tasks.Context, st *runState) string {
	if st.op != opDeploy {
		return ""
	}
	s, err := r.strategyFor(c, st)
	if err != nil {
		return ""
	}
	if sc, ok := s.(scm.Scripted); ok {
		return sc.CacheFile(st.layout)
	}
	return ""
}

// after finds the line marker in a command's output and returns what
// follows it. Output before it (a login shell's chatter) is ignored.
func after(out, marker string) (rest string, ok bool) {
	for {
		line, more, found := strings.Cut(out, "\n")
		if line == marker {
			return more, true
		}
		if !found {
			return "", false
		}
		out = more
	}
}

// errLockHeld is a lock someone else holds.
type errLockHeld struct{ info *lockInfo }

func (e *errLockHeld) Error() string {
	return e.info.String() + "; if that run is gone, `deploy:unlock` removes the lock"
}

// lockTask is deploy:lock: the deploy lock on every deploy host. If any
// host refuses, the locks taken on the others are released again, and the
// error names every host that refused and who holds its lock.
//
// The first host in a fixed order (by host key) is locked alone, before
// the others in parallel: of two deploys started at the same moment,
// exactly one gets it and goes on, and the other is refused there, having
// locked nothing. (Locking all at once, each could take some hosts, find
// the other's lock on the rest, and both give up.) That costs one round
// trip before the others', and no command more.
func (r *Recipe) lockTask(c *tasks.Context) error {
	st, done, err := r.state(c, opLock)
	if err != nil {
		return err
	}
	defer done()
	return r.lock(c, st)
}

func (r *Recipe) lock(c *tasks.Context, st *runState) error {
	info := kvLines("user", st.user, "control", st.control, "pid", fmt.Sprint(pid()),
		"since", r.now().UTC().Format(timeFormat), "operation", st.op, "token", st.token)
	step := lockStep(st.layout, info, r.cacheFile(c, st))
	take := func(hc *tasks.HostContext) error {
		hs := st.host(hc.Host)
		if hs.locked {
			return nil
		}
		out, err := runStepIn(hc, st.shell(hc.Host), step)
		if err != nil {
			return stepError("take the deploy lock", err)
		}
		if rest, held := after(out, "@@ held"); held {
			li := &lockInfo{values: map[string]string{}}
			for _, line := range strings.Split(rest, "\n") {
				if k, v, ok := strings.Cut(line, "="); ok {
					li.values[k] = v
				}
			}
			return &errLockHeld{li}
		}
		hs.locked = true
		hs.probe = parseProbe(out, st.layout)
		return nil
	}
	hosts := c.Executor.Filter.Apply(st.hosts)
	if len(hosts) == 0 {
		return nil
	}
	first := slices.MinFunc(hosts, func(a, b *deploy.Host) int { return strings.Compare(a.Key(), b.Key()) })
	if err := c.On([]*deploy.Host{first}, nil, take); err != nil {
		// Refused (or unreachable) there: this run holds no lock.
		return err
	}
	rest := slices.DeleteFunc(slices.Clone(hosts), func(h *deploy.Host) bool { return h.Key() == first.Key() })
	err := c.On(rest, nil, take)
	if err == nil {
		return nil
	}
	var he *runner.HostErrors
	if errors.As(err, &he) {
		// Release what this run took; the error is about the others.
		r.unlockOwn(c, st)
	}
	return err
}

// unlockOwn releases this run's lock on every host it holds it on, with
// c's context (the caller gives an uncanceled one after Ctrl-C).
func (r *Recipe) unlockOwn(c *tasks.Context, st *runState) error {
	var locked []*deploy.Host
	st.mu.Lock()
	for _, h := range st.hosts {
		if st.hs[h.Key()].locked {
			locked = append(locked, h)
		}
	}
	st.mu.Unlock()
	if len(locked) == 0 {
		return nil
	}
	return c.On(locked, nil, func(hc *tasks.HostContext) error {
		w := unlockWork(st, hc, st.host(hc.Host))
		out, err := runStep(hc, w.step)
		if err != nil {
			return w.failed(err)
		}
		return w.done(out)
	})
}

// planUnlock is deploy:unlock inside a flow: the run's own lock, on the
// hosts it holds it on.
func (r *Recipe) planUnlock(c *tasks.Context, st *runState) (hostPlan, error) {
	return func(hc *tasks.HostContext, hs *hostState) (*hostWork, error) {
		if !hs.locked {
			return nil, nil
		}
		return unlockWork(st, hc, hs), nil
	}, nil
}

// unlockWork releases the run's lock on one host and notes the outcome.
func unlockWork(st *runState, hc *tasks.HostContext, hs *hostState) *hostWork {
	return &hostWork{
		// Only if this run holds it (its token): a run never removes a
		// lock another deploy took after a deploy:unlock.
		step: tasks.Step{Name: "release the deploy lock", Script: unlockScript, Args: []string{st.layout.DeployTo, "token=" + st.token}},
		done: func(out string) error {
			hs.locked = false
			if _, foreign := after(out, "@@ foreign"); foreign {
				hc.Warn("the deploy lock was no longer this run's; left it in place")
			}
			return nil
		},
		failed: func(err error) error {
			hs.lockNote = "lock not released (" + reason(err) + "); `deploy:unlock` removes it"
			return err
		},
	}
}

// unlockTask is deploy:unlock. Inside a deploy or rollback it releases
// the run's own lock; run by hand it removes whatever lock is there (a
// deploy that died, a kill -9) and says whose it was.
func (r *Recipe) unlockTask(c *tasks.Context) error {
	if st := r.current(); st != nil {
		return r.runPlans(c, st, []string{c.Task.Name}, []planFunc{r.planUnlock})
	}
	st, done, err := r.state(c, opUnlock)
	if err != nil {
		return err
	}
	defer done()
	step := tasks.Step{Name: "remove the deploy lock", Script: removeLockScript, Args: []string{st.layout.Lock()}}
	return st.on(c, func(hc *tasks.HostContext, _ *hostState) error {
		out, err := runStep(hc, step)
		if err != nil {
			return stepError("remove the deploy lock", err)
		}
		switch rest, removed := after(out, "@@ removed"); {
		case c.DryRun():
			hc.Info("dry run: the deploy lock, if any, would be removed")
		case removed:
			_, li := parseProblems(secLock + "\n" + rest)
			hc.Info("removed the deploy lock (" + li.String() + ")")
		default:
			hc.Info("no deploy lock")
		}
		return nil
	})
}

// ensureProbed probes the deploy hosts the lock did not (when a Deployfile
// replaced deploy:lock), so later steps always know each host's state.
func (r *Recipe) ensureProbed(c *tasks.Context, st *runState) error {
	return st.on(c, func(hc *tasks.HostContext, hs *hostState) error {
		if hs.probe != nil {
			return nil
		}
		out, err := runStep(hc, probeStep("read the layout", st.layout, false, r.cacheFile(c, st)))
		if err != nil {
			return stepError("read the layout", err)
		}
		hs.probe = parseProbe(out, st.layout)
		return nil
	})
}
