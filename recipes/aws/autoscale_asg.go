package aws

import (
	"fmt"
	"sort"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/davit-deploy/davit/recipes/internal/sdklog"
	"github.com/davit-deploy/davit/recipes/scaling"
	"github.com/davit-deploy/davit/tasks"
)

// decideASG is the decision for a role on an Auto Scaling group: the
// group's minimum is the base fleet, the instances above it (newest by
// launch time) are the dynamic ones, and the action sets the desired
// capacity within min and max. Which instance the group terminates is the
// group's termination policy.
func (r *Recipe) decideASG(c *tasks.Context, a *Autoscaler, history []scaling.Sample) error {
	ctx := c.Ctx()
	region := a.Region
	if region == "" {
		if stage, _ := c.Executor.Vars.FetchString("stage"); stage != "" {
			if src, err := r.stageSource(stage); err == nil {
				region = src.Region
			}
		}
	}
	cfg, err := loadConfig(ctx, region, sdklog.To(c.Warn), r.loadOptions)
	if err != nil {
		return fmt.Errorf("autoscale %s: %w", a.Role, err)
	}
	as := autoscaling.NewFromConfig(cfg)
	out, err := as.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{a.ASG}})
	if err != nil {
		return fmt.Errorf("autoscale %s: DescribeAutoScalingGroups %s in %s: %w", a.Role, a.ASG, cfg.Region, describeErr(err))
	}
	if len(out.AutoScalingGroups) == 0 {
		return fmt.Errorf("autoscale %s: no Auto Scaling group %q in %s", a.Role, a.ASG, cfg.Region)
	}
	g := out.AutoScalingGroups[0]
	minSize, maxSize, desired := int(awssdk.ToInt32(g.MinSize)), int(awssdk.ToInt32(g.MaxSize)), int(awssdk.ToInt32(g.DesiredCapacity))

	// The group's instances that count: not on their way out.
	type member struct {
		id       string
		inServ   bool
		launched time.Time
	}
	var members []member
	var ids []string
	for _, in := range g.Instances {
		switch in.LifecycleState {
		case astypes.LifecycleStateTerminating, astypes.LifecycleStateTerminatingWait, astypes.LifecycleStateTerminatingProceed,
			astypes.LifecycleStateTerminated, astypes.LifecycleStateDetaching, astypes.LifecycleStateDetached:
			continue
		}
		id := awssdk.ToString(in.InstanceId)
		members = append(members, member{id: id, inServ: in.LifecycleState == astypes.LifecycleStateInService})
		ids = append(ids, id)
	}
	if len(ids) > 0 {
		launchTimes := map[string]time.Time{}
		pages := ec2.NewDescribeInstancesPaginator(ec2.NewFromConfig(cfg), &ec2.DescribeInstancesInput{InstanceIds: ids})
		for page := 1; pages.HasMorePages(); page++ {
			p, err := pages.NextPage(ctx)
			if err != nil {
				return fmt.Errorf("autoscale %s: %w", a.Role, apiError(cfg.Region, page, err))
			}
			for _, res := range p.Reservations {
				for _, in := range res.Instances {
					launchTimes[awssdk.ToString(in.InstanceId)] = awssdk.ToTime(in.LaunchTime)
				}
			}
		}
		for i := range members {
			members[i].launched = launchTimes[members[i].id]
		}
	}
	sort.SliceStable(members, func(i, j int) bool { return members[i].launched.Before(members[j].launched) })

	now := time.Now()
	in := scaling.Input{Now: now, Queue: history, Base: minSize}
	dynamic := max(0, desired-minSize)
	// Capacity asked for but not yet an instance is booting.
	for i := len(members); i < desired && len(in.Servers) < dynamic; i++ {
		in.Servers = append(in.Servers, scaling.Server{ID: fmt.Sprintf("(%s: instance %d of %d not started yet)", a.ASG, i+1, desired), LaunchedAt: now})
	}
	for i := len(members) - 1; i >= 0 && len(in.Servers) < dynamic; i-- {
		m := members[i]
		s := scaling.Server{ID: m.id, LaunchedAt: m.launched}
		if m.inServ {
			// The group does not say when an instance went in service;
			// its launch is the closest known time.
			s.ReadyAt = m.launched
		}
		in.Servers = append(in.Servers, s)
	}
	d := a.Policy.Decide(in)
	c.Info(fmt.Sprintf("autoscale %s (%s, group %s: min %d, max %d, desired %d): %s", a.Role, a.Policy.Name(), a.ASG, minSize, maxSize, desired, d))
	target := desired
	switch d.Action {
	case scaling.Launch:
		target = min(desired+d.Count, maxSize)
	case scaling.Terminate:
		target = max(desired-d.Count, minSize)
	default:
		return nil
	}
	if target == desired {
		c.Info(fmt.Sprintf("autoscale %s: group %s is at its %s (%d): desired capacity stays", a.Role, a.ASG, map[bool]string{true: "maximum", false: "minimum"}[d.Action == scaling.Launch], desired))
		return nil
	}
	if c.DryRun() {
		// SetDesiredCapacity has no DryRun parameter: a dry run sends nothing.
		c.Info(fmt.Sprintf("dry run: autoscale %s: would set the desired capacity of %s from %d to %d", a.Role, a.ASG, desired, target))
		return nil
	}
	if _, err := as.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{
		AutoScalingGroupName: awssdk.String(a.ASG), DesiredCapacity: awssdk.Int32(int32(target)), HonorCooldown: awssdk.Bool(false),
	}); err != nil {
		return fmt.Errorf("autoscale %s: SetDesiredCapacity %s to %d: %w", a.Role, a.ASG, target, describeErr(err))
	}
	c.Info(fmt.Sprintf("autoscale %s: desired capacity of %s set from %d to %d", a.Role, a.ASG, desired, target))
	return nil
}
