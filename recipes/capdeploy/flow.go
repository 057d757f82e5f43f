package capdeploy

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/tasks"
)

// FleetError is a deploy or rollback that failed: the cause, and what
// every host was left on, which is what an operator needs first.
type FleetError struct {
	// Op is "deploy" or "rollback".
	Op string
	// Release is the release being deployed or rolled back to ("" when
	// the run failed before choosing one).
	Release string
	// Err is the failing step's error.
	Err error
	// Hosts is each deploy host's final state, in inventory order.
	Hosts []HostOutcome
	// Notes are failures of the undo itself (deploy:failed hooks, restart
	// hooks rerun after moving back).
	Notes []string
	// Untouched: the run failed before it changed (or locked) any host.
	Untouched bool
}

// HostOutcome is one line of a failed run's summary.
type HostOutcome struct {
	Host  string
	State string
}

func (e *FleetError) Error() string {
	var b strings.Builder
	b.WriteString(e.Err.Error())
	what := e.Op
	if e.Release != "" {
		what += " of release " + e.Release
	}
	if e.Untouched {
		fmt.Fprintf(&b, "\n%s failed before changing any host; nothing was changed", what)
	} else {
		fmt.Fprintf(&b, "\n%s failed; every host's final state:", what)
	}
	for _, h := range e.Hosts {
		fmt.Fprintf(&b, "\n  %s: %s", h.Host, h.State)
	}
	for _, n := range e.Notes {
		b.WriteString("\n" + strings.ReplaceAll(n, "\n", "\n  "))
	}
	return b.String()
}

func (e *FleetError) Unwrap() error { return e.Err }

// deployFlow is the deploy task: Capistrano's flow, made all or nothing
// across the fleet.
func (r *Recipe) deployFlow(c *tasks.Context) (err error) {
	st, err := r.begin(c, opDeploy)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := r.end(st); cerr != nil {
			c.Warn(cerr.Error())
		}
	}()
	// Configuration errors fail before any host is touched.
	if _, _, err := r.batches(c, st); err != nil {
		return err
	}
	if _, err := r.healthTargets(c, st); err != nil {
		return err
	}
	start := time.Now()
	c.Set("deploying", true)
	for _, name := range []string{"deploy:starting", "deploy:started", "deploy:updating", "deploy:updated"} {
		if err := c.Invoke(name); err != nil {
			return r.fail(c, st, err)
		}
	}
	if err := r.publish(c, st); err != nil {
		return r.fail(c, st, err)
	}
	st.setPhase(phaseFinish)
	for _, name := range []string{"deploy:finishing", "deploy:finished"} {
		if err := c.Invoke(name); err != nil {
			return r.fail(c, st, err)
		}
	}
	id := st.release()
	if herr := st.healthError(); herr != nil {
		st.keptDespiteHealth()
		return r.fail(c, st, fmt.Errorf("the health check failed and health_check_rollback is off, so release %s stays live: %w", id, herr))
	}
	rev, _ := st.revision()
	c.Info(fmt.Sprintf("deployed release %s (%s) to %d %s in %s", id, rev,
		len(st.hosts), plural(len(st.hosts), "host", "hosts"), time.Since(start).Round(time.Millisecond)))
	return nil
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
	c.Info(fmt.Sprintf("rolled back to release %s on %d %s", st.release(), len(st.hosts), plural(len(st.hosts), "host", "hosts")))
	return nil
}

// keptDespiteHealth writes the summary of a run that finished on a
// release that failed its health check.
func (st *runState) keptDespiteHealth() {
	for _, h := range st.hosts {
		st.host(h).outcome = "on " + st.release() + " (its health check failed; kept, as health_check_rollback is off)"
	}
}

func (st *runState) healthError() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.healthFailed
}

