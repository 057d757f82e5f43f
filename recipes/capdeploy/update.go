package capdeploy

import (
	"errors"
	"fmt"
	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/recipes/scm"
	"github.com/davit-deploy/davit/tasks"
	"slices"
	"time"
)

// invokeSCM runs the strategy's step through its task when there is one,
// so hooks on git:create_release and the like run.
func (r *Recipe) invokeSCM(c *tasks.Context, step string, direct func(*tasks.Context) error) error {
	if name := r.scmTaskName(c, step); name != "" {
		return c.Invoke(name)
	}
	return direct(c)
}

// resolveRevision is deploy:resolve_revision: the one revision of the
// run, resolved once on the control machine, never per host, so every
// host gets the same code. It sets current_revision.
func (r *Recipe) resolveRevision(c *tasks.Context) error {
	st, done, err := r.state(c, opDeploy)
	if err != nil {
		return err
	}
	defer done()
	if _, ok := st.revision(); ok {
		return nil
	}
	s, err := r.strategyFor(c, st)
	if err != nil {
		return err
	}
	rev, err := s.Resolve(c)
	if err != nil {
		return fmt.Errorf("scm %s: resolve: %w", s.Name(), err)
	}
	if rev.ID == "" {
		return fmt.Errorf("scm %s: resolve gave no revision", s.Name())
	}
	st.mu.Lock()
	st.rev, st.resolved = rev, true
	st.mu.Unlock()
	c.Set("current_revision", rev.ID)
	return nil
}

// nextReleaseID is max(now, newest existing release + 1s): release ids
// have one-second resolution, so a second deploy within the same second
// (or after a clock step back) still gets a directory of its own, and ids
// stay ordered like the deploys.
func nextReleaseID(now time.Time, existing []string) string {
	t := now.UTC().Truncate(time.Second)
	for _, id := range existing {
		if pt, err := time.Parse(deploy.ReleaseIDFormat, id); err == nil && !pt.Before(t) {
			t = pt.Add(time.Second)
		}
	}
	return deploy.ReleaseID(t)
}

// newReleasePath is deploy:new_release_path: one release id for every
// host, newer than any release on any host. It sets release_path and
// release_timestamp.
func (r *Recipe) newReleasePath(c *tasks.Context) error {
	st, done, err := r.state(c, opDeploy)
	if err != nil {
		return err
	}
	defer done()
	if st.release() != "" {
		return nil
	}
	if err := r.ensureProbed(c, st); err != nil {
		return err
	}
	var existing []string
	st.mu.Lock()
	for _, h := range st.hosts {
		if p := st.hs[h.Key()].probe; p != nil {
			existing = append(existing, p.releases...)
		}
	}
	id := nextReleaseID(r.now(), existing)
	st.releaseID = id
	st.mu.Unlock()
	c.Set("release_timestamp", id)
	c.Set("release_path", st.layout.Release(id))
	return nil
}

// updating is deploy:updating: Capistrano's order: new release path,
// the SCM's update and create_release, REVISION, shared links. Every step
// after the first is shell steps on each host (with git or svn), so
// without hooks between them they run as one command per host.
func (r *Recipe) updating(c *tasks.Context) error {
	update, create := r.scmTaskName(c, "update"), r.scmTaskName(c, "create_release")
	if update == "" || create == "" {
		// A strategy without tasks of its own: no hook points either.
		if err := c.Invoke("deploy:new_release_path"); err != nil {
			return err
		}
		if err := r.scmCreateRelease(c); err != nil {
			return err
		}
		return c.InvokeSequence("deploy:set_current_revision", "deploy:symlink:shared")
	}
	return c.InvokeSequence("deploy:new_release_path", update, create, "deploy:set_current_revision", "deploy:symlink:shared")
}

