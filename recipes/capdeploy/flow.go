package capdeploy

import (
	"errors"
	"fmt"
	"github.com/davit-deploy/davit/tasks"
	"slices"
	"strings"
	"time"
)

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

func (e *FleetError) Error() string { return e.Err.Error() + "\n" + e.Summary() }

// Summary is the failed run's outcome without its cause: what happened and
// every host's final state, which an interrupted run shows alone.
func (e *FleetError) Summary() string {
	var b strings.Builder
	what := e.Op
	if e.Release != "" {
		what += " of release " + e.Release
	}
	if e.Untouched {
		fmt.Fprintf(&b, "%s failed before changing any host; nothing was changed", what)
	} else {
		fmt.Fprintf(&b, "%s failed; every host's final state:", what)
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
	if _, err := loadBalanced(c.Executor.Registry); err != nil {
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
	if c.DryRun() {
		c.Info(fmt.Sprintf("dry run: would deploy release %s (%s) to %d %s; nothing was run", id, rev,
			len(st.hosts), plural(len(st.hosts), "host", "hosts")))
		return nil
	}
	c.Info(fmt.Sprintf("deployed release %s (%s) to %d %s in %s", id, rev,
		len(st.hosts), plural(len(st.hosts), "host", "hosts"), time.Since(start).Round(time.Millisecond)))
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

// sortedKeys is a small helper for deterministic output.
func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
