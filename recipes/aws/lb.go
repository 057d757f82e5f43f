package aws

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing/types"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbv2types "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/tasks"
)

// targetGroupARN is the launcher's target group as an ARN: target_group=
// may name it, and ELBv2 takes ARNs.
func (f *fleet) targetGroupARN(ctx context.Context) (string, error) {
	tg := f.l.TargetGroup
	if strings.HasPrefix(tg, "arn:") {
		return tg, nil
	}
	out, err := f.elbv2.DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{Names: []string{tg}})
	if err != nil {
		return "", fmt.Errorf("find target group %s: %w", tg, describeErr(err))
	}
	if len(out.TargetGroups) != 1 {
		return "", fmt.Errorf("find target group %s: %d found", tg, len(out.TargetGroups))
	}
	return aws.ToString(out.TargetGroups[0].TargetGroupArn), nil
}

func targets(ids []string) []elbv2types.TargetDescription {
	out := make([]elbv2types.TargetDescription, len(ids))
	for i, id := range ids {
		out[i] = elbv2types.TargetDescription{Id: aws.String(id)}
	}
	return out
}

func elbInstances(ids []string) []elbtypes.Instance {
	out := make([]elbtypes.Instance, len(ids))
	for i, id := range ids {
		out[i] = elbtypes.Instance{InstanceId: aws.String(id)}
	}
	return out
}

// register puts instances into the launcher's load balancer.
func (f *fleet) register(ctx context.Context, ids []string) error {
	if f.l.ELB != "" {
		_, err := f.elb.RegisterInstancesWithLoadBalancer(ctx, &elb.RegisterInstancesWithLoadBalancerInput{
			LoadBalancerName: aws.String(f.l.ELB), Instances: elbInstances(ids)})
		if err != nil {
			return fmt.Errorf("register %s with load balancer %s: %w", strings.Join(ids, ", "), f.l.ELB, describeErr(err))
		}
		return nil
	}
	arn, err := f.targetGroupARN(ctx)
	if err != nil {
		return err
	}
	if _, err := f.elbv2.RegisterTargets(ctx, &elbv2.RegisterTargetsInput{TargetGroupArn: aws.String(arn), Targets: targets(ids)}); err != nil {
		return fmt.Errorf("register %s in target group %s: %w", strings.Join(ids, ", "), shortGroup(arn), describeErr(err))
	}
	return nil
}

// waitHealthy waits, at most bound, until the load balancer says every
// instance is InService (classic) or healthy (ELBv2), with the SDK's
// waiters.
func (f *fleet) waitHealthy(ctx context.Context, ids []string, bound time.Duration) error {
	if f.l.ELB != "" {
		err := elb.NewInstanceInServiceWaiter(f.elb, func(o *elb.InstanceInServiceWaiterOptions) {
			o.MinDelay, o.MaxDelay = f.interval, 6*f.interval
		}).Wait(ctx, &elb.DescribeInstanceHealthInput{LoadBalancerName: aws.String(f.l.ELB), Instances: elbInstances(ids)}, bound)
		if err != nil {
			return fmt.Errorf("wait for %s to be InService in load balancer %s: %w", strings.Join(ids, ", "), f.l.ELB, describeErr(err))
		}
		return nil
	}
	arn, err := f.targetGroupARN(ctx)
	if err != nil {
		return err
	}
	err = elbv2.NewTargetInServiceWaiter(f.elbv2, func(o *elbv2.TargetInServiceWaiterOptions) {
		o.MinDelay, o.MaxDelay = f.interval, 6*f.interval
	}).Wait(ctx, &elbv2.DescribeTargetHealthInput{TargetGroupArn: aws.String(arn), Targets: targets(ids)}, bound)
	if err != nil {
		return fmt.Errorf("wait for %s to be healthy in target group %s: %w", strings.Join(ids, ", "), shortGroup(arn), describeErr(err))
	}
	return nil
}

// deregister takes instances out of the launcher's load balancer; an
// instance that is not registered is already out.
func (f *fleet) deregister(ctx context.Context, ids []string) error {
	if f.l.ELB != "" {
		_, err := f.elb.DeregisterInstancesFromLoadBalancer(ctx, &elb.DeregisterInstancesFromLoadBalancerInput{
			LoadBalancerName: aws.String(f.l.ELB), Instances: elbInstances(ids)})
		if err != nil && errorCode(err) != "InvalidInstance" {
			return fmt.Errorf("deregister %s from load balancer %s: %w", strings.Join(ids, ", "), f.l.ELB, describeErr(err))
		}
		return nil
	}
	arn, err := f.targetGroupARN(ctx)
	if err != nil {
		return err
	}
	if _, err := f.elbv2.DeregisterTargets(ctx, &elbv2.DeregisterTargetsInput{TargetGroupArn: aws.String(arn), Targets: targets(ids)}); err != nil {
		return fmt.Errorf("deregister %s from target group %s: %w", strings.Join(ids, ", "), shortGroup(arn), describeErr(err))
	}
	return nil
}