// flowState returns the deploy in progress with its release and revision
// decided; steps of the updating stage make no sense outside one.
func (r *Recipe) flowState(c *tasks.Context) (*runState, scm.Revision, string, error) {
	st := r.current()
	if st == nil || st.op != opDeploy {
		return nil, scm.Revision{}, "", fmt.Errorf("%s runs inside deploy (it needs the release the deploy is making)", c.Task.Name)
	}
	if err := c.Invoke("deploy:resolve_revision"); err != nil {
		return nil, scm.Revision{}, "", err
	}
	if err := c.Invoke("deploy:new_release_path"); err != nil {
		return nil, scm.Revision{}, "", err
	}
	rev, _ := st.revision()
	return st, rev, st.release(), nil
}

// scmUpdate is <scm>:update: the strategy brings each host's cache
// (repo/) up to date with the run's revision.
func (r *Recipe) scmUpdate(c *tasks.Context) error {
	st, rev, _, err := r.flowState(c)
	if err != nil {
		return err
	}
	s, err := r.strategyFor(c, st)
	if err != nil {
		return err
	}
	if sc, ok := s.(scm.Scripted); ok {
		return r.runPlans(c, st, []string{c.Task.Name}, []planFunc{r.planSCMUpdate(sc)})
	}
	return st.on(c, func(hc *tasks.HostContext, _ *hostState) error {
		// Strategies' errors name the host and the step themselves.
		return s.Update(hc, st.layout, rev)
	})
}

// planSCMUpdate is a scripted strategy's update as a step; the lock's
// probe said whether the host's cache exists.
func (r *Recipe) planSCMUpdate(sc scm.Scripted) planFunc {
	return func(c *tasks.Context, st *runState) (hostPlan, error) {
		_, rev, _, err := r.flowState(c)
		if err != nil {
			return nil, err
		}
		return func(hc *tasks.HostContext, hs *hostState) (*hostWork, error) {
			step, err := sc.UpdateStep(hc.Context, st.layout, rev, hs.probe != nil && hs.probe.cached)
			if err != nil {
				return nil, fmt.Errorf("%s update on %s: %w", sc.Name(), hc.Host, err)
			}
			if step == nil {
				return nil, nil
			}
			return &hostWork{step: *step}, nil
		}, nil
	}
}

// scmCreateRelease is <scm>:create_release: after <scm>:update, makes the
// release directory on every host and has the strategy fill it.
func (r *Recipe) scmCreateRelease(c *tasks.Context) error {
	if err := r.invokeSCM(c, "update", r.scmUpdate); err != nil {
		return err
	}
	st, rev, id, err := r.flowState(c)
	if err != nil {
		return err
	}
	s, err := r.strategyFor(c, st)
	if err != nil {
		return err
	}
	if sc, ok := s.(scm.Scripted); ok {
		return r.runPlans(c, st, []string{c.Task.Name}, []planFunc{r.planCreateRelease(sc)})
	}
	mk := r.createWork(st, rev, id)
	dir := st.layout.Release(id)
	return st.on(c, func(hc *tasks.HostContext, hs *hostState) error {
		w := mk(hs)
		w.before()
		if _, err := runStep(hc, w.step); err != nil {
			return w.failed(err)
		}
		return s.Release(hc, st.layout, rev, dir)
	})
}

// createWork makes the release directory on one host. hs.created is set
// before the command runs, so a release whose creation has an unknown
// outcome is cleaned up too, and cleared when the directory was already
// there (davit never removes a release it did not make) or the command
// never got to it.
func (r *Recipe) createWork(st *runState, rev scm.Revision, id string) func(hs *hostState) *hostWork {
	mark := kvLines("state", statePending, "release", id, "revision", rev.ID, "branch", rev.Branch,
		"user", st.user, "control", st.control, "created", r.now().UTC().Format(timeFormat))
	// scripts/create_release.sh: the directory, refusing one that exists,
	// its pending mark, and the release in the lock's info.
	step := tasks.Step{Name: "create release directory " + id, Script: createReleaseScript, Args: append([]string{st.layout.DeployTo, id}, mark...)}
	return func(hs *hostState) *hostWork {
		return &hostWork{
			step:   step,
			before: func() { hs.created = true },
			failed: func(err error) error {
				var ce *tasks.CommandError
				if errors.As(err, &ce) && ce.ExitStatus == exitReleaseExists {
					hs.created = false
				}
				return err
			},
			skipped: func() { hs.created = false },
		}
	}
}

