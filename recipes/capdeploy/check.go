package capdeploy

import (
	"errors"
	"fmt"
	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/recipes/scm"
	"github.com/davit-deploy/davit/tasks"
	"path"
	"slices"
	"strings"
)

// linkedPaths returns linked_dirs and linked_files, refusing paths that
// would escape shared/ or the release directory.
func linkedPaths(v *tasks.Vars) (dirs, files []string, err error) {
	if dirs, err = v.FetchStrings("linked_dirs"); err != nil {
		return nil, nil, err
	}
	if files, err = v.FetchStrings("linked_files"); err != nil {
		return nil, nil, err
	}
	for _, l := range []struct {
		name  string
		paths []string
	}{{"linked_dirs", dirs}, {"linked_files", files}} {
		for _, p := range l.paths {
			if err := validLinkedPath(p); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", l.name, err)
			}
		}
	}
	return dirs, files, nil
}

func validLinkedPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case path.IsAbs(p):
		return fmt.Errorf("%q is absolute; linked paths are relative to the release and shared/", p)
	case path.Clean(p) != p || p == "." || p == ".." || strings.HasPrefix(p, "../"):
		return fmt.Errorf("%q is not a clean relative path inside the release", p)
	}
	return nil
}

// sharedDirs are the directories under shared/ that linked_dirs and
// linked_files need (Capistrano's check:linked_dirs and
// check:make_linked_dirs), in a stable order without duplicates.
func sharedDirs(l deploy.Layout, dirs, files []string) []string {
	var out []string
	add := func(p string) {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	for _, d := range dirs {
		add(path.Join(l.Shared(), d))
	}
	for _, f := range files {
		if dir := path.Dir(f); dir != "." {
			add(path.Join(l.Shared(), dir))
		}
	}
	return out
}

// layoutStep makes every directory of the layout in one round trip and
// reports what it could not make or cannot write (scripts/layout.sh);
// with lock, it also prints the lock's info if one is held.
func layoutStep(name string, l deploy.Layout, shared []string, lock bool) tasks.Step {
	mode := ""
	if lock {
		mode = "lock"
	}
	return tasks.Step{Name: name, Script: layoutScript, Args: append([]string{l.DeployTo, mode}, shared...)}
}

// problems reads "problem: " lines, and the lock section if any.
func parseProblems(out string) (problems []string, lock *lockInfo) {
	inLock := false
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "problem: "):
			if p := strings.TrimSpace(strings.TrimPrefix(line, "problem: ")); p != "" {
				problems = append(problems, p)
			}
		case line == secLock:
			inLock = true
			lock = &lockInfo{values: map[string]string{}}
		case inLock:
			if k, v, ok := strings.Cut(line, "="); ok && k != "held" {
				lock.values[k] = v
			}
		}
	}
	return problems, lock
}

