package aws

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/smithy-go"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/recipes/internal/sdklog"
	"github.com/davit-deploy/davit/tasks"
)

// The tags davit writes on the instances it launches, besides the stage's,
// the role's and Name.
const (
	LaunchedAtTag = "davit:launched-at" // RFC 3339, UTC
	ReadyAtTag    = "davit:ready-at"    // RFC 3339, UTC: the launch finished (registered, healthy)
)

// LaunchedInstance is one instance davit launched for a role, as EC2 reports it now.
type LaunchedInstance struct {
	ID         string
	State      string    // "pending" or "running" (shutting-down/terminated are never listed)
	LaunchedAt time.Time // from the davit:launched-at tag (RFC 3339, UTC)
	ReadyAt    time.Time // from the davit:ready-at tag, written when launch finished (registered, healthy); zero while booting
	Type       string    // instance type
}

// Launched lists the running and pending instances davit launched for role in the
// current stage (the stage's ec2_servers tags + role tag + davit:launched-by present), oldest first.
func (r *Recipe) Launched(c *tasks.Context, role string) ([]LaunchedInstance, error) {
	f, err := r.fleetFor(c, role)
	if err != nil {
		return nil, err
	}
	launched, _, err := f.list(c.Ctx())
	return launched, err
}

// Launch launches count instances of role through its launcher and waits for each as the launch task does.
func (r *Recipe) Launch(c *tasks.Context, role string, count int) error {
	f, err := r.fleetFor(c, role)
	if err != nil {
		return err
	}
	return f.launch(c.Ctx(), count)
}

// TerminateNewest retires the newest davit-launched instance of role (deregister, drain, terminate).
func (r *Recipe) TerminateNewest(c *tasks.Context, role string) error {
	f, err := r.fleetFor(c, role)
	if err != nil {
		return err
	}
	return f.terminateNewest(c.Ctx())
}

// fleet is one role's instances in one stage, as a task works on them.
type fleet struct {
	c          *tasks.Context
	r          *Recipe
	stage      string
	src        *Source
	l          *Launcher
	interval   time.Duration // between polls of EC2, the load balancer and the welcome page
	tryTimeout time.Duration // one request of the welcome wait
	ec2        *ec2.Client
	elb        *elb.Client
	elbv2      *elbv2.Client
	region     string
}

// fleetFor checks role and makes the clients for the stage's region.
func (r *Recipe) fleetFor(c *tasks.Context, role string) (*fleet, error) {
	v := c.Executor.Vars
	l, stage, err := r.launcherOf(v, role)
	if err != nil {
		return nil, err
	}
	src, err := r.stageSource(stage)
	if err != nil {
		return nil, err
	}
	f := &fleet{c: c, r: r, stage: stage, src: src, l: l}
	if f.interval, err = secondsVar(v, "launch_poll_interval"); err != nil {
		return nil, err
	}
	if f.tryTimeout, err = secondsVar(v, "launch_try_timeout"); err != nil {
		return nil, err
	}
	cfg, err := loadConfig(c.Ctx(), src.Region, sdklog.To(c.Warn), src.LoadOptions)
	if err != nil {
		return nil, fmt.Errorf("role %s: %w", role, err)
	}
	f.region = cfg.Region
	f.ec2 = ec2.NewFromConfig(cfg)
	f.elb = elb.NewFromConfig(cfg)
	f.elbv2 = elbv2.NewFromConfig(cfg)
	return f, nil
}

// secondsVar reads a duration variable (tasks.Vars.FetchDuration) that
// must be more than 0.
func secondsVar(v *tasks.Vars, name string) (time.Duration, error) {
	d, err := v.FetchDuration(name)
	if err != nil {
		return 0, err
	}
	if d <= 0 {
		return 0, fmt.Errorf("%s is %s; it must be more than 0 seconds", name, d)
	}
	return d, nil
}

// say reports a step of the fleet's work with the time since start.
func (f *fleet) say(start time.Time, format string, a ...any) {
	f.c.Info(fmt.Sprintf("%s %s: %s (%s)", f.l.Role, f.stage, fmt.Sprintf(format, a...), time.Since(start).Round(100*time.Millisecond)))
}