// starting is deploy:starting: check, then (for a deploy) resolve the
// revision once, then lock. Checking before locking means a deploy that
// cannot work never holds the fleet's lock.
func (r *Recipe) starting(c *tasks.Context) error {
	names := []string{"deploy:check"}
	if st := r.current(); st == nil || st.op != opRollback {
		names = append(names, "deploy:resolve_revision")
	}
	names = append(names, "deploy:lock")
	for _, name := range names {
		if err := c.Invoke(name); err != nil {
			return err
		}
	}
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
	var probes []hostProbe
	for _, h := range st.hosts {
		probes = append(probes, hostProbe{h.String(), st.host(h).probe})
	}
	target, warnings, err := chooseRollback(probes, explicit)
	for _, w := range warnings {
		c.Warn(w)
	}
	if err != nil {
		return err
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
	return r.runStep(c, st, c.Task.Name, r.planCleanupRollback)
}

func (r *Recipe) planCleanupRollback(c *tasks.Context, st *runState) (hostPlan, error) {
	target := st.release()
	now := r.now().UTC().Format(timeFormat)
	return func(hc *tasks.HostContext, hs *hostState) (*hostWork, error) {
		from := hs.probe.currentID
		if from == "" || from == target {
			return nil, nil
		}
		script := keyValues("state", stateBad, "bad_at", now, "bad_by", st.user, "rolled_back_to", target) + " >> " + q(st.layout.Marks()+"/"+from)
		return &hostWork{step: tasks.Step{Name: "mark release " + from + " bad", Script: "mkdir -p " + q(st.layout.Marks()) + " && " + script}}, nil
	}, nil
}

// batches splits the deploy hosts by publish_batch: one batch (all at
// once) when it is unset, else N hosts, or a percentage of them, at a time.
func (r *Recipe) batches(c *tasks.Context, st *runState) ([][]*deploy.Host, time.Duration, error) {
	v := c.Executor.Vars
	spec, err := v.FetchString("publish_batch")
	if err != nil {
		return nil, 0, err
	}
	wait, err := seconds(v, "publish_batch_wait")
	if err != nil {
		return nil, 0, err
	}
	hosts := st.hosts
	n := len(hosts)
	size := n
	spec = strings.TrimSpace(spec)
	switch {
	case spec == "" || spec == "0":
	case strings.HasSuffix(spec, "%"):
		p, err := strconv.ParseFloat(strings.TrimSuffix(spec, "%"), 64)
		if err != nil || p <= 0 || p > 100 {
			return nil, 0, fmt.Errorf("publish_batch %q: want a host count or a percentage in (0%%, 100%%]", spec)
		}
		size = max(1, int(math.Ceil(p*float64(n)/100)))
	default:
		k, err := strconv.Atoi(spec)
		if err != nil || k < 0 {
			return nil, 0, fmt.Errorf("publish_batch %q: want a host count or a percentage like 25%%", spec)
		}
		size = k
	}
	if size <= 0 || size >= n {
		return [][]*deploy.Host{hosts}, wait, nil
	}
	var out [][]*deploy.Host
	for i := 0; i < n; i += size {
		out = append(out, hosts[i:min(i+size, n)])
	}
	return out, wait, nil
}

// seconds reads a duration variable: a number of seconds, or a Go
// duration string ("90s", "2m").
func seconds(v *tasks.Vars, name string) (time.Duration, error) {
	val, err := v.Fetch(name)
	if err != nil {
		return 0, err
	}
	switch x := val.(type) {
	case nil:
		return 0, nil
	case int:
		return time.Duration(x) * time.Second, nil
	case int64:
		return time.Duration(x) * time.Second, nil
	case float64:
		return time.Duration(x * float64(time.Second)), nil
	case string:
		x = strings.TrimSpace(x)
		if x == "" {
			return 0, nil
		}
		if f, err := strconv.ParseFloat(x, 64); err == nil {
			return time.Duration(f * float64(time.Second)), nil
		}
		d, err := time.ParseDuration(x)
		if err != nil {
			return 0, fmt.Errorf("%s %q: want seconds or a duration like 90s", name, x)
		}
		return d, nil
	}
	return 0, fmt.Errorf("%s: want seconds, have %T", name, val)
}

// publish moves current on every host: all at once, or batch by batch
// when publish_batch is set. Each batch runs deploy:publishing,
// deploy:published (the restart hooks) and deploy:health_check for its
// hosts only, and the next batch starts only once it is healthy.
func (r *Recipe) publish(c *tasks.Context, st *runState) error {
	batches, wait, err := r.batches(c, st)
	if err != nil {
		return err
	}
	st.setPhase(phasePublish)
	if len(batches) == 1 {
		return r.publishOn(c.Ctx(), c.Executor, st, batches[0])
	}
	for i, b := range batches {
		if i > 0 && wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-c.Ctx().Done():
				t.Stop()
				return c.Ctx().Err()
			case <-t.C:
			}
		}
		names := hostNames(b)
		c.Info(fmt.Sprintf("publishing batch %d of %d: %s", i+1, len(batches), strings.Join(names, ", ")))
		if err := r.publishOn(c.Ctx(), c.Executor.Derive(b), st, b); err != nil {
			return fmt.Errorf("batch %d of %d (%s): %w", i+1, len(batches), strings.Join(names, ", "), err)
		}
	}
	return nil
}

