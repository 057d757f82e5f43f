package capdeploy

import (
	"fmt"
	"github.com/davit-deploy/davit/tasks"
	"slices"
	"strings"
)

// finishing is deploy:finishing: cleanup, revisions.log, unlock, in one
// command per host when no hook sits between them.
func (r *Recipe) finishing(c *tasks.Context) error {
	return c.InvokeSequence("deploy:cleanup", "deploy:log_revision", "deploy:unlock")
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
		if _, err := keepReleases(c.Executor.Vars); err != nil {
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
	return r.runPlans(c, st, []string{c.Task.Name}, []planFunc{r.planCleanup})
}

// keepReleases reads keep_releases, which must be at least 1.
func keepReleases(v *tasks.Vars) (int, error) {
	keep, err := v.FetchInt("keep_releases")
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
	keep, err := keepReleases(c.Executor.Vars)
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
		paths := []string{st.layout.DeployTo}
		for _, r := range rels {
			paths = append(paths, "releases/"+r, ".davit/releases/"+r)
		}
		for _, m := range orphans {
			paths = append(paths, ".davit/releases/"+m)
		}
		return &hostWork{
			step: tasks.Step{Name: "remove old releases", Script: cleanupScript, Args: paths},
			done: func(string) error {
				if len(rels) > 0 {
					hc.Info(fmt.Sprintf("removed %d old %s: %s", len(rels), plural(len(rels), "release", "releases"), strings.Join(rels, ", ")))
				}
				return nil
			},
		}, nil
	}, nil
}

// capitalize upper-cases s's first letter, for the start of a line.
func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// logRevision is deploy:log_revision: one line in every host's
// revisions.log, in Capistrano's words.
func (r *Recipe) logRevision(c *tasks.Context) error {
	st := r.current()
	if st == nil || st.release() == "" {
		return fmt.Errorf("%s runs inside deploy or rollback", c.Task.Name)
	}
	return r.runPlans(c, st, []string{c.Task.Name}, []planFunc{r.planLogRevision})
}

func (r *Recipe) planLogRevision(c *tasks.Context, st *runState) (hostPlan, error) {
	id := st.release()
	var line string
	if st.op == opRollback {
		line = fmt.Sprintf("%s rolled back to release %s", st.user, id)
	} else {
		rev, _ := st.revision()
		line = fmt.Sprintf("Branch %s (at %s) deployed as release %s by %s", rev.Branch, rev.ID, id, st.user)
		if rev.Source != "" {
			// Not a branch (copy_dir): say what it is, in the same form.
			line = fmt.Sprintf("%s (content %s) deployed as release %s by %s", capitalize(rev.Source), rev.ID, id, st.user)
		}
	}
	step := tasks.Step{Name: "append to revisions.log", Script: logRevisionScript, Args: []string{st.layout.RevisionsLog(), oneLine(line)}}
	return func(*tasks.HostContext, *hostState) (*hostWork, error) {
		return &hostWork{step: step}, nil
	}, nil
}