// list asks EC2 for the role's pending and running instances in the stage:
// those davit launched, oldest first, and how many others (the base
// fleet) there are.
func (f *fleet) list(ctx context.Context) ([]LaunchedInstance, int, error) {
	pages := ec2.NewDescribeInstancesPaginator(f.ec2, &ec2.DescribeInstancesInput{
		Filters: f.src.filtersFor([]string{"pending", "running"}),
	}, func(o *ec2.DescribeInstancesPaginatorOptions) { o.Limit = DefaultPageSize })
	var launched []LaunchedInstance
	base := 0
	for page := 1; pages.HasMorePages(); page++ {
		out, err := pages.NextPage(ctx)
		if err != nil {
			return nil, 0, apiError(f.region, page, err)
		}
		for _, r := range out.Reservations {
			for _, in := range r.Instances {
				if !f.mine(in) {
					continue
				}
				tags := tagMap(in.Tags)
				if _, ok := tags[LaunchedByTag]; !ok {
					base++
					continue
				}
				li := LaunchedInstance{ID: aws.ToString(in.InstanceId), State: string(in.State.Name), Type: string(in.InstanceType)}
				li.LaunchedAt, _ = time.Parse(time.RFC3339, tags[LaunchedAtTag])
				li.ReadyAt, _ = time.Parse(time.RFC3339, tags[ReadyAtTag])
				launched = append(launched, li)
			}
		}
	}
	sort.SliceStable(launched, func(i, j int) bool {
		if !launched[i].LaunchedAt.Equal(launched[j].LaunchedAt) {
			return launched[i].LaunchedAt.Before(launched[j].LaunchedAt)
		}
		return launched[i].ID < launched[j].ID
	})
	return launched, base, nil
}

// mine re-checks an answer: pending or running, every stage tag, and the
// role among the instance's roles.
func (f *fleet) mine(in types.Instance) bool {
	if in.State == nil || (in.State.Name != types.InstanceStateNameRunning && in.State.Name != types.InstanceStateNamePending) {
		return false
	}
	tags := tagMap(in.Tags)
	for k, v := range f.src.Tags {
		if got, ok := tags[k]; !ok || !glob(v, got) {
			return false
		}
	}
	return slices.Contains(f.src.host(in).Roles, f.l.Role)
}

// launchedBy is the davit:launched-by tag: who launched, from where.
func launchedBy() string {
	name := "unknown"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	} else if u := os.Getenv("USER"); u != "" {
		name = u
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	return name + "@" + host
}

// isDryRunOK reports whether err is EC2's answer to a DryRun request that
// would have succeeded.
func isDryRunOK(err error) bool {
	var api smithy.APIError
	return errors.As(err, &api) && api.ErrorCode() == "DryRunOperation"
}