func (r *Recipe) publishOn(ctx context.Context, e *tasks.Executor, st *runState, hosts []*deploy.Host) error {
	if err := e.Invoke(ctx, "deploy:publishing"); err != nil {
		return err
	}
	for _, h := range e.Filter.Apply(hosts) {
		st.host(h).published = true
	}
	if err := e.Invoke(ctx, "deploy:published"); err != nil {
		return err
	}
	return e.Invoke(ctx, "deploy:health_check")
}

func hostNames(hosts []*deploy.Host) []string {
	var out []string
	for _, h := range hosts {
		out = append(out, h.String())
	}
	return out
}

// fail undoes what the run did, as far as its phase requires, then runs
// deploy:failed and returns the summary. It works under a context that
// Ctrl-C does not cancel (bounded by a short timeout), so an interrupted
// deploy still removes its release and releases its lock.
func (r *Recipe) fail(c *tasks.Context, st *runState, cause error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Ctx()), defaultCleanupTimeout)
	defer cancel()
	cc := tasks.NewContext(ctx, c.Executor, c.Task)
	var notes []string
	switch st.getPhase() {
	case phasePrepare:
		r.removeRelease(cc, st, st.hosts)
	case phasePublish:
		if note := r.restore(cc, st); note != "" {
			notes = append(notes, note)
		}
	case phaseFinish:
		for _, h := range st.hosts {
			hs := st.host(h)
			if hs.outcome == "" {
				hs.outcome = "on " + st.release() + " (it went live; a later step failed)"
			}
		}
	}
	r.unlockOwn(cc, st)
	if err := c.Executor.Invoke(ctx, "deploy:failed"); err != nil {
		notes = append(notes, "deploy:failed: "+err.Error())
	}
	fe := &FleetError{Op: st.op, Release: st.release(), Err: cause, Notes: notes}
	touched := false
	for _, h := range st.hosts {
		if st.host(h).probe != nil {
			touched = true
		}
	}
	if !touched {
		// Refused before any host was locked (deploy:check, a lock held
		// elsewhere): one line says it all.
		fe.Untouched = true
		return fe
	}
	for _, h := range st.hosts {
		hs := st.host(h)
		state := hs.outcome
		if state == "" {
			state = r.untouched(st, hs)
		}
		if hs.lockNote != "" {
			state += "; " + hs.lockNote
		}
		fe.Hosts = append(fe.Hosts, HostOutcome{Host: h.String(), State: state})
	}
	if st.op == opDeploy {
		c.Executor.Vars.Set("deploying", false, tasks.Position{File: "recipes/capdeploy"})
	}
	return fe
}

// was describes what current pointed at before the run.
func was(hs *hostState) string {
	switch {
	case hs.probe == nil:
		return "its release as before"
	case hs.probe.currentID != "":
		return hs.probe.currentID
	case hs.probe.currentTarget != "":
		return hs.probe.currentTarget
	}
	return "no release"
}

// untouched is the summary of a host the run did not change.
func (r *Recipe) untouched(st *runState, hs *hostState) string {
	if hs.probe == nil {
		return "nothing changed (this run never locked it)"
	}
	return "still on " + was(hs) + " (nothing changed)"
}