// checkStep runs fn on every deploy host: the check of a strategy whose
// work is not shell steps (copy), which therefore runs in commands of its
// own (checkTask runs the others). Inside deploy:check, whatever a host
// reports (and any failure to reach it) is recorded as that host's
// problem so deploy:check can list every host and every problem at once;
// run on its own, the step fails with the problems it found.
func (r *Recipe) checkStep(c *tasks.Context, step string, fn func(*tasks.HostContext, *runState) ([]string, error)) error {
	st, done, err := r.state(c, opCheck)
	if err != nil {
		return err
	}
	defer done()
	st.mu.Lock()
	checking := st.checking
	st.mu.Unlock()
	own := &runState{problems: map[string][]string{}}
	err = st.on(c, func(hc *tasks.HostContext, _ *hostState) error {
		probs, err := fn(hc, st)
		if err != nil {
			probs = append(probs, stepError(step, err).Error())
		}
		for _, p := range probs {
			if checking {
				st.problem(hc.Host, p)
			} else {
				own.problem(hc.Host, p)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if checking {
		return nil
	}
	return problemsError(st.hosts, own.problems)
}

// problemsError lists every host's problems, or is nil when there are
// none. (The task error around it names the step.)
func problemsError(hosts []*deploy.Host, problems map[string][]string) error {
	var lines []string
	n, bad := 0, 0
	for _, h := range hosts {
		ps := problems[h.Key()]
		if len(ps) == 0 {
			continue
		}
		bad++
		n += len(ps)
		lines = append(lines, h.String()+":")
		for _, p := range ps {
			lines = append(lines, "  - "+strings.ReplaceAll(p, "\n", "\n    "))
		}
	}
	if n == 0 {
		return nil
	}
	return fmt.Errorf("%d %s on %d of %d %s:\n  %s", n, plural(n, "problem", "problems"),
		bad, len(hosts), plural(len(hosts), "host", "hosts"), joinLines(lines))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// check is deploy:check: Capistrano's check (the SCM's check, directories,
// linked dirs, linked files), except that it reports every problem on
// every host in one error instead of stopping at the first.
func (r *Recipe) check(c *tasks.Context) error {
	st, done, err := r.state(c, opCheck)
	if err != nil {
		return err
	}
	defer done()
	st.mu.Lock()
	st.checking, st.problems = true, map[string][]string{}
	st.mu.Unlock()
	defer func() {
		st.mu.Lock()
		st.checking = false
		st.mu.Unlock()
	}()
	steps := []string{"deploy:check:directories"}
	if st.op != opRollback {
		// A rollback needs neither the repository nor the linked files:
		// the release it goes back to has both already.
		steps = append(steps, "deploy:check:linked_files")
		if name := r.scmTaskName(c, "check"); name != "" {
			steps = append(steps, name)
		}
	}
	if err := c.InvokeSequence(steps...); err != nil {
		return err
	}
	if st.op != opRollback && r.scmTaskName(c, "check") == "" {
		// A strategy without tasks of its own.
		if err := r.scmCheck(c); err != nil {
			return err
		}
	}
	st.mu.Lock()
	problems := st.problems
	st.mu.Unlock()
	return problemsError(st.hosts, problems)
}

// checkTask runs a check step as task c.Task. Inside deploy:check its
// problems join the run's list (and its command may carry the next
// checks' steps too); run on its own, it fails with the problems it found.
func (r *Recipe) checkTask(c *tasks.Context, plan planFunc) error {
	st, done, err := r.state(c, opCheck)
	if err != nil {
		return err
	}
	defer done()
	st.mu.Lock()
	checking, saved := st.checking, st.problems
	if !checking {
		st.problems = map[string][]string{}
	}
	st.mu.Unlock()
	err = r.runPlans(c, st, []string{c.Task.Name}, []planFunc{plan})
	if checking {
		return err
	}
	st.mu.Lock()
	own := st.problems
	st.problems = saved
	st.mu.Unlock()
	if err != nil {
		return err
	}
	return problemsError(st.hosts, own)
}

// checkWork is a check's step on one host: what its output reports, and
// its failure (a lost connection), become the host's problems.
func checkWork(st *runState, h *deploy.Host, task string, step tasks.Step, parse func(string) []string) *hostWork {
	return &hostWork{
		step: step,
		done: func(out string) error {
			for _, p := range parse(out) {
				st.problem(h, p)
			}
			return nil
		},
		failed: func(err error) error {
			st.problem(h, stepError(task, err).Error())
			return nil
		},
	}
}

// checkDirectories is deploy:check:directories: it makes the layout's
// directories and the shared directories linked paths need, and reports
// what it cannot make or write, a current that is not a symlink, and a
// deploy lock held by someone else.
func (r *Recipe) checkDirectories(c *tasks.Context) error {
	return r.checkTask(c, r.planCheckDirectories)
}

func (r *Recipe) planCheckDirectories(c *tasks.Context, st *runState) (hostPlan, error) {
	dirs, files, err := linkedPaths(c.Executor.Vars)
	if err != nil {
		return nil, err
	}
	step := layoutStep("check the layout", st.layout, sharedDirs(st.layout, dirs, files), true)
	return func(hc *tasks.HostContext, _ *hostState) (*hostWork, error) {
		return checkWork(st, hc.Host, "deploy:check:directories", step, func(out string) []string {
			probs, lock := parseProblems(out)
			if lock != nil && lock.values["token"] != st.token {
				probs = append(probs, lock.String()+"; if that run is gone, `deploy:unlock` removes the lock")
			}
			return probs
		}), nil
	}, nil
}

// checkLinkedFiles is deploy:check:linked_files: every linked file must
// exist in shared/ (upload them in a before hook of this task).
func (r *Recipe) checkLinkedFiles(c *tasks.Context) error {
	return r.checkTask(c, r.planCheckLinkedFiles)
}

func (r *Recipe) planCheckLinkedFiles(c *tasks.Context, st *runState) (hostPlan, error) {
	_, files, err := linkedPaths(c.Executor.Vars)
	if err != nil || len(files) == 0 {
		return nil, err
	}
	var paths []string
	for _, f := range files {
		paths = append(paths, path.Join(st.layout.Shared(), f))
	}
	step := tasks.Step{Name: "check the linked files", Script: linkedFilesScript, Args: paths}
	return func(hc *tasks.HostContext, _ *hostState) (*hostWork, error) {
		return checkWork(st, hc.Host, "deploy:check:linked_files", step, func(out string) []string {
			probs, _ := parseProblems(out)
			return probs
		}), nil
	}, nil
}

// scmTaskName is the Capistrano-style task of the run's strategy for step
// ("git:check"), or "" when the strategy has none.
func (r *Recipe) scmTaskName(c *tasks.Context, step string) string {
	name, err := c.Executor.Vars.FetchString("scm")
	if err != nil || name == "" {
		return ""
	}
	if _, err := c.Executor.Registry.Lookup(name + ":" + step); err != nil {
		return ""
	}
	return name + ":" + step
}

// scmCheck is <scm>:check: the strategy's own problems (missing git,
// unreachable repository) on every host.
func (r *Recipe) scmCheck(c *tasks.Context) error {
	if st := r.current(); st != nil {
		if s, err := r.strategyFor(c, st); err == nil {
			if sc, ok := s.(scm.Scripted); ok {
				return r.checkTask(c, r.planSCMCheck(sc))
			}
		}
	}
	return r.checkStep(c, c.Task.Name, func(hc *tasks.HostContext, st *runState) ([]string, error) {
		s, err := r.strategyFor(c, st)
		if err != nil {
			return nil, err
		}
		return s.Check(hc, st.layout)
	})
}

// planSCMCheck is a scripted strategy's check as a step: the problems it
// knows without running anything, then what its step finds.
func (r *Recipe) planSCMCheck(sc scm.Scripted) planFunc {
	task := sc.Name() + ":check"
	return func(c *tasks.Context, st *runState) (hostPlan, error) {
		return func(hc *tasks.HostContext, _ *hostState) (*hostWork, error) {
			known, step, parse := sc.CheckStep(hc.Context, st.layout)
			for _, p := range known {
				st.problem(hc.Host, p)
			}
			if step == nil {
				return nil, nil
			}
			return checkWork(st, hc.Host, task, *step, parse), nil
		}, nil
	}
}

// setup is deploy:setup: the directories, made in one command per host.
func (r *Recipe) setup(c *tasks.Context) error {
	dirs, files, err := linkedPaths(c.Executor.Vars)
	if err != nil {
		return err
	}
	st, done, err := r.state(c, opCheck)
	if err != nil {
		return err
	}
	defer done()
	problems := &runState{problems: map[string][]string{}}
	err = st.on(c, func(hc *tasks.HostContext, _ *hostState) error {
		out, err := runStep(hc, layoutStep("make the layout", st.layout, sharedDirs(st.layout, dirs, files), false))
		if err != nil {
			return err
		}
		ps, _ := parseProblems(out)
		for _, p := range ps {
			problems.problem(hc.Host, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return problemsError(st.hosts, problems.problems)
}
