package capdeploy

import (
	"errors"
	"fmt"
	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/tasks"
	"strings"
)

// finishingRollback is deploy:finishing_rollback: mark the release rolled
// back from as bad, revisions.log, unlock, in one command per host when no
// hook sits between them.
func (r *Recipe) finishingRollback(c *tasks.Context) error {
	return c.InvokeSequence("deploy:cleanup_rollback", "deploy:log_revision", "deploy:unlock")
}

// rollbackFlow is the rollback (and deploy:rollback) task: Capistrano's
// rollback flow, with the same all-or-nothing publish as deploy. It never
// needs the repository.
func (r *Recipe) rollbackFlow(c *tasks.Context) error {
	st, err := r.begin(c, opRollback)
	if err != nil {
		return err
	}
	defer r.end(st)
	if _, _, err := r.batches(c, st); err != nil {
		return err
	}
	if _, err := loadBalanced(c.Executor.Registry); err != nil {
		return err
	}
	if _, err := r.healthTargets(c, st); err != nil {
		return err
	}
	c.Set("rolling_back", true)
	for _, name := range []string{"deploy:starting", "deploy:started", "deploy:reverting", "deploy:reverted"} {
		if err := c.Invoke(name); err != nil {
			return r.fail(c, st, err)
		}
	}
	if err := r.publish(c, st); err != nil {
		return r.fail(c, st, err)
	}
	st.setPhase(phaseFinish)
	for _, name := range []string{"deploy:finishing_rollback", "deploy:finished"} {
		if err := c.Invoke(name); err != nil {
			return r.fail(c, st, err)
		}
	}
	if herr := st.healthError(); herr != nil {
		st.keptDespiteHealth()
		return r.fail(c, st, fmt.Errorf("the health check failed and health_check_rollback is off, so release %s stays live: %w", st.release(), herr))
	}
	if c.DryRun() {
		c.Info(fmt.Sprintf("dry run: would roll back to release %s on %d %s; nothing was run", st.release(), len(st.hosts), plural(len(st.hosts), "host", "hosts")))
		return nil
	}
	c.Info(fmt.Sprintf("rolled back to release %s on %d %s", st.release(), len(st.hosts), plural(len(st.hosts), "host", "hosts")))
	return nil
}

// reverting is deploy:reverting: choose the release to go back to.
func (r *Recipe) reverting(c *tasks.Context) error {
	return c.Invoke("deploy:revert_release")
}

// rollbackTarget returns the release=ID (or rollback_release) the user
// asked for, or "".
func rollbackTarget(v *tasks.Vars) (string, error) {
	for _, name := range []string{"release", "rollback_release"} {
		if !v.Has(name) {
			continue
		}
		s, err := v.FetchString(name)
		if err != nil {
			return "", err
		}
		if s = strings.TrimSpace(s); s != "" {
			if !deploy.IsReleaseID(s) {
				return "", fmt.Errorf("%s=%q is not a release id (YYYYmmddHHMMSS)", name, s)
			}
			return s, nil
		}
	}
	return "", nil
}

// revertRelease is deploy:revert_release: the one release every host
// goes back to, chosen from what the lock saw on every host. It sets
// release_path and rollback_timestamp.
func (r *Recipe) revertRelease(c *tasks.Context) error {
	st := r.current()
	if st == nil || st.op != opRollback {
		return fmt.Errorf("%s runs inside rollback", c.Task.Name)
	}
	explicit, err := rollbackTarget(c.Executor.Vars)
	if err != nil {
		return err
	}
	if err := r.ensureProbed(c, st); err != nil {
		return err
	}
	var target string
	if c.DryRun() {
		// The lock's probe ran nowhere, so no host's releases are known:
		// a placeholder stands for the release a real run would choose.
		target = explicit
		if target == "" {
			target = dryRunRollbackTarget
			c.Info("dry run: the release to go back to would be chosen from every host's releases: the newest good one before current")
		}
	} else {
		var probes []hostProbe
		for _, h := range st.hosts {
			probes = append(probes, hostProbe{h.String(), st.host(h).probe})
		}
		var warnings []string
		target, warnings, err = chooseRollback(probes, explicit)
		for _, w := range warnings {
			c.Warn(w)
		}
		if err != nil {
			return err
		}
	}
	st.mu.Lock()
	st.releaseID = target
	st.mu.Unlock()
	c.Set("release_path", st.layout.Release(target))
	c.Set("release_timestamp", target)
	c.Set("rollback_timestamp", target)
	c.Info("rolling back to release " + target)
	return nil
}

// dryRunRollbackTarget stands for the release a dry run's rollback would
// go back to.
const dryRunRollbackTarget = "<previous release>"