// planCreateRelease is <scm>:create_release with a scripted strategy:
// the release directory and the strategy's export, two steps of one
// command.
func (r *Recipe) planCreateRelease(sc scm.Scripted) planFunc {
	return func(c *tasks.Context, st *runState) (hostPlan, error) {
		_, rev, id, err := r.flowState(c)
		if err != nil {
			return nil, err
		}
		mk := r.createWork(st, rev, id)
		dir := st.layout.Release(id)
		return func(hc *tasks.HostContext, hs *hostState) (*hostWork, error) {
			step, err := sc.ReleaseStep(hc.Context, st.layout, rev, dir)
			if err != nil {
				return nil, fmt.Errorf("%s release on %s: %w", sc.Name(), hc.Host, err)
			}
			w := mk(hs)
			w.next = &hostWork{step: step}
			return w, nil
		}, nil
	}
}

// setCurrentRevision is deploy:set_current_revision: REVISION (the
// revision id) and REVISION_TIME (when the revision was made, in Unix
// seconds: the commit's time for git, the last-changed date for svn, the
// release's time when the strategy cannot tell) in the release, as
// Capistrano writes them.
func (r *Recipe) setCurrentRevision(c *tasks.Context) error {
	st, _, _, err := r.flowState(c)
	if err != nil {
		return err
	}
	return r.runPlans(c, st, []string{c.Task.Name}, []planFunc{r.planSetCurrentRevision})
}

func (r *Recipe) planSetCurrentRevision(c *tasks.Context, st *runState) (hostPlan, error) {
	_, rev, id, err := r.flowState(c)
	if err != nil {
		return nil, err
	}
	// scripts/revision.sh: REVISION_TIME is a time known here, or what a
	// command prints on the host (git log in the mirror).
	when, timeCmd := "", []string(nil)
	if s, err := r.strategyFor(c, st); err == nil {
		if rt, ok := s.(scm.RevisionTimer); ok {
			t, cmd, err := rt.RevisionTime(c, st.layout, rev)
			if err != nil {
				return nil, fmt.Errorf("scm %s: revision time: %w", s.Name(), err)
			}
			switch {
			case !t.IsZero():
				when = fmt.Sprint(t.Unix())
			case len(cmd) > 0:
				timeCmd = cmd
			}
		}
	}
	if when == "" && timeCmd == nil {
		t, _ := time.Parse(deploy.ReleaseIDFormat, id)
		when = fmt.Sprint(t.Unix())
	}
	step := tasks.Step{Name: "write REVISION", Script: revisionScript, Args: append([]string{st.layout.Release(id), rev.ID, when}, timeCmd...)}
	return func(*tasks.HostContext, *hostState) (*hostWork, error) {
		return &hostWork{step: step}, nil
	}, nil
}

// symlinkShared is deploy:symlink:shared: every linked dir and file of the
// release becomes a symlink into shared/, in one command per host. What
// the repository has at those paths is replaced, as Capistrano does.
func (r *Recipe) symlinkShared(c *tasks.Context) error {
	st, _, _, err := r.flowState(c)
	if err != nil {
		return err
	}
	return r.runPlans(c, st, []string{c.Task.Name}, []planFunc{r.planSymlinkShared})
}

func (r *Recipe) planSymlinkShared(c *tasks.Context, st *runState) (hostPlan, error) {
	_, _, id, err := r.flowState(c)
	if err != nil {
		return nil, err
	}
	dirs, files, err := linkedPaths(c.Executor.Vars)
	if err != nil {
		return nil, err
	}
	all := append(slices.Clone(dirs), files...)
	if len(all) == 0 {
		return nil, nil
	}
	// scripts/link_shared.sh: mkdir and rm run only when needed (most
	// repositories have none of the linked paths).
	args := append([]string{st.layout.Release(id), st.layout.Shared()}, all...)
	step := tasks.Step{Name: "link shared files", Script: linkSharedScript, Args: args}
	return func(*tasks.HostContext, *hostState) (*hostWork, error) {
		return &hostWork{step: step}, nil
	}, nil
}