// errorCode is err's AWS error code, or "".
func errorCode(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

// revision is the REVISION a new instance's user data carries: the
// revision variable when it is set; else, with the deploy recipe in use,
// the REVISION file of current_path on the role's first host (what the
// fleet runs now: revisions.log's last line may be a rollback, which names
// a release and no revision); else none, said once.
func (f *fleet) revision() (string, error) {
	v := f.c.Executor.Vars
	if v.Has("revision") {
		rev, err := v.FetchString("revision")
		if err != nil {
			return "", err
		}
		if rev = strings.TrimSpace(rev); rev != "" {
			f.c.Info(fmt.Sprintf("%s %s: REVISION=%s (the revision variable)", f.l.Role, f.stage, rev))
			return rev, nil
		}
	}
	hosts := deploy.WithRoles(f.c.Executor.Hosts, f.l.Role)
	if !v.Has("current_path") || len(hosts) == 0 {
		f.c.Warn(fmt.Sprintf("%s %s: no revision variable and no deployed host of the role to read current/REVISION from; the user data carries no REVISION", f.l.Role, f.stage))
		return "", nil
	}
	current, err := v.FetchString("current_path")
	if err != nil {
		return "", err
	}
	path := current + "/REVISION"
	if f.c.DryRun() {
		f.c.Info(fmt.Sprintf("dry run: %s %s: REVISION would be read from %s:%s", f.l.Role, f.stage, hosts[0], path))
		return "<revision on " + hosts[0].Name + ">", nil
	}
	var rev string
	err = f.c.On(hosts[:1], nil, func(hc *tasks.HostContext) error {
		out, err := hc.Capture([]string{"cat", path}, tasks.CommandOptions{Label: "read the deployed REVISION", Timeout: time.Minute})
		rev = strings.TrimSpace(out)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("read the deployed revision from %s:%s (set revision=... to give it): %w", hosts[0], path, err)
	}
	if rev == "" {
		return "", fmt.Errorf("%s:%s is empty (set revision=... to give it)", hosts[0], path)
	}
	f.c.Info(fmt.Sprintf("%s %s: REVISION=%s (from %s:%s)", f.l.Role, f.stage, rev, hosts[0], path))
	return rev, nil
}

// taskRole reads role=, which the fleet tasks need.
func taskRole(v *tasks.Vars, task string) (string, error) {
	if !v.Has("role") {
		return "", fmt.Errorf("give the role: %s role=ROLE", task)
	}
	role, err := v.FetchString("role")
	if err != nil {
		return "", err
	}
	if role = strings.TrimSpace(role); role == "" {
		return "", fmt.Errorf("role= is empty: give the role, %s role=ROLE", task)
	}
	return role, nil
}

// taskCount reads count=: def when not given (and def >= 0), required
// otherwise.
func taskCount(v *tasks.Vars, task string, def, least int) (int, error) {
	if !v.Has("count") {
		if def < 0 {
			return 0, fmt.Errorf("give the count: %s role=ROLE count=N", task)
		}
		return def, nil
	}
	n, err := v.FetchInt("count")
	if err != nil {
		return 0, err
	}
	if n < least {
		return 0, fmt.Errorf("count=%d: it must be at least %d", n, least)
	}
	return n, nil
}

// launcherOf is the stage's launcher for role, or an error naming the
// stage's launchers (and the nearest, for a typo).
func (r *Recipe) launcherOf(v *tasks.Vars, role string) (*Launcher, string, error) {
	stage, _ := v.FetchString("stage")
	ls := r.stageLaunchers(stage)
	if l := ls[role]; l != nil {
		return l, stage, nil
	}
	if len(ls) == 0 {
		return nil, stage, fmt.Errorf("role %s: stage %s declares no launcher(...)", role, stage)
	}
	names := sortedKeys(ls)
	return nil, stage, fmt.Errorf("role %s has no launcher in stage %s (launchers: %s)%s", role, stage, strings.Join(names, ", "), tasks.DidYouMean(role, names))
}

// checkFleetTask is the check of launch, terminate and scale before
// anything runs: role= names a launcher of the stage, count= (when the
// task reads it) is a number in range. defCount and least are as
// taskCount's; least < 0 means the task takes no count.
func (r *Recipe) checkFleetTask(task string, defCount, least int) func(*tasks.Vars) error {
	return func(v *tasks.Vars) error {
		var errs []error
		if role, err := taskRole(v, task); err != nil {
			errs = append(errs, err)
		} else if _, _, err := r.launcherOf(v, role); err != nil {
			errs = append(errs, err)
		}
		if least >= 0 {
			if _, err := taskCount(v, task, defCount, least); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
}

// DefineTasks adds launch, terminate, scale, lb:register and lb:deregister.
func (r *Recipe) DefineTasks(reg *tasks.Registry) error {
	pos := tasks.Position{File: "recipes/aws"}
	for _, t := range []*tasks.Task{
		{Name: "launch", Desc: "Launch count= (default 1) instances of role= through its launcher: running, welcome page, load balancer", Run: r.launchTask,
			Check: r.checkFleetTask("launch", 1, 1)},
		{Name: "terminate", Desc: "Retire the newest instance davit launched for role=: deregister, drain, terminate", Run: r.terminateTask,
			Check: r.checkFleetTask("terminate", 0, -1)},
		{Name: "scale", Desc: "Converge role= to count= running instances (base fleet included), launching or terminating davit's own", Run: r.scaleTask,
			Check: r.checkFleetTask("scale", -1, 0)},
		{Name: "lb:deregister", Desc: "Take the hosts out of their role's load balancer and wait for draining", Run: r.lbDeregisterTask},
		{Name: "lb:register", Desc: "Put the hosts into their role's load balancer and wait until they are healthy there", Run: r.lbRegisterTask},
		{Name: "autoscale", Desc: "Decide once from the queue length of role= and launch or terminate; watch=5m decides every 5 minutes until stopped", Run: r.autoscaleTask,
			Check: r.checkAutoscaleTask},
	} {
		t.Pos = pos
		if err := reg.Define(t); err != nil {
			return err
		}
	}
	return nil
}

func (r *Recipe) launchTask(c *tasks.Context) error {
	role, err := taskRole(c.Executor.Vars, c.Task.Name)
	if err != nil {
		return err
	}
	n, err := taskCount(c.Executor.Vars, c.Task.Name, 1, 1)
	if err != nil {
		return err
	}
	return r.Launch(c, role, n)
}

func (r *Recipe) terminateTask(c *tasks.Context) error {
	role, err := taskRole(c.Executor.Vars, c.Task.Name)
	if err != nil {
		return err
	}
	return r.TerminateNewest(c, role)
}

func (r *Recipe) scaleTask(c *tasks.Context) error {
	role, err := taskRole(c.Executor.Vars, c.Task.Name)
	if err != nil {
		return err
	}
	n, err := taskCount(c.Executor.Vars, c.Task.Name, -1, 0)
	if err != nil {
		return err
	}
	f, err := r.fleetFor(c, role)
	if err != nil {
		return err
	}
	return f.scale(c.Ctx(), n)
}