type hostProbe struct {
	name  string
	probe *serverState
}

// chooseRollback picks the release every host goes back to. An explicit
// id must exist, and not be a failed deploy, on every host. Otherwise the
// target is the newest release older than the newest current release
// that is present and good on every host: a release rolled back from
// (bad) or never finished (failed) is never chosen, and releases
// Capistrano made count as good.
func chooseRollback(hosts []hostProbe, explicit string) (target string, warnings []string, err error) {
	if explicit != "" {
		var missing, failed, bad []string
		currentEverywhere := true
		for _, h := range hosts {
			switch {
			case !h.probe.has(explicit):
				missing = append(missing, h.name)
			case h.probe.releaseState(explicit, "") == stateFailed:
				failed = append(failed, h.name)
			case h.probe.releaseState(explicit, "") == stateBad:
				bad = append(bad, h.name)
			}
			if h.probe.currentID != explicit {
				currentEverywhere = false
			}
		}
		switch {
		case len(missing) > 0:
			return "", nil, fmt.Errorf("release %s is missing on %s; a rollback puts the same release on every host, so nothing was changed", explicit, strings.Join(missing, ", "))
		case len(failed) > 0:
			return "", nil, fmt.Errorf("release %s never finished deploying on %s; nothing was changed", explicit, strings.Join(failed, ", "))
		case currentEverywhere:
			return "", nil, fmt.Errorf("release %s is already current on every host; nothing was changed", explicit)
		}
		if len(bad) > 0 {
			warnings = append(warnings, fmt.Sprintf("release %s was rolled back from on %s; going back to it because you asked for it", explicit, strings.Join(bad, ", ")))
		}
		return explicit, warnings, nil
	}

	newest := ""
	currents := map[string]bool{}
	for _, h := range hosts {
		if id := h.probe.currentID; id != "" {
			currents[id] = true
			newest = max(newest, id)
		}
	}
	if newest == "" {
		return "", nil, errors.New("no host has a current release to roll back from; nothing was changed")
	}
	if len(currents) > 1 {
		var parts []string
		for _, h := range hosts {
			parts = append(parts, h.name+" on "+orNone(h.probe.currentID))
		}
		warnings = append(warnings, "hosts are on different releases ("+strings.Join(parts, ", ")+"); rolling all of them back from "+newest)
	}
	var candidates []string
	for _, id := range hosts[0].probe.releases {
		if id >= newest {
			continue
		}
		ok := true
		for _, h := range hosts {
			if !h.probe.has(id) || !h.probe.good(id, "") {
				ok = false
				break
			}
		}
		if ok {
			candidates = append(candidates, id)
		}
	}
	if len(candidates) == 0 {
		all := map[string]bool{}
		for _, h := range hosts {
			for _, id := range h.probe.releases {
				all[id] = true
			}
		}
		if len(all) <= 1 {
			return "", nil, fmt.Errorf("only one release (%s) on every host: there is no earlier release to roll back to; nothing was changed", newest)
		}
		return "", nil, fmt.Errorf("no release before %s is present and good on every host (releases rolled back from, and deploys that never finished, are never rollback targets); `releases` lists each host's, and release=ID picks one; nothing was changed", newest)
	}
	return candidates[len(candidates)-1], warnings, nil
}

func orNone(id string) string {
	if id == "" {
		return "no release"
	}
	return id
}

// cleanupRollback is deploy:cleanup_rollback. Capistrano deletes the
// release rolled back from; davit keeps it, marked bad, so it can be
// inspected, until deploy:cleanup removes it; a bad release is never a
// rollback target again.
func (r *Recipe) cleanupRollback(c *tasks.Context) error {
	st := r.current()
	if st == nil || st.op != opRollback {
		return fmt.Errorf("%s runs inside rollback", c.Task.Name)
	}
	return r.runPlans(c, st, []string{c.Task.Name}, []planFunc{r.planCleanupRollback})
}

func (r *Recipe) planCleanupRollback(c *tasks.Context, st *runState) (hostPlan, error) {
	target := st.release()
	now := r.now().UTC().Format(timeFormat)
	return func(hc *tasks.HostContext, hs *hostState) (*hostWork, error) {
		from := hs.probe.currentID
		if from == "" || from == target {
			return nil, nil
		}
		lines := kvLines("state", stateBad, "bad_at", now, "bad_by", st.user, "rolled_back_to", target)
		return &hostWork{step: tasks.Step{Name: "mark release " + from + " bad", Script: markBadScript, Args: append([]string{st.layout.Marks(), from}, lines...)}}, nil
	}, nil
}