// waitDrained waits, at most bound, until the load balancer has let go of
// every instance: connection draining (classic) or the deregistration
// delay (ELBv2) is over.
func (f *fleet) waitDrained(ctx context.Context, ids []string, bound time.Duration) error {
	if f.l.ELB != "" {
		err := elb.NewInstanceDeregisteredWaiter(f.elb, func(o *elb.InstanceDeregisteredWaiterOptions) {
			o.MinDelay, o.MaxDelay = f.interval, 6*f.interval
		}).Wait(ctx, &elb.DescribeInstanceHealthInput{LoadBalancerName: aws.String(f.l.ELB), Instances: elbInstances(ids)}, bound)
		if err != nil {
			return fmt.Errorf("wait for %s to drain from load balancer %s: %w", strings.Join(ids, ", "), f.l.ELB, describeErr(err))
		}
		return nil
	}
	arn, err := f.targetGroupARN(ctx)
	if err != nil {
		return err
	}
	err = elbv2.NewTargetDeregisteredWaiter(f.elbv2, func(o *elbv2.TargetDeregisteredWaiterOptions) {
		o.MinDelay, o.MaxDelay = f.interval, 6*f.interval
	}).Wait(ctx, &elbv2.DescribeTargetHealthInput{TargetGroupArn: aws.String(arn), Targets: targets(ids)}, bound)
	if err != nil {
		return fmt.Errorf("wait for %s to drain from target group %s: %w", strings.Join(ids, ", "), shortGroup(arn), describeErr(err))
	}
	return nil
}

// lbGroups groups the executor's hosts by the load balancer of their
// roles' launchers: the fleet of each role with one, and the instance ids
// of its hosts there. A host in no such role is left out.
func (r *Recipe) lbGroups(c *tasks.Context) ([]*fleet, [][]string, error) {
	stage, _ := c.Executor.Vars.FetchString("stage")
	ls := r.stageLaunchers(stage)
	var fleets []*fleet
	var ids [][]string
	hosts := c.Roles("all")
	for _, role := range sortedKeys(ls) {
		if !ls[role].HasLB() {
			continue
		}
		var these []string
		for _, h := range deploy.WithRoles(hosts, role) {
			id, _ := h.Props["instance_id"].(string)
			if id == "" {
				c.Warn(fmt.Sprintf("%s: %s has no instance_id (it was not found by ec2_servers), so it is left as it is in %s", c.Task.Name, h, ls[role].lbName()))
				continue
			}
			if !slices.Contains(these, id) {
				these = append(these, id)
			}
		}
		if len(these) == 0 {
			continue
		}
		f, err := r.fleetFor(c, role)
		if err != nil {
			return nil, nil, err
		}
		fleets = append(fleets, f)
		ids = append(ids, these)
	}
	return fleets, ids, nil
}

// noLoadBalancer says that the hosts have no load balancer to leave or
// join, once per run: a rolling deploy calls both tasks for every batch,
// and a fleet without load balancers would hear it twice a batch.
func (r *Recipe) noLoadBalancer(c *tasks.Context) {
	r.saidNoLB.Do(func() {
		c.Info(c.Task.Name + ": none of these hosts is in a role with a load balancer (launcher elb= or target_group=); nothing to do (said once)")
	})
}

// lbDeregisterTask is lb:deregister: the executor's hosts out of their
// roles' load balancers, waiting (bounded by the launcher's
// launch_timeout) for draining. The rolling deploy runs it per batch.
func (r *Recipe) lbDeregisterTask(c *tasks.Context) error {
	fleets, ids, err := r.lbGroups(c)
	if err != nil {
		return err
	}
	if len(fleets) == 0 {
		r.noLoadBalancer(c)
		return nil
	}
	for i, f := range fleets {
		start := time.Now()
		if c.DryRun() {
			c.Info(fmt.Sprintf("dry run: would deregister %s from %s and wait for draining (at most %s)", strings.Join(ids[i], ", "), f.l.lbName(), f.l.Timeout))
			continue
		}
		if err := f.deregister(c.Ctx(), ids[i]); err != nil {
			return err
		}
		f.say(start, "deregistered %s from %s; waiting for draining", strings.Join(ids[i], ", "), f.l.lbName())
		if err := f.waitDrained(c.Ctx(), ids[i], f.l.Timeout); err != nil {
			return err
		}
		f.say(start, "%s drained from %s", strings.Join(ids[i], ", "), f.l.lbName())
	}
	return nil
}

// lbRegisterTask is lb:register: the executor's hosts into their roles'
// load balancers, waiting (bounded) until they are healthy there.
func (r *Recipe) lbRegisterTask(c *tasks.Context) error {
	fleets, ids, err := r.lbGroups(c)
	if err != nil {
		return err
	}
	if len(fleets) == 0 {
		r.noLoadBalancer(c)
		return nil
	}
	for i, f := range fleets {
		start := time.Now()
		if c.DryRun() {
			c.Info(fmt.Sprintf("dry run: would register %s with %s and wait until healthy (at most %s)", strings.Join(ids[i], ", "), f.l.lbName(), f.l.Timeout))
			continue
		}
		if err := f.register(c.Ctx(), ids[i]); err != nil {
			return err
		}
		f.say(start, "registered %s with %s; waiting until healthy", strings.Join(ids[i], ", "), f.l.lbName())
		if err := f.waitHealthy(c.Ctx(), ids[i], f.l.Timeout); err != nil {
			return err
		}
		f.say(start, "%s healthy in %s", strings.Join(ids[i], ", "), f.l.lbName())
	}
	return nil
}
