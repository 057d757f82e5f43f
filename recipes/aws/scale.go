package aws

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// terminateNewest retires the newest instance davit launched for the
// role. Instances without davit's launch tag (the base fleet) are never
// candidates.
func (f *fleet) terminateNewest(ctx context.Context) error {
	launched, _, err := f.list(ctx)
	if err != nil {
		return fmt.Errorf("terminate %s: %w", f.l.Role, err)
	}
	if len(launched) == 0 {
		return fmt.Errorf("terminate %s: no running instance that davit launched for role %s in stage %s; instances without the %s tag (the base fleet) are never terminated", f.l.Role, f.l.Role, f.stage, LaunchedByTag)
	}
	return f.retire(ctx, launched[len(launched)-1])
}

// retire takes one instance out of the load balancer, waits for draining
// (bounded by launch_timeout), then terminates it: no request is dropped
// by a server that vanished under it.
func (f *fleet) retire(ctx context.Context, in LaunchedInstance) error {
	start := time.Now()
	id := in.ID
	if f.c.DryRun() {
		if f.l.HasLB() {
			f.c.Info(fmt.Sprintf("dry run: %s %s: would deregister %s from %s and wait for draining", f.l.Role, f.stage, id, f.l.lbName()))
		}
		_, err := f.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}, DryRun: aws.Bool(true)})
		if !isDryRunOK(err) {
			if err == nil {
				err = errors.New("EC2 terminated an instance for a DryRun request")
			}
			return fmt.Errorf("terminate %s: %s (dry run): %w", f.l.Role, id, describeErr(err))
		}
		f.c.Info(fmt.Sprintf("dry run: %s %s: TerminateInstances of %s (launched %s) would succeed", f.l.Role, f.stage, id, in.LaunchedAt.Format(time.RFC3339)))
		return nil
	}
	if f.l.HasLB() {
		if err := f.deregister(ctx, []string{id}); err != nil {
			return fmt.Errorf("terminate %s: %w", f.l.Role, err)
		}
		f.say(start, "deregistered %s from %s; waiting for draining", id, f.l.lbName())
		if err := f.waitDrained(ctx, []string{id}, f.l.Timeout); err != nil {
			return fmt.Errorf("terminate %s: %w (%s is still running)", f.l.Role, err, id)
		}
		f.say(start, "%s drained from %s", id, f.l.lbName())
	}
	out, err := f.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		return fmt.Errorf("terminate %s: %s: %w", f.l.Role, id, describeErr(err))
	}
	state := "shutting-down"
	if len(out.TerminatingInstances) == 1 && out.TerminatingInstances[0].CurrentState != nil {
		state = string(out.TerminatingInstances[0].CurrentState.Name)
	}
	f.say(start, "terminated %s (launched %s; now %s)", id, in.LaunchedAt.Format(time.RFC3339), state)
	return nil
}

// scale converges the role to want running instances: count is the
// total, base fleet included; only davit's own instances are launched or
// terminated, so it never goes below the base fleet.
func (f *fleet) scale(ctx context.Context, want int) error {
	launched, base, err := f.list(ctx)
	if err != nil {
		return fmt.Errorf("scale %s: %w", f.l.Role, err)
	}
	have := base + len(launched)
	target := want
	if target < base {
		f.c.Warn(fmt.Sprintf("scale %s: count=%d is below the base fleet of %d instances davit did not launch; it never terminates those, so the role goes to %d", f.l.Role, want, base, base))
		target = base
	}
	switch {
	case target == have:
		f.c.Info(fmt.Sprintf("scale %s: %d running (%d base, %d launched by davit); nothing to do", f.l.Role, have, base, len(launched)))
		return nil
	case target > have:
		f.c.Info(fmt.Sprintf("scale %s: %d running (%d base, %d launched by davit); launching %d for %d", f.l.Role, have, base, len(launched), target-have, target))
		return f.launch(ctx, target-have)
	}
	f.c.Info(fmt.Sprintf("scale %s: %d running (%d base, %d launched by davit); terminating the newest %d for %d", f.l.Role, have, base, len(launched), have-target, target))
	for k := 0; k < have-target; k++ {
		if err := f.retire(ctx, launched[len(launched)-1-k]); err != nil {
			return fmt.Errorf("scale %s: %w", f.l.Role, err)
		}
	}
	return nil
}