// removeReleaseScript removes the new release, refusing if current
// points at it (it would then be live).
func removeReleaseScript(l deploy.Layout, id string) string {
	rel := "releases/" + id
	return "cd " + q(l.DeployTo) + " && if [ current -ef " + q(rel) + " ]; then echo " + q("current points at "+id+"; not removing it") + " >&2; exit 1; fi; " +
		"rm -rf -- " + q(rel) + " " + q(".davit/releases/"+id)
}

// removeRelease removes the new release on every host of hosts that may
// have it, recording each host's outcome.
func (r *Recipe) removeRelease(c *tasks.Context, st *runState, hosts []*deploy.Host) {
	id := st.release()
	var made []*deploy.Host
	for _, h := range hosts {
		if hs := st.host(h); hs.created && id != "" {
			made = append(made, h)
		}
	}
	_ = c.On(made, nil, func(hc *tasks.HostContext) error {
		hs := st.host(hc.Host)
		if _, err := sh(hc, "remove release "+id, removeReleaseScript(st.layout, id)); err != nil {
			hs.outcome = fmt.Sprintf("still on %s, but new release %s is left behind (%s); deploy:cleanup removes it", was(hs), id, reason(err))
			return err
		}
		hs.created = false
		hs.outcome = fmt.Sprintf("still on %s (new release %s removed)", was(hs), id)
		return nil
	})
}

// restore moves every host that switched back to what current pointed at
// before the run (the exact link, whether absolute or relative), reruns
// deploy:published on those hosts so their restart hooks bring the old
// release back up, then removes the new release. It returns a note when
// the restart hooks fail.
func (r *Recipe) restore(c *tasks.Context, st *runState) string {
	id := st.release()
	var switched []*deploy.Host
	for _, h := range st.hosts {
		if st.host(h).switched {
			switched = append(switched, h)
		}
	}
	var moved []*deploy.Host
	_ = c.On(switched, nil, func(hc *tasks.HostContext) error {
		hs := st.host(hc.Host)
		var script string
		if prev := hs.probe.currentTarget; prev != "" {
			script = switchScript(st.layout, prev, "")
		} else {
			script = "rm -f " + q(st.layout.Current()) // there was no current before
		}
		if _, err := sh(hc, "move current back to "+was(hs), script); err != nil {
			hs.outcome = fmt.Sprintf("NOT moved back: may still be on %s (%s)", id, reason(err))
			return err
		}
		hs.switched = false
		hs.outcome = "moved back to " + was(hs)
		return nil
	})
	for _, h := range switched {
		if !st.host(h).switched {
			moved = append(moved, h)
		}
	}
	note := ""
	var restart []*deploy.Host
	for _, h := range moved {
		if st.host(h).published {
			restart = append(restart, h)
		}
	}
	if len(restart) > 0 {
		// The restart hooks ran on the new release; run them again on
		// the old one. current_path resolves to each host's own release.
		v := c.Executor.Vars
		pos := tasks.Position{File: "recipes/capdeploy"}
		if cp, err := v.Fetch("current_path"); err == nil {
			v.Set("release_path", cp, pos)
		}
		v.Set("rolling_back", true, pos)
		e := c.Executor.Derive(restart)
		if err := e.Invoke(c.Ctx(), "deploy:published"); err != nil {
			note = "after moving back, deploy:published (the restart hooks) failed: " + err.Error()
		}
	}
	if st.op == opDeploy {
		var remove []*deploy.Host
		for _, h := range st.hosts {
			if hs := st.host(h); !hs.switched {
				remove = append(remove, h)
			}
		}
		// Outcomes of hosts moved back keep "moved back"; removal adds to
		// them.
		prev := map[string]string{}
		for _, h := range moved {
			prev[h.Key()] = st.host(h).outcome
		}
		r.removeRelease(c, st, remove)
		for _, h := range moved {
			hs := st.host(h)
			if hs.created {
				hs.outcome = prev[h.Key()] + fmt.Sprintf(" (new release %s left behind; deploy:cleanup removes it)", id)
			} else {
				hs.outcome = prev[h.Key()] + fmt.Sprintf(" (new release %s removed)", id)
			}
		}
	}
	return note
}

// sortedKeys is a small helper for deterministic output.
func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
