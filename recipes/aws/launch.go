package aws

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/davit-deploy/davit/deploy/httpwait"
	"github.com/davit-deploy/davit/recipes/capdeploy"
)

// cleanupTimeout bounds the clean-up of a failed launch. It runs on a
// fresh context, so an interrupted run (Ctrl-C) still terminates what it
// launched.
const cleanupTimeout = 2 * time.Minute

// launch launches count instances, each waited for on its own and at the
// same time; each one that fails is cleaned up, and the failures are
// reported together.
func (f *fleet) launch(ctx context.Context, count int) error {
	if count < 1 {
		return fmt.Errorf("launch %s: count=%d; launch at least 1", f.l.Role, count)
	}
	rev, err := f.revision()
	if err != nil {
		return fmt.Errorf("launch %s: %w", f.l.Role, err)
	}
	// Subnets are used in turn, starting after the instances davit has
	// running already, so a fleet grown one at a time spreads too.
	offset := 0
	if len(f.l.Subnets) > 1 {
		launched, _, err := f.list(ctx)
		if err != nil {
			return fmt.Errorf("launch %s: %w", f.l.Role, err)
		}
		offset = len(launched)
	}
	errs := make([]error, count)
	var wg sync.WaitGroup
	for k := 0; k < count; k++ {
		subnet := ""
		if len(f.l.Subnets) > 0 {
			subnet = f.l.Subnets[(offset+k)%len(f.l.Subnets)]
		}
		name := fmt.Sprintf("%s-%s-%s", f.stage, f.l.Role, time.Now().UTC().Format("20060102-150405"))
		if count > 1 {
			name += fmt.Sprintf("-%d", k+1)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[k] = f.launchOne(ctx, name, subnet, rev)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// runInput is the RunInstances request for one instance: the launcher's
// settings, the tags (the stage's, the launcher's, the role's, davit's
// own, Name) and the user data, all in the one call, so no instance ever
// runs untagged.
func (f *fleet) runInput(name, subnet, revision string, now time.Time) *ec2.RunInstancesInput {
	l := f.l
	in := &ec2.RunInstancesInput{
		MinCount: aws.Int32(1),
		MaxCount: aws.Int32(1),
		UserData: aws.String(base64.StdEncoding.EncodeToString([]byte(l.userDataText(f.stage, revision)))),
	}
	if l.AMI != "" {
		in.ImageId = aws.String(l.AMI)
	}
	if t := l.LaunchTemplate; t != "" {
		spec := &types.LaunchTemplateSpecification{Version: aws.String("$Default")}
		if strings.HasPrefix(t, "lt-") {
			spec.LaunchTemplateId = aws.String(t)
		} else {
			spec.LaunchTemplateName = aws.String(t)
		}
		in.LaunchTemplate = spec
	}
	if l.InstanceType != "" {
		in.InstanceType = types.InstanceType(l.InstanceType)
	}
	if l.KeyName != "" {
		in.KeyName = aws.String(l.KeyName)
	}
	for _, g := range l.SecurityGroups {
		if strings.HasPrefix(g, "sg-") {
			in.SecurityGroupIds = append(in.SecurityGroupIds, g)
		} else {
			in.SecurityGroups = append(in.SecurityGroups, g)
		}
	}
	if subnet != "" {
		in.SubnetId = aws.String(subnet)
	}
	if p := l.IamProfile; p != "" {
		if strings.HasPrefix(p, "arn:") {
			in.IamInstanceProfile = &types.IamInstanceProfileSpecification{Arn: aws.String(p)}
		} else {
			in.IamInstanceProfile = &types.IamInstanceProfileSpecification{Name: aws.String(p)}
		}
	}
	tags := map[string]string{}
	for k, v := range f.src.Tags {
		tags[k] = v
	}
	for k, v := range l.Tags {
		tags[k] = v
	}
	tags[f.src.RolesTag] = l.Role
	tags[LaunchedByTag] = launchedBy()
	tags[LaunchedAtTag] = now.UTC().Format(time.RFC3339)
	tags["Name"] = name
	var ts []types.Tag
	for _, k := range sortedKeys(tags) {
		ts = append(ts, types.Tag{Key: aws.String(k), Value: aws.String(tags[k])})
	}
	in.TagSpecifications = []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: ts}}
	return in
}

// welcomeURL is the role's template of the deploy recipe's
// health_check_url (capdeploy.HealthURLs: the same setting the deploy's
// health check reads), "" when the role has none.
func (f *fleet) welcomeURL() (string, error) {
	if !f.c.Executor.Vars.Has("health_check_url") {
		return "", nil
	}
	urls, err := capdeploy.HealthURLs(f.c.Executor.Vars)
	if err != nil {
		return "", err
	}
	for _, u := range urls {
		if slices.Contains(u.Roles, f.l.Role) || slices.Contains(u.Roles, "all") {
			return u.Template, nil
		}
	}
	return "", nil
}

func (f *fleet) expect() (string, error) {
	v := f.c.Executor.Vars
	if !v.Has("health_check_expect") {
		return httpwait.DefaultExpect, nil
	}
	return v.FetchString("health_check_expect")
}

// launchOne launches one instance and sees it through: running, its
// welcome page, its load balancer, the ready tag. Whatever fails after
// RunInstances (the context's end included) terminates the instance,
// unless the launcher keeps failures.
func (f *fleet) launchOne(ctx context.Context, name, subnet, revision string) (err error) {
	start := time.Now()
	l := f.l
	tmpl, err := f.welcomeURL()
	if err != nil {
		return fmt.Errorf("launch %s: %w", l.Role, err)
	}
	expect, err := f.expect()
	if err != nil {
		return fmt.Errorf("launch %s: %w", l.Role, err)
	}
	in := f.runInput(name, subnet, revision, start)
	what := "ami " + l.AMI
	if l.LaunchTemplate != "" {
		what = "launch template " + l.LaunchTemplate
	}
	if f.c.DryRun() {
		in.DryRun = aws.Bool(true)
		_, err := f.ec2.RunInstances(ctx, in)
		if !isDryRunOK(err) {
			if err == nil {
				err = errors.New("EC2 launched an instance for a DryRun request")
			}
			return fmt.Errorf("launch %s: RunInstances (dry run): %w", l.Role, err)
		}
		f.c.Info(fmt.Sprintf("dry run: %s %s: RunInstances of %s (%s) as %s would succeed; user data %s", l.Role, f.stage, what, l.InstanceType, name, l.userDataText(f.stage, revision)))
		next := "would wait until running"
		if tmpl != "" {
			next += fmt.Sprintf(", then GET %s until it says %q", tmpl, expect)
		}
		if l.HasLB() {
			next += ", then register with " + l.lbName() + " and wait until healthy"
		}
		f.c.Info(fmt.Sprintf("dry run: %s %s: %s, then tag %s (at most %s)", l.Role, f.stage, next, ReadyAtTag, l.Timeout))
		return nil
	}

	out, err := f.ec2.RunInstances(ctx, in)
	if err != nil {
		return fmt.Errorf("launch %s: RunInstances of %s: %w", l.Role, what, describeErr(err))
	}
	if len(out.Instances) != 1 {
		return fmt.Errorf("launch %s: RunInstances answered with %d instances for 1", l.Role, len(out.Instances))
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	f.say(start, "launched %s (%s, %s); waiting until it runs", id, name, what)

	registered := false
	defer func() {
		if err != nil {
			err = f.cleanUp(id, registered, err)
		}
	}()
	wctx, cancel := context.WithTimeout(ctx, l.Timeout)
	defer cancel()
	bound := func() time.Duration { d, _ := wctx.Deadline(); return max(time.Until(d), time.Millisecond) }

	desc, err := ec2.NewInstanceRunningWaiter(f.ec2, func(o *ec2.InstanceRunningWaiterOptions) {
		o.MinDelay, o.MaxDelay = f.interval, 6*f.interval
	}).WaitForOutput(wctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, bound())
	if err != nil {
		return fmt.Errorf("launch %s: %s never ran: %w", l.Role, id, waitErr(wctx, ctx, err))
	}
	var inst types.Instance
	for _, r := range desc.Reservations {
		for _, i := range r.Instances {
			if aws.ToString(i.InstanceId) == id {
				inst = i
			}
		}
	}
	h := f.src.host(inst)
	if h.Address == "" {
		return fmt.Errorf("launch %s: %s runs but has no address=%q", l.Role, id, f.src.Address)
	}
	f.say(start, "%s is running at %s", id, h.Address)

	if tmpl == "" {
		f.say(start, "no health_check_url for role %s: not waiting for a welcome page", l.Role)
	} else {
		url, err := httpwait.ExpandURL(tmpl, h)
		if err != nil {
			return fmt.Errorf("launch %s: %w", l.Role, err)
		}
		f.say(start, "waiting for %s to say %q", url, expect)
		res, err := httpwait.Wait(wctx, url, httpwait.Options{
			Expect: expect, Interval: f.interval, TryTimeout: f.tryTimeout, Timeout: bound(), DialContext: f.r.dial,
		})
		if err != nil {
			return fmt.Errorf("launch %s: %s: welcome page %s: %w", l.Role, id, url, waitErr(wctx, ctx, err))
		}
		f.say(start, "%s says %q (try %d)", url, expect, res.Tries)
	}

	if l.HasLB() {
		registered = true // from the attempt on: a half-done registration is undone too
		if err := f.register(wctx, []string{id}); err != nil {
			return fmt.Errorf("launch %s: %w", l.Role, waitErr(wctx, ctx, err))
		}
		f.say(start, "registered %s with %s; waiting until it is healthy there", id, l.lbName())
		if err := f.waitHealthy(wctx, []string{id}, bound()); err != nil {
			return fmt.Errorf("launch %s: %w", l.Role, waitErr(wctx, ctx, err))
		}
		f.say(start, "%s is healthy in %s", id, l.lbName())
	}
	if _, err := f.ec2.CreateTags(wctx, &ec2.CreateTagsInput{Resources: []string{id},
		Tags: []types.Tag{{Key: aws.String(ReadyAtTag), Value: aws.String(time.Now().UTC().Format(time.RFC3339))}}}); err != nil {
		return fmt.Errorf("launch %s: tag %s %s: %w", l.Role, id, ReadyAtTag, waitErr(wctx, ctx, err))
	}
	f.say(start, "%s is ready", id)
	return nil
}

// waitErr says why a wait ended: the run interrupted, the launch's bound,
// or err itself.
func waitErr(wctx, ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("interrupted: %w", ctx.Err())
	case wctx.Err() != nil:
		// Not wrapped: the launch ran out of time, it was not
		// interrupted, and must not read as if it had been.
		return fmt.Errorf("launch_timeout passed: %v", describeErr(err))
	}
	return describeErr(err)
}

// cleanUp undoes a failed launch on a fresh, bounded context: deregister
// (if it got that far), then terminate; or, with keep_on_failure, leaves
// the instance and says where it is.
func (f *fleet) cleanUp(id string, registered bool, cause error) error {
	if f.l.KeepOnFailure {
		f.c.Warn(fmt.Sprintf("%s %s: keep_on_failure: %s is left running for you to look at; `terminate` will not pick it before newer ones, so terminate it by hand when done", f.l.Role, f.stage, id))
		return fmt.Errorf("%w (instance %s kept: keep_on_failure)", cause, id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	var undone []string
	if registered {
		if err := f.deregister(ctx, []string{id}); err != nil {
			f.c.Warn(fmt.Sprintf("%s %s: deregistering the failed %s from %s: %v", f.l.Role, f.stage, id, f.l.lbName(), err))
		} else {
			undone = append(undone, "deregistered from "+f.l.lbName())
		}
	}
	if _, err := f.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		f.c.Warn(fmt.Sprintf("%s %s: TERMINATE %s BY HAND: terminating the failed launch failed: %v", f.l.Role, f.stage, id, describeErr(err)))
		return fmt.Errorf("%w (instance %s NOT terminated: %v)", cause, id, err)
	}
	undone = append(undone, "terminated")
	f.c.Warn(fmt.Sprintf("%s %s: the launch of %s failed, so it was %s", f.l.Role, f.stage, id, strings.Join(undone, " and ")))
	return fmt.Errorf("%w (instance %s %s)", cause, id, strings.Join(undone, " and "))
}

// describeErr keeps an AWS error's code and message and the SDK's retry
// count, without the SDK's long wrapping; errors.Is and errors.As still
// see the cause.
func describeErr(err error) error {
	var api smithy.APIError
	if !errors.As(err, &api) {
		return err
	}
	msg := api.ErrorCode() + ": " + api.ErrorMessage()
	var maxErr *retry.MaxAttemptsError
	if errors.As(err, &maxErr) {
		msg += fmt.Sprintf(" (gave up after %d attempts)", maxErr.Attempt)
	}
	return &shortError{msg: msg, err: err}
}

type shortError struct {
	msg string
	err error
}

func (e *shortError) Error() string { return e.msg }
func (e *shortError) Unwrap() error { return e.err }
