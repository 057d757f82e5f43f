package capdeploy

import (
	"context"
	"fmt"
	"math"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/tasks"
)

// switchStep points current at target atomically (scripts/switch.sh): a
// new symlink renamed over current, so current never dangles or goes
// missing. The link is absolute, as Capistrano makes it; davit reads both
// forms. An empty target removes current. mark, if given, is a file to
// append lines to once switched, in the same round trip.
func switchStep(name string, l deploy.Layout, target, mark string, lines ...string) tasks.Step {
	args := []string{l.DeployTo, target}
	if mark != "" {
		args = append(append(args, mark), lines...)
	}
	return tasks.Step{Name: name, Script: switchScript, Args: args}
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
	name := "switch current to " + id
	step := switchStep(name, st.layout, st.layout.Release(id), "")
	if st.op == opDeploy {
		step = switchStep(name, st.layout, st.layout.Release(id), path.Join(st.layout.Marks(), id),
			kvLines("state", stateFinished, "finished", r.now().UTC().Format(timeFormat))...)
	}
	return st.on(c, func(hc *tasks.HostContext, hs *hostState) error {
		if hs.probe != nil && hs.probe.currentID == id {
			return nil // a rollback's target that is already live here
		}
		hs.switched = true
		if _, err := runStepIn(hc, st.shell(hc.Host), step); err != nil {
			return stepError(name, err)
		}
		return nil
	})
}

// publishing is deploy:publishing: Capistrano's symlink:release.
func (r *Recipe) publishing(c *tasks.Context) error {
	return c.InvokeSequence("deploy:symlink:release")
}

// batches splits the deploy hosts by publish_batch: one batch (all at
// once) when it is unset, else N hosts, or a percentage of them, at a time.
func (r *Recipe) batches(c *tasks.Context, st *runState) ([][]*deploy.Host, time.Duration, error) {
	v := c.Executor.Vars
	spec, err := v.FetchString("publish_batch")
	if err != nil {
		return nil, 0, err
	}
	wait, err := v.FetchDuration("publish_batch_wait")
	if err != nil {
		return nil, 0, err
	}
	if wait < 0 {
		return nil, 0, fmt.Errorf("publish_batch_wait is %s; it cannot be negative", wait)
	}
	hosts := st.hosts
	n := len(hosts)
	size, err := batchSize(spec, n)
	if err != nil {
		return nil, 0, err
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

// batchSize is how many of n hosts publish_batch (spec) publishes at
// once: all of them when it is unset ("" or "0"), else a host count or a
// percentage of n, rounded up.
func batchSize(spec string, n int) (int, error) {
	spec = strings.TrimSpace(spec)
	switch {
	case spec == "" || spec == "0":
		return n, nil
	case strings.HasSuffix(spec, "%"):
		p, err := strconv.ParseFloat(strings.TrimSuffix(spec, "%"), 64)
		if err != nil || p <= 0 || p > 100 {
			return 0, fmt.Errorf("publish_batch %q: want a host count or a percentage in (0%%, 100%%]", spec)
		}
		return max(1, int(math.Ceil(p*float64(n)/100))), nil
	}
	k, err := strconv.Atoi(spec)
	if err != nil || k < 0 {
		return 0, fmt.Errorf("publish_batch %q: want a host count or a percentage like 25%%", spec)
	}
	return k, nil
}

// publish moves current on every host: all at once, or batch by batch
// when publish_batch is set. Each batch runs deploy:publishing,
// deploy:published (the restart hooks) and deploy:health_check for its
// hosts only, and the next batch starts only once it is healthy. With the
// load balancer's tasks defined, each batch also leaves the load balancer
// before it switches and comes back once healthy (publishBatch).
func (r *Recipe) publish(c *tasks.Context, st *runState) error {
	batches, wait, err := r.batches(c, st)
	if err != nil {
		return err
	}
	st.setPhase(phasePublish)
	if len(batches) == 1 {
		// One batch is the whole fleet: it never leaves the load
		// balancer, which would then have no host to send requests to.
		return r.publishOn(c.Ctx(), c.Executor, st, batches[0])
	}
	lb, err := loadBalanced(c.Executor.Registry)
	if err != nil {
		return err
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
		label := fmt.Sprintf("batch %d of %d (%s)", i+1, len(batches), strings.Join(names, ", "))
		if err := r.publishBatch(c.Ctx(), c, c.Executor.Derive(b), st, b, label, lb); err != nil {
			return fmt.Errorf("%s: %w", label, err)
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
