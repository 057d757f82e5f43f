package capdeploy

import (
	"context"
	"fmt"
	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/tasks"
)

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
		if note := r.reregister(cc, st); note != "" {
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
		// scripts/remove_release.sh refuses if current points at it (it
		// would then be live).
		step := tasks.Step{Name: "remove release " + id, Script: removeReleaseScript, Args: []string{st.layout.DeployTo, id}}
		if _, err := runStep(hc, step); err != nil {
			hs.outcome = fmt.Sprintf("still on %s, but new release %s is left behind (%s); deploy:cleanup removes it", was(hs), id, reason(err))
			return err
		}
		hs.created = false
		hs.outcome = fmt.Sprintf("still on %s (new release %s removed)", was(hs), id)
		return nil
	})
}

// hadNoRelease reports whether the host had no current before the run
// (its first deploy): there is nothing to move back to then, nor to
// restart.
func hadNoRelease(hs *hostState) bool {
	return hs.probe != nil && hs.probe.currentTarget == ""
}

// restore moves every host that switched back to what current pointed at
// before the run (the exact link, whether absolute or relative), reruns
// deploy:published on those hosts so their restart hooks bring the old
// release back up, then removes the new release. A host that had no
// release before loses current instead, and its restart hooks are not
// rerun: there is no release for them to bring back. It returns a note
// when the restart hooks fail.
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
		// The exact link it had, or none when there was no current before.
		name := "move current back to " + was(hs)
		if hadNoRelease(hs) {
			name = "remove current (there was no release before)"
		}
		if _, err := runStep(hc, switchStep(name, st.layout, hs.probe.currentTarget, "")); err != nil {
			hs.outcome = fmt.Sprintf("NOT moved back: may still be on %s (%s)", id, reason(err))
			return err
		}
		hs.switched = false
		hs.outcome = "moved back to " + was(hs)
		if hadNoRelease(hs) {
			hs.outcome = "current removed; there was no release before"
		}
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
		if hs := st.host(h); hs.published && !hadNoRelease(hs) {
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
			switch {
			case hs.created:
				hs.outcome = prev[h.Key()] + fmt.Sprintf(" (new release %s left behind; deploy:cleanup removes it)", id)
			case hadNoRelease(hs):
				hs.outcome = fmt.Sprintf("removed the new release %s; there was no release before", id)
			default:
				hs.outcome = prev[h.Key()] + fmt.Sprintf(" (new release %s removed)", id)
			}
		}
	}
	return note
}
