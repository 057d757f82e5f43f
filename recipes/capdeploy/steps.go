package capdeploy

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/deploy/runner"
	"github.com/davit-deploy/davit/recipes/scm"
	"github.com/davit-deploy/davit/tasks"
)

// exitReleaseExists is the status of the create-release command when the
// directory is already there, so davit never removes a release it did
// not make.
const exitReleaseExists = 17

// sh runs one shell line (built by this package from constant syntax and
// q()-quoted values) and returns its stdout. label is what the pretty
// output shows instead of the script.
func sh(hc *tasks.HostContext, label, script string) (string, error) {
	return hc.Capture([]string{script}, tasks.CommandOptions{Label: label})
}

// linkedPaths returns linked_dirs and linked_files, refusing paths that
// would escape shared/ or the release directory.
func linkedPaths(c *tasks.Context) (dirs, files []string, err error) {
	v := c.Executor.Vars
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

// dirsScript makes every directory of the layout in one round trip and
// prints "problem: ..." lines for what it could not make or cannot write;
// with lock, it also prints the lock's info if one is held.
func dirsScript(l deploy.Layout, shared []string, lock bool) string {
	base := []string{l.DeployTo, l.Releases(), l.Shared(), l.State(), l.Marks()}
	var mk []string
	for _, d := range append(slices.Clone(base), shared...) {
		mk = append(mk, q(d))
	}
	var w []string
	for _, d := range base {
		w = append(w, q(d))
	}
	// mkdir runs only when a directory is missing: on a set-up host the
	// check forks nothing but its own shell.
	s := "for d in " + strings.Join(mk, " ") + "; do [ -d \"$d\" ] || { out=$(mkdir -p -- " + strings.Join(mk, " ") + " 2>&1) || printf '%s\\n' \"$out\" | sed 's/^/problem: /'; break; }; done; " +
		"for d in " + strings.Join(w, " ") + "; do if [ -d \"$d\" ] && [ ! -w \"$d\" ]; then printf 'problem: %s is not writable\\n' \"$d\"; fi; done; " +
		"if [ -e " + q(l.Current()) + " ] && [ ! -L " + q(l.Current()) + " ]; then printf 'problem: %s is not a symlink (move it away so davit can manage it)\\n' " + q(l.Current()) + "; fi; "
	if lock {
		s += "if [ -d " + q(l.Lock()) + " ]; then echo " + q(secLock) + "; cat " + q(l.Lock()+"/info") + " 2>/dev/null || echo held=1; fi; "
	}
	return s + "exit 0"
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
		steps = append(steps, "deploy:check:linked_files", r.scmTaskName(c, "check"))
	}
	for _, name := range steps {
		if name == "" { // a strategy without its own tasks
			if err := r.scmCheck(c); err != nil {
				return err
			}
			continue
		}
		if err := c.Invoke(name); err != nil {
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
	err = r.runStep(c, st, c.Task.Name, plan)
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
	dirs, files, err := linkedPaths(c)
	if err != nil {
		return nil, err
	}
	step := tasks.Step{Name: "check the layout", Script: dirsScript(st.layout, sharedDirs(st.layout, dirs, files), true)}
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
	_, files, err := linkedPaths(c)
	if err != nil || len(files) == 0 {
		return nil, err
	}
	var paths []string
	for _, f := range files {
		paths = append(paths, q(path.Join(st.layout.Shared(), f)))
	}
	step := tasks.Step{Name: "check the linked files", Script: "for f in " + strings.Join(paths, " ") + "; do [ -e \"$f\" ] || printf 'problem: linked file %s does not exist\\n' \"$f\"; done; exit 0"}
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

// invokeSCM runs the strategy's step through its task when there is one,
// so hooks on git:create_release and the like run.
func (r *Recipe) invokeSCM(c *tasks.Context, step string, direct func(*tasks.Context) error) error {
	if name := r.scmTaskName(c, step); name != "" {
		return c.Invoke(name)
	}
	return direct(c)
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
	dirs, files, err := linkedPaths(c)
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
		out, err := sh(hc, "make the layout", dirsScript(st.layout, sharedDirs(st.layout, dirs, files), false))
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

// lockScript takes the lock atomically (mkdir) and, in the same round
// trip, probes the host, so the run plans from the state it locked.
func lockScript(l deploy.Layout, info, cacheFile string) string {
	return "cd " + q(l.DeployTo) + " && { [ -d .davit ] || mkdir -p .davit; } && " +
		"if mkdir .davit/lock 2>/dev/null; then " + info + " > .davit/lock/info && echo '@@ locked'; " +
		"else echo '@@ held'; cat .davit/lock/info 2>/dev/null; exit 0; fi; " + probeScript(l, false, cacheFile)
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
func (r *Recipe) lockTask(c *tasks.Context) error {
	st, done, err := r.state(c, opLock)
	if err != nil {
		return err
	}
	defer done()
	return r.lock(c, st)
}

func (r *Recipe) lock(c *tasks.Context, st *runState) error {
	info := keyValues("user", st.user, "control", st.control, "pid", fmt.Sprint(pid()),
		"since", r.now().UTC().Format(timeFormat), "operation", st.op, "token", st.token)
	script := lockScript(st.layout, info, r.cacheFile(c, st))
	err := st.on(c, func(hc *tasks.HostContext, hs *hostState) error {
		if hs.locked {
			return nil
		}
		out, err := sh(hc, "take the deploy lock", script)
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
	})
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

// unlockScript releases the lock only if this run holds it (its token),
// so a run never removes a lock another deploy took after a
// deploy:unlock.
func unlockScript(l deploy.Layout, token string) string {
	return "cd " + q(l.DeployTo) + " && ours=; if [ -f .davit/lock/info ]; then while IFS= read -r l || [ -n \"$l\" ]; do " +
		"[ \"$l\" = " + q("token="+token) + " ] && ours=1; done < .davit/lock/info; fi; " +
		"if [ -n \"$ours\" ]; then rm -rf .davit/lock && echo '@@ released'; " +
		"elif [ -d .davit/lock ]; then echo '@@ foreign'; else echo '@@ none'; fi"
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
		outs, err := hc.Batch([]tasks.Step{w.step}, tasks.CommandOptions{})
		if err != nil {
			return w.failed(err)
		}
		return w.done(outs[0])
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
		step: tasks.Step{Name: "release the deploy lock", Script: unlockScript(st.layout, st.token)},
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
		return r.runStep(c, st, c.Task.Name, r.planUnlock)
	}
	st, done, err := r.state(c, opUnlock)
	if err != nil {
		return err
	}
	defer done()
	lk := st.layout.Lock()
	script := "if [ -d " + q(lk) + " ]; then echo '@@ removed'; cat " + q(lk+"/info") + " 2>/dev/null; rm -rf " + q(lk) + "; else echo '@@ none'; fi"
	return st.on(c, func(hc *tasks.HostContext, _ *hostState) error {
		out, err := sh(hc, "remove the deploy lock", script)
		if err != nil {
			return stepError("remove the deploy lock", err)
		}
		if rest, removed := after(out, "@@ removed"); removed {
			_, li := parseProblems(secLock + "\n" + rest)
			hc.Info("removed the deploy lock (" + li.String() + ")")
		} else {
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
		out, err := sh(hc, "read the layout", probeScript(st.layout, false, r.cacheFile(c, st)))
		if err != nil {
			return stepError("read the layout", err)
		}
		hs.probe = parseProbe(out, st.layout)
		return nil
	})
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
// the SCM's create_release (after its update), REVISION, shared links.
func (r *Recipe) updating(c *tasks.Context) error {
	if err := c.Invoke("deploy:new_release_path"); err != nil {
		return err
	}
	if err := r.invokeSCM(c, "create_release", r.scmCreateRelease); err != nil {
		return err
	}
	if err := c.Invoke("deploy:set_current_revision"); err != nil {
		return err
	}
	return c.Invoke("deploy:symlink:shared")
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
		return r.runStep(c, st, c.Task.Name, r.planSCMUpdate(sc))
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

// createReleaseScript makes the release directory, refusing one that
// exists, marks it pending and records it in the lock, in one round trip.
func createReleaseScript(l deploy.Layout, id, mark string) string {
	rel := "releases/" + id
	return "cd " + q(l.DeployTo) + " && { [ -d releases ] && [ -d .davit/releases ] || mkdir -p releases .davit/releases; } && " +
		"if [ -e " + q(rel) + " ]; then echo " + q("release "+id+" already exists") + " >&2; exit " + fmt.Sprint(exitReleaseExists) + "; fi && " +
		"mkdir " + q(rel) + " && " + mark + " > " + q(".davit/releases/"+id) + " && " +
		"{ " + keyValues("release", id) + " >> .davit/lock/info 2>/dev/null || true; }"
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
		return r.runStep(c, st, c.Task.Name, r.planCreateRelease(sc))
	}
	mk := r.createWork(st, rev, id)
	dir := st.layout.Release(id)
	return st.on(c, func(hc *tasks.HostContext, hs *hostState) error {
		w := mk(hs)
		w.before()
		if _, err := hc.Batch([]tasks.Step{w.step}, tasks.CommandOptions{}); err != nil {
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
	mark := keyValues("state", statePending, "release", id, "revision", rev.ID, "branch", rev.Branch,
		"user", st.user, "control", st.control, "created", r.now().UTC().Format(timeFormat))
	step := tasks.Step{Name: "create release directory " + id, Script: createReleaseScript(st.layout, id, mark)}
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
	return r.runStep(c, st, c.Task.Name, r.planSetCurrentRevision)
}

func (r *Recipe) planSetCurrentRevision(c *tasks.Context, st *runState) (hostPlan, error) {
	_, rev, id, err := r.flowState(c)
	if err != nil {
		return nil, err
	}
	when := ""
	if s, err := r.strategyFor(c, st); err == nil {
		if rt, ok := s.(scm.RevisionTimer); ok {
			t, script, err := rt.RevisionTime(c, st.layout, rev)
			if err != nil {
				return nil, fmt.Errorf("scm %s: revision time: %w", s.Name(), err)
			}
			switch {
			case !t.IsZero():
				when = "printf '%s\\n' " + q(fmt.Sprint(t.Unix()))
			case script != "":
				when = "t=$(" + script + ") && printf '%s\\n' \"$t\""
			}
		}
	}
	if when == "" {
		t, _ := time.Parse(deploy.ReleaseIDFormat, id)
		when = "printf '%s\\n' " + q(fmt.Sprint(t.Unix()))
	}
	step := tasks.Step{Name: "write REVISION", Script: "cd " + q(st.layout.Release(id)) + " && printf '%s\\n' " + q(rev.ID) + " > REVISION && " + when + " > REVISION_TIME"}
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
	return r.runStep(c, st, c.Task.Name, r.planSymlinkShared)
}

func (r *Recipe) planSymlinkShared(c *tasks.Context, st *runState) (hostPlan, error) {
	_, _, id, err := r.flowState(c)
	if err != nil {
		return nil, err
	}
	dirs, files, err := linkedPaths(c)
	if err != nil {
		return nil, err
	}
	all := append(slices.Clone(dirs), files...)
	if len(all) == 0 {
		return nil, nil
	}
	rel := st.layout.Release(id)
	var parents, targets, links []string
	for _, p := range all {
		target := path.Join(rel, p)
		if d := path.Dir(target); d != rel && !slices.Contains(parents, q(d)) {
			parents = append(parents, q(d))
		}
		targets = append(targets, q(target))
		links = append(links, "ln -s "+q(path.Join(st.layout.Shared(), p))+" "+q(target))
	}
	// mkdir and rm run only when needed (most repositories have none of
	// the linked paths): each exec saved is saved on every host.
	script := ""
	if len(parents) > 0 {
		script = "for d in " + strings.Join(parents, " ") + "; do [ -d \"$d\" ] || { mkdir -p -- " + strings.Join(parents, " ") + " || exit; break; }; done; "
	}
	script += "for t in " + strings.Join(targets, " ") + "; do if [ -e \"$t\" ] || [ -L \"$t\" ]; then rm -rf -- " + strings.Join(targets, " ") + " || exit; break; fi; done; " +
		strings.Join(links, " && ")
	step := tasks.Step{Name: "link shared files", Script: script}
	return func(*tasks.HostContext, *hostState) (*hostWork, error) {
		return &hostWork{step: step}, nil
	}, nil
}

// switchScript points current at target atomically: a new symlink under
// .davit/, renamed over current (rename(2) replaces it in one step, so
// current never dangles or goes missing). The link is absolute, as
// Capistrano makes it; davit reads both forms. extra runs after the switch
// in the same round trip.
func switchScript(l deploy.Layout, target, extra string) string {
	tmp := path.Join(l.State(), "current.tmp")
	s := "{ [ -d " + q(l.State()) + " ] || mkdir -p " + q(l.State()) + "; } && ln -sfn " + q(target) + " " + q(tmp) + " && mv -T " + q(tmp) + " " + q(l.Current())
	if extra != "" {
		s += " && " + extra
	}
	return s
}

// symlinkRelease is deploy:symlink:release: current moves to the release
// on every host of this publish (all of them, or one batch). A deploy
// marks the release finished in the same command.
func (r *Recipe) symlinkRelease(c *tasks.Context) error {
	st := r.current()
	if st == nil || st.release() == "" {
		return fmt.Errorf("%s runs inside deploy or rollback (it needs the release to switch to)", c.Task.Name)
	}
	id := st.release()
	extra := ""
	if st.op == opDeploy {
		extra = keyValues("state", stateFinished, "finished", r.now().UTC().Format(timeFormat)) + " >> " + q(path.Join(st.layout.Marks(), id))
	}
	script := switchScript(st.layout, st.layout.Release(id), extra)
	return st.on(c, func(hc *tasks.HostContext, hs *hostState) error {
		if hs.probe != nil && hs.probe.currentID == id {
			return nil // a rollback's target that is already live here
		}
		hs.switched = true
		if _, err := sh(hc, "switch current to "+id, script); err != nil {
			return stepError("switch current to "+id, err)
		}
		return nil
	})
}

// publishing is deploy:publishing: Capistrano's symlink:release.
func (r *Recipe) publishing(c *tasks.Context) error {
	return c.Invoke("deploy:symlink:release")
}

// finishing is deploy:finishing: cleanup, revisions.log, unlock.
func (r *Recipe) finishing(c *tasks.Context) error {
	for _, name := range []string{"deploy:cleanup", "deploy:log_revision", "deploy:unlock"} {
		if err := c.Invoke(name); err != nil {
			return err
		}
	}
	return nil
}

// finishingRollback is deploy:finishing_rollback: mark the release rolled
// back from as bad, revisions.log, unlock.
func (r *Recipe) finishingRollback(c *tasks.Context) error {
	for _, name := range []string{"deploy:cleanup_rollback", "deploy:log_revision", "deploy:unlock"} {
		if err := c.Invoke(name); err != nil {
			return err
		}
	}
	return nil
}

// cleanupPlan returns the releases to remove on one host: beyond the
// keep newest good ones (current and the release in progress count and
// are never removed), every failed and bad release; plus mark files left
// without their release. Names that are not release ids never appear.
func cleanupPlan(s *serverState, keep int, current, inProgress string) (releases, orphanMarks []string) {
	ids := slices.Clone(s.releases)
	if inProgress != "" && !slices.Contains(ids, inProgress) {
		ids = append(ids, inProgress)
	}
	slices.Sort(ids)
	kept := 0
	for i := len(ids) - 1; i >= 0; i-- {
		id := ids[i]
		switch {
		case id == current || id == inProgress:
			kept++
		case s.good(id, inProgress) && kept < keep:
			kept++
		default:
			releases = append(releases, id)
		}
	}
	for id := range s.marks {
		if !slices.Contains(ids, id) {
			orphanMarks = append(orphanMarks, id)
		}
	}
	slices.Sort(releases)
	slices.Sort(orphanMarks)
	return releases, orphanMarks
}

// cleanupTask is deploy:cleanup. Inside a deploy it works from the state
// the lock read (nothing else can change it meanwhile); run by hand it
// takes the lock itself, so it never removes the release a running deploy
// is making.
func (r *Recipe) cleanupTask(c *tasks.Context) (err error) {
	st := r.current()
	if st == nil {
		if _, err := keepReleases(c); err != nil {
			return err
		}
		var done func()
		if st, done, err = r.state(c, opCleanup); err != nil {
			return err
		}
		defer done()
		if err := r.lock(c, st); err != nil {
			return err
		}
		defer func() {
			if uerr := r.unlockOwn(c, st); err == nil && uerr != nil {
				err = uerr
			}
		}()
	}
	return r.runStep(c, st, c.Task.Name, r.planCleanup)
}

// keepReleases reads keep_releases, which must be at least 1.
func keepReleases(c *tasks.Context) (int, error) {
	keep, err := c.Executor.Vars.FetchInt("keep_releases")
	if err != nil {
		return 0, err
	}
	if keep < 1 {
		return 0, fmt.Errorf("keep_releases is %d; it must be at least 1", keep)
	}
	return keep, nil
}

// planCleanup removes, on each host, what cleanupPlan says: one rm -rf.
func (r *Recipe) planCleanup(c *tasks.Context, st *runState) (hostPlan, error) {
	keep, err := keepReleases(c)
	if err != nil {
		return nil, err
	}
	if err := r.ensureProbed(c, st); err != nil {
		return nil, err
	}
	// The release a deploy is making is protected even before it is live;
	// a host that switched (in a deploy or a rollback) is on the run's
	// release now, whatever the lock saw.
	inProgress := ""
	if st.op == opDeploy {
		inProgress = st.release()
	}
	return func(hc *tasks.HostContext, hs *hostState) (*hostWork, error) {
		current := hs.probe.currentID
		if hs.switched && st.release() != "" {
			current = st.release()
		}
		rels, orphans := cleanupPlan(hs.probe, keep, current, inProgress)
		if len(rels)+len(orphans) == 0 {
			return nil, nil
		}
		var paths []string
		for _, r := range rels {
			paths = append(paths, q("releases/"+r), q(".davit/releases/"+r))
		}
		for _, m := range orphans {
			paths = append(paths, q(".davit/releases/"+m))
		}
		return &hostWork{
			step: tasks.Step{Name: "remove old releases", Script: "cd " + q(st.layout.DeployTo) + " && rm -rf -- " + strings.Join(paths, " ")},
			done: func(string) error {
				if len(rels) > 0 {
					hc.Info(fmt.Sprintf("removed %d old %s: %s", len(rels), plural(len(rels), "release", "releases"), strings.Join(rels, ", ")))
				}
				return nil
			},
		}, nil
	}, nil
}

// logRevision is deploy:log_revision: one line in every host's
// revisions.log, in Capistrano's words.
func (r *Recipe) logRevision(c *tasks.Context) error {
	st := r.current()
	if st == nil || st.release() == "" {
		return fmt.Errorf("%s runs inside deploy or rollback", c.Task.Name)
	}
	return r.runStep(c, st, c.Task.Name, r.planLogRevision)
}

func (r *Recipe) planLogRevision(c *tasks.Context, st *runState) (hostPlan, error) {
	id := st.release()
	var line string
	if st.op == opRollback {
		line = fmt.Sprintf("%s rolled back to release %s", st.user, id)
	} else {
		rev, _ := st.revision()
		line = fmt.Sprintf("Branch %s (at %s) deployed as release %s by %s", rev.Branch, rev.ID, id, st.user)
	}
	step := tasks.Step{Name: "append to revisions.log", Script: keyValuesLine(line) + " >> " + q(st.layout.RevisionsLog())}
	return func(*tasks.HostContext, *hostState) (*hostWork, error) {
		return &hostWork{step: step}, nil
	}, nil
}

// keyValuesLine is printf of one line, newlines flattened.
func keyValuesLine(s string) string {
	return "printf '%s\\n' " + q(strings.NewReplacer("\n", " ", "\r", " ").Replace(s))
}

// reason is the gist of a command's failure for a summary line: what
// kept it from finishing, or its exit status and last line of stderr,
// without the command itself (the step already says what it was).
func reason(err error) string {
	var ce *tasks.CommandError
	if errors.As(err, &ce) {
		if ce.Err != nil {
			return ce.Err.Error()
		}
		s := fmt.Sprintf("exit status %d", ce.ExitStatus)
		if n := len(ce.StderrTail); n > 0 {
			s += ": " + ce.StderrTail[n-1]
		}
		return s
	}
	l, _, _ := strings.Cut(err.Error(), "\n")
	return l
}
