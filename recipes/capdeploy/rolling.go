package capdeploy

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/tasks"
)

// The load balancer's tasks. The deploy recipe does not define them: the
// aws recipe does for roles behind a load balancer, and a Deployfile may
// define (or redefine) them for any other. When both exist, a publish in
// batches takes each batch out of the load balancer while it switches.
const (
	taskLBDeregister = "lb:deregister"
	taskLBRegister   = "lb:register"
)

// loadBalanced reports whether a publish in batches goes through the load
// balancer: both tasks are defined. One without the other is a mistake
// found before any host is touched (a batch taken out would never come
// back, or one never taken out would be registered twice), and so is a
// hook on either when neither is defined: it would never run.
func loadBalanced(reg *tasks.Registry) (bool, error) {
	_, derr := reg.Lookup(taskLBDeregister)
	_, rerr := reg.Lookup(taskLBRegister)
	switch {
	case derr == nil && rerr == nil:
		return true, nil
	case derr == nil:
		return false, fmt.Errorf("task %s is defined but %s is not: a rolling publish takes each batch out of the load balancer and must put it back, so define both or neither", taskLBDeregister, taskLBRegister)
	case rerr == nil:
		return false, fmt.Errorf("task %s is defined but %s is not: a rolling publish takes each batch out of the load balancer with %s before it puts it back, so define both or neither", taskLBRegister, taskLBDeregister, taskLBDeregister)
	}
	for _, name := range []string{taskLBDeregister, taskLBRegister} {
		before, after := reg.Hooks(name)
		for _, k := range []struct {
			kind  string
			hooks []tasks.Hook
		}{{"before", before}, {"after", after}} {
			for _, h := range k.hooks {
				at := ""
				if h.Pos.IsValid() {
					at = " (" + h.Pos.String() + ")"
				}
				return false, fmt.Errorf("%s(%q, %q)%s hooks a task nothing defines, so it would never run: %s and %s come from use(\"aws\") for a role behind a load balancer, or from the Deployfile's own task()",
					k.kind, name, h.Task, at, taskLBDeregister, taskLBRegister)
			}
		}
	}
	return false, nil
}

// lbBatch is the batch a rolling publish has taken out of the load
// balancer (or may have: it is recorded before lb:deregister runs), so
// that a failure puts it back.
type lbBatch struct {
	label string
	hosts []*deploy.Host
}

func (st *runState) setOutOfLB(b *lbBatch) {
	st.mu.Lock()
	st.outOfLB = b
	st.mu.Unlock()
}

func (st *runState) getOutOfLB() *lbBatch {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.outOfLB
}

// publishBatch publishes one batch of a rolling publish on e, the
// executor derived for it. Behind a load balancer the batch leaves it
// first (lb:deregister, whose implementation waits for draining) and
// comes back (lb:register) only once it is switched, restarted and
// healthy; until then it is recorded in st, so a failure, or Ctrl-C,
// registers it again after moving it back (fail, reregister).
func (r *Recipe) publishBatch(ctx context.Context, c *tasks.Context, e *tasks.Executor, st *runState, hosts []*deploy.Host, label string, lb bool) error {
	if !lb {
		return r.publishOn(ctx, e, st, hosts)
	}
	st.setOutOfLB(&lbBatch{label: label, hosts: hosts})
	if c.DryRun() {
		c.Info(fmt.Sprintf("dry run: %s would leave the load balancer (%s)", label, taskLBDeregister))
	} else {
		c.Info(fmt.Sprintf("%s: leaving the load balancer (%s)", label, taskLBDeregister))
	}
	if err := e.Invoke(ctx, taskLBDeregister); err != nil {
		return err
	}
	if err := r.publishOn(ctx, e, st, hosts); err != nil {
		return err
	}
	if c.DryRun() {
		c.Info(fmt.Sprintf("dry run: %s would go back into the load balancer (%s)", label, taskLBRegister))
	} else {
		c.Info(fmt.Sprintf("%s: healthy, back into the load balancer (%s)", label, taskLBRegister))
	}
	if err := e.Invoke(ctx, taskLBRegister); err != nil {
		return err
	}
	st.setOutOfLB(nil)
	return nil
}

// lbUndoTimeout bounds putting a batch back into the load balancer after
// a failure. It has a context of its own, not the 30 s of the rest of the
// undo: lb:register waits until the load balancer calls the batch healthy
// (the aws recipe bounds that wait by the launcher's launch_timeout,
// 10 minutes by default), and cutting that short would report a batch
// that is coming back as left out.
const lbUndoTimeout = 10 * time.Minute

// reregister puts the batch a failed rolling publish had taken out of the
// load balancer back into it, once restore has moved it back (and rerun
// its restart hooks). It runs under a fresh context that Ctrl-C does not
// cancel, bounded by lbUndoTimeout, so it happens after Ctrl-C too. A
// host that could not be moved back stays out: it may still serve the
// release that failed. It returns a note for the summary when something
// stays out.
func (r *Recipe) reregister(c *tasks.Context, st *runState) string {
	b := st.getOutOfLB()
	if b == nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Ctx()), lbUndoTimeout)
	defer cancel()
	c = tasks.NewContext(ctx, c.Executor, c.Task)
	var back, stuck []*deploy.Host
	for _, h := range b.hosts {
		if st.host(h).switched {
			stuck = append(stuck, h)
		} else {
			back = append(back, h)
		}
	}
	var notes []string
	if len(stuck) > 0 {
		for _, h := range stuck {
			st.host(h).outcome += "; left out of the load balancer"
		}
		notes = append(notes, fmt.Sprintf("%s stays out of the load balancer: it could not be moved back and may still run the release that failed; move it back by hand, then register it: %s",
			strings.Join(hostNames(stuck), ", "), registerCommand(c, stuck)))
	}
	if len(back) > 0 {
		if c.DryRun() {
			c.Info(fmt.Sprintf("dry run: %s would go back into the load balancer (%s)", b.label, taskLBRegister))
		} else {
			c.Info(fmt.Sprintf("%s: moved back, back into the load balancer (%s)", b.label, taskLBRegister))
		}
		if err := c.Executor.Derive(back).Invoke(c.Ctx(), taskLBRegister); err != nil {
			for _, h := range back {
				st.host(h).outcome += "; NOT back in the load balancer"
			}
			notes = append(notes, fmt.Sprintf("%s: putting %s back into the load balancer failed: %v; register it by hand: %s",
				b.label, strings.Join(hostNames(back), ", "), err, registerCommand(c, back)))
		} else {
			for _, h := range back {
				st.host(h).outcome += "; back in the load balancer"
			}
		}
	}
	st.setOutOfLB(nil)
	return strings.Join(notes, "\n")
}

// registerCommand is the command line that registers hosts by hand.
func registerCommand(c *tasks.Context, hosts []*deploy.Host) string {
	stage, _ := c.Executor.Vars.FetchString("stage")
	if stage == "" {
		stage = "STAGE"
	}
	var names []string
	for _, h := range hosts {
		names = append(names, h.Name)
	}
	return fmt.Sprintf("davit --hosts %s %s %s", strings.Join(names, ","), stage, taskLBRegister)
}
